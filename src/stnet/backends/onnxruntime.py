"""onnxruntime backend: an exported heatmap ``.onnx`` file (see :mod:`stnet.export`), or a network
exported to a temporary file on the fly."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn

from stnet.export import export_onnx, ort_session
from stnet.hub import read_graph_metadata

__all__ = ["OnnxRuntimeBackend"]


class OnnxRuntimeBackend:
    """Runs an ONNX heatmap model (see :class:`stnet.backends.Backend`). ``input_size`` is the
    graph's when its height and width are fixed, else the one given. ``num_joints`` (from the
    output shape, None when dynamic) and ``metadata`` (the ``stnet`` entry that ``stnet export``
    writes, {} when absent) describe the file."""

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
        h, w = self._input.shape[2], self._input.shape[3]
        if isinstance(h, int) and isinstance(w, int) and input_size is None:
            self.input_size = (h, w)
        else:
            self.input_size = tuple(int(v) for v in (input_size or (256, 192)))  # type: ignore[assignment]
        outputs = [o.name for o in self.session.get_outputs()]
        #: ``stnet export --decode``: the graph outputs keypoints + scores (``--with-affine``: in image
        #: pixels, given each crop's crop->image matrix), not heatmaps
        self.decoded = outputs[:2] == ["keypoints", "scores"]
        self.with_affine = any(i.name == "affine" for i in self.session.get_inputs())
        k = self.session.get_outputs()[0].shape[1]
        self.num_joints: int | None = k if isinstance(k, int) else None
        self.metadata = read_graph_metadata(path)
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

    def _run(self, names: list[str] | None, feed: dict[str, np.ndarray]) -> list[Any]:
        try:
            return self.session.run(names, feed)
        except Exception as e:  # noqa: BLE001 - onnxruntime's errors derive from Exception only
            lines = [ln for ln in str(e).splitlines() if ln.strip()]
            raise ValueError(f"{self.path}: the graph fails on a {tuple(feed[self._input.name].shape)} input "
                             f"({(lines[0] if lines else type(e).__name__)[:200]}); is it a pose model for "
                             "this input size?") from None

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(batch, dtype=np.float32)
        out = self._run(None, {self._input.name: x})[0]
        if np.ndim(out) != 4:
            raise ValueError(f"{self.path}: the graph outputs shape {np.shape(out)}, expected heatmaps (B, K, h, w)")
        return out

    def keypoints(self, batch: np.ndarray, affine: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """A decoding graph's ``(keypoints (B, K, 2), scores (B, K))``: crop pixels, or image pixels
        when the graph takes ``affine`` (B, 2, 3) crop->image matrices."""
        feed = {self._input.name: np.ascontiguousarray(batch, dtype=np.float32)}
        if self.with_affine:
            if affine is None:
                raise ValueError(f"{self.path} takes crop->image matrices ('affine' input); pass them")
            feed["affine"] = np.ascontiguousarray(affine, dtype=np.float32)
        kp, sc = self._run(["keypoints", "scores"], feed)
        return kp, sc

    def __repr__(self) -> str:
        return f"OnnxRuntimeBackend({str(self.path)!r}, input_size={self.input_size})"
