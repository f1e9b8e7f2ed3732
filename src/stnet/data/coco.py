"""COCO-format keypoint annotations (COCO, CrowdPose, any custom set) and detector boxes."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..io import read_json
from .records import PersonRecord
from .skeletons import Skeleton, get_skeleton

__all__ = ["load_coco_records", "load_coco_json", "keypoint_category"]


def load_coco_json(path: str | Path) -> dict[str, Any]:
    """Read and sanity-check a COCO keypoints json; ValueError naming the file otherwise."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: annotation file not found")
    data = read_json(p)
    if not isinstance(data, dict):
        raise ValueError(f"{p}: not a COCO keypoints json (top level is a {type(data).__name__}, "
                         "expected an object with 'images', 'annotations', 'categories')")
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(data.get(k), list)]
    if missing:
        raise ValueError(f"{p}: not a COCO keypoints json (missing list(s) {missing})")
    return data


def keypoint_category(data: dict[str, Any], where: str) -> dict[str, Any]:
    """The category carrying a ``keypoints`` list (the person category)."""
    cats = [c for c in data["categories"] if isinstance(c, dict) and c.get("keypoints")]
    if not cats:
        raise ValueError(f"{where}: not a COCO keypoints json (no category has a 'keypoints' list)")
    if len(cats) > 1:
        named = [c for c in cats if c.get("name") == "person"]
        if len(named) != 1:
            raise ValueError(f"{where}: {len(cats)} keypoint categories; only one is supported")
        cats = named
    return cats[0]


def _clip_box(box: list[float], width: float | None, height: float | None) -> np.ndarray:
    """A ground-truth box clipped to the image as HRNet's and mmpose's COCO readers do: both
    corners into ``[0, W - 1] x [0, H - 1]`` (pixel centres), so a box hanging off the image does
    not waste crop area on padding. Detector boxes are NOT clipped (see :func:`_raw_box`)."""
    x, y, w, h = (float(v) for v in box)
    x0, y0, x1, y1 = x, y, x + w, y + h
    if width:
        x0, x1 = min(max(x0, 0.0), float(width) - 1), min(max(x1, 0.0), float(width) - 1)
    if height:
        y0, y1 = min(max(y0, 0.0), float(height) - 1), min(max(y1, 0.0), float(height) - 1)
    return np.array([x0, y0, x1 - x0, y1 - y0], dtype=np.float32)


def _raw_box(box: Any, where: str) -> np.ndarray:
    """A detector box as given: the standard protocol (HRNet, mmpose) crops from the raw detector
    box, including any part off the image, so AP with detector boxes compares like for like."""
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        raise ValueError(f"{where}: 'bbox' must be [x, y, w, h], got {box!r}")
    try:
        return np.array([float(v) for v in box], dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: 'bbox' must be four numbers [x, y, w, h], got {box!r}") from None


# A flat sequence of per-field checks, each with its own message; splitting it would scatter them.
def load_coco_records(ann_file: str | Path, image_dir: str | Path, skeleton: str | Skeleton = "coco17",  # noqa: C901
                      *, det_file: str | Path | None = None, det_score_threshold: float = 0.0,
                      on_bad_box: Literal["error", "skip"] = "error") -> list[PersonRecord]:
    """Person records from a COCO-format keypoints json.

    Without ``det_file``: one record per ground-truth person, skipping crowd regions and persons
    without any labelled keypoint (the standard top-down training/GT-box validation set).
    With ``det_file`` (a ``*_detections_AP_H_56_person.json``-style list of ``{image_id, bbox,
    score, category_id}``): one record per person detection with ``score >= det_score_threshold``,
    keypoints zero and visibility zero (evaluation compares against the json's annotations).

    A GT box with zero area raises ValueError naming the file and annotation id, unless
    ``on_bad_box="skip"`` (then such persons are dropped with one warning giving the count).
    """
    ann_path = Path(ann_file)
    skel = get_skeleton(skeleton)
    data = load_coco_json(ann_path)
    cat = keypoint_category(data, str(ann_path))
    if not isinstance(cat["keypoints"], list):
        raise ValueError(f"{ann_path}: category {cat.get('name')!r}: 'keypoints' must be a list of names")
    k = len(cat["keypoints"])
    if k != skel.num_keypoints:
        raise ValueError(f"{ann_path}: category {cat.get('name')!r} has {k} keypoints but skeleton "
                         f"{skel.name!r} has {skel.num_keypoints}; pass the matching skeleton "
                         "(or stnet.data.skeleton_from_coco for a custom layout)")
    images: dict[Any, dict[str, Any]] = {}
    for i, im in enumerate(data["images"]):
        if not isinstance(im, dict) or "id" not in im or "file_name" not in im:
            raise ValueError(f"{ann_path}: images[{i}] lacks 'id' or 'file_name'")
        if not isinstance(im["id"], (int, str)) or isinstance(im["id"], bool):
            raise ValueError(f"{ann_path}: images[{i}]: 'id' must be an integer, got {im['id']!r}")
        images[im["id"]] = im
    image_dir = Path(image_dir)
    if det_file is not None:
        return _load_detections(Path(det_file), images, image_dir, cat, skel, det_score_threshold)

    records: list[PersonRecord] = []
    bad_boxes = 0
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            raise ValueError(f"{ann_path}: annotations[{i}] is not an object")
        aid = ann.get("id", i)
        where = f"{ann_path}: annotation id {aid}"
        if ann.get("category_id", cat.get("id")) != cat.get("id") or ann.get("iscrowd", 0):
            continue
        kps = ann.get("keypoints")
        if kps is None:
            raise ValueError(f"{where}: no 'keypoints' field (is this a keypoints json?)")
        if len(kps) != 3 * k:
            raise ValueError(f"{where}: {len(kps)} keypoint values, expected {3 * k} "
                             f"({k} keypoints x (x, y, v)) for skeleton {skel.name!r}")
        arr = np.asarray(kps, dtype=np.float32).reshape(k, 3)
        vis = (arr[:, 2] > 0).astype(np.float32)
        if vis.sum() == 0:
            continue  # no labelled joint: nothing to learn, as in the standard pipeline
        im = images.get(ann.get("image_id"))
        if im is None:
            raise ValueError(f"{where}: image_id {ann.get('image_id')!r} is not in 'images'")
        bbox = ann.get("bbox")
        if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
            raise ValueError(f"{where}: 'bbox' must be [x, y, w, h], got {bbox!r}")
        box = _clip_box(list(bbox), im.get("width"), im.get("height"))
        if not (np.all(np.isfinite(box)) and box[2] > 0 and box[3] > 0):
            if on_bad_box == "skip":
                bad_boxes += 1
                continue
            raise ValueError(f"{where}: box {list(bbox)} has zero area (inside the image) - fix the "
                             "annotation or load with on_bad_box='skip'")
        records.append(PersonRecord(
            image_path=image_dir / im["file_name"], box=box, keypoints=arr[:, :2].copy(),
            visibility=vis, image_id=ann["image_id"], instance_id=int(aid), score=1.0,
            source=where, extra={"area": float(ann.get("area", box[2] * box[3]))}))
    if bad_boxes:
        warnings.warn(f"{ann_path}: skipped {bad_boxes} person(s) with a zero-area box", UserWarning,
                      stacklevel=2)
    return records


def _load_detections(det_path: Path, images: dict[Any, dict[str, Any]], image_dir: Path,
                     cat: dict[str, Any], skel: Skeleton, threshold: float) -> list[PersonRecord]:
    if not det_path.is_file():
        raise FileNotFoundError(f"{det_path}: detection file not found")
    dets = read_json(det_path)
    if not isinstance(dets, list):
        raise ValueError(f"{det_path}: expected a list of detections "
                         "[{image_id, bbox, score, category_id}], got a {type(dets).__name__}")
    k = skel.num_keypoints
    records: list[PersonRecord] = []
    degenerate = 0
    for i, det in enumerate(dets):
        where = f"{det_path}: detection [{i}]"
        if not isinstance(det, dict) or not {"image_id", "bbox", "score"} <= det.keys():
            raise ValueError(f"{where}: expected an object with image_id, bbox, score")
        if det.get("category_id", cat.get("id")) != cat.get("id"):
            continue
        if float(det["score"]) < threshold:
            continue
        im = images.get(det["image_id"])
        if im is None:
            raise ValueError(f"{where}: image_id {det['image_id']!r} is not in the annotation file's images")
        box = _raw_box(det["bbox"], where)
        if not (np.all(np.isfinite(box)) and box[2] > 0 and box[3] > 0):
            degenerate += 1  # detectors do emit these; they cannot be cropped
            continue
        records.append(PersonRecord(
            image_path=image_dir / im["file_name"], box=box, keypoints=np.zeros((k, 2), np.float32),
            visibility=np.zeros(k, np.float32), image_id=det["image_id"], instance_id=i,
            score=float(det["score"]), source=where))
    if degenerate:
        warnings.warn(f"{det_path}: skipped {degenerate} detection(s) with a zero-area box",
                      UserWarning, stacklevel=3)
    return records
