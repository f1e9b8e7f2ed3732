"""stnet: STNet (Stair Network) top-down 2D human pose estimation.

Conventions used everywhere (see docs/conventions.md): image sizes are (H, W); keypoints are
(N, K, 2) arrays of (x, y) in image pixels; heatmaps are (B, K, h, w).

The public API is the names below; everything else is reached through its module (one home per
name): ``stnet.card.ModelCard``, ``stnet.model_files.load_model_ref``, ``stnet.export.onnx.export_onnx``,
``stnet.backends.build_backend``, ...
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .card import ModelCard
from .models import STNet, STNetConfig, create_model, list_models, register_model

if TYPE_CHECKING:
    from .inference.estimator import PoseEstimator
    from .results import PoseResult, Results

__version__ = "0.1.0"
__all__ = ["STNet", "STNetConfig", "PoseEstimator", "PoseResult", "Results", "ModelCard", "create_model",
           "list_models", "register_model", "__version__"]

#: Names loaded on first use: the inference side needs OpenCV, which ``import stnet.models`` must not load.
_LAZY = {"PoseEstimator": "inference.estimator", "PoseResult": "results", "Results": "results"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
