"""OpenVINO IR export: the graph :func:`stnet.export.onnx.export_onnx` writes, converted by OpenVINO.

The IR carries the same :class:`~stnet.card.ModelCard` json as the ONNX file, in its rt_info under
``stnet``. Needs the optional ``openvino`` package, imported only when used.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Sequence

import torch.nn as nn

from stnet.constants import GRAPH_METADATA_KEY
from stnet.io import DiskFullError

from .onnx import export_onnx

__all__ = ["export_openvino", "to_openvino_model", "save_ir", "require_openvino"]


def require_openvino() -> Any:
    """The ``openvino`` module, or an ImportError saying how to install it."""
    try:
        import openvino as ov
    except ImportError:
        raise ImportError("OpenVINO export / backend needs the openvino package: pip install 'stnet[openvino]' "
                          "(or openvino>=2025.0)") from None
    return ov


def to_openvino_model(model: nn.Module, input_size: tuple[int, int] | None, *, metadata: dict | None = None,
                      **onnx_kwargs: Any) -> Any:
    """``nn.Module`` -> ``openvino.Model`` through :func:`export_onnx` (BatchNorm folded, dynamic
    batch), with ``metadata`` (a card's json) in rt_info."""
    ov = require_openvino()
    with tempfile.TemporaryDirectory(prefix="stnet_ov_") as tmp:
        path = export_onnx(model, Path(tmp) / "model.onnx", input_size, **onnx_kwargs)
        ov_model = ov.Core().read_model(str(path))
    if metadata:
        ov_model.set_rt_info(json.dumps(metadata), [GRAPH_METADATA_KEY])
    return ov_model


def save_ir(ov_model: Any, path: Path, compress_to_fp16: bool = False) -> Path:
    """Write ``path`` (.xml) + its .bin atomically: both are written under a temporary folder
    beside them, then renamed (.bin first)."""
    ov = require_openvino()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".stnet_ir_", dir=path.parent) as tmp:
        tmp_xml = Path(tmp) / "model.xml"
        try:
            ov.save_model(ov_model, str(tmp_xml), compress_to_fp16=compress_to_fp16)
        except RuntimeError as e:  # OpenVINO reports a full disk / unwritable folder as a RuntimeError
            if shutil.disk_usage(path.parent).free < (1 << 20):
                raise DiskFullError(path) from None
            raise OSError(errno.EIO, f"OpenVINO could not write the IR ({str(e).strip().splitlines()[-1][:200]})",
                          str(path)) from None
        os.replace(tmp_xml.with_suffix(".bin"), path.with_suffix(".bin"))
        os.replace(tmp_xml, path)
    return path


def export_openvino(model: nn.Module, path: str | os.PathLike, input_size: Sequence[int] | None = None, *,
                    metadata: dict | None = None, decode: bool = False, with_affine: bool = False,
                    unbiased: bool = True, blur_kernel_size: int = 11, opset: int = 17,
                    compress_to_fp16: bool = False) -> Path:
    """Write ``model`` as OpenVINO IR: ``path`` (``.xml``, the suffix is added when missing) and
    the matching ``.bin``; returns the ``.xml`` path.

    The graph is the one :func:`export_onnx` writes (same inputs / outputs, dynamic batch,
    BatchNorm folded; ``decode`` / ``with_affine`` add the in-graph decoding), converted by
    OpenVINO. ``metadata`` (a :meth:`ModelCard.to_dict <stnet.card.ModelCard.to_dict>`) is stored
    in the IR's rt_info under ``stnet``. Weights stay f32 unless ``compress_to_fp16`` (bf16 is
    chosen at run time, not in the file)."""
    path = Path(path)
    if path.suffix != ".xml":
        path = path.with_name(path.name + ".xml")
    size = (int(input_size[0]), int(input_size[1])) if input_size is not None else None
    ov_model = to_openvino_model(model, size, metadata=metadata, opset=opset, decode=decode,
                                 with_affine=with_affine, unbiased=unbiased, blur_kernel_size=blur_kernel_size)
    return save_ir(ov_model, path, compress_to_fp16)
