"""ONNX export (:func:`export_onnx`).

Plain export: the graph takes ``images`` (B, 3, H, W) float32, ImageNet-normalised, and returns
``heatmaps`` (B, K, H/4, W/4); the batch dimension is dynamic. With ``decode=True`` the decoding
runs inside the graph (:class:`~stnet.codecs.decode_head.DecodeHead`): outputs ``keypoints``
(B, K, 2) and ``scores`` (B, K), in crop pixels, or image pixels with ``with_affine=True`` (a
second input ``affine`` (B, 2, 3) of crop->image matrices).

BatchNorm is folded first (the function is unchanged, see stnet.models.fuse). Files are written
atomically: an existing file at ``path`` is replaced only once the new export is complete. The
file carries its :class:`~stnet.card.ModelCard` json in ``metadata_props["stnet"]``.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from stnet.codecs.decode_head import DecodeHead
from stnet.constants import DEFAULT_INPUT_SIZE, GRAPH_METADATA_KEY
from stnet.io import atomic_write
from stnet.models.fuse import fold_batchnorm
from stnet.models.outputs import last_stage

__all__ = ["export_onnx", "DecodingModel", "check_export_args", "MIN_OPSET", "MAX_OPSET"]


class DecodingModel(nn.Module):
    """``model`` followed by :class:`~stnet.codecs.decode_head.DecodeHead`: images (+ affine) ->
    keypoints, scores."""

    def __init__(self, model: nn.Module, head: DecodeHead, with_affine: bool = False) -> None:
        super().__init__()
        self.model, self.head, self.with_affine = model, head, with_affine

    def forward(self, images: torch.Tensor, affine: torch.Tensor | None = None):
        return self.head(last_stage(self.model(images)), affine if self.with_affine else None)


def _model_geometry(model: nn.Module, input_size) -> tuple[tuple[int, int], int]:
    cfg = getattr(model, "cfg", None)
    if input_size is None:
        input_size = tuple(getattr(cfg, "input_size", DEFAULT_INPUT_SIZE))
    k = int(getattr(cfg, "num_joints", 0) or getattr(model, "num_joints", 0) or 0)
    return (int(input_size[0]), int(input_size[1])), k


#: Opsets stnet's networks export to: torch's TorchScript exporter writes at most 20; below 9 it fails
#: (9 exports STNet with and without the decoding head).
MIN_OPSET, MAX_OPSET = 9, 20


def check_export_args(path: Path | None, opset: int) -> None:
    """One-line errors for an output path that is a folder and an opset the exporter cannot write
    (torch's own errors are hundreds of lines)."""
    if path is not None and path.is_dir():
        raise ValueError(f"output {path} is a folder; give a file name, e.g. {path / 'model.onnx'}")
    if not MIN_OPSET <= int(opset) <= MAX_OPSET:
        raise ValueError(f"opset {opset} is not supported: use {MIN_OPSET} to {MAX_OPSET} (default 17)")


def export_onnx(model: nn.Module, path: str | os.PathLike, input_size: tuple[int, int] | None = None,
                opset: int = 17, fold_bn: bool = True, dynamic_batch: bool = True, *,
                decode: bool = False, with_affine: bool = False, unbiased: bool = True,
                blur_kernel_size: int = 11, metadata: dict | None = None) -> Path:
    """Write ``model`` as ONNX to ``path`` and return the path.

    ``decode``: append :class:`DecodeHead` (outputs ``keypoints``, ``scores``); ``with_affine``
    adds the ``affine`` input (implies ``decode``). ``unbiased`` / ``blur_kernel_size`` must match
    the codec the model was trained with (UDP + 11 by default). ``metadata`` (json-able dict) is
    stored in the model's ``metadata_props`` under ``stnet`` (skeleton, input size, ...).
    """
    path = Path(path)
    check_export_args(path, opset)
    input_size, k = _model_geometry(model, input_size)
    model = fold_batchnorm(model) if fold_bn else model.eval()
    decode = decode or with_affine
    dummy = torch.zeros(1, 3, *input_size)
    if decode:
        if not k:
            with torch.no_grad():
                k = int(last_stage(model(dummy)).shape[1])
        head = DecodeHead(k, input_size, blur_kernel_size=blur_kernel_size, unbiased=unbiased)
        net: nn.Module = DecodingModel(model, head, with_affine).eval()
        inputs: tuple = (dummy, torch.tensor([[[1.0, 0, 0], [0, 1.0, 0]]])) if with_affine else (dummy,)
        input_names = ["images", "affine"] if with_affine else ["images"]
        output_names = ["keypoints", "scores"]
    else:
        net, inputs, input_names, output_names = model, (dummy,), ["images"], ["heatmaps"]
    dyn = {n: {0: "batch"} for n in input_names + output_names} if dynamic_batch else None
    with atomic_write(path, suffix=".onnx") as tmp:
        with warnings.catch_warnings():
            # The TorchScript-based exporter is deprecated in favour of torch.export's, which needs
            # onnxscript; ours has no data-dependent control flow, so tracing is exact.
            warnings.simplefilter("ignore")
            torch.onnx.export(net, inputs, str(tmp), dynamo=False, opset_version=opset,
                              input_names=input_names, output_names=output_names, dynamic_axes=dyn)
        if metadata:
            try:
                import onnx

                m = onnx.load(str(tmp))
                entry = m.metadata_props.add()
                entry.key, entry.value = GRAPH_METADATA_KEY, json.dumps(metadata)
                onnx.save(m, str(tmp))
            except ImportError:  # metadata is a convenience; the graph is complete without it
                pass
    return path


