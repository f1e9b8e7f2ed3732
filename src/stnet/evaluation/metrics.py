"""Keypoint metrics as pure functions over numpy arrays.

Conventions (docs/conventions.md): keypoints are ``(N, K, 2)`` ``(x, y)`` in image pixels,
visibility ``(N, K)``, boxes ``[x, y, w, h]``. Every function here returns *fractions* in
``[0, 1]``; the evaluators and tables turn PCK/PCKh into percent as the official tools do.

* :func:`keypoint_similarity` is the per-joint OKS term ``exp(-d^2 / (2 s^2 (2 sigma)^2))``, the one
  formula behind :func:`oks`, OKS-NMS (:mod:`.nms`) and the OKS tracker (:mod:`stnet.tracking`).
* :func:`oks` reproduces ``pycocotools.cocoeval.COCOeval.computeOks`` (including its rule for a
  ground truth without labelled keypoints), vectorised.
* :func:`rescore` is the standard top-down person score (HRNet / mmpose): box score x mean of the
  keypoint scores above 0.2.
* :func:`pck` / :func:`pckh` count a joint as correct when ``distance / normaliser <= threshold``
  (inclusive, as the official MPII code) and only over visible joints.
* :func:`pckh` follows the official MPII evaluation (``evaluatePCKh.m`` / the widely used python
  port): head size = ``SC_BIAS * ||headbox[1] - headbox[0]||`` with ``SC_BIAS = 0.6``. The
  thresholds are used exactly as given: ``0.1`` means 0.1 (the popular python port reports
  ``pckAll[11]``, i.e. 0.11, as "Mean@0.1").
* :func:`summarize_by_part` builds the Head/Shoulder/.../Mean columns of the paper's Table VI from
  per-joint counts: a column averages the left/right joints (unweighted, as the official code),
  ``Mean`` is total correct / total visible over every joint except pelvis and thorax.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = [
    "SC_BIAS",
    "PART_COLUMNS",
    "RESCORE_THRESHOLD",
    "PCKResult",
    "keypoint_similarity",
    "oks",
    "rescore",
    "keypoint_distances",
    "normalized_distances",
    "pck",
    "pck_from_normalized",
    "pckh",
    "head_sizes",
    "torso_size",
    "bbox_size",
    "auc",
    "epe",
    "joint_part",
    "summarize_by_part",
    "find_joint",
]

#: The official MPII scale on the head-box diagonal.
SC_BIAS = 0.6
#: Keypoint score above which a joint counts in the person score (:func:`rescore`).
RESCORE_THRESHOLD = 0.2
#: Column order of the paper's Tables VI/VII.
PART_COLUMNS = ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean")


def _as_float(a: object, name: str, ndim: int | None = None) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions, got shape {arr.shape}")
    return arr


def _check_kpts(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray) -> None:
    if pred.ndim != 3 or pred.shape[-1] != 2:
        raise ValueError(f"pred: expected (N, K, 2) keypoints, got shape {pred.shape}")
    if gt.shape != pred.shape:
        raise ValueError(f"gt: shape {gt.shape} does not match pred {pred.shape}")
    if visible.shape != pred.shape[:2]:
        raise ValueError(f"visible: expected shape {pred.shape[:2]}, got {visible.shape}")


# ----------------------------------------------------------------------------- OKS

def keypoint_similarity(sq_dist: np.ndarray, areas: np.ndarray | float, sigmas: np.ndarray) -> np.ndarray:
    """Per-joint OKS term ``exp(-d^2 / (2 s^2 k^2))`` with ``s^2`` the object area and ``k = 2 sigma``
    (COCOeval's ``computeOks``): ``sq_dist (..., K)`` squared pixel distances, ``areas``
    broadcastable to ``sq_dist`` (e.g. ``(..., 1)``), ``sigmas (K,)``. OKS is its mean over the
    joints that count."""
    var = (np.asarray(sigmas, dtype=np.float64) * 2) ** 2
    e = sq_dist / var / (areas + np.spacing(1)) / 2
    return np.exp(-e)


def oks(pred: np.ndarray, gt: np.ndarray, gt_visibility: np.ndarray, gt_areas: np.ndarray,
        sigmas: np.ndarray, gt_boxes: np.ndarray | None = None) -> np.ndarray:
    """Object keypoint similarity between predictions ``(D, K, 2)`` and ground truths ``(G, K, 2)``.

    Returns ``(D, G)``, equal to ``COCOeval.computeOks`` for the same instances. A GT keypoint
    counts when ``gt_visibility > 0`` (COCO: 1 = labelled but occluded, 2 = visible). ``gt_areas``
    is the GT segment area (COCO's ``area``). A GT with no labelled keypoint is scored, as in
    COCOeval, by the distance of each predicted keypoint to its box enlarged 3x about the centre;
    that needs ``gt_boxes`` ``(G, 4)`` ``[x, y, w, h]``.
    """
    pred = _as_float(pred, "pred", 3)
    gt = _as_float(gt, "gt", 3)
    vis = np.asarray(gt_visibility)
    areas = _as_float(gt_areas, "gt_areas").reshape(-1)
    sig = _as_float(sigmas, "sigmas").reshape(-1)
    d_n, k = pred.shape[:2]
    g_n = gt.shape[0]
    if gt.shape[1:] != (k, 2) or pred.shape[2] != 2:
        raise ValueError(f"oks: pred {pred.shape} and gt {gt.shape} must both be (*, K, 2)")
    if sig.shape != (k,):
        raise ValueError(f"sigmas: {sig.size} values for {k} keypoints")
    if vis.shape != (g_n, k) or areas.shape != (g_n,):
        raise ValueError(f"oks: gt_visibility {vis.shape} / gt_areas {areas.shape} do not match gt {gt.shape}")
    if d_n == 0 or g_n == 0:
        return np.zeros((d_n, g_n))
    labelled = vis > 0
    k1 = labelled.sum(axis=1)  # (G,)
    dx = pred[:, None, :, 0] - gt[None, :, :, 0]  # (D, G, K)
    dy = pred[:, None, :, 1] - gt[None, :, :, 1]
    if np.any(k1 == 0):
        if gt_boxes is None:
            raise ValueError("oks: a ground truth has no labelled keypoint; pass gt_boxes so it is "
                             "scored by COCO's box-distance rule")
        bb = _as_float(gt_boxes, "gt_boxes", 2)
        x0 = bb[:, 0] - bb[:, 2]
        x1 = bb[:, 0] + bb[:, 2] * 2
        y0 = bb[:, 1] - bb[:, 3]
        y1 = bb[:, 1] + bb[:, 3] * 2
        px = pred[:, None, :, 0]
        py = pred[:, None, :, 1]
        bdx = np.maximum(0, x0[None, :, None] - px) + np.maximum(0, px - x1[None, :, None])
        bdy = np.maximum(0, y0[None, :, None] - py) + np.maximum(0, py - y1[None, :, None])
        empty = (k1 == 0)[None, :, None]
        dx = np.where(empty, bdx, dx)
        dy = np.where(empty, bdy, dy)
    sim = keypoint_similarity(dx ** 2 + dy ** 2, areas[None, :, None], sig)
    # A GT without labelled keypoints averages over all K (COCOeval's box rule), else over labelled.
    mask = np.where((k1 == 0)[:, None], True, labelled)  # (G, K)
    count = mask.sum(axis=1)
    return (sim * mask[None]).sum(axis=2) / count[None, :]


def rescore(box_scores: np.ndarray, keypoint_scores: np.ndarray, thr: float = RESCORE_THRESHOLD) -> np.ndarray:
    """Person score = box score x mean of the keypoint scores ``> thr``; 0 when none exceeds it
    (HRNet / mmpose's top-down rescoring).

    ``box_scores`` ``(N,)`` (1 for ground-truth boxes), ``keypoint_scores`` ``(N, K)``.
    """
    kp = np.asarray(keypoint_scores, dtype=np.float64)
    box = np.asarray(box_scores, dtype=np.float64).reshape(-1)
    if kp.ndim != 2 or box.shape != (kp.shape[0],):
        raise ValueError(f"rescore: box_scores {box.shape} and keypoint_scores {kp.shape} must be (N,) and (N, K)")
    mask = kp > thr
    cnt = mask.sum(axis=1)
    total = np.where(mask, kp, 0.0).sum(axis=1)
    mean = np.where(cnt > 0, total / np.maximum(cnt, 1), 0.0)
    return box * mean


# ----------------------------------------------------------------------------- PCK family

def keypoint_distances(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Euclidean distance per joint, ``(N, K)`` pixels."""
    pred = _as_float(pred, "pred", 3)
    gt = _as_float(gt, "gt", 3)
    if pred.shape != gt.shape:
        raise ValueError(f"gt: shape {gt.shape} does not match pred {pred.shape}")
    return np.linalg.norm(pred - gt, axis=-1)


def normalized_distances(pred: np.ndarray, gt: np.ndarray, normalizer: np.ndarray) -> np.ndarray:
    """Distance per joint divided by a per-instance normaliser ``(N,)`` -> ``(N, K)``."""
    dist = keypoint_distances(pred, gt)
    norm = _as_float(normalizer, "normalizer").reshape(-1)
    if norm.shape != (dist.shape[0],):
        raise ValueError(f"normalizer: expected {dist.shape[0]} values, got {norm.size}")
    with np.errstate(divide="ignore", invalid="ignore"):
        return dist / norm[:, None]


@dataclass(frozen=True)
class PCKResult:
    """PCK at one threshold. ``per_joint`` is NaN for a joint that is never counted."""

    threshold: float
    correct: np.ndarray  # (K,) int: joints within the threshold
    counts: np.ndarray  # (K,) int: visible joints counted
    per_joint: np.ndarray  # (K,) float fraction, NaN where counts == 0
    mean: float  # total correct / total counted over all joints (NaN when nothing counted)

    def as_dict(self) -> dict[str, object]:
        return {"threshold": self.threshold, "per_joint": self.per_joint.tolist(),
                "correct": self.correct.tolist(), "counts": self.counts.tolist(), "mean": self.mean}


def pck_from_normalized(nd: np.ndarray, visible: np.ndarray, threshold: float,
                        valid: np.ndarray | None = None) -> PCKResult:
    """PCK from already normalised distances ``(N, K)``; ``valid (N,)`` drops whole instances."""
    vis = np.asarray(visible).astype(bool)
    if valid is not None:
        vis = vis & valid[:, None]
    # NaN distances of counted joints would silently count as wrong: refuse instead.
    bad = vis & ~np.isfinite(nd)
    if bad.any():
        n, j = np.argwhere(bad)[0]
        raise ValueError(f"non-finite normalised distance for instance {n}, joint {j} "
                         "(NaN/inf prediction or ground truth, or a zero normaliser)")
    hit = np.zeros_like(vis)
    hit[vis] = nd[vis] <= threshold
    correct = hit.sum(axis=0)
    counts = vis.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_joint = np.where(counts > 0, correct / np.maximum(counts, 1), np.nan)
    total = counts.sum()
    mean = float(correct.sum() / total) if total else float("nan")
    return PCKResult(float(threshold), correct.astype(np.int64), counts.astype(np.int64), per_joint, mean)


def pck(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, normalizer: np.ndarray,
        threshold: float = 0.2) -> PCKResult:
    """PCK@threshold: fraction of visible joints with ``distance / normalizer <= threshold``.

    ``normalizer`` is one length per instance, e.g. :func:`torso_size` (LSP's PCK@0.2) or
    :func:`bbox_size`. An instance whose normaliser is not a positive finite number cannot be
    scored; pass only valid instances (the evaluators skip and count them).
    """
    pred = _as_float(pred, "pred", 3)
    gt = _as_float(gt, "gt", 3)
    visible = np.asarray(visible)
    _check_kpts(pred, gt, visible)
    return pck_from_normalized(normalized_distances(pred, gt, normalizer), visible, threshold)


def head_sizes(headboxes: np.ndarray, sc_bias: float = SC_BIAS) -> np.ndarray:
    """MPII head size ``sc_bias * ||headbox[:, 1] - headbox[:, 0]||`` from ``(N, 2, 2)`` boxes
    given as ``[[x1, y1], [x2, y2]]``."""
    hb = _as_float(headboxes, "headboxes", 3)
    if hb.shape[1:] != (2, 2):
        raise ValueError(f"headboxes: expected (N, 2, 2) [[x1, y1], [x2, y2]], got {hb.shape}")
    return np.linalg.norm(hb[:, 1] - hb[:, 0], axis=-1) * sc_bias


def pckh(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, headboxes: np.ndarray,
         thresholds: Sequence[float] = (0.5, 0.1), sc_bias: float = SC_BIAS) -> dict[float, PCKResult]:
    """MPII PCKh at each threshold (official definition, see the module docstring).

    ``visible`` is MPII's "annotated" flag (``1 - jnt_missing`` in ``gt_valid.mat``).
    """
    pred = _as_float(pred, "pred", 3)
    gt = _as_float(gt, "gt", 3)
    visible = np.asarray(visible)
    _check_kpts(pred, gt, visible)
    nd = normalized_distances(pred, gt, head_sizes(headboxes, sc_bias))
    return {float(t): pck_from_normalized(nd, visible, float(t)) for t in thresholds}


def torso_size(gt: np.ndarray, joint_a: int, joint_b: int) -> np.ndarray:
    """Per-instance distance between two GT joints, ``(N,)``; LSP uses right shoulder - left hip."""
    gt = _as_float(gt, "gt", 3)
    return np.linalg.norm(gt[:, joint_a] - gt[:, joint_b], axis=-1)


def bbox_size(boxes: np.ndarray) -> np.ndarray:
    """Per-instance ``max(w, h)`` of ``[x, y, w, h]`` boxes (mmpose's bbox normalisation)."""
    b = _as_float(boxes, "boxes", 2)
    if b.shape[1] != 4:
        raise ValueError(f"boxes: expected (N, 4) [x, y, w, h], got {b.shape}")
    return np.max(b[:, 2:4], axis=1)


def auc(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, normalizer: np.ndarray,
        max_threshold: float = 0.5, num_thresholds: int | None = None) -> float:
    """Area under the PCK-vs-threshold curve on ``[0, max_threshold]``, scaled to ``[0, 1]``.

    With ``num_thresholds=None`` the integral is exact: PCK(t) is a step function, so each visible
    joint with normalised error ``e`` contributes ``max(0, 1 - e / max_threshold)``. With an
    integer ``n`` it is the mean, over the thresholds ``t = 0, T/n, ..., (n-1)T/n``, of the PCK of
    all visible joints pooled together with a joint correct when ``e <= t``.

    This is NOT mmpose's ``keypoint_auc`` (``num_thrs=n``): that one averages per-joint
    accuracies (each joint type weighted equally, however many instances label it), counts a
    joint correct only when ``e < t`` (so its first threshold, 0, always scores 0), and divides
    the errors by one normaliser in pixels over ``[0, 1)``. The numbers differ whenever joints
    are labelled unevenly or an error equals a threshold.
    """
    pred = _as_float(pred, "pred", 3)
    gt = _as_float(gt, "gt", 3)
    visible = np.asarray(visible).astype(bool)
    _check_kpts(pred, gt, visible)
    if not max_threshold > 0:
        raise ValueError(f"max_threshold must be > 0, got {max_threshold}")
    nd = normalized_distances(pred, gt, normalizer)[visible]
    if nd.size == 0:
        return float("nan")
    if not np.all(np.isfinite(nd)):
        raise ValueError("auc: non-finite normalised distance for a visible joint")
    if num_thresholds is None:
        return float(np.mean(np.clip(1.0 - nd / max_threshold, 0.0, 1.0)))
    ts = np.arange(num_thresholds) * (max_threshold / num_thresholds)
    return float(np.mean([(nd <= t).mean() for t in ts]))


def epe(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray) -> float:
    """End-point error: mean pixel distance over visible joints (NaN when none is visible)."""
    pred = _as_float(pred, "pred", 3)
    gt = _as_float(gt, "gt", 3)
    visible = np.asarray(visible).astype(bool)
    _check_kpts(pred, gt, visible)
    d = keypoint_distances(pred, gt)[visible]
    if d.size == 0:
        return float("nan")
    if not np.all(np.isfinite(d)):
        raise ValueError("epe: non-finite distance for a visible joint")
    return float(d.mean())


# ----------------------------------------------------------------------------- body parts

# Name fragments -> part; checked in order so "upper_neck" is a neck, not a head. MPII's own
# abbreviations (rsho, lelb, ...) and long names (right_shoulder) both match.
_PART_PATTERNS: tuple[tuple[str, str], ...] = (
    ("neck", "neck"),
    ("pelv", "pelvis"),
    ("thor", "thorax"),
    ("head", "Head"),
    ("sho", "Shoulder"),
    ("elb", "Elbow"),
    ("wri", "Wrist"),
    ("hip", "Hip"),
    ("kne", "Knee"),
    ("ank", "Ankle"),
)
# The official MPII Mean leaves these out (its jnt_count.mask[6:8] = pelvis, thorax).
_EXCLUDED_FROM_MEAN = frozenset({"pelvis", "thorax"})


def joint_part(name: str) -> str:
    """Body part of a joint name: a Table VI column, or ``neck``/``pelvis``/``thorax``/``other``."""
    low = name.lower()
    for frag, part in _PART_PATTERNS:
        if frag in low:
            return part
    return "other"


def summarize_by_part(correct: np.ndarray, counts: np.ndarray,
                      joint_names: Sequence[str]) -> dict[str, float]:
    """Table VI columns (fractions) from per-joint correct/visible counts.

    A part column is the unweighted mean of its joints' PCK (official: ``0.5 * (l + r)``);
    ``Mean`` is the count-weighted mean over all joints except pelvis and thorax, i.e. the
    official ``sum(PCKh * jnt_ratio)``. A column with no counted joint is NaN.
    """
    correct = np.asarray(correct, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    if not (correct.shape == counts.shape == (len(joint_names),)):
        raise ValueError(f"summarize_by_part: {len(joint_names)} joint names for correct "
                         f"{correct.shape} / counts {counts.shape}")
    with np.errstate(divide="ignore", invalid="ignore"):
        per_joint = np.where(counts > 0, correct / np.maximum(counts, 1), np.nan)
    parts = [joint_part(n) for n in joint_names]
    out: dict[str, float] = {}
    for col in PART_COLUMNS[:-1]:
        vals = [per_joint[i] for i, p in enumerate(parts) if p == col and counts[i] > 0]
        out[col] = float(np.mean(vals)) if vals else float("nan")
    keep = np.array([p not in _EXCLUDED_FROM_MEAN for p in parts])
    total = counts[keep].sum()
    out["Mean"] = float(correct[keep].sum() / total) if total else float("nan")
    return out


_SIDE_WORDS = {"right": "r", "r": "r", "left": "l", "l": "l"}


def _side(name: str) -> str | None:
    tokens = [t for t in re.split(r"[^a-z]+", name.lower()) if t]
    for t in tokens:
        if t in _SIDE_WORDS:
            return _SIDE_WORDS[t]
    for t in tokens:
        if t.startswith("right"):
            return "r"
        if t.startswith("left"):
            return "l"
    # MPII-style abbreviations: "rsho", "lhip".
    if len(tokens) == 1 and tokens[0][:1] in ("r", "l") and joint_part(tokens[0][1:]) != "other":
        return tokens[0][0]
    return None


def find_joint(joint_names: Sequence[str], side: str, part: str) -> int:
    """Index of the joint with the given side (``"left"``/``"right"``) and part (a Table VI
    column such as ``"Shoulder"``); ValueError naming the joints when none or several match."""
    want = _SIDE_WORDS.get(side.lower())
    if want is None:
        raise ValueError(f"find_joint: side must be 'left' or 'right', got {side!r}")
    hits = [i for i, n in enumerate(joint_names) if joint_part(n) == part and _side(n) == want]
    if len(hits) != 1:
        raise ValueError(f"cannot find a unique {side} {part} among joints {list(joint_names)}; "
                         "pass the joint indices explicitly")
    return hits[0]
