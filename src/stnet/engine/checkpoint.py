"""Checkpoints: one plain dict, written atomically, read back with a clear error when damaged.

Contents: ``model``, ``optimizer``, ``scheduler``, ``scaler``, ``ema`` (state dicts or None),
``epoch`` (completed epochs), ``iteration`` (optimizer steps so far), ``best_metric``,
``metric_name``, ``rng`` (python, numpy, torch, cuda states), ``config`` (the resolved config as a
plain dict) and ``format`` (version of this layout).

Reading goes through :func:`stnet.model_files.load_state` (the one place checkpoint files are
deserialised), writing through :func:`stnet.io.atomic_write`.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stnet.model_files import CheckpointError
from stnet.io import atomic_write

__all__ = ["save_checkpoint", "rng_state", "set_rng_state",
           "find_resume", "FORMAT"]

FORMAT = 1
REQUIRED = ("model", "epoch", "iteration")


def rng_state() -> dict[str, Any]:
    """Every RNG's state as plain data (lists, numbers, tensors), so a checkpoint loads with
    ``torch.load(weights_only=True)``: python's as ``[version, [625 ints], gauss_next]``, numpy's
    legacy ``RandomState`` as ``[name, keys tensor, pos, has_gauss, cached_gaussian]``."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return {
        "python": [version, list(internal), gauss],
        "numpy": [str(name), torch.from_numpy(np.asarray(keys, dtype=np.uint32).astype(np.int64)), int(pos),
                  int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def set_rng_state(state: dict[str, Any] | None) -> None:
    """Restore :func:`rng_state` (also the tuple / array form older checkpoints hold)."""
    if not state:
        return
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    keys = keys.numpy() if isinstance(keys, torch.Tensor) else np.asarray(keys)
    np.random.set_state((name, keys.astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    torch.set_rng_state(state["torch"].cpu() if isinstance(state["torch"], torch.Tensor) else state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` to ``path`` atomically: a temp file in the same directory, fsync, then
    ``os.replace``. A kill at any moment leaves either the old or the new file, never half of one."""
    path = Path(path)
    state = {"format": FORMAT, **state}
    with atomic_write(path) as tmp:
        torch.save(state, tmp)
    return path


def check_resumable(state: dict[str, Any], path: str | Path) -> None:
    missing = [k for k in REQUIRED + ("optimizer", "scheduler") if state.get(k) is None]
    if missing:
        raise CheckpointError(f"checkpoint {path} cannot resume training: missing {', '.join(missing)} "
                              "(a weights-only file? use it with --set model... or stnet eval)")


def find_resume(run_dir: str | Path) -> Path | None:
    """``last.pt`` in ``run_dir`` when present (``--resume auto``)."""
    p = Path(run_dir) / "last.pt"
    return p if p.is_file() else None
