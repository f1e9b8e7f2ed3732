"""PCK evaluation (LSP's PCK@0.2 normalised by torso size, or by box size), with AUC and EPE."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np

from ._common import to_numpy
from .base import Evaluator, Predictions
from .metrics import (pck_from_normalized, bbox_size, find_joint, keypoint_distances,
                      summarize_by_part, torso_size)
from .tables import format_pck_table

__all__ = ["PCKEvaluator"]

Normalize = Literal["torso", "bbox"]


class PCKEvaluator(Evaluator):
    """PCK@``threshold`` per joint and mean, AUC and EPE, with ``reset/process/evaluate``.

    ``normalize="torso"``: the distance between two GT joints, by default right shoulder and
    left hip (LSP's definition); an instance where either is not visible, or the distance is 0,
    cannot be normalised and is skipped and counted (``num_skipped_no_torso`` in the report).
    ``normalize="bbox"``: ``max(w, h)`` of the boxes passed to ``process``.

    ``evaluate`` returns percentages: ``PCK@t`` (count-weighted mean over all visible joints),
    the Table VI part columns (``Head`` ... ``Ankle``), ``PCK@t/<joint>``, ``AUC`` (area under
    the PCK curve on ``[0, auc_max_threshold]``) and ``EPE`` in pixels.
    """

    def __init__(self, *, joint_names: Sequence[str] | None = None, skeleton: str = "lsp14",
                 threshold: float = 0.2, normalize: Normalize = "torso",
                 torso_joints: tuple[int | str, int | str] | None = None, auc_max_threshold: float = 0.5,
                 output_dir: str | Path | None = None, name: str = "predictions",
                 print_fn: Callable[[str], None] | None = print) -> None:
        if normalize not in ("torso", "bbox"):
            raise ValueError(f"PCKEvaluator: normalize must be 'torso' or 'bbox', got {normalize!r}")
        if joint_names is None:
            from stnet.data.skeletons import get_skeleton

            joint_names = get_skeleton(skeleton).keypoint_names
        self.joint_names = tuple(joint_names)
        self.threshold = float(threshold)
        self.normalize: Normalize = normalize
        self.torso: tuple[int, int] | None = None
        if normalize == "torso":
            if torso_joints is None:
                self.torso = (find_joint(self.joint_names, "right", "Shoulder"),
                              find_joint(self.joint_names, "left", "Hip"))
            else:
                self.torso = tuple(self.joint_names.index(j) if isinstance(j, str) else int(j)  # type: ignore[assignment]
                                   for j in torso_joints)
        self.auc_max_threshold = auc_max_threshold
        super().__init__(output_dir=output_dir, name=name, print_fn=print_fn)

    def _accept(self, p: Predictions) -> dict[str, np.ndarray]:
        """Reads predictions and ``gt_keypoints`` ``(N, K, 2)`` image pixels, ``visible (N, K)``;
        ``boxes (N, 4)`` for bbox normalisation."""
        k = len(self.joint_names)
        kp = self._keypoints(p, k)
        n = kp.shape[0]
        if p.gt_keypoints is None or p.visible is None:
            raise self._error("needs gt_keypoints= and visible=")
        gk = to_numpy(p.gt_keypoints, np.float64)
        vis = to_numpy(p.visible).astype(bool)
        if gk.shape != kp.shape or vis.shape != (n, k):
            raise self._error(f"gt_keypoints {gk.shape} / visible {vis.shape} must be {kp.shape} / {(n, k)}")
        self._check_finite("keypoints", kp)
        batch = {"keypoints": kp, "gt_keypoints": gk, "visible": vis}
        if self.normalize == "bbox":
            if p.boxes is None:
                raise self._error("normalize='bbox' needs boxes=")
            b = to_numpy(p.boxes, np.float64)
            if b.shape != (n, 4):
                raise self._error(f"'boxes' must be {(n, 4)}, got {b.shape}")
            batch["boxes"] = b
        return batch

    def _score(self, data: dict[str, np.ndarray]) -> dict[str, float]:
        report: dict[str, Any] = {"num_instances": int(data["keypoints"].shape[0]),
                                  "normalize": self.normalize, "threshold": self.threshold}
        data = self._drop_duplicates(data, report)
        pred, gt, vis = data["keypoints"], data["gt_keypoints"], data["visible"]
        if self.normalize == "torso":
            assert self.torso is not None
            a, b = self.torso
            norm = torso_size(gt, a, b)
            valid = vis[:, a] & vis[:, b] & np.isfinite(norm) & (norm > 0)
            report["torso_joints"] = [self.joint_names[a], self.joint_names[b]]
            report["num_skipped_no_torso"] = int((~valid).sum())
        else:
            norm = bbox_size(data["boxes"])
            valid = np.isfinite(norm) & (norm > 0)
            report["num_skipped_empty_box"] = int((~valid).sum())
        if not valid.any():
            raise ValueError(f"PCKEvaluator: no instance has a usable {self.normalize} size")
        dist = keypoint_distances(pred[valid], gt[valid])
        nd = dist / norm[valid][:, None]
        v = vis[valid]
        res = pck_from_normalized(nd, v, self.threshold)
        label = f"PCK@{self.threshold:g}"
        parts = summarize_by_part(res.correct, res.counts, self.joint_names)
        metrics: dict[str, float] = {label: 100.0 * res.mean}
        metrics.update({c: 100.0 * parts[c] for c in parts if c != "Mean"})
        metrics.update({f"{label}/{n}": 100.0 * float(p) for n, p in zip(self.joint_names, res.per_joint)})
        e = nd[v]
        auc_curve = np.clip(1.0 - e / self.auc_max_threshold, 0.0, 1.0)
        metrics["AUC"] = 100.0 * float(np.mean(auc_curve)) if e.size else float("nan")
        metrics["EPE"] = float(dist[v].mean()) if v.any() else float("nan")
        report["auc_max_threshold"] = self.auc_max_threshold
        report["visible_counts"] = dict(zip(self.joint_names, res.counts.tolist()))
        self.report = report
        if self.print_fn is not None:
            table = format_pck_table((100.0 * res.per_joint).tolist(), self.joint_names, mean=100.0 * res.mean,
                                     counts=res.counts.tolist(), label=label,
                                     parts={c: 100.0 * x for c, x in parts.items()},
                                     title=f"{label} ({self.name}; normalised by {self.normalize} size)")
            extra = f"AUC@[0,{self.auc_max_threshold:g}] {metrics['AUC']:.1f}  EPE {metrics['EPE']:.2f} px"
            skipped = report.get("num_skipped_no_torso") or report.get("num_skipped_empty_box")
            if skipped:
                extra += f"  (skipped {skipped} instances without a usable {self.normalize} size)"
            self.print_fn(table + "\n" + extra)
        self._save_raw(data)
        self._save_metrics(metrics, report)
        return metrics
