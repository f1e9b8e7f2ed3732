"""How close an exported file is to the PyTorch network it came from (``stnet export``'s check)."""
from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn as nn

from stnet.codecs.decode_head import DecodeHead
from stnet.models.fuse import fold_batchnorm
from stnet.models.outputs import last_stage

__all__ = ["check_export"]


def check_export(model: nn.Module, path: str | os.PathLike, input_size: tuple[int, int], *, decode: bool = False,
                 with_affine: bool = False, unbiased: bool = True, blur_kernel_size: int = 11,
                 runtime: str = "onnxruntime") -> float:
    """Max abs difference between the exported file at ``path`` (as ``export_onnx`` /
    ``export_openvino`` wrote it with these options) and ``model`` (BatchNorm folded) on a random
    batch of 2 (fixed seed, so the number is reproducible). ``runtime``: ``"onnxruntime"`` (an
    ``.onnx`` file) or ``"openvino"`` (an ``.onnx`` or IR ``.xml``, run in f32); needs that
    package. The runtimes are called directly, with their defaults: this checks the file, not a
    backend's settings."""
    x = torch.randn(2, 3, *input_size, generator=torch.Generator().manual_seed(0))
    feed = {"images": x.numpy()}
    aff = torch.tensor([[[2.0, 0, 5], [0, 2.0, 7]]] * 2)
    if with_affine:
        feed["affine"] = aff.numpy()
    if runtime == "openvino":
        try:
            import openvino as ov
        except ImportError:
            raise ImportError("checking an OpenVINO export needs the openvino package") from None
        compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        res = compiled(feed)
        outs = [np.asarray(res[o]) for o in compiled.outputs]
    else:
        try:
            import onnxruntime as ort
        except ImportError:
            raise ImportError("checking an ONNX export needs the onnxruntime package") from None
        outs = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)
    with torch.inference_mode():
        hm = last_stage(fold_batchnorm(model)(x))
        if not (decode or with_affine):
            return float(np.abs(outs[0] - hm.numpy()).max())
        head = DecodeHead(int(hm.shape[1]), input_size, unbiased=unbiased, blur_kernel_size=blur_kernel_size)
        ref = head(hm, aff if with_affine else None)
    return float(max(np.abs(o - r.numpy()).max() for o, r in zip(outs, ref)))
