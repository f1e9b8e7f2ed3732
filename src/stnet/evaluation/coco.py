"""COCO keypoint evaluation: official results format, pycocotools scoring, input checks.

Scoring is pycocotools' own ``COCOeval(gt, dt, "keypoints")`` with ``params.kpt_oks_sigmas`` set
to the skeleton's sigmas and ``params.catIds`` restricted to the keypoint category; nothing is
re-implemented, so AP/AR equal the official tool's on the same results file.

Bad input is refused with the file/field named rather than scored (pycocotools would assert,
crash on an empty list, or silently drop detections of another category):

* a results entry with missing fields, the wrong number of keypoint values, or NaN/inf values;
* an ``image_id`` that is not in the GT (``unknown_images="skip"`` drops and counts them instead,
  unless *none* of the ids is in the GT, which always means the wrong dataset);
* a ``category_id`` other than the GT's keypoint category;
* an empty result set.
"""
from __future__ import annotations

import contextlib
import io
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence, Union

import numpy as np


from ..io import read_json
from ._common import to_numpy as _np
from .base import Evaluator, Predictions
from .metrics import rescore
from .nms import oks_nms, soft_oks_nms
from .sigmas import SigmaSpec, resolve_sigmas
from .tables import COCO_KEYS, format_coco_table

__all__ = [
    "COCO_KEYS",
    "GTSource",
    "CocoScore",
    "load_coco_gt",
    "keypoint_category",
    "load_results",
    "validate_results",
    "make_results",
    "score_results",
    "load_detections",
    "CocoEvaluator",
]

GTSource = Union[str, Path, Mapping[str, Any], Any]  # path, parsed json, or a pycocotools COCO
UnknownImages = Literal["error", "skip"]


def _quiet() -> contextlib.AbstractContextManager[Any]:
    # pycocotools prints progress to stdout; `stnet score --json` must print exactly one object.
    return contextlib.redirect_stdout(io.StringIO())


def _describe(gt: GTSource) -> str:
    return str(gt) if isinstance(gt, (str, Path)) else "ground truth"


def load_coco_gt(gt: GTSource) -> Any:
    """A pycocotools ``COCO`` for a path, a parsed json dict, or an existing ``COCO``.

    Checks what COCOeval needs (images, annotations with ``keypoints``/``area``) and fills
    ``num_keypoints`` when a custom dataset omits it (COCOeval reads it to ignore empty GTs).
    """
    from pycocotools.coco import COCO

    if isinstance(gt, COCO):
        coco = gt
        where = "ground truth"
    else:
        where = _describe(gt)
        if isinstance(gt, (str, Path)):
            path = Path(gt)
            if not path.is_file():
                raise FileNotFoundError(f"{path}: ground-truth annotation file not found")
            data = read_json(path)
        else:
            data = dict(gt)
        if not isinstance(data, dict) or not all(k in data for k in ("images", "annotations", "categories")):
            raise ValueError(f"{where}: not a COCO annotation file (needs 'images', 'annotations', 'categories')")
        _check_gt_lists(data, where)  # pycocotools' index would fail with a bare KeyError('id')
        coco = COCO()
        coco.dataset = data
        with _quiet():
            coco.createIndex()
    cat_id, names = keypoint_category(coco, where=where)
    k = len(names)
    rows: list[int] = []
    for i, ann in enumerate(coco.dataset["annotations"]):
        if ann.get("category_id") != cat_id:
            continue
        kps = ann.get("keypoints")
        if not isinstance(kps, list) or len(kps) != 3 * k:
            raise ValueError(f"{where}: annotations[{i}] (id {ann.get('id')}): 'keypoints' must hold "
                             f"3 x {k} values, got {None if kps is None else len(kps)}")
        if "area" not in ann or "bbox" not in ann:
            raise ValueError(f"{where}: annotations[{i}] (id {ann.get('id')}): COCOeval needs 'area' and 'bbox' "
                             "(CrowdPose-style files without 'area' are scored by xtcocotools' "
                             "'keypoints_crowd' protocol, which pycocotools does not implement)")
        if "iscrowd" not in ann:
            raise ValueError(f"{where}: annotations[{i}] (id {ann.get('id')}): missing 'iscrowd' (0 for a "
                             "person, 1 for a crowd region), which COCOeval needs")
        rows.append(i)
    if not rows:
        raise ValueError(f"{where}: no annotations of the keypoint category {cat_id}; nothing to score "
                         "against (every AP would be -1)")
    anns = coco.dataset["annotations"]
    _check_gt_annotations(anns, rows, where)
    values = _numeric_rows([anns[i]["keypoints"] for i in rows],
                           lambda j: f"{where}: annotations[{rows[j]}] (id {anns[rows[j]].get('id')})", "keypoints")
    for j, i in enumerate(rows):
        if "num_keypoints" not in anns[i]:
            anns[i]["num_keypoints"] = int(np.count_nonzero(values[j, 2::3] > 0))
    return coco


def _check_gt_lists(data: Mapping[str, Any], where: str) -> None:
    """``images``, ``annotations``, ``categories``: lists of objects with an ``id`` (annotations also
    ``image_id``), as pycocotools' index needs them."""
    for key, need in (("images", ("id",)), ("annotations", ("id", "image_id")), ("categories", ("id",))):
        items = data[key]
        if not isinstance(items, list):
            raise ValueError(f"{where}: '{key}' is {type(items).__name__}, expected a list of objects")
        for i, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise ValueError(f"{where}: {key}[{i}] is {type(item).__name__}, expected an object")
            missing = [k for k in need if k not in item]
            if missing:
                raise ValueError(f"{where}: {key}[{i}] has no {missing[0]!r}")


def _check_gt_annotations(anns: Sequence[Mapping[str, Any]], rows: Sequence[int], where: str) -> None:
    """What pycocotools would score silently wrong: duplicate annotation ids (its index keeps one
    of each, so the others' matches fail: a perfect result scores near 0), a NaN / inf / negative
    ``area`` (NaN makes every OKS pass: AP 1.0 for any prediction; negative gives AP -1), a
    non-numeric ``bbox``, and a GT whose persons are all crowd regions (AP -1 for any result).
    An ``area`` of 0 on a labelled person makes its OKS 0 or 1: warned, not refused."""
    seen: dict[Any, int] = {}
    for i, ann in enumerate(anns):
        aid = ann.get("id") if isinstance(ann, Mapping) else None
        if aid is None or isinstance(aid, (dict, list)):
            raise ValueError(f"{where}: annotations[{i}]: 'id' is {aid!r}; every annotation needs a unique "
                             "number or string id")
        if aid in seen:
            raise ValueError(f"{where}: annotations[{i}] and annotations[{seen[aid]}] share 'id' {aid!r}; "
                             "pycocotools keeps one of them, so matches against the other would be lost")
        seen[aid] = i
    zero = []
    for i in rows:
        ann = anns[i]
        area = ann["area"]
        if isinstance(area, bool) or not isinstance(area, (int, float)) or not np.isfinite(area) or area < 0:
            raise ValueError(f"{where}: annotations[{i}] (id {ann.get('id')}): 'area' is {area!r}; expected a "
                             "finite number >= 0 (the person's segment area in pixels, OKS's scale)")
        box = ann["bbox"]
        if (not isinstance(box, (list, tuple)) or len(box) != 4
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in box)):
            raise ValueError(f"{where}: annotations[{i}] (id {ann.get('id')}): 'bbox' is {str(box)[:80]}; "
                             "expected 4 finite numbers [x, y, w, h]")
        if area == 0 and not ann.get("iscrowd") and ann.get("num_keypoints", 1):
            zero.append(ann.get("id"))
    if all(anns[i].get("iscrowd") for i in rows):
        raise ValueError(f"{where}: all {len(rows)} persons are 'iscrowd': 1 (crowd regions, which are never "
                         "matched); nothing to score (every AP would be -1)")
    if zero:
        warnings.warn(f"{where}: {len(zero)} labelled person(s) have 'area' 0 (e.g. id {zero[0]}): their OKS is "
                      "0 or 1 (any error of a visible keypoint fails it); fill 'area' with the segment area or "
                      "w * h * 0.53", RuntimeWarning, stacklevel=3)


def _numeric_rows(rows: Sequence[Any], where: Callable[[int], str], field_: str) -> np.ndarray:
    """``rows`` (equal-length lists of ``field_``) as a float64 array; ValueError naming the first
    row (``where(j)``) that holds a non-number (e.g. a string, which numpy would otherwise convert
    or compare deep inside pycocotools) or NaN/inf."""
    arr = np.asarray(rows)
    if arr.dtype.kind not in "iuf" or arr.ndim != 2:
        for j, row in enumerate(rows):
            bad = [v for v in row if isinstance(v, bool) or not isinstance(v, (int, float))]
            if bad:
                raise ValueError(f"{where(j)}: {field_!r} holds {type(bad[0]).__name__} {bad[0]!r}; "
                                 "expected numbers")
        raise ValueError(f"{where(0)}: {field_!r}: expected numbers")
    arr = arr.astype(np.float64, copy=False)
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        j = int(np.flatnonzero(~finite)[0])
        raise ValueError(f"{where(j)}: NaN/inf in {field_!r} ({int((~finite).sum())} entries affected)")
    return arr


def keypoint_category(coco: Any, category_id: int | None = None, where: str = "ground truth") -> tuple[int, list[str]]:
    """``(category id, keypoint names)`` of the GT's keypoint category."""
    cats = [c for c in coco.dataset.get("categories", []) if c.get("keypoints")]
    if category_id is not None:
        cats = [c for c in cats if c.get("id") == category_id]
    if not cats:
        what = f"category {category_id}" if category_id is not None else "no category"
        raise ValueError(f"{where}: {what} has a 'keypoints' list; is this a keypoint annotation file?")
    if len(cats) > 1:
        raise ValueError(f"{where}: several keypoint categories {[c['id'] for c in cats]}; pass category_id")
    return int(cats[0]["id"]), [str(n) for n in cats[0]["keypoints"]]


def load_results(path: str | Path) -> list[dict[str, Any]]:
    """Read a COCO results json (a list of objects), with errors that name the file."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: results file not found")
    data = read_json(p)
    if not isinstance(data, list):
        raise ValueError(f"{p}: a COCO results file is a JSON list of objects, got {type(data).__name__}")
    return data


@dataclass
class _Checked:
    results: list[Mapping[str, Any]]
    num_unknown_image: int = 0
    unknown_image_examples: list[Any] = field(default_factory=list)


# One pass of per-entry field checks, each with its own message; splitting it would scatter them.
def validate_results(results: Sequence[Mapping[str, Any]], coco_gt: Any | None, *, num_keypoints: int,  # noqa: C901
                     category_id: int, source: str = "results",
                     unknown_images: UnknownImages = "error") -> _Checked:
    """Check every entry; returns the entries to score and how many were skipped.

    Raises ValueError naming ``source``, the entry index and the field for: a non-object entry,
    a missing field, ``keypoints`` not of length 3*K or not numeric, NaN/inf in ``keypoints`` or
    ``score``, a foreign ``category_id``, unknown ``image_id`` (unless ``unknown_images="skip"``),
    and an empty set.
    """
    if len(results) == 0:
        raise ValueError(f"{source}: no predictions (empty result set); refusing to report AP 0")
    want = 3 * num_keypoints
    for i, r in enumerate(results):
        if not isinstance(r, Mapping):
            raise ValueError(f"{source}: entry {i} is {type(r).__name__}, expected an object")
        for key in ("image_id", "category_id", "keypoints", "score"):
            if key not in r:
                raise ValueError(f"{source}: entry {i}: missing field {key!r}")
        kps = r["keypoints"]
        if not isinstance(kps, (list, tuple)) or len(kps) != want:
            n = len(kps) if isinstance(kps, (list, tuple)) else type(kps).__name__
            raise ValueError(f"{source}: entry {i} (image_id {r['image_id']}): 'keypoints' has {n} "
                             f"values, expected 3 x {num_keypoints} = {want} (x, y, score per keypoint)")
        box = r.get("bbox")
        if box is not None and box != [] and (not isinstance(box, (list, tuple)) or len(box) != 4 or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in box)):
            # pycocotools reads an entry with a bbox as a box result (area from it)
            raise ValueError(f"{source}: entry {i} (image_id {r['image_id']}): 'bbox' is {str(box)[:60]}; "
                             "expected 4 finite numbers [x, y, w, h] (or no 'bbox')")
        if r["category_id"] != category_id:
            raise ValueError(f"{source}: entry {i} (image_id {r['image_id']}): 'category_id' "
                             f"{r['category_id']!r} is not the keypoint category {category_id}")
    for key in ("keypoints", "score"):
        def where(j: int) -> str:
            return f"{source}: entry {j} (image_id {results[j]['image_id']})"

        _numeric_rows([r[key] if key == "keypoints" else [r[key]] for r in results], where, key)
    checked = _Checked(list(results))
    if coco_gt is not None:
        known = set(coco_gt.getImgIds())
        ids = [r["image_id"] for r in results]
        unknown = [j for j, iid in enumerate(ids) if iid not in known]
        if unknown:
            examples = sorted({ids[j] for j in unknown}, key=str)[:5]
            if len(unknown) == len(ids):
                raise ValueError(f"{source}: none of the {len(ids)} predictions has an 'image_id' in the "
                                 f"ground truth (e.g. {examples}); predictions or detection boxes for "
                                 "another dataset/split?")
            if unknown_images == "error":
                raise ValueError(f"{source}: {len(unknown)} of {len(ids)} predictions have an 'image_id' "
                                 f"not in the ground truth (e.g. {examples}); pass "
                                 "unknown_images='skip' (--skip-unknown-images) to drop and count them")
            drop = set(unknown)
            checked = _Checked([r for j, r in enumerate(results) if j not in drop], len(unknown), examples)
    return checked


def make_results(image_ids: np.ndarray, keypoints: np.ndarray, keypoint_scores: np.ndarray,
                 scores: np.ndarray, category_id: int = 1) -> list[dict[str, Any]]:
    """Official COCO keypoint results: ``image_id``, ``category_id``, ``keypoints`` as
    ``x1, y1, s1, x2, ...`` (image pixels, COCO's pixel-centre convention, which is ours) and
    instance ``score``."""
    kp = np.asarray(keypoints, dtype=np.float64)
    ks = np.asarray(keypoint_scores, dtype=np.float64)
    flat = np.concatenate([kp, ks[..., None]], axis=-1).reshape(kp.shape[0], -1).tolist()
    ids = np.asarray(image_ids).tolist()
    sc = np.asarray(scores, dtype=np.float64).tolist()
    return [{"image_id": i, "category_id": category_id, "keypoints": k, "score": s}
            for i, k, s in zip(ids, flat, sc)]


@dataclass(frozen=True)
class CocoScore:
    """AP/AR (fractions, pycocotools ``stats`` order) plus how they were obtained."""

    metrics: dict[str, float]
    num_results: int
    num_skipped_unknown_image: int
    sigmas: str
    category_id: int

    def as_dict(self) -> dict[str, Any]:
        return {"metrics": self.metrics, "num_results": self.num_results,
                "num_skipped_unknown_image": self.num_skipped_unknown_image,
                "sigmas": self.sigmas, "category_id": self.category_id}


def score_results(gt: GTSource, results: str | Path | Sequence[Mapping[str, Any]], *,
                  sigmas: SigmaSpec = None, category_id: int | None = None,
                  unknown_images: UnknownImages = "error", source: str | None = None) -> CocoScore:
    """Score a COCO keypoint results file/list against COCO-format GT with pycocotools.

    ``sigmas``: explicit values, a skeleton name or a file; default inferred from the GT's
    keypoint names / count (:func:`stnet.evaluation.sigmas.resolve_sigmas`).
    """
    from pycocotools.cocoeval import COCOeval

    coco_gt = load_coco_gt(gt)
    cat_id, names = keypoint_category(coco_gt, category_id, where=_describe(gt))
    sig, sig_desc = resolve_sigmas(sigmas, num_keypoints=len(names), keypoint_names=names)
    if isinstance(results, (str, Path)):
        source = source or str(results)
        results = load_results(results)
    source = source or "results"
    checked = validate_results(results, coco_gt, num_keypoints=len(names), category_id=cat_id,
                               source=source, unknown_images=unknown_images)
    # loadRes adds fields to the entries it is given; keep the caller's list untouched.
    dets = [dict(r) for r in checked.results]
    with _quiet():
        coco_dt = coco_gt.loadRes(dets)
        ev = COCOeval(coco_gt, coco_dt, "keypoints")
        ev.params.kpt_oks_sigmas = sig
        ev.params.catIds = [cat_id]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    metrics = {k: float(v) for k, v in zip(COCO_KEYS, ev.stats)}
    return CocoScore(metrics, len(dets), checked.num_unknown_image, sig_desc, cat_id)


def load_detections(path: str | Path, *, gt_image_ids: Sequence[Any] | None = None,
                    category_id: int = 1, min_score: float = 0.0) -> dict[str, np.ndarray]:
    """Person boxes from a COCO detection-results file (e.g. ``*_det_AP_H_56.json``).

    Returns ``image_ids (N,)``, ``boxes (N, 4) [x, y, w, h]``, ``scores (N,)`` for
    ``category_id`` with score >= ``min_score`` (0 keeps all boxes, the standard protocol).
    With ``gt_image_ids`` a file whose image ids are not in the GT is refused: a detection file
    for another dataset/split would otherwise score as a silently low AP.
    """
    p = Path(path)
    dets = load_results(p)
    rows = []
    for i, d in enumerate(dets):
        if not isinstance(d, Mapping) or not all(k in d for k in ("image_id", "bbox", "score")):
            raise ValueError(f"{p}: entry {i}: a detection needs 'image_id', 'bbox' and 'score'")
        if d.get("category_id", category_id) != category_id:
            continue
        rows.append(d)
    if not rows:
        raise ValueError(f"{p}: no detections of category {category_id}")
    boxes = np.asarray([r["bbox"] for r in rows], dtype=np.float64)
    scores = np.asarray([r["score"] for r in rows], dtype=np.float64)
    ids = np.asarray([r["image_id"] for r in rows])
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{p}: 'bbox' must be [x, y, w, h]")
    if not (np.isfinite(boxes).all() and np.isfinite(scores).all()):
        raise ValueError(f"{p}: NaN/inf in 'bbox' or 'score'")
    if gt_image_ids is not None:
        known = set(gt_image_ids)
        inside = np.array([i in known for i in ids.tolist()])
        if not inside.all():
            n_in = int(inside.sum())
            ex = sorted(set(ids[~inside].tolist()), key=str)[:5]
            raise ValueError(f"{p}: {len(ids) - n_in} of {len(ids)} detections have an 'image_id' not "
                             f"in the ground truth (e.g. {ex}); "
                             + ("a detection file for another dataset/split?" if n_in == 0 else
                                "filter the file to the evaluated images first"))
    keep = scores >= min_score
    return {"image_ids": ids[keep], "boxes": boxes[keep], "scores": scores[keep]}


# ----------------------------------------------------------------------------- evaluator

class CocoEvaluator(Evaluator):
    """COCO keypoint evaluation with the standard top-down protocol.

    ``process`` collects per-instance predictions; ``evaluate`` gathers them from all DDP ranks,
    and on rank 0 rescores (box score x mean keypoint score > 0.2), applies OKS-NMS at 0.9 per
    image, writes the official results json and scores it with pycocotools. Metrics (fractions,
    keys :data:`COCO_KEYS`) are returned on every rank.

    ``box_source`` must say where the person boxes came from, e.g. ``"ground-truth boxes"`` or
    ``"detections: COCO_val2017_detections_AP_H_56_person.json"``; it is printed with the table
    and stored in metrics.json. ``format_only=True`` writes a submission (e.g. test-dev) without
    scoring; ``gt`` may then be None or an image-info json used only to check image ids.

    Under a ``DistributedSampler`` that pads the dataset, pass ``indices`` so duplicates are
    dropped (counted in the report) instead of being scored twice.

    ``nms="soft_oks"`` replaces the greedy OKS-NMS by soft-OKS-NMS at ``nms_thr`` (mmpose's
    ``nms_mode='soft_oks_nms'``: ``soft_nms_method`` ``gaussian`` or ``linear``, at most
    ``soft_nms_max_dets`` results per image, the kept results keep their scores);
    ``nms_thr=None`` turns NMS off.
    """

    empty_hint = "; refusing to report AP 0"

    def __init__(self, gt: GTSource | None, *, box_source: str, sigmas: SigmaSpec = None,
                 category_id: int | None = None, rescore: bool = True, keypoint_score_thr: float = 0.2,
                 nms_thr: float | None = 0.9, unknown_images: UnknownImages = "error",
                 nms: Literal["oks", "soft_oks"] = "oks", soft_nms_method: Literal["gaussian", "linear"] = "gaussian",
                 soft_nms_max_dets: int = 20,
                 format_only: bool = False, output_dir: str | Path | None = None,
                 results_name: str = "keypoints_results.json", name: str = "predictions",
                 print_fn: Callable[[str], None] | None = print) -> None:
        if not box_source:
            raise ValueError("CocoEvaluator: box_source must say which boxes were used "
                             "(e.g. 'ground-truth boxes' or 'detections: FILE')")
        if gt is None and not format_only:
            raise ValueError("CocoEvaluator: ground truth is required unless format_only=True")
        if format_only and output_dir is None:
            raise ValueError("CocoEvaluator: format_only=True needs output_dir to write the submission")
        self.box_source = box_source
        self.rescore = rescore
        self.keypoint_score_thr = keypoint_score_thr
        self.nms_thr = nms_thr
        if nms not in ("oks", "soft_oks"):
            raise ValueError(f"CocoEvaluator: nms must be 'oks' or 'soft_oks', got {nms!r}")
        if soft_nms_method not in ("gaussian", "linear"):
            raise ValueError(f"CocoEvaluator: soft_nms_method must be 'gaussian' or 'linear', got {soft_nms_method!r}")
        self.nms = nms
        self.soft_nms_method = soft_nms_method
        self.soft_nms_max_dets = int(soft_nms_max_dets)
        self.unknown_images: UnknownImages = unknown_images
        self.format_only = format_only
        self.results_name = results_name
        self._sigma_spec = sigmas
        self.coco_gt: Any | None = None
        self.num_keypoints: int | None = None
        self.keypoint_names: list[str] | None = None
        self.category_id = 1 if category_id is None else int(category_id)
        # Every rank loads the GT so that process() checks the keypoint count the same way.
        if gt is not None:
            if format_only and not _has_annotations(gt):
                self.coco_gt = _image_info(gt)
            else:
                self.coco_gt = load_coco_gt(gt)
                self.category_id, self.keypoint_names = keypoint_category(self.coco_gt, category_id, _describe(gt))
                self.num_keypoints = len(self.keypoint_names)
        self._gt_desc = _describe(gt) if gt is not None else None
        super().__init__(output_dir=output_dir, name=name, print_fn=print_fn)

    def _accept(self, p: Predictions) -> dict[str, np.ndarray]:
        """Reads ``keypoints (N, K, 2)`` image pixels, ``keypoint_scores (N, K)``, ``image_ids (N,)``,
        ``box_scores (N,)`` (default 1, i.e. GT boxes), ``areas (N,)`` used by OKS-NMS (default: the
        area of the predicted keypoints' extent; HRNet/mmpose pass the padded box area)."""
        kp = self._keypoints(p)
        n, k = kp.shape[:2]
        if self.num_keypoints is not None and k != self.num_keypoints:
            raise self._error(f"'keypoints' has {k} keypoints per instance, the ground truth has "
                              f"{self.num_keypoints}")
        if p.keypoint_scores is None or p.image_ids is None:
            raise self._error("needs keypoint_scores= and image_ids=")
        ks = _np(p.keypoint_scores, np.float64)
        ids = _np(p.image_ids).reshape(-1)
        if ks.shape != (n, k):
            raise self._error(f"'keypoint_scores' must be {(n, k)}, got {ks.shape}")
        if ids.shape != (n,):
            raise self._error(f"'image_ids' has {ids.size} values for {n} instances")
        bs = np.ones(n) if p.box_scores is None else _np(p.box_scores, np.float64).reshape(-1)
        if p.areas is None:
            ext = kp.max(axis=1) - kp.min(axis=1) if n else np.zeros((0, 2))
            ar = ext[:, 0] * ext[:, 1]
        else:
            ar = _np(p.areas, np.float64).reshape(-1)
        for name, arr in (("box_scores", bs), ("areas", ar)):
            if arr.shape != (n,):
                raise self._error(f"{name!r} has {arr.size} values for {n} instances")
        for name, arr in (("keypoints", kp), ("keypoint_scores", ks), ("box_scores", bs), ("areas", ar)):
            self._check_finite(name, arr, ids)
        return {"image_ids": ids, "keypoints": kp, "keypoint_scores": ks, "box_scores": bs, "areas": ar}

    def _score(self, data: dict[str, np.ndarray]) -> dict[str, float]:
        report: dict[str, Any] = {"boxes": self.box_source, "ground_truth": self._gt_desc,
                                  "num_instances": int(data["keypoints"].shape[0])}
        data = self._drop_duplicates(data, report)
        n, k = data["keypoints"].shape[:2]
        if self.num_keypoints is not None and k != self.num_keypoints:
            raise ValueError(f"CocoEvaluator: predictions have {k} keypoints, the ground truth {self.num_keypoints}")
        sigmas, sig_desc = resolve_sigmas(self._sigma_spec, num_keypoints=k, keypoint_names=self.keypoint_names)
        report["sigmas"] = sig_desc
        data = self._known_images(data, report)

        if self.rescore:
            scores = rescore(data["box_scores"], data["keypoint_scores"], self.keypoint_score_thr)
        else:
            scores = data["box_scores"].copy()
        report["rescore"] = (f"box score x mean keypoint score > {self.keypoint_score_thr}"
                             if self.rescore else "box score")
        if self.nms_thr is None:
            keep = np.arange(data["keypoints"].shape[0])
        elif self.nms == "soft_oks":
            keep = soft_oks_nms(data["keypoints"], scores, data["areas"], sigmas, data["image_ids"], self.nms_thr,
                                method=self.soft_nms_method, max_dets=self.soft_nms_max_dets)
        else:
            keep = oks_nms(data["keypoints"], scores, data["areas"], sigmas, data["image_ids"], self.nms_thr)
        report["oks_nms"] = self.nms_thr
        report["nms"] = ("none" if self.nms_thr is None else "oks" if self.nms == "oks" else
                         f"soft_oks ({self.soft_nms_method}, at most {self.soft_nms_max_dets} per image)")
        report["num_results"] = int(keep.size)
        results = make_results(data["image_ids"][keep], data["keypoints"][keep],
                               data["keypoint_scores"][keep], scores[keep], self.category_id)
        self._save_raw(data)
        if self.output_dir is not None:
            # dumps + one write: json.dump streams through the pure-Python encoder (~4x slower).
            text = json.dumps(results)
            self._stage(self.results_name, lambda tmp: tmp.write_text(text, encoding="utf-8"))
            report["results_file"] = str(self.output_dir / self.results_name)

        if self.format_only:
            metrics: dict[str, float] = {}
            self._say(f"COCO keypoints: wrote {len(results)} results ({self.box_source}) to "
                      f"{report['results_file']} (format only, not scored)")
        else:
            score = score_results(self.coco_gt, results, sigmas=sigmas, category_id=self.category_id,
                                  source="CocoEvaluator predictions")
            metrics = score.metrics
            self._say(format_coco_table(metrics, name=self.name, boxes=self.box_source, sigmas=sig_desc)
                      + f"\n{len(results)} results after {'soft-' * (self.nms == 'soft_oks')}OKS-NMS from "
                        f"{n} instances"
                      + (f"; skipped {report['num_skipped_unknown_image']} with an image_id not in GT"
                         if report.get("num_skipped_unknown_image") else ""))
        self.report = report
        self._save_metrics(metrics, report)
        return metrics

    def _known_images(self, data: dict[str, np.ndarray], report: dict[str, Any]) -> dict[str, np.ndarray]:
        """``data`` without predictions whose image is not in the GT (or an error, see
        ``unknown_images``)."""
        if self.coco_gt is None:
            return data
        n = data["keypoints"].shape[0]
        known = set(self.coco_gt.getImgIds())
        inside = np.fromiter((i in known for i in data["image_ids"].tolist()), bool, count=n)
        if not inside.all():
            ex = sorted(set(data["image_ids"][~inside].tolist()), key=str)[:5]
            if not inside.any():
                raise ValueError(f"CocoEvaluator: none of the {n} predictions has an image_id in the "
                                 f"ground truth {self._gt_desc} (e.g. {ex}); predictions or detection "
                                 "boxes for another dataset/split?")
            if self.unknown_images == "error":
                raise ValueError(f"CocoEvaluator: {int((~inside).sum())} of {n} predictions have an "
                                 f"image_id not in the ground truth {self._gt_desc} (e.g. {ex}); pass "
                                 "unknown_images='skip' to drop and count them")
            data = {key: v[inside] for key, v in data.items()}
        report["num_skipped_unknown_image"] = int((~inside).sum())
        return data


def _has_annotations(gt: Any) -> bool:
    if isinstance(gt, (str, Path)):
        try:
            data = json.loads(Path(gt).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return True  # let load_coco_gt produce the precise error
        return bool(isinstance(data, dict) and data.get("annotations"))
    if isinstance(gt, Mapping):
        return bool(gt.get("annotations"))
    return True


class _ImageInfo:
    """Just enough of a COCO object to check image ids of a test-dev submission."""

    def __init__(self, ids: Sequence[Any]) -> None:
        self._ids = list(ids)

    def getImgIds(self) -> list[Any]:  # noqa: N802 - pycocotools' spelling
        return self._ids


def _image_info(gt: Any) -> _ImageInfo:
    if isinstance(gt, (str, Path)):
        data = json.loads(Path(gt).read_text(encoding="utf-8"))
    elif isinstance(gt, Mapping):
        data = gt
    else:
        return _ImageInfo(gt.getImgIds())
    if not isinstance(data, Mapping) or "images" not in data:
        raise ValueError(f"{_describe(gt)}: image-info json needs an 'images' list")
    return _ImageInfo([im["id"] for im in data["images"]])
