"""Images as the inference API takes them -> RGB ``uint8 (H, W, 3)`` arrays (docs/conventions.md)."""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from stnet.data.records import check_image_pixels

__all__ = ["load_image", "is_batch", "image_name"]


def load_image(image: Any, color: str | None = None) -> np.ndarray:
    """Any supported input -> contiguous RGB ``uint8 (H, W, 3)`` (the order used inside the
    package): a numpy ``uint8`` array ``(H, W, 3)`` (``color``: ``None`` / ``"bgr"``, OpenCV's
    order, the default, or ``"rgb"``), ``(H, W)`` grayscale, ``(H, W, 4)`` BGRA (alpha dropped), a
    ``PIL.Image`` (RGB by type) or an image file's path; files and PIL images carry their own
    order, so ``color`` does not apply to them."""
    color = "bgr" if color is None else color.lower()
    if color not in ("rgb", "bgr"):
        raise ValueError(f"color must be 'rgb' or 'bgr', got {color!r}")
    if isinstance(image, (str, os.PathLike)):
        p = Path(image)
        if not p.is_file():
            raise FileNotFoundError(f"image {p} not found")
        data = np.fromfile(str(p), dtype=np.uint8)
        check_image_pixels(data, p)
        img = _decode_quietly(data) if data.size else None
        if img is None:
            raise ValueError(f"{p}: not a readable image ({_why_unreadable(data)}; OpenCV cannot decode it)")
        return np.ascontiguousarray(img[..., ::-1])
    if hasattr(image, "convert") and hasattr(image, "size") and not isinstance(image, np.ndarray):  # PIL
        return np.ascontiguousarray(np.asarray(image.convert("RGB")))
    if type(image).__module__.startswith("torch"):
        raise TypeError("pass images as numpy uint8 (H, W, 3) arrays, PIL images or paths, not tensors")
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise TypeError(f"image arrays must be uint8 (H, W, 3), got dtype {arr.dtype}")
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[..., :3]
    elif arr.ndim == 3 and arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3 or min(arr.shape[:2]) < 1:
        raise ValueError(f"image must be (H, W, 3), got shape {arr.shape}")
    if color == "bgr":
        arr = arr[..., ::-1]
    return np.ascontiguousarray(arr)


_MAGIC = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF8", "GIF"), (b"BM", "BMP"),
          (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"))
_DECODE_LOCK = threading.Lock()


def _decode_quietly(data: np.ndarray) -> np.ndarray | None:
    """``cv2.imdecode`` with OpenCV's own log off: a damaged file otherwise prints decoder
    warnings (``[ WARN:0] grfmt_png.cpp ... PNG input buffer is incomplete``) beside the caller's
    one-line message. The level is global to OpenCV, hence the lock (predict's reader thread)."""
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is None:  # an OpenCV build without the logging module
        return cv2.imdecode(data, cv2.IMREAD_COLOR)
    with _DECODE_LOCK:
        level = logging.getLogLevel()
        logging.setLogLevel(logging.LOG_LEVEL_SILENT)
        try:
            return cv2.imdecode(data, cv2.IMREAD_COLOR)
        finally:
            logging.setLogLevel(level)


def _why_unreadable(data: np.ndarray) -> str:
    """The reason for the message: a damaged file of a known format, or no image format at all."""
    if not data.size:
        return "an empty file"
    head = data[:12].tobytes()
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a damaged or truncated WEBP file"
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return f"a damaged or truncated {fmt} file"
    return "not an image format OpenCV reads"


def is_batch(image: Any) -> bool:
    """A list / tuple of images or a ``(B, H, W, 3)`` array (a single image is 2-D or 3-D)."""
    if isinstance(image, (list, tuple)):
        return True
    return isinstance(image, np.ndarray) and image.ndim == 4


def image_name(image: Any) -> str:
    return str(image) if isinstance(image, (str, os.PathLike)) else "image"
