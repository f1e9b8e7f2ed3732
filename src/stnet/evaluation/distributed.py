"""The little torch.distributed the evaluators need: gather to everyone, score on rank 0.

torch is looked up in ``sys.modules`` rather than imported: a process that never imported torch
cannot have initialised a process group, and scoring a results file should not pay for torch.
"""
from __future__ import annotations

import sys
from typing import Any, TypeVar

__all__ = ["get_rank", "get_world_size", "all_gather_object", "broadcast_object"]

T = TypeVar("T")


def _dist() -> Any | None:
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    dist = getattr(torch, "distributed", None)
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return None
    return dist


def get_rank() -> int:
    dist = _dist()
    return 0 if dist is None else int(dist.get_rank())


def get_world_size() -> int:
    dist = _dist()
    return 1 if dist is None else int(dist.get_world_size())


def all_gather_object(obj: T) -> list[T]:
    """Every rank's ``obj`` in rank order (``[obj]`` without a process group).

    all_gather rather than gather: gather_object is not supported by every backend/device setup,
    and prediction arrays are small next to a model.
    """
    dist = _dist()
    if dist is None or dist.get_world_size() == 1:
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: T, src: int = 0) -> T:
    """Rank ``src``'s ``obj`` on every rank (``obj`` itself without a process group)."""
    dist = _dist()
    if dist is None or dist.get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]
