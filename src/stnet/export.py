"""Export models for deployment (ONNX).

The exported graph takes ``images`` (B, 3, H, W) float32, ImageNet-normalised, and returns
``heatmaps`` (B, K, H/4, W/4); the batch dimension is dynamic. BatchNorm is folded first (the
function is unchanged, see stnet.models.fuse). Files are written atomically: an existing file at
``path`` is replaced only once the new export is complete.
"""
from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from .models.fuse import fold_batchnorm

__all__ = ["export_onnx"]


def export_onnx(model: nn.Module, path: str | os.PathLike, input_size: tuple[int, int] | None = None,
                opset: int = 17, fold_bn: bool = True, dynamic_batch: bool = True) -> Path:
    """Write ``model`` as ONNX to ``path`` and return the path."""
    path = Path(path)
    if input_size is None:
        input_size = tuple(getattr(getattr(model, "cfg", None), "input_size", (256, 192)))
    model = fold_batchnorm(model) if fold_bn else model.eval()
    dummy = torch.zeros(1, 3, *input_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".onnx.tmp", dir=path.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings():
            # The TorchScript-based exporter is deprecated in favour of torch.export's, which needs
            # onnxscript; ours has no data-dependent control flow, so tracing is exact.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model, (dummy,), tmp, dynamo=False, opset_version=opset,
                input_names=["images"], output_names=["heatmaps"],
                dynamic_axes={"images": {0: "batch"}, "heatmaps": {0: "batch"}} if dynamic_batch else None,
            )
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
