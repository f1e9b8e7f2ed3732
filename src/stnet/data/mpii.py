"""MPII annotations in the json layout of the standard top-down pipelines (HRNet, mmpose):
a list of ``{image, center, scale, joints, joints_vis}``, 1-based pixel coordinates, ``scale``
in units of 200 px (the person's height is about ``scale * 200``)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .records import PersonRecord
from .skeletons import Skeleton, get_skeleton

__all__ = ["load_mpii_records"]

#: Standard adjustments (HRNet ``mpii.py``): move the centre 15 * scale px down (MPII centres
#: sit high, around the chest) and pad the region by 1.25.
MPII_CENTER_SHIFT = 15.0
MPII_SCALE_PADDING = 1.25


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
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON: {e}") from None
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
        s = float(a["scale"])
        c = np.asarray(a["center"], dtype=np.float64)
        if c.shape != (2,) or not np.all(np.isfinite(c)) or c[0] == -1 or not s > 0:
            raise ValueError(f"{where}: invalid center {a['center']!r} / scale {a['scale']!r} "
                             "(zero-area region)")
        if "joints" in a:
            joints = np.asarray(a["joints"], dtype=np.float32)
            if joints.ndim != 2 or joints.shape[1] < 2:
                raise ValueError(f"{where}: 'joints' must be a list of [x, y], got shape {joints.shape}")
            if joints.shape[0] != k:
                raise ValueError(f"{where}: {joints.shape[0]} joints but skeleton {skel.name!r} has {k}")
            vis = np.asarray(a.get("joints_vis", np.ones(k)), dtype=np.float32).reshape(-1)
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
