"""Checkpoints: one plain dict, written atomically, read back with a clear error when damaged.

Contents: ``model``, ``optimizer``, ``scheduler``, ``scaler``, ``ema`` (state dicts or None),
``epoch`` (completed epochs), ``iteration`` (optimizer steps so far), ``best_metric``,
``metric_name``, ``rng`` (python, numpy, torch, cuda states), ``config`` (the resolved config as a
plain dict) and ``format`` (version of this layout).
"""
from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "rng_state", "set_rng_state",
           "find_resume", "FORMAT"]

FORMAT = 1
REQUIRED = ("model", "epoch", "iteration")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used (missing, truncated, corrupted, not ours)."""


def rng_state() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def set_rng_state(state: dict[str, Any] | None) -> None:
    if not state:
        return
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"].cpu() if isinstance(state["torch"], torch.Tensor) else state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` to ``path`` atomically: a temp file in the same directory, fsync, then
    ``os.replace``. A kill at any moment leaves either the old or the new file, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"format": FORMAT, **state}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return path


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; raise :class:`CheckpointError`
    naming the file when it is missing, truncated, corrupted or not a training checkpoint. A bare
    ``state_dict`` (e.g. exported weights) is returned as ``{"model": state_dict}``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes); it was not written completely")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unpickling/zip failure means the file is damaged
        raise CheckpointError(f"checkpoint {path} is truncated or corrupted and cannot be read "
                              f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                              "use an earlier checkpoint (last.pt / best.pt)") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a dict")
    if "model" not in state:
        if state and all(isinstance(v, torch.Tensor) for v in state.values()):
            return {"model": state}
        raise CheckpointError(f"checkpoint {path} has no 'model' entry (keys: {sorted(state)[:8]})")
    return state


def check_resumable(state: dict[str, Any], path: str | Path) -> None:
    missing = [k for k in REQUIRED + ("optimizer", "scheduler") if state.get(k) is None]
    if missing:
        raise CheckpointError(f"checkpoint {path} cannot resume training: missing {', '.join(missing)} "
                              "(a weights-only file? use it with --set model... or stnet eval)")


def find_resume(run_dir: str | Path) -> Path | None:
    """``last.pt`` in ``run_dir`` when present (``--resume auto``)."""
    p = Path(run_dir) / "last.pt"
    return p if p.is_file() else None
