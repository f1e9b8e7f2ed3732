"""A straightforward per-image loop port of HRNet's ``oks_nms``: the reference the vectorised
:func:`stnet.evaluation.oks_nms` is tested against (``benchmarks/eval_speed.py`` times both).

Deliberately written without the package's OKS code, so a bug there cannot hide in both.
"""
from __future__ import annotations

import numpy as np

from stnet.evaluation.nms import check_nms_inputs

__all__ = ["oks_nms_reference"]


def _oks_iou_reference(g: np.ndarray, d: np.ndarray, a_g: float, a_d: np.ndarray, sigmas: np.ndarray,
                       vg: np.ndarray | None, vd: np.ndarray | None, vis_thr: float | None) -> np.ndarray:
    var = (sigmas * 2) ** 2
    ious = np.zeros(len(d))
    for n_d in range(len(d)):
        dx = d[n_d, :, 0] - g[:, 0]
        dy = d[n_d, :, 1] - g[:, 1]
        e = (dx ** 2 + dy ** 2) / var / ((a_g + a_d[n_d]) / 2 + np.spacing(1)) / 2
        if vis_thr is not None:
            assert vg is not None and vd is not None
            e = e[(vg > vis_thr) & (vd[n_d] > vis_thr)]
        ious[n_d] = np.sum(np.exp(-e)) / e.shape[0] if e.shape[0] != 0 else 0.0
    return ious


def oks_nms_reference(keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray, sigmas: np.ndarray,
                      image_ids: np.ndarray | None = None, thr: float = 0.9,
                      keypoint_scores: np.ndarray | None = None,
                      vis_thr: float | None = None) -> np.ndarray:
    """Straightforward per-image loop port of HRNet's ``oks_nms`` (tests compare against it).

    Differs from HRNet's code only where that code is ambiguous: ties keep input order, and the
    visibility test is ``vg > t and vd > t`` element-wise (HRNet's ``list and list`` bug).
    """
    kp, sc, ar, sg, ids = check_nms_inputs(keypoints, scores, areas, sigmas, image_ids)
    ks = None if keypoint_scores is None else np.asarray(keypoint_scores, dtype=np.float64)
    kept: list[int] = []
    for img in np.unique(ids):
        members = np.flatnonzero(ids == img)
        order = members[np.argsort(-sc[members], kind="stable")]
        while order.size > 0:
            i = order[0]
            kept.append(int(i))
            rest = order[1:]
            ovr = _oks_iou_reference(kp[i], kp[rest], ar[i], ar[rest], sg,
                                     None if ks is None else ks[i], None if ks is None else ks[rest],
                                     vis_thr)
            order = rest[ovr <= thr]
    return np.array(sorted(kept), dtype=np.int64)
