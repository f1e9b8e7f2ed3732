"""Worker side of the device pipeline: read, decode and draw the augmentation, nothing more.

With ``TopDownDataset.defer_warp`` set, an item carries the decoded uint8 pixels its crop needs
(the part of the image that bilinear sampling of the augmented crop touches, copied as a slice,
no resampling), the 2x3 matrix from those pixels to the crop (flip folded in), the labels in
image pixels and the colour-jitter draws. The crop warp, flip, colour jitter, heatmap targets and
normalisation then run batched on the training device (:mod:`stnet.data.device_augment`).

The random draws are made by the same code, in the same order, as the CPU pipeline
(:meth:`TopDownDataset.load`), so a seeded dataset gives the same augmentation either way.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import default_collate

from .augment import CropParams, sample_color_jitter
from .config import AugmentConfig
from .records import PersonRecord
from .transforms import get_warp_matrix

__all__ = ["deferred_item", "source_window", "collate_deferred", "COLOR_FIELDS"]

# The colour-jitter draws as one float row: applied flag, order of the three ops, their factors,
# the hue shift (NaN: no HSV round trip).
COLOR_FIELDS = ("apply", "op0", "op1", "op2", "brightness", "contrast", "saturation", "hue_shift")


def source_window(inverse: np.ndarray, image_hw: Sequence[int], output_size: Sequence[int]
                  ) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)``: the image pixels (half-open, clipped to the image) that bilinear
    sampling of an ``output_size`` crop can touch, given the crop -> image matrix ``inverse``.
    Empty (``x1 <= x0`` or ``y1 <= y0``) when the crop lies entirely outside the image."""
    h_out, w_out = int(output_size[0]), int(output_size[1])
    corners = np.array([[-0.5, -0.5, 1], [w_out - 0.5, -0.5, 1], [-0.5, h_out - 0.5, 1],
                        [w_out - 0.5, h_out - 0.5, 1]], np.float64)
    pts = corners @ inverse.T
    lo, hi = pts.min(0), pts.max(0)
    # One pixel beyond the corners covers the bilinear neighbours of the outermost samples.
    x0 = max(0, math.floor(lo[0]) - 1)
    y0 = max(0, math.floor(lo[1]) - 1)
    x1 = min(int(image_hw[1]), math.ceil(hi[0]) + 2)
    y1 = min(int(image_hw[0]), math.ceil(hi[1]) + 2)
    return x0, y0, x1, y1


def _flip_matrix(width: int) -> np.ndarray:
    return np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def color_row(cfg: AugmentConfig | None, rng: np.random.Generator) -> np.ndarray:
    """The colour-jitter draws of one sample (see ``COLOR_FIELDS``), made exactly as the CPU
    pipeline makes them."""
    row = np.array([0, 0, 1, 2, 1, 1, 1, np.nan], np.float64)
    if cfg is None or cfg.color_jitter_prob <= 0 or not rng.random() < cfg.color_jitter_prob:
        return row
    p = sample_color_jitter(cfg, rng)
    row[0] = 1
    row[1:4] = p.order
    row[4:7] = (p.brightness, p.contrast, p.saturation)
    row[7] = np.nan if p.hue_shift is None else p.hue_shift
    return row


def deferred_item(input_size: tuple[int, int], unbiased: bool, rec: PersonRecord, image: np.ndarray,
                  params: CropParams, color: np.ndarray, index: int, valid: bool) -> dict[str, Any]:
    """The light item of one sample (see the module docstring); ``color`` from :func:`color_row`."""
    mat = np.vstack([get_warp_matrix(params.center, params.scale, params.rotation, input_size,
                                     unbiased=unbiased), [0.0, 0.0, 1.0]])
    if params.flip:
        mat = _flip_matrix(input_size[1]) @ mat
    x0, y0, x1, y1 = source_window(np.linalg.inv(mat)[:2], image.shape[:2], input_size)
    if x1 <= x0 or y1 <= y0:  # nothing of the image is in the crop: it is all border
        patch = np.zeros((1, 1, 3), np.uint8)
        x0 = y0 = 0
        patch_mat = np.array([[1.0, 0.0, 1e6], [0.0, 1.0, 1e6]])  # every sample lands far outside
    else:
        patch = image[y0:y1, x0:x1]  # a view: collate_deferred copies it into the batch once
        patch_mat = mat[:2].copy()
        patch_mat[:, 2] += mat[:2, :2] @ np.array([x0, y0], np.float64)
    return {
        "image": patch,
        "patch_warp": patch_mat,
        "warp": mat[:2],
        "flipped": bool(params.flip),
        "color": color,
        "keypoints_image": rec.keypoints.astype(np.float32),
        "visibility_image": rec.visibility.astype(np.float32),
        "center": params.center.astype(np.float64),
        "scale": params.scale.astype(np.float64),
        "rotation": np.float32(params.rotation),
        "box": rec.box.astype(np.float32),
        "score": np.float32(rec.score),
        "image_id": rec.image_id,
        "instance_id": int(rec.instance_id),
        "index": int(index),
        "image_path": str(rec.image_path),
        "valid": valid,
    }


def collate_deferred(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch deferred items: the uint8 patches are padded with zeros into one ``(B, H, W, 3)``
    tensor (at least 2x2; the padding is never sampled except where the image ends, where cv2's
    border is zero too), ``patch_size`` holds each patch's ``(h, w)``; numpy fields are stacked
    into tensors and Python numbers become tensors, as ``default_collate`` does, strings stay lists.
    One ``np.stack`` per field instead of a tensor per item: this runs in the workers, whose
    time per sample is what the device pipeline exists to cut."""
    patches = [it["image"] for it in items]
    h = max(2, max(p.shape[0] for p in patches))
    w = max(2, max(p.shape[1] for p in patches))
    canvas = np.zeros((len(patches), h, w, 3), dtype=np.uint8)
    for i, p in enumerate(patches):
        canvas[i, : p.shape[0], : p.shape[1]] = p
    out: dict[str, Any] = {"image": torch.from_numpy(canvas),
                           "patch_size": torch.tensor([p.shape[:2] for p in patches], dtype=torch.int64)}
    for key, first in items[0].items():
        if key == "image":
            continue
        values = [it[key] for it in items]
        if isinstance(first, (np.ndarray, np.generic)):
            out[key] = torch.from_numpy(np.stack(values))
        elif isinstance(first, (bool, int, float)):
            out[key] = torch.tensor(values)
        else:
            out[key] = default_collate(values)
    return out
