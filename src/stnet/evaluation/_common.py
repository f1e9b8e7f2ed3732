"""Helpers shared by the evaluators (array conversion, batch concatenation, rank-0 scoring)."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from .distributed import broadcast_object, get_rank


def to_numpy(x: Any, dtype: Any = None) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def score_on_main(fn: Callable[[], dict[str, float]]) -> dict[str, float]:
    """Run ``fn`` on rank 0 and hand its metrics to every rank. An exception on rank 0 is raised
    there unchanged and as the same message on the other ranks, so no rank waits forever."""
    metrics: dict[str, float] | None = None
    failure: BaseException | None = None
    if get_rank() == 0:
        try:
            metrics = fn()
        except Exception as e:  # re-raised below, after the other ranks have been told
            failure = e
    shared = broadcast_object((metrics, None if failure is None else f"{type(failure).__name__}: {failure}"))
    if failure is not None:
        raise failure
    if shared[1] is not None:
        raise RuntimeError(f"evaluation failed on rank 0: {shared[1]}")
    assert shared[0] is not None
    return shared[0]


def concat_batches(batches: Sequence[dict[str, np.ndarray] | None]) -> dict[str, np.ndarray] | None:
    present = [b for b in batches if b is not None]
    if not present:
        return None
    keys = present[0].keys()
    if any(b.keys() != keys for b in present):
        raise ValueError("evaluator: ranks/batches disagree on which fields (e.g. indices) were given")
    return {k: np.concatenate([b[k] for b in present]) for k in keys}


def gather_batches(batches: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray] | None:
    """This rank's batches concatenated, then every rank's concatenated in rank order."""
    from .distributed import all_gather_object

    return concat_batches(all_gather_object(concat_batches(batches)))


def to_jsonable(value: Any) -> Any:
    """numpy scalars/arrays and NaN -> plain JSON (NaN becomes null: strict JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
