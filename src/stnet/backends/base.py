"""What every backend shares: the :class:`Backend` protocol, its :class:`BackendOutput`, and the
helpers the file backends (onnxruntime, OpenVINO) use to read what an exported graph returns."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from stnet.card import ModelCard

__all__ = ["Backend", "BackendOutput", "as_backend", "graph_card", "split_outputs", "affine_feed", "BACKENDS"]

#: Names :func:`stnet.backends.build_backend` accepts (and ``"auto"``).
BACKENDS = ("torch", "onnxruntime", "openvino")


@dataclass(frozen=True)
class BackendOutput:
    """What a backend returns for a batch of crops: ``heatmaps`` ``(B, K, h, w)``, or, from a graph
    that decodes, ``keypoints`` ``(B, K, 2)`` and ``scores`` ``(B, K)``, in crop pixels, or in
    image pixels when ``image_pixels`` (the graph took crop->image matrices)."""

    heatmaps: np.ndarray | None = None
    keypoints: np.ndarray | None = None
    scores: np.ndarray | None = None
    image_pixels: bool = False

    @property
    def decoded(self) -> bool:
        return self.heatmaps is None


@runtime_checkable
class Backend(Protocol):
    name: str
    input_size: tuple[int, int]
    card: ModelCard

    def run(self, batch: np.ndarray, affine: np.ndarray | None = None) -> BackendOutput: ...


class _HeatmapCallable:
    """A plain ``callable(batch) -> heatmaps`` with an ``input_size``, as a :class:`Backend`."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self.name = str(getattr(fn, "name", type(fn).__name__))
        self.input_size = (int(fn.input_size[0]), int(fn.input_size[1]))
        self.card = ModelCard(input_size=self.input_size)

    def run(self, batch: np.ndarray, affine: np.ndarray | None = None) -> BackendOutput:
        return BackendOutput(heatmaps=np.asarray(self.fn(batch), dtype=np.float32))

    def __getattr__(self, name: str) -> Any:  # precision, describe(), ... of the wrapped object
        return getattr(self.__dict__["fn"], name)


def as_backend(obj: Any) -> Backend:
    """``obj`` when it follows :class:`Backend`; a callable ``batch -> heatmaps`` with an
    ``input_size`` (H, W) wrapped into one; anything else is a TypeError."""
    if callable(getattr(obj, "run", None)) and hasattr(obj, "card") and hasattr(obj, "input_size"):
        return obj
    if callable(obj) and hasattr(obj, "input_size"):
        return _HeatmapCallable(obj)
    raise TypeError(f"backend must be a name ({', '.join(BACKENDS)}, 'auto') or an object with input_size and "
                    f"run(batch) (or a callable batch -> heatmaps), got {type(obj).__name__}")


def graph_card(metadata: dict, input_names: list[str], output_names: list[str], where: str) -> ModelCard:
    """The card of an exported graph: its metadata json, with ``decode`` / ``with_affine`` taken
    from the graph's own inputs and outputs (what ``stnet export`` names them), which a graph
    without metadata also has."""
    card = ModelCard.from_dict(metadata, where=f"{where} metadata")
    return card.replace(decode=output_names[:2] == ["keypoints", "scores"], with_affine="affine" in input_names)


def split_outputs(outputs: list[np.ndarray], card: ModelCard) -> BackendOutput:
    """A graph's raw outputs (in their order) as a :class:`BackendOutput`."""
    if card.decode:
        return BackendOutput(keypoints=np.asarray(outputs[0], np.float32), scores=np.asarray(outputs[1], np.float32),
                             image_pixels=card.with_affine)
    return BackendOutput(heatmaps=np.asarray(outputs[0], np.float32))


def affine_feed(card: ModelCard, affine: np.ndarray | None, n: int, where: str) -> np.ndarray | None:
    """The ``affine`` input of a graph that takes one, checked; None for one that does not."""
    if not card.with_affine:
        return None
    if affine is None:
        raise ValueError(f"{where} takes crop->image matrices ('affine' input); pass them")
    a = np.ascontiguousarray(affine, dtype=np.float32)
    if a.shape != (n, 2, 3):
        raise ValueError(f"{where}: affine must be ({n}, 2, 3), got {a.shape}")
    return a
