"""What every evaluator shares: one ``process()`` signature, duplicate removal, output files.

An evaluator is used as ``reset()``, ``process(...)`` once per batch, ``evaluate()``. ``process``
takes the same keyword set in every evaluator, so a loop can feed any of them everything it has::

    evaluator.process(keypoints, keypoint_scores=..., image_ids=..., indices=..., boxes=...,
                      box_scores=..., areas=..., gt_keypoints=..., visible=..., headboxes=...)

Each evaluator reads the fields its protocol needs (its ``process`` docstring says which) and
ignores the rest. ``indices`` are the predictions' rows in the evaluated dataset: under a
``DistributedSampler`` that pads the dataset, duplicates of a row are dropped (and counted in the
report) instead of being scored twice. ``evaluate`` gathers every rank's batches, scores on rank 0
and returns the metrics on every rank.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from stnet.io import atomic_write, write_text

from ._common import gather_batches, score_on_main, to_jsonable, to_numpy

__all__ = ["Evaluator", "Predictions"]


@dataclass(frozen=True)
class Predictions:
    """One batch as given to :meth:`Evaluator.process` (numpy arrays or torch tensors, unconverted).

    ``keypoints (N, K, 2)`` image pixels; ``keypoint_scores (N, K)``; ``image_ids (N,)``;
    ``indices (N,)`` dataset rows; ``boxes (N, 4)`` ``[x, y, w, h]``; ``box_scores (N,)``;
    ``areas (N,)``; ground truth ``gt_keypoints (N, K, 2)``, ``visible (N, K)``,
    ``headboxes (N, 2, 2)``.
    """

    keypoints: Any
    keypoint_scores: Any = None
    image_ids: Any = None
    indices: Any = None
    boxes: Any = None
    box_scores: Any = None
    areas: Any = None
    gt_keypoints: Any = None
    visible: Any = None
    headboxes: Any = None


class Evaluator:
    """Base of the evaluators (see the module docstring). Subclasses implement :meth:`_accept`
    (check one batch and return the arrays to keep; ``indices`` are added here) and :meth:`_score`
    (metrics from all batches, run on rank 0, never called without predictions), and call
    ``super().__init__`` last (it calls :meth:`reset`)."""

    #: Appended to the "no predictions were processed" error.
    empty_hint = ""

    def __init__(self, *, output_dir: str | Path | None = None, name: str = "predictions",
                 print_fn: Callable[[str], None] | None = print) -> None:
        self.output_dir = None if output_dir is None else Path(output_dir)
        self.name = name
        self.print_fn = print_fn
        self.report: dict[str, Any] = {}
        #: Counts of inputs the caller could not evaluate (e.g. unreadable images), for the report.
        self.skipped: dict[str, int] = {}
        self.reset()

    def reset(self) -> None:
        self._batches: list[dict[str, np.ndarray]] = []

    def process(self, keypoints: Any, *, keypoint_scores: Any = None, image_ids: Any = None, indices: Any = None,
                boxes: Any = None, box_scores: Any = None, areas: Any = None, gt_keypoints: Any = None,
                visible: Any = None, headboxes: Any = None) -> None:
        """Add one batch (see the module docstring and the subclass for the fields it reads)."""
        p = Predictions(keypoints, keypoint_scores, image_ids, indices, boxes, box_scores, areas, gt_keypoints,
                        visible, headboxes)
        batch = self._accept(p)
        idx = self._indices(p, batch["keypoints"].shape[0])
        if idx is not None:
            batch["indices"] = idx
        if self._batches and ("indices" in batch) != ("indices" in self._batches[0]):
            raise self._error("pass indices for every batch or for none")
        self._batches.append(batch)

    def evaluate(self) -> dict[str, float]:
        """Score everything processed since ``reset`` (identical metrics on every rank)."""
        data = gather_batches(self._batches)
        return score_on_main(lambda: self._score_nonempty(data))

    def _score_nonempty(self, data: dict[str, np.ndarray] | None) -> dict[str, float]:
        if data is None or data["keypoints"].shape[0] == 0:
            raise ValueError(f"{type(self).__name__}: no predictions were processed{self.empty_hint}")
        return self._score(data)

    # ---------------------------------------------------------------- for subclasses
    def _accept(self, p: Predictions) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _score(self, data: dict[str, np.ndarray]) -> dict[str, float]:
        raise NotImplementedError

    def _error(self, msg: str) -> ValueError:
        return ValueError(f"{type(self).__name__}.process: {msg}")

    def _keypoints(self, p: Predictions, num_keypoints: int | None = None) -> np.ndarray:
        """``p.keypoints`` as float64 ``(N, K, 2)``, its shape checked (and K, when given)."""
        kp = to_numpy(p.keypoints, np.float64)
        if kp.ndim != 3 or kp.shape[-1] != 2 or (num_keypoints is not None and kp.shape[1] != num_keypoints):
            raise self._error(f"'keypoints' must be (N, {num_keypoints or 'K'}, 2), got {kp.shape}")
        return kp

    def _check_finite(self, name: str, arr: np.ndarray, image_ids: np.ndarray | None = None) -> None:
        n = arr.shape[0]
        if n == 0:
            return
        finite = np.isfinite(arr.reshape(n, -1)).all(axis=1)
        if not finite.all():
            j = int(np.flatnonzero(~finite)[0])
            where = f" (image_id {image_ids[j]})" if image_ids is not None else ""
            raise self._error(f"NaN/inf in {name!r} of instance {j}{where}; {int((~finite).sum())} instances "
                              "in this batch")

    def _indices(self, p: Predictions, n: int) -> np.ndarray | None:
        if p.indices is None:
            return None
        idx = to_numpy(p.indices).reshape(-1).astype(np.int64)
        if idx.shape != (n,):
            raise self._error(f"'indices' has {idx.size} values for {n} instances")
        return idx

    def _drop_duplicates(self, data: dict[str, np.ndarray], report: dict[str, Any]) -> dict[str, np.ndarray]:
        """Keep the first prediction of every dataset row (DistributedSampler pads with repeats)."""
        if "indices" not in data:
            return data
        _, first = np.unique(data["indices"], return_index=True)
        first.sort()
        report["num_duplicates_dropped"] = int(data["keypoints"].shape[0] - first.size)
        return {k: v[first] for k, v in data.items()}

    def _say(self, text: str) -> None:
        if self.print_fn is not None:
            self.print_fn(text)

    def _save_raw(self, data: dict[str, np.ndarray]) -> None:
        """``predictions_raw.npz`` in ``output_dir`` (when set)."""
        if self.output_dir is not None:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            with atomic_write(self.output_dir / "predictions_raw.npz") as tmp, open(tmp, "wb") as f:
                np.savez_compressed(f, **data)  # type: ignore[arg-type]

    def _save_metrics(self, metrics: dict[str, Any], report: dict[str, Any]) -> None:
        """``metrics.json`` (metrics and protocol report) in ``output_dir`` (when set)."""
        if self.output_dir is not None:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            write_text(self.output_dir / "metrics.json",
                       json.dumps(to_jsonable({"metrics": {**metrics, **self.skipped}, "protocol": report}), indent=2))
