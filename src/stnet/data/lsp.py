"""LSP / LSP-Extended (Johnson & Everingham) ``joints.mat`` annotations.

Layouts accepted:

* ``(14, 3, N)`` - LSP-Extended: rows ``x, y, visible`` (1 = visible).
* ``(3, 14, N)`` - the original LSP release, whose third row is 0 for visible joints
  (an occlusion flag); it is inverted on load.

Images are ``<image_dir>/im%05d.jpg`` (LSP-Extended) or ``im%04d.jpg`` (LSP), 1-based.

**Split** (there is no official one): the usable images are the leading run of annotated images
whose files exist (im00001..im09000 for ``shared/data/lspet``, which ships 9,000 of the 10,000);
the last ``val_fraction`` (10%) of them are validation, the rest training. For ``lspet`` that is
train = im00001..im08100 (8,100), val = im08101..im09000 (900).

**Boxes**: the person box is the extent of the visible joints, grown by ``box_padding`` x its
longer side on every side (joints mark limb centres, so the tight extent cuts off head and feet).
Persons with fewer than 2 visible joints, or whose visible joints span no area, are left out.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import numpy as np

from .records import PersonRecord
from .skeletons import Skeleton, get_skeleton

__all__ = ["load_lsp_records", "lsp_split_indices", "load_lsp_joints"]


#: Coordinates beyond this are not pixels of any image (and overflow float32 boxes).
MAX_COORD = 1e6


def load_lsp_joints(mat_file: str | Path, num_keypoints: int = 14) -> tuple[np.ndarray, np.ndarray]:
    """``(N, K, 2)`` keypoints (0-based pixels) and ``(N, K)`` visibility from ``joints.mat``."""
    from scipy.io import loadmat

    path = Path(mat_file)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: joints file not found")
    try:
        mat = loadmat(str(path))
    except Exception as e:  # scipy raises several types for non-.mat input
        raise ValueError(f"{path}: cannot read MATLAB file: {e}") from None
    if "joints" not in mat:
        keys = [k for k in mat if not k.startswith("__")]
        raise ValueError(f"{path}: no 'joints' array (found {keys})")
    try:
        j = np.asarray(mat["joints"], dtype=np.float64)
    except (ValueError, TypeError, OverflowError):  # text, a cell or struct array
        raise ValueError(f"{path}: 'joints' must be a numeric array, got {mat['joints'].dtype} "
                         f"{mat['joints'].shape}") from None
    if not np.all(np.isfinite(j)) or np.abs(j).max(initial=0.0) > MAX_COORD:
        raise ValueError(f"{path}: 'joints' holds non-finite values (NaN or inf) or coordinates beyond "
                         f"{MAX_COORD:g} pixels")
    k = num_keypoints
    if j.ndim == 3 and j.shape[:2] == (k, 3):
        kps, vis = j[:, :2, :].transpose(2, 0, 1), (j[:, 2, :].T > 0)
    elif j.ndim == 3 and j.shape[:2] == (3, k):
        kps, vis = j[:2, :, :].transpose(2, 1, 0), (j[2, :, :].T == 0)
    else:
        raise ValueError(f"{path}: 'joints' has shape {j.shape}; expected ({k}, 3, N) "
                         f"(LSP-Extended) or (3, {k}, N) (LSP) for a {k}-keypoint skeleton")
    # The .mat coordinates are MATLAB 1-based pixel positions.
    return (kps - 1.0).astype(np.float32), vis.astype(np.float32)


def _image_name(image_dir: Path, i: int, digits: int) -> Path:
    return image_dir / f"im{i + 1:0{digits}d}.jpg"


def _detect_digits(image_dir: Path) -> int:
    for digits in (5, 4):
        if _image_name(image_dir, 0, digits).exists():
            return digits
    raise FileNotFoundError(f"{image_dir}: no im00001.jpg / im0001.jpg found (LSP image folder?)")


def lsp_split_indices(num_available: int, split: Literal["train", "val", "all"],
                      val_fraction: float = 0.1) -> range:
    """0-based image indices of ``split``: the last ``ceil(val_fraction * n)`` are validation."""
    n_val = int(math.ceil(val_fraction * num_available))
    if split == "train":
        return range(0, num_available - n_val)
    if split == "val":
        return range(num_available - n_val, num_available)
    if split == "all":
        return range(num_available)
    raise ValueError(f"unknown split {split!r}; expected 'train', 'val' or 'all'")


def box_from_joints(kps: np.ndarray, vis: np.ndarray, padding: float) -> np.ndarray | None:
    """``[x, y, w, h]`` around the visible joints, padded; None if fewer than 2 or zero area."""
    pts = kps[(vis > 0) & np.isfinite(kps).all(-1)]
    if len(pts) < 2:
        return None
    x0, y0 = pts.min(0)
    x1, y1 = pts.max(0)
    w, h = x1 - x0, y1 - y0
    if w <= 0 and h <= 0:
        return None
    pad = padding * max(w, h)
    return np.array([x0 - pad, y0 - pad, w + 2 * pad, h + 2 * pad], dtype=np.float32)


def load_lsp_records(mat_file: str | Path, image_dir: str | Path | None = None,
                     skeleton: str | Skeleton = "lsp14", *,
                     split: Literal["train", "val", "all"] = "train", val_fraction: float = 0.1,
                     box_padding: float = 0.1, num_images: int | None = None) -> list[PersonRecord]:
    """Records of one split of an LSP / LSP-Extended folder (see the module docstring).

    ``num_images`` fixes the number of usable images instead of probing the folder (then a
    missing file is reported when it is loaded).
    """
    mat_path = Path(mat_file)
    skel = get_skeleton(skeleton)
    kps, vis = load_lsp_joints(mat_path, skel.num_keypoints)
    image_dir = Path(image_dir) if image_dir is not None else mat_path.parent / "images"
    if not image_dir.is_dir():
        raise FileNotFoundError(f"{image_dir}: image folder not found")
    digits = _detect_digits(image_dir)
    if num_images is None:
        n = 0
        while n < len(kps) and _image_name(image_dir, n, digits).exists():
            n += 1
    else:
        n = int(num_images)
        if not 0 < n <= len(kps):
            raise ValueError(f"{mat_path}: num_images={n} but the file annotates {len(kps)} images")
    records = []
    for i in lsp_split_indices(n, split, val_fraction):
        box = box_from_joints(kps[i], vis[i], box_padding)
        if box is None:
            continue
        records.append(PersonRecord(
            image_path=_image_name(image_dir, i, digits), box=box, keypoints=kps[i].copy(),
            visibility=vis[i].copy(), image_id=i + 1, instance_id=i + 1,
            source=f"{mat_path}: image {i + 1}"))
    return records
