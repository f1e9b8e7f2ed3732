"""Top-down geometry: box to centre/scale, the crop warp and its inverse, horizontal flips.

Coordinates follow docs/conventions.md: pixel centres sit at integer coordinates, so an image of
width ``W`` spans ``[-0.5, W - 0.5]`` and the mirror of ``x`` is ``W - 1 - x``. ``cv2.warpAffine``
uses the same convention, which is why the matrices below can be handed to it directly.

Two warp conventions:

* **unbiased** (UDP, Huang et al. CVPR 2020, the default): lengths are measured between pixel
  centres, so a box of width ``w`` maps onto ``W_in - 1`` crop units and the box centre lands
  exactly on the crop centre ``((W_in - 1) / 2, (H_in - 1) / 2)``. Flipping the crop then equals
  flipping the source about the box centre, and the heatmap stride is ``(w_in-1)/(w_hm-1)``.
* **classic** (HRNet / SimpleBaseline): ``w`` maps onto ``W_in`` and the centre lands on
  ``(W_in / 2, H_in / 2)``, half a pixel off; it is kept to reproduce models trained that way.

``scale`` is always the ``(w, h)`` size of the region in *source pixels* (not MPII's 200-px units)
and ``rotation`` is in degrees, positive turning the image content counter-clockwise in the crop.
"""
from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np

__all__ = [
    "box_to_center_scale",
    "fix_aspect_ratio",
    "get_warp_matrix",
    "invert_affine",
    "affine_points",
    "warp_image",
    "crop_to_image",
    "image_to_crop",
    "flip_keypoints",
    "flip_image",
]

SizeHW = Sequence[int]


def fix_aspect_ratio(scale: np.ndarray, aspect_ratio: float) -> np.ndarray:
    """Grow the shorter side of ``(..., 2)`` sizes ``(w, h)`` so that ``w / h == aspect_ratio``.

    Only ever enlarges, so the region still contains the whole box.
    """
    s = np.asarray(scale, dtype=np.float64).copy()
    w, h = s[..., 0], s[..., 1]
    wide = w > aspect_ratio * h
    s[..., 1] = np.where(wide, w / aspect_ratio, h)
    s[..., 0] = np.where(wide, w, h * aspect_ratio)
    return s


def box_to_center_scale(box: Sequence[float] | np.ndarray, aspect_ratio: float,
                        padding: float = 1.25, *, where: str = "") -> tuple[np.ndarray, np.ndarray]:
    """COCO box(es) ``[x, y, w, h]`` -> ``center (..., 2)``, ``scale (..., 2)`` in pixels.

    The region keeps the box centre, gets the model's aspect ratio (``W_in / H_in``) by growing
    one side, and is padded by ``padding`` (1.25 in the standard recipe) so limbs at the box edge
    keep some context. A box with zero or negative area raises ValueError naming ``where``.
    """
    b = np.asarray(box, dtype=np.float64)
    if b.shape[-1] != 4:
        raise ValueError(f"{where or 'box'}: expected [x, y, w, h], got shape {b.shape}")
    flat = b.reshape(-1, 4)
    bad = ~np.isfinite(flat).all(1) | (flat[:, 2] <= 0) | (flat[:, 3] <= 0)
    if bad.any():
        raise ValueError(f"{where + ': ' if where else ''}box with zero area or non-finite values "
                         f"{flat[bad][0].tolist()} (expected [x, y, w, h] with w > 0 and h > 0)")
    center = b[..., :2] + 0.5 * b[..., 2:]
    scale = fix_aspect_ratio(b[..., 2:], aspect_ratio) * padding
    return center, scale


def get_warp_matrix(center: Sequence[float] | np.ndarray, scale: Sequence[float] | np.ndarray,
                    rotation: float, output_size: SizeHW, *, unbiased: bool = True,
                    inverse: bool = False) -> np.ndarray:
    """2x3 float64 affine matrix mapping source pixels to crop pixels (or back if ``inverse``).

    ``center``/``scale`` are ``(x, y)``/``(w, h)`` in source pixels, ``output_size`` is
    ``(H_out, W_out)``. See the module docstring for the two conventions.
    """
    cx, cy = float(center[0]), float(center[1])
    sw, sh = float(scale[0]), float(scale[1])
    if not (sw > 0 and sh > 0):
        raise ValueError(f"scale must be positive, got {(sw, sh)}")
    h_out, w_out = int(output_size[0]), int(output_size[1])
    if unbiased:
        # Anisotropic by at most a pixel's worth: (W-1)/w and (H-1)/h differ slightly even when
        # w/h == W/H; this is what makes both box edges land on the outer pixel centres.
        ax, ay = (w_out - 1) / sw, (h_out - 1) / sh
        ox, oy = 0.5 * (w_out - 1), 0.5 * (h_out - 1)
    else:
        ax = ay = w_out / sw  # classic: a similarity driven by the width only (HRNet)
        ox, oy = 0.5 * w_out, 0.5 * h_out
    t = math.radians(rotation)
    c, s = math.cos(t), math.sin(t)
    # With y pointing down, [[c, s], [-s, c]] turns content counter-clockwise on screen.
    lin = np.array([[ax * c, ax * s], [-ay * s, ay * c]], dtype=np.float64)
    mat = np.empty((2, 3), dtype=np.float64)
    mat[:, :2] = lin
    mat[:, 2] = np.array([ox, oy]) - lin @ np.array([cx, cy])
    return invert_affine(mat) if inverse else mat


def invert_affine(mat: np.ndarray) -> np.ndarray:
    """Inverse of a ``(..., 2, 3)`` affine matrix."""
    m = np.asarray(mat, dtype=np.float64)
    lin = m[..., :2]
    inv = np.linalg.inv(lin)
    out = np.empty_like(m)
    out[..., :2] = inv
    out[..., 2] = -np.einsum("...ij,...j->...i", inv, m[..., 2])
    return out


def affine_points(points: np.ndarray, mat: np.ndarray) -> np.ndarray:
    """Apply ``(2, 3)`` (or batched ``(N, 2, 3)`` with ``(N, K, 2)`` points) affine matrices."""
    p = np.asarray(points, dtype=np.float64)
    m = np.asarray(mat, dtype=np.float64)
    if m.ndim == 2:
        return p @ m[:, :2].T + m[:, 2]
    return np.einsum("nij,nkj->nki", m[..., :2], p) + m[:, None, :, 2]


def warp_image(image: np.ndarray, mat: np.ndarray, output_size: SizeHW, *,
               interpolation: int = cv2.INTER_LINEAR, border_value: int | Sequence[int] = 0) -> np.ndarray:
    """Crop ``image`` with a matrix from :func:`get_warp_matrix`; returns ``(H_out, W_out, C)``."""
    h_out, w_out = int(output_size[0]), int(output_size[1])
    return cv2.warpAffine(image, np.asarray(mat, dtype=np.float64), (w_out, h_out), flags=interpolation,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=border_value)


def _batched_matrices(center: np.ndarray, scale: np.ndarray, rotation: np.ndarray | float | None,
                      input_size: SizeHW, unbiased: bool, inverse: bool) -> np.ndarray:
    c = np.asarray(center, dtype=np.float64).reshape(-1, 2)
    s = np.asarray(scale, dtype=np.float64).reshape(-1, 2)
    r = np.broadcast_to(np.asarray(0.0 if rotation is None else rotation, dtype=np.float64).reshape(-1),
                        (len(c),))
    return np.stack([get_warp_matrix(c[i], s[i], float(r[i]), input_size, unbiased=unbiased,
                                     inverse=inverse) for i in range(len(c))])


def crop_to_image(points: np.ndarray, center: np.ndarray, scale: np.ndarray,
                  input_size: SizeHW, rotation: np.ndarray | float | None = None, *,
                  unbiased: bool = True) -> np.ndarray:
    """Map crop-pixel keypoints back to source-image pixels (the inverse of the crop warp).

    Shapes: ``points (N, K, 2)`` with ``center``, ``scale`` ``(N, 2)`` and ``rotation`` ``(N,)``
    (or a single instance ``(K, 2)`` with ``(2,)``). ``input_size`` is the crop ``(H, W)``.
    """
    p = np.asarray(points, dtype=np.float64)
    single = p.ndim == 2
    mats = _batched_matrices(center, scale, rotation, input_size, unbiased, inverse=True)
    out = affine_points(p[None] if single else p, mats)
    return out[0] if single else out


def image_to_crop(points: np.ndarray, center: np.ndarray, scale: np.ndarray,
                  input_size: SizeHW, rotation: np.ndarray | float | None = None, *,
                  unbiased: bool = True) -> np.ndarray:
    """Source-image pixels -> crop pixels; same shapes as :func:`crop_to_image`."""
    p = np.asarray(points, dtype=np.float64)
    single = p.ndim == 2
    mats = _batched_matrices(center, scale, rotation, input_size, unbiased, inverse=False)
    out = affine_points(p[None] if single else p, mats)
    return out[0] if single else out


def flip_keypoints(keypoints: np.ndarray, visibility: np.ndarray | None, width: int,
                   flip_index: Sequence[int]) -> tuple[np.ndarray, np.ndarray | None]:
    """Mirror ``(..., K, 2)`` keypoints in an image ``width`` pixels wide and swap left/right.

    ``x -> width - 1 - x`` (pixel centres at integers), then channel ``i`` takes old
    ``flip_index[i]``. Applying it twice is the identity.
    """
    idx = np.asarray(flip_index, dtype=np.int64)
    k = np.asarray(keypoints)
    k = np.array(k, dtype=np.float64 if k.dtype == np.float64 else np.float32)  # a copy
    k[..., 0] = (width - 1) - k[..., 0]
    k = k[..., idx, :]
    v = None if visibility is None else np.asarray(visibility)[..., idx]
    return k, v


def flip_image(image: np.ndarray) -> np.ndarray:
    """Horizontal mirror of an ``(H, W, C)`` image (contiguous copy, cv2-friendly)."""
    return np.ascontiguousarray(image[:, ::-1])
