"""MPII PCKh evaluation (official definition) and the ``gt_valid.mat`` reader.

``gt_valid.mat`` (the file the official/HRNet evaluation reads) holds, for the 2,958 validation
persons: ``pos_gt_src (16, 2, N)`` and ``headboxes_src (2, 2, N)`` in MATLAB's 1-based pixels,
``jnt_missing (16, N)`` and ``dataset_joints`` (the joint names). We convert to the library's
0-based pixels (pixel centre at integer coordinates), so predictions are compared in our
convention: do *not* add 1 to predictions the way HRNet does before comparing with the raw file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ._common import to_numpy
from .base import Evaluator, Predictions
from .metrics import PART_COLUMNS, SC_BIAS, pckh, summarize_by_part
from .tables import format_pckh_table

__all__ = ["MPIIGroundTruth", "load_gt_valid", "MPIIEvaluator"]


@dataclass(frozen=True)
class MPIIGroundTruth:
    """MPII GT in library conventions: ``joints (N, K, 2)`` 0-based pixels, ``visible (N, K)``
    bool (annotated), ``headboxes (N, 2, 2)`` ``[[x1, y1], [x2, y2]]`` 0-based."""

    joints: np.ndarray
    visible: np.ndarray
    headboxes: np.ndarray
    joint_names: tuple[str, ...]


def _mat_names(raw: Any) -> tuple[str, ...]:
    # scipy gives a (1, K) object array of 1-element string arrays; tolerate flatter layouts.
    out = []
    for item in np.asarray(raw, dtype=object).ravel():
        while isinstance(item, np.ndarray):
            item = item.ravel()[0] if item.size else ""
        out.append(str(item).strip())
    return tuple(out)


def load_gt_valid(path: str | Path) -> MPIIGroundTruth:
    """Read the official ``gt_valid.mat`` (or any file in its layout)."""
    from scipy.io import loadmat

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: MPII gt_valid.mat not found")
    try:
        mat = loadmat(str(p))
    except Exception as e:  # scipy raises several types for a non-.mat file
        raise ValueError(f"{p}: cannot read as a MATLAB file: {e}") from None
    missing = [k for k in ("dataset_joints", "jnt_missing", "pos_gt_src", "headboxes_src") if k not in mat]
    if missing:
        raise ValueError(f"{p}: not an MPII gt_valid.mat, missing {missing}")
    names = _mat_names(mat["dataset_joints"])
    pos = np.asarray(mat["pos_gt_src"], dtype=np.float64)
    miss = np.asarray(mat["jnt_missing"])
    head = np.asarray(mat["headboxes_src"], dtype=np.float64)
    k = len(names)
    if pos.ndim != 3 or pos.shape[:2] != (k, 2):
        raise ValueError(f"{p}: pos_gt_src must be ({k}, 2, N), got {pos.shape}")
    n = pos.shape[2]
    if miss.shape != (k, n) or head.shape != (2, 2, n):
        raise ValueError(f"{p}: jnt_missing {miss.shape} / headboxes_src {head.shape} do not match "
                         f"pos_gt_src {pos.shape}")
    return MPIIGroundTruth(
        joints=pos.transpose(2, 0, 1) - 1.0,  # MATLAB 1-based -> 0-based
        visible=(1 - miss).T.astype(bool),
        headboxes=head.transpose(2, 0, 1) - 1.0,
        joint_names=names,
    )


class MPIIEvaluator(Evaluator):
    """PCKh (official MPII definition) with ``reset/process/evaluate``, DDP-aware.

    Two ways to give the ground truth:

    * ``gt_valid`` (path or :class:`MPIIGroundTruth`): ``process(keypoints, indices=...)`` with
      each prediction's row in that file; ``evaluate`` refuses a partial cover of the file
      (a PCKh over a subset is not the official number) unless ``allow_partial=True``.
    * no ``gt_valid``: ``process(keypoints, gt_keypoints=..., visible=..., headboxes=...)``.

    ``evaluate`` returns percentages like the official code: the Table VI columns at the first
    threshold (``Head`` ... ``Mean``) and ``Mean@t`` for every threshold (``Mean@0.1`` is 0.1).
    """

    def __init__(self, gt_valid: str | Path | MPIIGroundTruth | None = None, *,
                 joint_names: Sequence[str] | None = None, thresholds: Sequence[float] = (0.5, 0.1),
                 sc_bias: float = SC_BIAS, allow_partial: bool = False,
                 output_dir: str | Path | None = None, name: str = "predictions",
                 print_fn: Callable[[str], None] | None = print) -> None:
        if not thresholds:
            raise ValueError("MPIIEvaluator: at least one threshold")
        self.gt = load_gt_valid(gt_valid) if isinstance(gt_valid, (str, Path)) else gt_valid
        self.gt_desc = str(gt_valid) if isinstance(gt_valid, (str, Path)) else (
            "gt_valid" if gt_valid is not None else "per-batch ground truth")
        if self.gt is not None:
            self.joint_names = tuple(self.gt.joint_names)
        elif joint_names is not None:
            self.joint_names = tuple(joint_names)
        else:
            from stnet.data.skeletons import get_skeleton

            self.joint_names = tuple(get_skeleton("mpii16").keypoint_names)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.sc_bias = sc_bias
        self.allow_partial = allow_partial
        super().__init__(output_dir=output_dir, name=name, print_fn=print_fn)

    def _accept(self, p: Predictions) -> dict[str, np.ndarray]:
        """Reads ``keypoints (N, K, 2)`` (0-based image pixels) and, with ``gt_valid``, ``indices``
        (each prediction's row in it); without ``gt_valid``, ``gt_keypoints``, ``visible`` and
        ``headboxes``."""
        k = len(self.joint_names)
        kp = self._keypoints(p, k)
        n = kp.shape[0]
        self._check_finite("keypoints", kp)
        batch: dict[str, np.ndarray] = {"keypoints": kp}
        idx = self._indices(p, n)
        if self.gt is not None:
            if idx is None:
                raise self._error("with gt_valid, pass indices= (each prediction's row in gt_valid.mat)")
            total = self.gt.joints.shape[0]
            bad = (idx < 0) | (idx >= total)
            if bad.any():
                raise self._error(f"'indices' {idx[bad][:5].tolist()} outside 0..{total - 1} of {self.gt_desc}")
        else:
            if p.gt_keypoints is None or p.visible is None or p.headboxes is None:
                raise self._error("without gt_valid, pass gt_keypoints, visible and headboxes")
            gk = to_numpy(p.gt_keypoints, np.float64)
            vis = to_numpy(p.visible).astype(bool)
            hb = to_numpy(p.headboxes, np.float64)
            if gk.shape != kp.shape or vis.shape != (n, k) or hb.shape != (n, 2, 2):
                raise self._error(f"gt_keypoints {gk.shape}, visible {vis.shape}, headboxes {hb.shape} must be "
                                  f"{kp.shape}, {(n, k)}, {(n, 2, 2)}")
            batch.update(gt_keypoints=gk, visible=vis, headboxes=hb)
        return batch

    def _score(self, data: dict[str, np.ndarray]) -> dict[str, float]:
        report: dict[str, Any] = {"ground_truth": self.gt_desc, "num_instances": int(data["keypoints"].shape[0]),
                                  "sc_bias": self.sc_bias, "thresholds": list(self.thresholds)}
        data = self._drop_duplicates(data, report)
        if self.gt is not None:
            idx = data["indices"]
            total = self.gt.joints.shape[0]
            if idx.size != total and not self.allow_partial:
                raise ValueError(f"MPIIEvaluator: predictions cover {idx.size} of the {total} persons in "
                                 f"{self.gt_desc}; PCKh over a subset is not the official number "
                                 "(allow_partial=True to score it anyway)")
            gk, vis, hb = self.gt.joints[idx], self.gt.visible[idx], self.gt.headboxes[idx]
        else:
            gk, vis, hb = data["gt_keypoints"], data["visible"], data["headboxes"]
        res = pckh(data["keypoints"], gk, vis, hb, self.thresholds, self.sc_bias)
        main_t = self.thresholds[0]
        rows: dict[str, dict[str, float]] = {}
        for t, r in res.items():
            parts = summarize_by_part(r.correct, r.counts, self.joint_names)
            rows[f"PCKh@{t:g}"] = {c: 100.0 * v for c, v in parts.items()}
        metrics = dict(rows[f"PCKh@{main_t:g}"])
        for t in self.thresholds:
            metrics[f"Mean@{t:g}"] = rows[f"PCKh@{t:g}"]["Mean"]
        report["per_joint"] = {f"PCKh@{t:g}": dict(zip(self.joint_names, (100.0 * r.per_joint).tolist()))
                               for t, r in res.items()}
        report["visible_counts"] = dict(zip(self.joint_names, res[main_t].counts.tolist()))
        report["tables"] = rows
        self.report = report
        self._say(format_pckh_table(rows, title=f"MPII PCKh ({self.name}; GT: {self.gt_desc}; "
                                                f"head size = {self.sc_bias} x headbox diagonal)"))
        self._save_raw(data)
        self._save_metrics(metrics, report)
        assert all(c in metrics for c in PART_COLUMNS)
        return metrics
