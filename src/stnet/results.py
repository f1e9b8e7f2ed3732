"""What :class:`~stnet.inference.estimator.PoseEstimator` returns: :class:`PoseResult` (one person) and
:class:`Results` (the persons of one image), plus the overlay drawing shared with ``stnet predict``.

::

    res = est("photo.jpg")                 # Results: a list of PoseResult with array views
    res.keypoints, res.scores              # (N, K, 2), (N, K)
    res.boxes, res.boxes_xyxy              # (N, 4) xywh / xyxy
    res[0]["left_wrist"]                   # (x, y, score) by keypoint name
    cv2.imwrite("overlay.png", res.plot()) # BGR overlay, like the input convention
    res.save("overlay.png"); res.to_coco(image_id=42); res.to_json()

Numbers written out are rounded (2 decimals for pixels, 4 for scores) and always finite, so the
json is strict (``allow_nan=False``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import cv2
import numpy as np

from .data.skeletons import Skeleton, get_skeleton
from .data.visualize import draw_skeleton
from .io import write_bytes

__all__ = ["PoseResult", "Results", "render", "skeleton_header"]

_TRACK_COLOURS = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
                  (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)]


@dataclass(frozen=True)
class PoseResult:
    """One person. ``keypoints`` (K, 2) float32 (x, y) image pixels; ``scores`` (K,) float32
    (heatmap maxima, ~0..1 for a trained model); ``box`` [x, y, w, h] the person box used;
    ``score`` the person score (box score x mean keypoint score above 0.2, the standard top-down
    rescoring, 0 when no keypoint passes); ``skeleton`` the layout name;
    ``track_id`` set by :class:`stnet.tracking.Tracker` in videos. ``person["left_wrist"]`` is
    ``(x, y, score)`` of that keypoint."""

    keypoints: np.ndarray
    scores: np.ndarray
    box: tuple[float, float, float, float]
    score: float
    skeleton: str
    track_id: int | None = None

    @property
    def box_xyxy(self) -> tuple[float, float, float, float]:
        x, y, w, h = self.box
        return (x, y, x + w, y + h)

    @property
    def names(self) -> tuple[str, ...]:
        return get_skeleton(self.skeleton).keypoint_names

    def __getitem__(self, name: str) -> tuple[float, float, float]:
        i = get_skeleton(self.skeleton).index(name)
        return (float(self.keypoints[i, 0]), float(self.keypoints[i, 1]), float(self.scores[i]))

    def to_dict(self, ndigits: int = 2) -> dict[str, Any]:
        d = {"keypoints": np.round(self.keypoints.astype(np.float64), ndigits).tolist(),
             "scores": np.round(self.scores.astype(np.float64), 4).tolist(),
             "box": [round(float(v), ndigits) for v in self.box], "score": round(float(self.score), 4)}
        if self.track_id is not None:
            d["track_id"] = int(self.track_id)
        return d


def skeleton_header(skeleton: Skeleton) -> dict[str, Any]:
    """The layout as json: name, keypoint names and links (index pairs)."""
    return {"name": skeleton.name, "keypoints": list(skeleton.keypoint_names),
            "links": [list(map(int, link)) for link in skeleton.links]}


class Results(list):
    """The persons found in one image: a ``list`` of :class:`PoseResult` (so ``len``, iteration
    and indexing work as on a list) with array views and output helpers.

    ``image`` is the RGB image the poses were computed on (kept for :meth:`plot`), ``path`` the
    file it came from (None for arrays), ``skeleton`` the layout, ``untrained`` whether the weights
    were random (the overlay then says so)."""

    def __init__(self, persons: Iterable[PoseResult], image: np.ndarray, skeleton: Skeleton,
                 path: str | None = None, untrained: bool = False) -> None:
        super().__init__(persons)
        self.image, self.skeleton, self.path, self.untrained = image, skeleton, path, untrained

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)`` of the image."""
        return (int(self.image.shape[0]), int(self.image.shape[1]))

    @property
    def names(self) -> tuple[str, ...]:
        return self.skeleton.keypoint_names

    @property
    def keypoints(self) -> np.ndarray:
        return np.stack([p.keypoints for p in self]) if self else np.zeros((0, self.skeleton.num_keypoints, 2),
                                                                            np.float32)

    @property
    def scores(self) -> np.ndarray:
        return np.stack([p.scores for p in self]) if self else np.zeros((0, self.skeleton.num_keypoints), np.float32)

    @property
    def person_scores(self) -> np.ndarray:
        return np.array([p.score for p in self], np.float32)

    @property
    def boxes(self) -> np.ndarray:
        """``(N, 4)`` ``[x, y, w, h]``."""
        return np.array([p.box for p in self], np.float32).reshape(-1, 4)

    @property
    def boxes_xyxy(self) -> np.ndarray:
        """``(N, 4)`` ``[x1, y1, x2, y2]``."""
        b = self.boxes.copy()
        b[:, 2:] += b[:, :2]
        return b

    @property
    def track_ids(self) -> list[int | None]:
        return [p.track_id for p in self]

    def plot(self, threshold: float = 0.3, color: str = "bgr") -> np.ndarray:
        """The overlay (boxes, skeletons of keypoints scoring above ``threshold``, scores / track
        ids) as a ``uint8`` array, BGR by default (ready for ``cv2.imwrite``), ``color="rgb"`` for
        matplotlib / PIL."""
        over = render(self.image, self, self.skeleton, threshold, self.untrained)
        if color.lower() not in ("bgr", "rgb"):
            raise ValueError(f"color must be 'bgr' or 'rgb', got {color!r}")
        return np.ascontiguousarray(over[..., ::-1]) if color.lower() == "bgr" else over

    def save(self, path: str | Path, threshold: float = 0.3) -> Path:
        """Write the overlay to ``path`` (format from its suffix, e.g. ``.png`` / ``.jpg``), atomically."""
        path = Path(path)
        ok, buf = cv2.imencode(path.suffix or ".png", self.plot(threshold))
        if not ok:
            raise ValueError(f"{path}: OpenCV cannot encode an image with suffix {path.suffix!r}")
        return write_bytes(path, buf.tobytes())

    def to_coco(self, image_id: int, category_id: int = 1) -> list[dict[str, Any]]:
        """COCO keypoint results (what ``stnet score`` and pycocotools' ``loadRes`` read): one
        ``{"image_id", "category_id", "keypoints": [x, y, s] * K, "score", "bbox"}`` per person."""
        out = []
        for p in self:
            kps = np.concatenate([np.round(p.keypoints.astype(np.float64), 2),
                                  np.round(p.scores.astype(np.float64), 4)[:, None]], 1)
            out.append({"image_id": int(image_id), "category_id": int(category_id),
                        "keypoints": kps.reshape(-1).tolist(), "score": round(float(p.score), 4),
                        "bbox": [round(float(v), 2) for v in p.box]})
        return out

    def to_json(self) -> dict[str, Any]:
        """``{"file", "height", "width", "persons": [PoseResult.to_dict(), ...]}``."""
        h, w = self.size
        return {"file": self.path, "height": h, "width": w, "persons": [p.to_dict() for p in self]}

    def __repr__(self) -> str:
        return f"Results({len(self)} person(s), {self.skeleton.name}, image {self.size[0]}x{self.size[1]})"


def render(image: np.ndarray, persons: Sequence[PoseResult], skeleton: Skeleton, threshold: float = 0.3,
           untrained: bool = False) -> np.ndarray:
    """RGB overlay of RGB ``image``: boxes, skeletons (joints scoring > ``threshold``), labels,
    untrained banner."""
    out = np.ascontiguousarray(image.copy())
    h, w = out.shape[:2]
    lw = max(1, round(max(h, w) / 400))
    for p in persons:
        x, y, bw, bh = (int(round(v)) for v in p.box)
        colour = _TRACK_COLOURS[p.track_id % len(_TRACK_COLOURS)] if p.track_id is not None else (255, 255, 255)
        cv2.rectangle(out, (x, y), (x + bw, y + bh), colour, lw)
        out = draw_skeleton(out, p.keypoints, p.scores, skeleton, radius=max(2, lw + 1), thickness=max(1, lw + 1),
                            min_visibility=threshold)
        label = (f"#{p.track_id} " if p.track_id is not None else "") + f"{p.score:.2f}"
        _text(out, label, (x + 2, max(12, y - 4)), 0.4 * lw)
    if untrained:
        _text(out, "UNTRAINED WEIGHTS - keypoints are random", (6, 6 + 14 * lw), 0.5 * lw, (255, 60, 60))
    return out


def _text(img: np.ndarray, s: str, org: tuple[int, int], scale: float, colour=(255, 255, 255)) -> None:
    t = max(1, int(round(scale * 2)))
    cv2.putText(img, s, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), t + 2, cv2.LINE_AA)
    cv2.putText(img, s, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, t, cv2.LINE_AA)
