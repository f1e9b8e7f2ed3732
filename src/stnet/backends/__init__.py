"""Inference backends: what runs a pose network on a batch of crops.

A backend is any object with this shape (:class:`Backend`)::

    class Backend(Protocol):
        name: str                      # "torch" | "onnxruntime" | "openvino"
        input_size: tuple[int, int]    # (H, W) of the crops it expects
        card: ModelCard                # what it runs; card.decode / card.with_affine: what it returns
        def run(self, batch: np.ndarray, affine: np.ndarray | None = None) -> BackendOutput: ...
            # (B, 3, H, W) float32 ImageNet-normalised crops (+ (B, 2, 3) crop->image matrices)
            # -> heatmaps (B, K, h, w), or keypoints (B, K, 2) + scores (B, K) when the graph decodes

The built-in backends are also callables ``backend(batch) -> heatmaps`` for heatmap graphs;
:func:`as_backend` adapts any such callable with an ``input_size`` to the protocol.
:class:`~stnet.inference.estimator.PoseEstimator` does everything around it (crops, batching,
flip test, decoding heatmaps, mapping to image pixels). Built in:
:class:`~stnet.backends.torch.TorchBackend` (PyTorch, BatchNorm folded, channels-last on CPU),
:class:`~stnet.backends.onnxruntime.OnnxRuntimeBackend` (an exported ``.onnx`` file or a network
exported on the fly) and :class:`~stnet.backends.openvino.OpenVINOBackend` (OpenVINO's CPU
plugin, f32 or bf16; a network, an ``.onnx`` file or an IR ``.xml``; needs the optional
``openvino`` package, imported only when that backend is built). :func:`build_backend` makes one
by name; ``"auto"`` is OpenVINO when installed (on CPU), else the default for the model.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch.nn as nn

# Not ``import torch``: importing the submodule ``stnet.backends.torch`` rebinds the package
# attribute ``torch`` to that submodule.
from torch import device as _device
from torch import get_num_threads as _get_num_threads

from .base import BACKENDS, Backend, BackendOutput, as_backend

__all__ = ["Backend", "BackendOutput", "BACKENDS", "build_backend", "default_backend", "resolve_backend_name",
           "openvino_available", "as_backend"]

_FP32 = ("auto", "f32", "fp32", "float32")


def openvino_available() -> bool:
    """True when the ``openvino`` package can be imported (``pip install stnet[openvino]``)."""
    from .openvino import openvino_available as _available

    return _available()


def default_backend(model: nn.Module | str | os.PathLike) -> str:
    """The backend a model runs on when none is named: torch for a network, onnxruntime for an
    ``.onnx`` file, openvino for an OpenVINO IR ``.xml``."""
    if isinstance(model, nn.Module):
        return "torch"
    return "openvino" if str(model).endswith(".xml") else "onnxruntime"


def resolve_backend_name(name: str | None, model: nn.Module | str | os.PathLike,
                         device: str | _device = "cpu") -> str:
    """``None`` -> :func:`default_backend`; ``"auto"`` -> ``"openvino"`` when it is installed and
    the device is the CPU, else the default; other names are checked."""
    if name is None:
        return default_backend(model)
    if name == "auto":
        if _device(device).type == "cpu" and openvino_available():
            return "openvino"
        return default_backend(model)
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS + ('auto',)))}, got {name!r}")
    return name


def build_backend(name: str | None, model: nn.Module | str | os.PathLike, input_size: tuple[int, int] | None = None,
                  device: str | _device = "cpu", *, precision: str = "auto", threads: int | None = None,
                  cache_dir: str | os.PathLike | None | bool = True) -> Backend:
    """Backend ``name`` (see :func:`resolve_backend_name`) running ``model``: a network, an
    ``.onnx`` file (onnxruntime, openvino) or an OpenVINO IR ``.xml`` (openvino). ``input_size``
    (H, W) is required for a network; for a file it defaults to the graph's.

    ``precision`` (``"f32"`` / ``"bf16"`` / ``"auto"``, see
    :func:`stnet.backends.openvino.resolve_precision`) and ``cache_dir`` apply to OpenVINO; the
    torch and onnxruntime backends run fp32 and refuse ``"bf16"``. ``threads``: OpenVINO's
    ``INFERENCE_NUM_THREADS`` (default torch's thread count, which onnxruntime and torch use)."""
    name = resolve_backend_name(name, model, device)
    if name != "openvino" and str(precision).lower() not in _FP32:
        raise ValueError(f"precision={precision!r} needs backend='openvino' (the {name} backend runs fp32)")
    if name != "openvino" and not isinstance(model, nn.Module) and str(model).endswith(".xml"):
        raise ValueError(f"{model}: an OpenVINO IR (.xml) needs backend='openvino'")
    if name == "torch":
        if not isinstance(model, nn.Module):
            raise ValueError(f"{model}: an .onnx file needs backend='onnxruntime' or 'openvino'")
        from .torch import TorchBackend

        return TorchBackend(model, _size(input_size), device)
    if name == "openvino":
        if _device(device).type != "cpu":
            raise ValueError(f"backend='openvino' runs on the CPU, not {device!r}")
        from .openvino import OpenVINOBackend

        return OpenVINOBackend(model, input_size=_size(input_size) if isinstance(model, nn.Module) else input_size,
                               precision=precision, threads=threads or _get_num_threads(), cache_dir=cache_dir)
    from .onnxruntime import OnnxRuntimeBackend

    if isinstance(model, nn.Module):
        return OnnxRuntimeBackend.from_network(model, _size(input_size), device)
    return OnnxRuntimeBackend(Path(model), input_size, device)


def _size(input_size: tuple[int, int] | None) -> tuple[int, int]:
    if input_size is None:
        raise ValueError("a network backend needs input_size (H, W)")
    return int(input_size[0]), int(input_size[1])
