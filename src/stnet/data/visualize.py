"""Drawing keypoints, skeletons and heatmaps (OpenCV; no GUI needed)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from stnet.io import atomic_write

from .dataset import denormalize_image
from .skeletons import Skeleton

__all__ = ["draw_skeleton", "heatmap_overlay", "render_sample", "tile_images", "save_png"]

# RGB. Left joints green, right joints orange, the rest blue, as in most pose tools.
LEFT, RIGHT, CENTRE = (0, 220, 0), (255, 140, 0), (60, 140, 255)


def _side(name: str) -> tuple[int, int, int]:
    n = name.lower()
    if n.startswith(("left", "l_")) or "_left" in n:
        return LEFT
    if n.startswith(("right", "r_")) or "_right" in n:
        return RIGHT
    return CENTRE


def draw_skeleton(image: np.ndarray, keypoints: np.ndarray, visibility: np.ndarray | None,
                  skeleton: Skeleton, *, radius: int = 3, thickness: int = 2,
                  min_visibility: float = 0.0) -> np.ndarray:
    """Copy of RGB ``image`` with bones and joints drawn; joints with visibility
    ``<= min_visibility`` are skipped. Coordinates are pixel centres (sub-pixel accurate)."""
    out = np.ascontiguousarray(image.copy())
    k = np.asarray(keypoints, dtype=np.float64)
    v = np.ones(len(k)) if visibility is None else np.asarray(visibility, dtype=np.float64)
    shift = 4  # cv2 fixed-point: draw at 1/16 px so sub-pixel positions are not rounded away
    pts = np.round(k * (1 << shift)).astype(np.int64)
    names = skeleton.keypoint_names
    for a, b in skeleton.links:
        if v[a] > min_visibility and v[b] > min_visibility and np.isfinite(k[[a, b]]).all():
            colour = _side(names[a]) if _side(names[a]) == _side(names[b]) else CENTRE
            cv2.line(out, tuple(int(t) for t in pts[a]), tuple(int(t) for t in pts[b]), colour,
                     thickness, cv2.LINE_AA, shift)
    for j in range(len(k)):
        if v[j] > min_visibility and np.isfinite(k[j]).all():
            cv2.circle(out, tuple(int(t) for t in pts[j]), radius << shift, _side(names[j]), -1,
                       cv2.LINE_AA, shift)
    return out


def heatmap_overlay(image: np.ndarray, heatmaps: np.ndarray, alpha: float = 0.6, *,
                    unbiased: bool = True) -> np.ndarray:
    """RGB image blended with the per-pixel maximum over ``(K, h, w)`` heatmaps, resized to the
    image with the codec's own heatmap-to-input mapping so peaks stay on the joints."""
    h, w = image.shape[:2]
    m = np.clip(np.asarray(heatmaps, dtype=np.float32).max(0), 0.0, 1.0)
    hh, ww = m.shape
    # Heatmap pixel j sits at input pixel j * (w - 1) / (ww - 1) under UDP (j * w / ww classic);
    # warpAffine with that scale keeps peaks aligned (cv2.resize would shift them).
    sx, sy = ((w - 1) / (ww - 1), (h - 1) / (hh - 1)) if unbiased else (w / ww, h / hh)
    mat = np.array([[sx, 0, 0], [0, sy, 0]], dtype=np.float64)
    up = cv2.warpAffine(m, mat, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    colour = cv2.applyColorMap((up * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
    dim = (image.astype(np.float32) * 0.5)
    a = (alpha * up)[..., None]
    return np.ascontiguousarray((dim * (1 - a) + colour.astype(np.float32) * a).astype(np.uint8))


def render_sample(sample: dict[str, Any], skeleton: Skeleton, codec: Any | None = None,
                  label: str | None = None) -> np.ndarray:
    """Side-by-side panel for one dataset item: the crop with its target skeleton, and the
    target heatmaps over the crop with the keypoints the codec decodes from them (white
    crosses), which must sit on the joints."""
    crop = denormalize_image(sample["image"])
    kps = np.asarray(sample["keypoints"])
    weight = np.asarray(sample["target_weight"])
    left = draw_skeleton(crop, kps, weight, skeleton)
    right = heatmap_overlay(crop, np.asarray(sample["heatmaps"]),
                            unbiased=bool(getattr(codec, "unbiased", True)))
    if codec is not None:
        dec, _ = codec.decode(np.asarray(sample["heatmaps"]))
        for j in np.flatnonzero(weight > 0):
            x, y = (int(round(float(t) * 16)) for t in dec[j])
            for dx, dy in ((1, 1), (1, -1)):
                cv2.line(right, (x - 48 * dx, y - 48 * dy), (x + 48 * dx, y + 48 * dy), (255, 255, 255),
                         1, cv2.LINE_AA, 4)
    panel = np.concatenate([left, np.full((crop.shape[0], 2, 3), 255, np.uint8), right], axis=1)
    if label:
        cv2.putText(panel, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(panel, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return panel


def tile_images(panels: Sequence[np.ndarray], cols: int, gap: int = 4) -> np.ndarray:
    """Grid of equally sized RGB panels on a white background."""
    if not panels:
        raise ValueError("no panels to tile")
    h, w = panels[0].shape[:2]
    rows = (len(panels) + cols - 1) // cols
    out = np.full((rows * h + (rows + 1) * gap, cols * w + (cols + 1) * gap, 3), 255, np.uint8)
    for i, p in enumerate(panels):
        r, c = divmod(i, cols)
        y, x = gap + r * (h + gap), gap + c * (w + gap)
        out[y:y + h, x:x + w] = p
    return out


def save_png(image: np.ndarray, path: str | Path, colors: int = 0) -> Path:
    """Write an RGB image as PNG, atomically (:mod:`stnet.io`); ``colors`` > 0 quantises to a
    palette (much smaller files)."""
    p = Path(path)
    with atomic_write(p, suffix=".png") as tmp:
        if colors > 0:
            from PIL import Image

            Image.fromarray(image).quantize(colors=min(int(colors), 256), method=Image.Quantize.MEDIANCUT,
                                            dither=Image.Dither.NONE).save(tmp, format="PNG", optimize=True)
        else:
            ok, buf = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 9])
            if not ok:
                raise OSError(f"{p}: cannot encode PNG")
            tmp.write_bytes(buf.tobytes())
    return p
