"""onnxruntime backend: an exported ``.onnx`` file (heatmaps, or keypoints decoded in the graph; see
:mod:`stnet.export.onnx`), or a network exported to a temporary file on the fly."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn

from stnet.constants import DEFAULT_INPUT_SIZE
from stnet.export.onnx import export_onnx
from stnet.model_files import read_graph_metadata

from .base import BackendOutput, affine_feed, graph_card, split_outputs

__all__ = ["OnnxRuntimeBackend", "ort_session"]


def ort_session(path: str | os.PathLike, *, threads: int | None = None, providers: Sequence[str] | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` with all graph optimisations; ``threads`` intra-op
    threads (default torch's), ``providers`` (default CPU)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ImportError("backend='onnxruntime' needs the onnxruntime package (pip install onnxruntime)") from None
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"ONNX model {p} not found")
    if p.stat().st_size == 0:
        raise ValueError(f"ONNX model {p} is empty (0 bytes); export it again")
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = torch.get_num_threads() if threads is None else int(threads)
    try:
        return ort.InferenceSession(str(p), so, providers=list(providers or ["CPUExecutionProvider"]))
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types (InvalidProtobuf, Fail, ...)
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise ValueError(f"ONNX model {p} cannot be loaded: it is corrupted, truncated or not an ONNX "
                         f"file ({first})") from None


class OnnxRuntimeBackend:
    """Runs an ONNX model (see :class:`stnet.backends.Backend`). ``input_size`` is the graph's when
    its height and width are fixed, else the one given, else the card's. ``num_joints`` (from the
    output shape, None when dynamic) and ``card`` (the file's model card, with what the graph
    returns) describe the file."""

    name = "onnxruntime"

    def __init__(self, path: str | os.PathLike, input_size: Sequence[int] | None = None,
                 device: str | torch.device = "cpu") -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX model {path} not found")
        providers = ["CPUExecutionProvider"]
        if torch.device(device).type == "cuda":
            import onnxruntime as ort

            if "CUDAExecutionProvider" in ort.get_available_providers():
                providers.insert(0, "CUDAExecutionProvider")
        self.path = path
        self.session = ort_session(path, providers=providers)
        self._input = self.session.get_inputs()[0]
        self.card = graph_card(read_graph_metadata(path), [i.name for i in self.session.get_inputs()],
                               [o.name for o in self.session.get_outputs()], str(path))
        h, w = self._input.shape[2], self._input.shape[3]
        if isinstance(h, int) and isinstance(w, int) and input_size is None:
            self.input_size: tuple[int, int] = (h, w)
        else:
            size = input_size or self.card.input_size or DEFAULT_INPUT_SIZE
            self.input_size = (int(size[0]), int(size[1]))
        k = self.session.get_outputs()[0].shape[1]
        self.num_joints: int | None = k if isinstance(k, int) else None
        self._tmpdir: tempfile.TemporaryDirectory | None = None

    @classmethod
    def from_network(cls, network: nn.Module, input_size: tuple[int, int],
                     device: str | torch.device = "cpu") -> OnnxRuntimeBackend:
        """Export ``network`` (BatchNorm folded) to a temporary file, kept while the backend lives."""
        tmpdir = tempfile.TemporaryDirectory(prefix="stnet_ort_")
        path = export_onnx(network.eval(), Path(tmpdir.name) / "model.onnx", input_size)
        backend = cls(path, input_size, device)
        backend._tmpdir = tmpdir
        return backend

    def _run(self, feed: dict[str, np.ndarray]) -> list[Any]:
        try:
            return self.session.run(None, feed)
        except Exception as e:  # noqa: BLE001 - onnxruntime's errors derive from Exception only
            lines = [ln for ln in str(e).splitlines() if ln.strip()]
            raise ValueError(f"{self.path}: the graph fails on a {tuple(feed[self._input.name].shape)} input "
                             f"({(lines[0] if lines else type(e).__name__)[:200]}); is it a pose model for "
                             "this input size?") from None

    def run(self, batch: np.ndarray, affine: np.ndarray | None = None) -> BackendOutput:
        feed = {self._input.name: np.ascontiguousarray(batch, dtype=np.float32)}
        a = affine_feed(self.card, affine, len(batch), str(self.path))
        if a is not None:
            feed["affine"] = a
        out = split_outputs(self._run(feed), self.card)
        if out.heatmaps is not None and out.heatmaps.ndim != 4:
            raise ValueError(f"{self.path}: the graph outputs shape {out.heatmaps.shape}, expected heatmaps "
                             "(B, K, h, w)")
        return out

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Heatmaps of a heatmap graph (see :meth:`run` for any graph)."""
        out = self.run(batch)
        if out.heatmaps is None:
            raise ValueError(f"{self.path} decodes keypoints in the graph; use run() for its keypoints")
        return out.heatmaps

    def __repr__(self) -> str:
        return f"OnnxRuntimeBackend({str(self.path)!r}, input_size={self.input_size})"
