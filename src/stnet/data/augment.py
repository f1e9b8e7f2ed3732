"""Training augmentation: scale / rotation / shift jitter, half-body, flip, colour jitter.

The geometric part only changes the crop parameters (centre, scale, rotation) and a flip flag,
so an image is warped exactly once; see :class:`~stnet.data.dataset.TopDownDataset`.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .config import AugmentConfig
from .skeletons import Skeleton
from .transforms import fix_aspect_ratio

__all__ = ["CropParams", "sample_crop_params", "half_body_region", "color_jitter", "ColorJitterParams",
           "sample_color_jitter", "apply_color_jitter"]


@dataclass
class CropParams:
    """Where to crop: centre ``(2,)`` and size ``(w, h)`` in image pixels, rotation in degrees,
    and whether the crop is mirrored afterwards."""

    center: np.ndarray
    scale: np.ndarray
    rotation: float = 0.0
    flip: bool = False
    half_body: bool = False


def half_body_region(keypoints: np.ndarray, visibility: np.ndarray, skeleton: Skeleton,
                     aspect_ratio: float, padding: float, rng: np.random.Generator
                     ) -> tuple[np.ndarray, np.ndarray] | None:
    """Centre/scale around the labelled upper- or lower-body joints (HRNet's half-body transform).

    Picks the upper body with probability 0.5 when it has more than two labelled joints, else
    the lower body (falling back to the upper one when the lower has two or fewer). Returns None
    when the chosen group has fewer than two joints or spans no area.
    """
    labelled = visibility > 0
    upper = [j for j in skeleton.upper_body_ids if labelled[j]]
    lower = [j for j in skeleton.lower_body_ids if labelled[j]]
    if rng.random() < 0.5 and len(upper) > 2:
        chosen = upper
    else:
        chosen = lower if len(lower) > 2 else upper
    if len(chosen) < 2:
        return None
    pts = keypoints[chosen].astype(np.float64)
    lo, hi = pts.min(0), pts.max(0)
    size = hi - lo
    if size.max() <= 0:
        return None
    # Centre on the joints' mean (not the extent's middle), as the reference recipe does.
    center = pts.mean(0)
    scale = fix_aspect_ratio(np.maximum(size, 1e-3), aspect_ratio) * padding
    return center, scale


def sample_crop_params(center: np.ndarray, scale: np.ndarray, keypoints: np.ndarray,
                       visibility: np.ndarray, skeleton: Skeleton, cfg: AugmentConfig,
                       aspect_ratio: float, rng: np.random.Generator) -> CropParams:
    """Random crop parameters for one training sample (``center``/``scale`` from the box)."""
    c = np.asarray(center, dtype=np.float64).copy()
    s = np.asarray(scale, dtype=np.float64).copy()
    half = False
    if (cfg.half_body_prob > 0 and (visibility > 0).sum() > cfg.half_body_min_joints
            and rng.random() < cfg.half_body_prob):
        region = half_body_region(keypoints, visibility, skeleton, aspect_ratio,
                                  cfg.half_body_padding, rng)
        if region is not None:
            c, s = region
            half = True
    sf = cfg.scale_factor
    if sf > 0:
        s = s * float(np.clip(rng.standard_normal() * sf + 1.0, 1.0 - sf, 1.0 + sf))
    if cfg.shift_factor > 0:
        c = c + rng.uniform(-1.0, 1.0, size=2) * cfg.shift_factor * s
    rot = 0.0
    rf = cfg.rotation_factor
    if rf > 0 and rng.random() < cfg.rotation_prob:
        rot = float(np.clip(rng.standard_normal() * rf, -2.0 * rf, 2.0 * rf))
    flip = bool(cfg.flip_prob > 0 and rng.random() < cfg.flip_prob)
    return CropParams(center=c, scale=s, rotation=rot, flip=flip, half_body=half)


@dataclass
class ColorJitterParams:
    """One draw of :func:`color_jitter`: the order of brightness (0), contrast (1) and saturation
    (2), their factors, and the hue shift in OpenCV hue units (0..179 wraps)."""

    order: tuple[int, ...]
    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0
    hue_shift: int | None = None  # None: no HSV round trip (hue jitter off)


def sample_color_jitter(cfg: AugmentConfig, rng: np.random.Generator) -> ColorJitterParams:
    """The random draws of :func:`color_jitter`, in the order it makes them; drawing them apart
    from the pixels lets the device pipeline (:mod:`stnet.data.device_augment`) apply the very
    same jitter on the GPU."""
    ops = tuple(int(o) for o in rng.permutation(3))
    p = ColorJitterParams(order=ops)
    for op in ops:
        if op == 0 and cfg.brightness > 0:
            p.brightness = float(rng.uniform(1 - cfg.brightness, 1 + cfg.brightness))
        elif op == 1 and cfg.contrast > 0:
            p.contrast = float(rng.uniform(1 - cfg.contrast, 1 + cfg.contrast))
        elif op == 2 and cfg.saturation > 0:
            p.saturation = float(rng.uniform(1 - cfg.saturation, 1 + cfg.saturation))
    if cfg.hue > 0:
        p.hue_shift = int(round(rng.uniform(-cfg.hue, cfg.hue) * 180))  # OpenCV hue is 0..179
    return p


def color_jitter(image: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Random brightness, contrast, saturation (in random order) and hue on an RGB uint8 crop."""
    return apply_color_jitter(image, sample_color_jitter(cfg, rng))


def apply_color_jitter(image: np.ndarray, p: ColorJitterParams) -> np.ndarray:
    """:func:`color_jitter` with given draws."""
    img = image.astype(np.float32)
    luma = np.array([0.299, 0.587, 0.114], np.float32)
    for op in p.order:
        if op == 0 and p.brightness != 1.0:
            img *= p.brightness
        elif op == 1 and p.contrast != 1.0:
            mean = float((img @ luma).mean())
            img = img * p.contrast + mean * (1 - p.contrast)
        elif op == 2 and p.saturation != 1.0:
            gray = (img @ luma)[..., None]
            img = img * p.saturation + gray * (1 - p.saturation)
    out = np.clip(img, 0, 255).astype(np.uint8)
    if p.hue_shift is not None:
        hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV)
        hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + p.hue_shift) % 180).astype(np.uint8)
        out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)  # type: ignore[assignment]
    return out
