"""The common per-person record every dataset reader produces, and image loading."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

__all__ = ["PersonRecord", "read_image", "ImageReadError", "ImageTooLargeError", "check_record", "image_pixels",
           "check_image_pixels", "max_image_pixels", "DEFAULT_MAX_IMAGE_PIXELS"]

#: Images with more pixels than this are refused before decoding (a 2.6 MB PNG can declare
#: 30000 x 30000 = 900 MP, 2.7 GB decoded); ``STNET_MAX_IMAGE_PIXELS`` overrides it.
DEFAULT_MAX_IMAGE_PIXELS = 200_000_000


class ImageReadError(OSError):
    """An image that is missing or cannot be decoded; the message names the file."""


@dataclass
class PersonRecord:
    """One person instance.

    Attributes:
        image_path: file holding the image.
        box: ``[x, y, w, h]`` in image pixels (GT box, detector box or one derived from joints).
        keypoints: ``(K, 2)`` float32 ``(x, y)`` image pixels (zeros when unknown, e.g. detections).
        visibility: ``(K,)`` float32; > 0 means the joint is labelled (COCO's 1 and 2 both count).
        image_id: the dataset's image identifier.
        instance_id: annotation id (or a running index where the format has none).
        score: detector score (1.0 for ground-truth boxes).
        center, scale: when the format defines the crop itself (MPII), ``(2,)`` centre and
            ``(w, h)`` size in pixels, already padded; otherwise None and derived from ``box``.
        source: where the record came from (``file:record``), for error messages.
    """

    image_path: Path
    box: np.ndarray
    keypoints: np.ndarray
    visibility: np.ndarray
    image_id: int | str
    instance_id: int
    score: float = 1.0
    center: np.ndarray | None = None
    scale: np.ndarray | None = None
    source: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def num_keypoints(self) -> int:
        return int(self.keypoints.shape[0])

    @property
    def num_visible(self) -> int:
        return int((self.visibility > 0).sum())


def check_record(rec: PersonRecord, num_keypoints: int) -> None:
    """Validate shapes and the box; ValueError naming ``rec.source`` on a problem."""
    where = rec.source or str(rec.image_path)
    if rec.keypoints.shape != (num_keypoints, 2):
        raise ValueError(f"{where}: keypoints have shape {rec.keypoints.shape}, the skeleton has "
                         f"{num_keypoints} keypoints (expected ({num_keypoints}, 2))")
    if rec.visibility.shape != (num_keypoints,):
        raise ValueError(f"{where}: visibility has shape {rec.visibility.shape}, expected ({num_keypoints},)")
    b = rec.box
    if b.shape != (4,) or not np.all(np.isfinite(b)) or b[2] <= 0 or b[3] <= 0:
        raise ValueError(f"{where}: box {np.asarray(b).tolist()} has zero area or is invalid "
                         "(expected [x, y, w, h] with w > 0 and h > 0)")


class ImageTooLargeError(ImageReadError, ValueError):
    """An image whose header declares more pixels than :func:`max_image_pixels` allows."""


def max_image_pixels() -> int:
    """The pixel limit: ``STNET_MAX_IMAGE_PIXELS`` when set (an integer > 0), else
    :data:`DEFAULT_MAX_IMAGE_PIXELS`."""
    raw = os.environ.get("STNET_MAX_IMAGE_PIXELS", "").strip()
    if not raw:
        return DEFAULT_MAX_IMAGE_PIXELS
    try:
        value = int(float(raw))
    except ValueError:
        raise ValueError(f"STNET_MAX_IMAGE_PIXELS={raw!r}: expected a number of pixels, e.g. 400000000") from None
    if value <= 0:
        raise ValueError(f"STNET_MAX_IMAGE_PIXELS={raw!r}: expected a number of pixels > 0")
    return value


def image_pixels(data: bytes | np.ndarray) -> tuple[int, int] | None:
    """``(width, height)`` an encoded image's header declares, read without decoding it; None when
    the format is not one Pillow identifies (OpenCV's own limit then applies)."""
    import io
    import warnings

    from PIL import Image

    buf = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's DecompressionBombWarning: we decide here
            with Image.open(io.BytesIO(buf)) as im:
                return int(im.size[0]), int(im.size[1])
    except Image.DecompressionBombError as e:  # larger than Pillow's own hard limit
        import re

        m = re.search(r"\((\d+) pixels", str(e))
        return (int(m.group(1)), 1) if m else (2**31, 1)
    except Exception:  # noqa: BLE001 - any header Pillow cannot parse: not identified
        return None


def check_image_pixels(data: bytes | np.ndarray, where: str | Path, limit: int | None = None) -> None:
    """Raise :class:`ImageTooLargeError` naming ``where`` when the encoded image ``data`` declares
    more than ``limit`` pixels (default :func:`max_image_pixels`), before anything is decoded."""
    limit = max_image_pixels() if limit is None else int(limit)
    size = image_pixels(data)
    if size is not None and size[0] * size[1] > limit:
        w, h = size
        shape = f"{w}x{h} ({w * h / 1e6:.0f} MP)" if h > 1 else f"{w / 1e6:.0f} MP"
        raise ImageTooLargeError(f"{where}: image of {shape} is over the {limit / 1e6:.0f} MP limit "
                                 "(set STNET_MAX_IMAGE_PIXELS to allow more)")


def read_image(path: str | Path) -> np.ndarray:
    """RGB uint8 ``(H, W, 3)``; ImageReadError naming the file when missing or undecodable."""
    p = Path(path)
    # np.fromfile + imdecode instead of imread: works with non-ASCII paths and lets us tell
    # "missing" from "corrupt".
    try:
        buf = np.fromfile(str(p), dtype=np.uint8)
    except (FileNotFoundError, IsADirectoryError):
        raise ImageReadError(f"{p}: image file not found") from None
    except OSError as e:
        raise ImageReadError(f"{p}: cannot read image file: {e.strerror or e}") from None
    if buf.size == 0:
        raise ImageReadError(f"{p}: image file is empty")
    check_image_pixels(buf, p)
    try:
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error:
        img = None
    if img is None:
        raise ImageReadError(f"{p}: cannot decode image (not a JPEG/PNG/... or truncated)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
