"""OKS-based non-maximum suppression and the standard top-down instance rescoring.

The COCO detector-box protocol of HRNet / mmpose does, per image:

1. instance score = box score x mean of the keypoint scores above 0.2
   (:func:`stnet.evaluation.metrics.rescore`),
2. greedy NMS with OKS > 0.9 as the overlap (:func:`oks_nms`), or optionally soft-OKS-NMS
   (:func:`soft_oks_nms`, mmpose's ``nms_mode='soft_oks_nms'``).

OKS between two *predictions* is symmetric: the squared distance is divided by the mean of the
two instance areas (HRNet's ``oks_iou``), and without ``vis_thr`` it averages over all K joints.
Ties in score are broken by input order (earlier first), so results are deterministic.
"""
from __future__ import annotations

from typing import Literal, overload

import numpy as np

from .metrics import keypoint_similarity

__all__ = ["pairwise_oks", "oks_nms", "soft_oks_nms", "check_nms_inputs"]


def pairwise_oks(keypoints: np.ndarray, areas: np.ndarray, sigmas: np.ndarray,
                 keypoint_scores: np.ndarray | None = None, vis_thr: float | None = None) -> np.ndarray:
    """Symmetric OKS between all pairs of predictions of one image, ``(n, n)``.

    With ``vis_thr`` only joints whose score exceeds it in *both* instances count (0 when none).
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    a = np.asarray(areas, dtype=np.float64).reshape(-1)
    d2 = ((kp[:, None] - kp[None]) ** 2).sum(-1)  # (n, n, K)
    sim = keypoint_similarity(d2, (a[:, None, None] + a[None, :, None]) / 2, sigmas)
    if vis_thr is None:
        return sim.sum(-1) / kp.shape[1]
    if keypoint_scores is None:
        raise ValueError("pairwise_oks: vis_thr needs keypoint_scores")
    v = np.asarray(keypoint_scores) > vis_thr
    both = v[:, None] & v[None]
    cnt = both.sum(-1)
    return np.where(cnt > 0, (sim * both).sum(-1) / np.maximum(cnt, 1), 0.0)


def check_nms_inputs(keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray, sigmas: np.ndarray,
           image_ids: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The inputs of :func:`oks_nms` as float64 / id arrays, their shapes checked."""
    kp = np.asarray(keypoints, dtype=np.float64)
    sc = np.asarray(scores, dtype=np.float64).reshape(-1)
    ar = np.asarray(areas, dtype=np.float64).reshape(-1)
    sg = np.asarray(sigmas, dtype=np.float64).reshape(-1)
    if kp.ndim != 3 or kp.shape[2] != 2:
        raise ValueError(f"oks_nms: keypoints must be (N, K, 2), got {kp.shape}")
    n, k = kp.shape[:2]
    ids = np.zeros(n, dtype=np.int64) if image_ids is None else np.asarray(image_ids).reshape(-1)
    for name, arr in (("scores", sc), ("areas", ar), ("image_ids", ids)):
        if arr.shape != (n,):
            raise ValueError(f"oks_nms: {name} has {arr.size} values for {n} instances")
    if sg.shape != (k,):
        raise ValueError(f"oks_nms: {sg.size} sigmas for {k} keypoints")
    return kp, sc, ar, sg, ids


def oks_nms(keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray, sigmas: np.ndarray,
            image_ids: np.ndarray | None = None, thr: float = 0.9,
            keypoint_scores: np.ndarray | None = None, vis_thr: float | None = None) -> np.ndarray:
    """Greedy OKS-NMS within each image; returns the kept indices in ascending order.

    An instance is suppressed when its OKS with a higher-scoring kept instance of the same image
    is ``> thr`` (equal is kept, as in HRNet/mmpose). ``areas`` are the instance areas used by
    OKS (HRNet passes the area of the padded person box). Vectorised: one OKS matrix per image;
    only the greedy pass over kept instances is a Python loop.
    """
    kp, sc, ar, sg, ids = check_nms_inputs(keypoints, scores, areas, sigmas, image_ids)
    n = kp.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    ks = None if keypoint_scores is None else np.asarray(keypoint_scores, dtype=np.float64)
    # Image-major, score-descending, input order on ties (lexsort is stable).
    order = np.lexsort((np.arange(n), -sc, ids))
    sorted_ids = ids[order]
    bounds = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1], True])
    keep_mask = np.zeros(n, dtype=bool)
    for s, e in zip(bounds[:-1], bounds[1:]):
        idx = order[s:e]
        if idx.size == 1:
            keep_mask[idx[0]] = True
            continue
        over = pairwise_oks(kp[idx], ar[idx], sg, None if ks is None else ks[idx], vis_thr) > thr
        alive = np.ones(idx.size, dtype=bool)
        i = 0
        while i < idx.size:
            keep_mask[idx[i]] = True
            alive &= ~over[i]
            alive[: i + 1] = False
            nxt = np.flatnonzero(alive)
            if nxt.size == 0:
                break
            i = int(nxt[0])
    return np.flatnonzero(keep_mask)


@overload
def soft_oks_nms(keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray, sigmas: np.ndarray,
                 image_ids: np.ndarray | None = ..., thr: float = ..., method: str = ..., max_dets: int = ...,
                 keypoint_scores: np.ndarray | None = ..., vis_thr: float | None = ...,
                 return_scores: Literal[False] = ...) -> np.ndarray: ...


@overload
def soft_oks_nms(keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray, sigmas: np.ndarray,
                 image_ids: np.ndarray | None = ..., thr: float = ..., method: str = ..., max_dets: int = ...,
                 keypoint_scores: np.ndarray | None = ..., vis_thr: float | None = ...,
                 *, return_scores: Literal[True]) -> tuple[np.ndarray, np.ndarray]: ...


def soft_oks_nms(keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray, sigmas: np.ndarray,
                 image_ids: np.ndarray | None = None, thr: float = 0.9,
                 method: str = "gaussian", max_dets: int = 20,
                 keypoint_scores: np.ndarray | None = None, vis_thr: float | None = None,
                 return_scores: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Soft-OKS-NMS within each image, as mmpose's ``soft_oks_nms``: returns the kept indices in
    ascending order (and, with ``return_scores``, the decayed score of every instance, 0 for
    those not kept).

    Per image, repeatedly take the instance with the highest current score and decay the scores
    of the remaining ones by their OKS ``o`` with it: ``gaussian``: ``s * exp(-o**2 / thr)``;
    ``linear``: ``s * (1 - o)`` where ``o >= thr`` (unchanged below). At most ``max_dets``
    instances per image are kept; the rest are dropped. Ties go to the earlier input. mmpose's
    COCO metric keeps the *original* scores of the kept instances (only the selection uses the
    decayed ones); :class:`~stnet.evaluation.CocoEvaluator` does the same.
    """
    if method not in ("gaussian", "linear"):
        raise ValueError(f"soft_oks_nms: method must be 'gaussian' or 'linear', got {method!r}")
    if not thr > 0:
        raise ValueError(f"soft_oks_nms: thr must be > 0, got {thr}")
    if int(max_dets) < 1:
        raise ValueError(f"soft_oks_nms: max_dets must be >= 1, got {max_dets}")
    kp, sc, ar, sg, ids = check_nms_inputs(keypoints, scores, areas, sigmas, image_ids)
    n = kp.shape[0]
    ks = None if keypoint_scores is None else np.asarray(keypoint_scores, dtype=np.float64)
    keep_mask = np.zeros(n, dtype=bool)
    decayed = np.zeros(n, dtype=np.float64)
    for img in np.unique(ids):
        idx = np.flatnonzero(ids == img)  # ascending input order: argmax picks the earliest on ties
        oks = pairwise_oks(kp[idx], ar[idx], sg, None if ks is None else ks[idx], vis_thr)
        cur = sc[idx].copy()
        alive = np.ones(idx.size, dtype=bool)
        for _ in range(min(int(max_dets), idx.size)):
            i = int(np.argmax(np.where(alive, cur, -np.inf)))
            keep_mask[idx[i]] = True
            decayed[idx[i]] = cur[i]
            alive[i] = False
            o = oks[i]
            if method == "gaussian":
                cur = np.where(alive, cur * np.exp(-o ** 2 / thr), cur)
            else:
                cur = np.where(alive & (o >= thr), cur * (1 - o), cur)
    keep = np.flatnonzero(keep_mask)
    return (keep, decayed) if return_scores else keep
