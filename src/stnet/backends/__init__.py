"""Inference backends: what runs a pose network on a batch of crops.

A backend is any object with this shape (:class:`Backend`)::

    class Backend(Protocol):
        name: str                      # "torch" | "onnxruntime" | "openvino"
        input_size: tuple[int, int]    # (H, W) of the crops it expects
        def __call__(self, batch: np.ndarray) -> np.ndarray: ...
            # (B, 3, H, W) float32 ImageNet-normalised crops -> (B, K, h, w) float32 heatmaps

:class:`~stnet.inference.PoseEstimator` does everything around it (crops, batching, flip test,
decoding, mapping to image pixels), so a backend only maps crops to heatmaps. Built in:
:class:`~stnet.backends.torch.TorchBackend` (PyTorch, BatchNorm folded, channels-last on CPU) and
:class:`~stnet.backends.onnxruntime.OnnxRuntimeBackend` (an exported ``.onnx`` file or a network
exported on the fly). :func:`build_backend` makes one by name.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn as nn

__all__ = ["Backend", "BACKENDS", "build_backend"]

#: Names :func:`build_backend` accepts.
BACKENDS = ("torch", "onnxruntime")


@runtime_checkable
class Backend(Protocol):
    name: str
    input_size: tuple[int, int]

    def __call__(self, batch: np.ndarray) -> np.ndarray: ...


def build_backend(name: str, model: nn.Module | str | os.PathLike, input_size: tuple[int, int] | None = None,
                  device: str | torch.device = "cpu") -> Backend:
    """Backend ``name`` running ``model``: a network, or for ``"onnxruntime"`` also an ``.onnx``
    file. ``input_size`` (H, W) is required for a network; for a file it defaults to the graph's."""
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}, got {name!r}")
    if name == "torch":
        if not isinstance(model, nn.Module):
            raise ValueError(f"{model}: an .onnx file needs backend='onnxruntime'")
        from .torch import TorchBackend

        return TorchBackend(model, _size(input_size), device)
    from .onnxruntime import OnnxRuntimeBackend

    if isinstance(model, nn.Module):
        return OnnxRuntimeBackend.from_network(model, _size(input_size), device)
    return OnnxRuntimeBackend(Path(model), input_size, device)


def _size(input_size: tuple[int, int] | None) -> tuple[int, int]:
    if input_size is None:
        raise ValueError("a network backend needs input_size (H, W)")
    return int(input_size[0]), int(input_size[1])
