"""MPII annotations in the json layout of the standard top-down pipelines (HRNet, mmpose):
a list of ``{image, center, scale, joints, joints_vis}``, 1-based pixel coordinates, ``scale``
in units of 200 px (the person's height is about ``scale * 200``)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .records import PersonRecord
from .skeletons import Skeleton, get_skeleton

__all__ = ["load_mpii_records"]

#: Standard adjustments (HRNet ``mpii.py``): move the centre 15 * scale px down (MPII centres
#: sit high, around the chest) and pad the region by 1.25.
MPII_CENTER_SHIFT = 15.0
MPII_SCALE_PADDING = 1.25
MAX_COORD = 1e6


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _numbers(where: str, field: str, value: Any, expected: str) -> np.ndarray:
    """``value`` as a float64 array, or a ValueError naming the record and the field."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):  # text, ragged lists, objects, ints beyond float64
        raise ValueError(f"{where}: {field!r} must be {expected}, got {_short(value)}") from None
    if not np.all(np.isfinite(arr)) or np.abs(arr).max(initial=0.0) > MAX_COORD:
        # beyond MAX_COORD no pixel of any image, and float32 boxes would overflow
        raise ValueError(f"{where}: {field!r} must be {expected} (finite, at most {MAX_COORD:g}), "
                         f"got {_short(value)}")
    return arr


def load_mpii_records(ann_file: str | Path, image_dir: str | Path,
                      skeleton: str | Skeleton = "mpii16") -> list[PersonRecord]:
    """Person records from an MPII json; coordinates converted from 1-based to 0-based.

    Each record carries ``center``/``scale`` (square, pixels, already shifted and padded) and a
    ``box`` of the unpadded square region.
    """
    path = Path(ann_file)
    skel = get_skeleton(skeleton)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: annotation file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as e:  # not JSON, not UTF-8, nested too deep
        raise ValueError(f"{path}: not valid JSON: {str(e).splitlines()[0][:120] if str(e) else type(e).__name__}"
                         ) from None
    if not isinstance(data, list):
        raise ValueError(f"{path}: not an MPII json (expected a list of "
                         "{image, center, scale, joints, joints_vis}, got a {type(data).__name__})")
    k = skel.num_keypoints
    image_dir = Path(image_dir)
    records: list[PersonRecord] = []
    for i, a in enumerate(data):
        where = f"{path}: record [{i}]"
        if not isinstance(a, dict):
            raise ValueError(f"{where}: expected an object")
        missing = [f for f in ("image", "center", "scale") if f not in a]
        if missing:
            raise ValueError(f"{where}: missing field(s) {missing}")
        if not isinstance(a["image"], str) or not a["image"]:
            raise ValueError(f"{where}: 'image' must be a file name, got {_short(a['image'])}")
        s_arr = _numbers(where, "scale", a["scale"], "a number > 0")
        c = _numbers(where, "center", a["center"], "[x, y]")
        if s_arr.shape != () or c.shape != (2,) or c[0] == -1 or not float(s_arr) > 0:
            raise ValueError(f"{where}: invalid center {_short(a['center'])} / scale {_short(a['scale'])} "
                             "(expected [x, y] and a number > 0; center -1 marks a person without a region)")
        s = float(s_arr)
        if "joints" in a:
            joints = _numbers(where, "joints", a["joints"], "a list of [x, y]").astype(np.float32)
            if joints.ndim != 2 or joints.shape[1] < 2:
                raise ValueError(f"{where}: 'joints' must be a list of [x, y], got shape {joints.shape}")
            if joints.shape[0] != k:
                raise ValueError(f"{where}: {joints.shape[0]} joints but skeleton {skel.name!r} has {k}")
            vis = _numbers(where, "joints_vis", a.get("joints_vis", np.ones(k)), f"{k} flags").reshape(-1)
            if vis.shape != (k,):
                raise ValueError(f"{where}: 'joints_vis' has {vis.size} values, expected {k}")
            kps = joints[:, :2] - 1.0  # MATLAB 1-based -> 0-based pixel centres
            vis = (vis > 0).astype(np.float32)
        else:  # test-set style record: region only
            kps = np.zeros((k, 2), np.float32)
            vis = np.zeros(k, np.float32)
        c[1] += MPII_CENTER_SHIFT * s
        c -= 1.0
        side = s * 200.0
        box = np.array([c[0] - side / 2, c[1] - side / 2, side, side], dtype=np.float32)
        padded = side * MPII_SCALE_PADDING
        records.append(PersonRecord(
            image_path=image_dir / str(a["image"]), box=box, keypoints=kps, visibility=vis,
            image_id=str(a["image"]), instance_id=i, center=c.astype(np.float32),
            scale=np.array([padded, padded], dtype=np.float32), source=where))
    return records
