"""Person boxes for top-down pose estimation: pluggable, nothing downloaded.

A *detector* is any callable ``detector(image_rgb) -> (N, 5) float array`` of
``[x, y, w, h, score]`` boxes in image pixels (COCO layout, docs/conventions.md). Built in:

=====================  ==========================================================================
:class:`WholeImage`     one box covering the whole image. Right for images that are already
                        person crops (one person filling the frame); wrong for anything else.
:class:`HOGDetector`    (OpenCV 4.x only: OpenCV 5 removed ``cv2.HOGDescriptor``; ``"auto"`` then
                        falls back to the whole image with a warning) OpenCV's HOG + linear-SVM
                        people detector (Dalal & Triggs 2005), shipped inside OpenCV, so there is
                        nothing to download. Honest trade-offs: it finds upright, mostly
                        unoccluded, standing/walking people at least ~100 px tall;
                        it misses small, sitting, lying, occluded, strongly foreshortened or
                        non-upright persons (sports, crowds), its boxes are loose, and it is slow on
                        large images (a multi-scale sliding window; we downscale to
                        ``max_side`` px first, ~0.1-0.5 s per image on one CPU core). Use it to
                        try the tool; use a modern detector (:class:`CallableDetector`) or
                        ``--boxes`` for real work.
:class:`CallableDetector` adapter for a user's detector (e.g. a YOLO model they already have):
                        wraps any function returning boxes as ``xywh`` or ``xyxy`` with or without
                        scores, numpy or torch, and keeps those above ``min_score``.
:class:`ONNXDetector`   an exported ONNX detector the user has (RTMDet / YOLOX as rtmlib and
                        mmdeploy export them, YOLOv8 / YOLO11 as ultralytics does), by path.
:class:`StaticBoxes`    boxes given by the user per image file name, from a json mapping
                        ``name -> [[x, y, w, h(, score)], ...]`` or a COCO detection-results json
                        plus the annotation json for the image ids (:func:`load_boxes_file`).
=====================  ==========================================================================

Box validity (:func:`sanitize_boxes`): boxes are clipped to the image; a box with no area inside the
image (entirely outside, zero or negative size, NaN) is dropped with a warning. Nothing raises for a
bad box so that one bad entry cannot stop a folder run.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import cv2
import numpy as np

from .io import read_json

__all__ = ["hog_available", "blazepose_available", "BlazePoseDetector", "pose_boxes", "weighted_nms", "BOX_FORMATS",
           "WholeImage", "HOGDetector", "CallableDetector", "ONNXDetector", "StaticBoxes",
           "as_boxes", "sanitize_boxes", "load_boxes_file", "build_detector", "DETECTORS", "nms_boxes", "MAX_NMS_BOXES",
           "filter_detections", "letterbox", "DEFAULT_DETECTOR", "DEFAULT_DET_SCORE", "DEFAULT_DET_NMS"]

DETECTORS = ("auto", "blazepose", "hog", "whole")
# One default for the API and `stnet predict`: the whole image is deterministic and right for
# single-person photos; HOG finds too few people to be a default (see HOGDetector) and a real
# detector is a file the user brings (ONNXDetector).
DEFAULT_DETECTOR = "whole"
# Detector boxes below this score are noise for pose estimation (rtmlib uses 0.3 too); NMS at this
# IoU removes the duplicates a detector without NMS (or a detection file) gives.
DEFAULT_DET_SCORE = 0.3
DEFAULT_DET_NMS = 0.65
#: Persons on detector (or carried) boxes whose keypoints overlap a higher-scoring person's at
#: OKS above this are one person seen through two boxes (see ``PoseEstimator``'s ``pose_nms``).
DEFAULT_POSE_NMS = 0.5


def hog_available() -> bool:
    """Whether this OpenCV build has the HOG people detector (OpenCV 4.x has it; OpenCV 5 moved
    ``HOGDescriptor`` out of the main package)."""
    return hasattr(cv2, "HOGDescriptor") and hasattr(cv2, "HOGDescriptor_getDefaultPeopleDetector")


def as_boxes(boxes: Any, fmt: str = "xywh") -> np.ndarray:
    """Any list / array / tensor of boxes -> float64 ``(N, 5)`` ``[x, y, w, h, score]``.

    Accepts ``(4,)``, ``(N, 4)`` (score 1) or ``(N, 5+)`` (5th column is the score, more columns
    such as a class id are ignored). ``fmt="xyxy"`` converts corners to ``xywh``.
    """
    if boxes is None:
        return np.zeros((0, 5))
    if hasattr(boxes, "detach"):  # torch tensor
        boxes = boxes.detach().cpu().numpy()
    if isinstance(boxes, (list, tuple)) and boxes and isinstance(boxes[0], (list, tuple, np.ndarray)):
        lens = {len(r) for r in boxes}
        if len(lens) > 1:  # mixed [x, y, w, h] and [x, y, w, h, score] rows
            if min(lens) < 4:
                raise ValueError(f"boxes must be [x, y, w, h] or [x, y, w, h, score] rows, got lengths {sorted(lens)}")
            boxes = [list(r[:5]) + [1.0] * (5 - len(r[:5])) for r in boxes]
    b = np.asarray(boxes, dtype=np.float64)
    if b.size == 0:
        return np.zeros((0, 5))
    if b.ndim == 1:
        b = b[None]
    if b.ndim != 2 or b.shape[1] < 4:
        raise ValueError(f"boxes must be [x, y, w, h] or [x, y, w, h, score] rows, got shape {b.shape}")
    out = np.ones((len(b), 5))
    out[:, :4] = b[:, :4]
    if b.shape[1] >= 5:
        out[:, 4] = b[:, 4]
    if fmt == "xyxy":
        out[:, 2:4] = out[:, 2:4] - out[:, 0:2]
    elif fmt != "xywh":
        raise ValueError(f"box format must be 'xywh' or 'xyxy', got {fmt!r}")
    return out


def sanitize_boxes(boxes: np.ndarray, image_shape: Sequence[int], *, where: str = "",
                   min_size: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Clip ``(N, 5)`` boxes to an ``(H, W)`` image; returns (kept boxes, their indices in the
    input). Boxes with less than ``min_size`` px of width or height inside the image (entirely
    outside, empty, non-finite) are dropped with a warning naming ``where``."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 5)
    h, w = int(image_shape[0]), int(image_shape[1])
    x0 = np.clip(b[:, 0], 0, w)
    y0 = np.clip(b[:, 1], 0, h)
    x1 = np.clip(b[:, 0] + b[:, 2], 0, w)
    y1 = np.clip(b[:, 1] + b[:, 3], 0, h)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(b).all(1) & (x1 - x0 >= min_size) & (y1 - y0 >= min_size)
    if (~ok).any():
        bad = b[~ok][:3].round(1).tolist()
        warnings.warn(f"{where + ': ' if where else ''}{int((~ok).sum())} box(es) outside the {w}x{h} "
                      f"image or empty were skipped, e.g. {bad}", stacklevel=2)
    out = np.stack([x0, y0, x1 - x0, y1 - y0, b[:, 4]], axis=1)[ok]
    return out, np.flatnonzero(ok)


#: Candidate boxes one image may bring to NMS (the highest-scoring ones; detectors keep a few
#: hundred after NMS): a detector output with 100k candidates must cost milliseconds, not minutes.
MAX_NMS_BOXES = 5000


def nms_boxes(boxes: np.ndarray, iou_threshold: float = 0.5, max_boxes: int = MAX_NMS_BOXES) -> np.ndarray:
    """Greedy non-maximum suppression of ``(N, 5)`` xywh+score boxes; returns kept rows (highest
    score first, input order on ties). Only the ``max_boxes`` highest-scoring boxes take part.
    Each step compares the best remaining box with all others at once (numpy), so the cost is
    O(N x kept), not Python's O(N^2)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 5)
    if len(b) == 0:
        return b
    order = np.argsort(-b[:, 4], kind="stable")[:max(1, int(max_boxes))]
    x0, y0 = b[:, 0], b[:, 1]
    x1, y1 = x0 + b[:, 2], y0 + b[:, 3]
    area = b[:, 2] * b[:, 3]
    keep: list[int] = []
    while order.size:
        i, rest = int(order[0]), order[1:]
        keep.append(i)
        iw = np.clip(np.minimum(x1[i], x1[rest]) - np.maximum(x0[i], x0[rest]), 0.0, None)
        ih = np.clip(np.minimum(y1[i], y1[rest]) - np.maximum(y0[i], y0[rest]), 0.0, None)
        inter = iw * ih
        union = area[i] + area[rest] - inter
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
        order = rest[~(iou > iou_threshold)]
    return b[keep]


def filter_detections(boxes: np.ndarray, min_score: float = DEFAULT_DET_SCORE,
                      nms_iou: float = DEFAULT_DET_NMS) -> np.ndarray:
    """Detector boxes ``(N, 5)`` with score >= ``min_score``, then greedy NMS at ``nms_iou``
    (>= 1 keeps overlapping boxes)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 5)
    b = b[b[:, 4] >= min_score]
    return nms_boxes(b, nms_iou) if nms_iou < 1 else b


def letterbox(image: np.ndarray, size: tuple[int, int], centre: bool) -> tuple[np.ndarray, float, tuple[float, float]]:
    """Resize keeping the aspect ratio to fit ``size`` ``(H, W)`` and pad with grey 114 (the value
    both YOLO families train with): centred (ultralytics) or at the bottom/right (rtmlib / mmdeploy
    RTMDet, YOLOX). Returns the padded image, the scale and the (x, y) offset; an input pixel maps
    to ``(p - offset) / scale`` in the original image."""
    h, w = image.shape[:2]
    r = min(size[0] / h, size[1] / w)
    nh, nw = max(1, int(round(h * r))), max(1, int(round(w * r)))
    out = np.full((size[0], size[1], 3), 114, np.uint8)
    dy, dx = ((size[0] - nh) // 2, (size[1] - nw) // 2) if centre else (0, 0)
    out[dy:dy + nh, dx:dx + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return out, r, (float(dx), float(dy))


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two ``[x, y, w, h, ...]`` boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0


def pose_boxes(keypoints: np.ndarray, scores: np.ndarray, boxes: np.ndarray, threshold: float = 0.3,
               min_points: int = 4, grow: float = 1.2) -> np.ndarray:
    """Boxes ``(N, 5)`` drawn around each person's keypoints scoring above ``threshold``, the box
    a second pose pass runs on (how top-down pipelines and BlazePose follow a person): their
    extent, grown ``grow`` times about its centre (the keypoints are joints, the person reaches a
    little beyond them). A person with fewer than ``min_points`` such keypoints keeps its box;
    the score column is kept. Uses no joint names, so any skeleton works.

    Args:
        keypoints: ``(N, K, 2)`` image pixels. scores: ``(N, K)``. boxes: ``(N, 5)`` the first pass's.
    """
    kp = np.asarray(keypoints, np.float64).reshape(len(boxes), -1, 2)
    ok = np.asarray(scores, np.float64).reshape(len(boxes), -1) > threshold
    out = np.array(boxes, np.float64, copy=True).reshape(-1, 5)
    for i in np.flatnonzero(ok.sum(1) >= max(2, int(min_points))):
        pts = kp[i][ok[i]]
        lo, hi = pts.min(0), pts.max(0)
        c, wh = (lo + hi) / 2, np.maximum(hi - lo, 1.0) * grow
        out[i, :4] = [c[0] - wh[0] / 2, c[1] - wh[1] / 2, wh[0], wh[1]]
    return out


def _box_iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU ``(N, M)`` of ``[x, y, w, h, ...]`` rows."""
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, :2] + a[:, None, 2:4], b[None, :, :2] + b[None, :, 2:4])
    inter = np.prod(np.clip(hi - lo, 0, None), -1)
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def weighted_nms(boxes: np.ndarray, points: np.ndarray, iou_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's "weighted" NMS: each cluster of ``(N, 5)`` boxes overlapping the best remaining
    one above ``iou_threshold`` becomes one detection whose box and ``(N, P, 2)`` points are the
    score-weighted means of the cluster's (steadier than keeping the best anchor alone), with
    the best score. Returns (boxes, points)."""
    order = np.argsort(-boxes[:, 4])
    boxes, points = boxes[order], points[order]
    iou = _box_iou_matrix(boxes, boxes)
    free = np.ones(len(boxes), bool)
    out_b, out_p = [], []
    for i in range(len(boxes)):
        if not free[i]:
            continue
        members = free & (iou[i] > iou_threshold)
        members[i] = True
        free &= ~members
        wgt = boxes[members, 4] / boxes[members, 4].sum()
        b = np.append((boxes[members, :4] * wgt[:, None]).sum(0), boxes[i, 4])
        out_b.append(b)
        out_p.append((points[members] * wgt[:, None, None]).sum(0))
    if not out_b:
        return np.zeros((0, 5)), np.zeros((0,) + points.shape[1:])
    return np.stack(out_b), np.stack(out_p)


def _ssd_anchor_centres(size: int, strides: Sequence[int], per_cell: Sequence[int]) -> np.ndarray:
    """Anchor centres ``(A, 2)`` in 0..1 of a fixed-size-anchor SSD head (MediaPipe's
    SsdAnchorsCalculator with ``fixed_anchor_size``): per stride, row-major cells, each repeated
    ``per_cell`` times."""
    out = []
    for stride, n in zip(strides, per_cell):
        fm = int(np.ceil(size / stride))
        ys, xs = np.meshgrid((np.arange(fm) + 0.5) / fm, (np.arange(fm) + 0.5) / fm, indexing="ij")
        out.append(np.repeat(np.stack([xs.ravel(), ys.ravel()], 1), n, axis=0))
    return np.concatenate(out, 0)


BLAZEPOSE_PATH = Path(__file__).resolve().parent / "assets" / "pose_detection.tflite"


def blazepose_available() -> bool:
    """Whether :class:`BlazePoseDetector` can run: its bundled model file is present and
    OpenVINO (which reads ``.tflite`` directly; the ``openvino`` extra) is installed."""
    if not BLAZEPOSE_PATH.is_file():
        return False
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


class BlazePoseDetector:
    """Person boxes from BlazePose's person detector (MediaPipe, Apache-2.0; the model file ships
    in ``stnet/assets`` with its licence, extracted from the ``mediapipe`` 0.10.21 wheel), run by
    OpenVINO, which reads the ``.tflite`` file itself.

    The network (224x224 input, 2254 SSD anchors) predicts, per person, a face box and four
    alignment points: the hip centre, a point on the circle around the whole body, the shoulder
    centre and a point on the circle around the upper body. The body box is built from the first
    two (as BlazePose builds its tracking region): the body's up direction is hip centre -> body
    point, of length ``r``; the box is ``height * r`` along it and ``width * r`` across, its centre
    ``shift * r`` up from the hips, then axis-aligned. It finds people whose face is visible at
    least partly; it misses people seen from behind, heavily occluded ones, and people much
    smaller than a tile (the image runs whole, then on ``tiles`` x ``tiles`` overlapping squares
    for each ``tiles`` in ``grids``, so smaller people are seen at a larger scale).

    Args:
        min_score: detections below this sigmoid score are dropped (MediaPipe uses 0.5).
        nms_iou: face boxes overlapping more are merged (weighted NMS, MediaPipe's 0.3).
        grids: tilings run besides the whole image (``()``: the whole image only, fastest).
        width, height, shift: the body box's shape in units of ``r`` (see above). Width 0.6 rather
            than 0.8: on coco_mini it finds 20 of 72 people at IoU >= 0.5 instead of 17, and on the
            demo photo it brings the right wrist within tolerance (62 -> 40 px; tools/demo_check.py).
        threads: OpenVINO inference threads (default: OpenVINO's).
        body_nms: body boxes overlapping a higher-scoring one at more than this IoU are dropped
            (1: all kept).
    """

    SIZE = 224

    def __init__(self, min_score: float = 0.5, nms_iou: float = 0.3, grids: Sequence[int] = (2, 3),
                 width: float = 0.6, height: float = 1.55, shift: float = 0.2, threads: int | None = None,
                 path: str | os.PathLike | None = None, body_nms: float = 0.5) -> None:
        try:
            import openvino as ov
        except ImportError:
            raise ImportError("the BlazePose person detector runs on OpenVINO: pip install 'stnet[openvino]' "
                              "(or use --detector hog / whole, --boxes, or your own detector)") from None
        self.path = Path(path) if path is not None else BLAZEPOSE_PATH
        if not self.path.is_file():
            raise FileNotFoundError(f"BlazePose detector model {self.path} not found (a broken install?)")
        self.min_score, self.nms_iou, self.body_nms = float(min_score), float(nms_iou), float(body_nms)
        self.grids = tuple(int(g) for g in grids if int(g) >= 2)
        self.width, self.height, self.shift = float(width), float(height), float(shift)
        core = ov.Core()
        config = {"INFERENCE_NUM_THREADS": int(threads)} if threads else {}
        self._compiled = core.compile_model(core.read_model(str(self.path)), "CPU", config)
        self._anchors = _ssd_anchor_centres(self.SIZE, (8, 16, 32), (2, 2, 6))

    def __repr__(self) -> str:
        return f"BlazePoseDetector(min_score={self.min_score}, grids={self.grids})"

    def _windows(self, h: int, w: int) -> list[tuple[int, int, int]]:
        """``(x0, y0, side)`` squares: the whole image (its longer side), then per grid ``g``
        ``g x g`` squares of 1.5 / g of the longer side (at most the shorter side) spread evenly."""
        out = [(0, 0, max(h, w))]
        for g in self.grids:
            side = int(min(max(h, w) * 1.5 / g, min(h, w)))
            for i in range(g):
                for j in range(g):
                    out.append((int(round((w - side) * i / (g - 1))), int(round((h - side) * j / (g - 1))), side))
        return out

    def _run(self, image: np.ndarray, x0: int, y0: int, side: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores ``(A,)`` and points ``(A, 6, 2)`` (face box centre, face box size, 4 alignment
        points) in image pixels for the window ``side`` px square at ``(x0, y0)`` (zero-padded)."""
        crop = image[y0:y0 + side, x0:x0 + side]
        r = self.SIZE / side
        ch, cw = crop.shape[:2]
        nh, nw = max(1, round(ch * r)), max(1, round(cw * r))
        x = np.zeros((self.SIZE, self.SIZE, 3), np.float32)  # 0 = mid-grey once scaled to -1..1
        x[:nh, :nw] = cv2.resize(crop, (nw, nh), interpolation=cv2.INTER_AREA).astype(np.float32) / 127.5 - 1.0
        res = self._compiled(x[None])
        reg = np.asarray(res[self._compiled.outputs[0]], np.float64)[0].reshape(-1, 6, 2)
        logit = np.clip(np.asarray(res[self._compiled.outputs[1]], np.float64)[0, :, 0], -100, 100)
        pts = reg / self.SIZE
        pts[:, [0, 2, 3, 4, 5]] += self._anchors[:, None, :]
        pts = pts * side
        pts[:, [0, 2, 3, 4, 5]] += (x0, y0)
        return 1.0 / (1.0 + np.exp(-logit)), pts

    def body_boxes(self, points: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """``(N, 5)`` axis-aligned body boxes from ``(N, 6, 2)`` detector points (see the class)."""
        hip, up = points[:, 2], points[:, 3] - points[:, 2]
        r = np.maximum(np.hypot(up[:, 0], up[:, 1]), 1e-6)
        cos, sin = np.abs(up[:, 0]) / r, np.abs(up[:, 1]) / r
        half_x = r * (self.height * cos + self.width * sin) / 2
        half_y = r * (self.height * sin + self.width * cos) / 2
        c = hip + up * self.shift
        return np.stack([c[:, 0] - half_x, c[:, 1] - half_y, 2 * half_x, 2 * half_y, scores], 1)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        scores, points = [], []
        for x0, y0, side in self._windows(h, w):
            s, p = self._run(image, x0, y0, side)
            keep = s >= self.min_score
            scores.append(s[keep])
            points.append(p[keep])
        sc, pts = np.concatenate(scores), np.concatenate(points)
        if not len(sc):
            return np.zeros((0, 5))
        face = np.concatenate([pts[:, 0] - pts[:, 1] / 2, pts[:, 1], sc[:, None]], 1)
        face, pts = weighted_nms(face, pts, self.nms_iou)
        # One person seen in two windows can give two face boxes apart enough to survive the face
        # NMS yet nearly the same body: a duplicate person (and a second track id in a video).
        body = self.body_boxes(pts, face[:, 4])
        return nms_boxes(body, self.body_nms) if self.body_nms < 1 else body


_CHECKER: list[Any] = []  # one BlazePose detector per process for WholeImage's check (compiled once)


def count_people(image: np.ndarray) -> int | None:
    """People BlazePose finds in ``image`` (whole image only, score >= 0.5), None without OpenVINO."""
    if not _CHECKER:
        _CHECKER.append(BlazePoseDetector(grids=()) if blazepose_available() else None)
    return None if _CHECKER[0] is None else len(_CHECKER[0](image))


class WholeImage:
    """One box ``[0, 0, W, H]`` with score 1.

    Args:
        check_every: every this many calls (the first included; 0: never) BlazePose counts the
            people in the image when it is installed (~10-30 ms), and a warning says so when there
            are several: one pose spread over several people is meaningless (use a detector).
        max_warnings: checking stops after this many warnings (a video of a crowd warns once).
    """

    def __init__(self, check_every: int = 1, max_warnings: int = 5) -> None:
        self.check_every, self.max_warnings = int(check_every), int(max_warnings)
        self._calls = self._warned = 0

    def __call__(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        if self.check_every > 0 and self._calls % self.check_every == 0 and self._warned < self.max_warnings:
            n = count_people(image)
            if n is not None and n > 1:
                self._warned += 1
                last = " (not checked any more)" if self._warned == self.max_warnings else ""
                warnings.warn(f"the whole-image box holds {n} people (BlazePose detector); one pose is spread over "
                              f"them: use --detector auto (Python: detector='auto') or --boxes{last}", stacklevel=2)
        self._calls += 1
        return np.array([[0.0, 0.0, float(w), float(h), 1.0]])

    def __repr__(self) -> str:
        return "WholeImage()"


class HOGDetector:
    """OpenCV's default HOG people detector (see the module docstring for its limits).

    Args:
        max_side: the image is downscaled so its longer side is at most this (speed); boxes are
            mapped back to the original pixels.
        min_score: SVM margin below which detections are dropped.
        win_stride, scale: sliding-window step and pyramid factor (smaller = slower, finds more).
        nms_iou: overlapping detections are merged by greedy NMS at this IoU.
        grow: boxes are enlarged by this factor around their centre; HOG windows are tight on the
            torso/legs and often clip the head and feet.
        pad: a second pass runs on the image with a replicated border of ``pad`` x its longer
            side: the detector's 64x128 window needs margin around the person, so people filling
            the frame (typical photos) are only found this way. 0 disables the second pass.
    """

    def __init__(self, max_side: int = 640, min_score: float = 0.3, win_stride: int = 8,
                 scale: float = 1.05, nms_iou: float = 0.4, grow: float = 1.1, pad: float = 0.25) -> None:
        self.max_side, self.min_score, self.pad = int(max_side), float(min_score), float(pad)
        self.win_stride, self.scale = int(win_stride), float(scale)
        self.nms_iou, self.grow = float(nms_iou), float(grow)
        if not hog_available():
            raise ImportError(f"the HOG people detector is not in this OpenCV build ({cv2.__version__}; OpenCV 5 "
                              "removed cv2.HOGDescriptor): install opencv-python(-headless)<5, or use whole-image "
                              "boxes, --boxes, or your own detector (CallableDetector)")
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"HOGDetector(max_side={self.max_side}, min_score={self.min_score})"

    def __call__(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        f = min(1.0, self.max_side / max(h, w))
        small = cv2.resize(image, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA) \
            if f < 1 else image
        # Upscale tiny images so a 64x128 window can fit at all.
        up = 1.0
        if small.shape[0] < 160 or small.shape[1] < 80:
            up = max(160 / small.shape[0], 80 / small.shape[1])
            small = cv2.resize(small, (round(small.shape[1] * up), round(small.shape[0] * up)))
        gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        found = []
        for pad in ((0, self.pad) if self.pad > 0 else (0,)):
            p = int(round(pad * max(gray.shape)))
            g = cv2.copyMakeBorder(gray, p, p, p, p, cv2.BORDER_REPLICATE) if p else gray
            rects, weights = self._hog.detectMultiScale(g, winStride=(self.win_stride, self.win_stride),
                                                        padding=(8, 8), scale=self.scale)
            if len(rects):
                b = np.concatenate([np.asarray(rects, np.float64), np.asarray(weights, np.float64).reshape(-1, 1)], 1)
                b[:, :2] -= p
                found.append(b)
        if not found:
            return np.zeros((0, 5))
        boxes = np.concatenate(found, 0)
        boxes = boxes[boxes[:, 4] >= self.min_score]
        boxes[:, :4] /= f * up
        c = boxes[:, :2] + boxes[:, 2:4] / 2
        boxes[:, 2:4] *= self.grow
        boxes[:, :2] = c - boxes[:, 2:4] / 2
        return nms_boxes(boxes, self.nms_iou)


class CallableDetector:
    """Adapter for a user detector: ``fn(image_rgb)`` returns boxes (list/numpy/torch) as
    ``xywh`` or ``xyxy`` rows, optionally with a score column (and anything after it, ignored).

    For example, with an ultralytics YOLO model the user already has::

        yolo = YOLO("yolov8n.pt")
        def persons(img):
            r = yolo(img[..., ::-1], verbose=False)[0]          # ultralytics wants BGR
            keep = r.boxes.cls == 0                              # class 0 = person
            return torch.cat([r.boxes.xyxy[keep], r.boxes.conf[keep, None]], 1)
        det = CallableDetector(persons, fmt="xyxy")
    """

    def __init__(self, fn: Callable[[np.ndarray], Any], fmt: str = "xywh", min_score: float = 0.0,
                 color: str = "rgb") -> None:
        if fmt not in ("xywh", "xyxy"):
            raise ValueError(f"fmt must be 'xywh' or 'xyxy', got {fmt!r}")
        self.fn, self.fmt, self.min_score, self.color = fn, fmt, float(min_score), color.lower()

    def __call__(self, image: np.ndarray) -> np.ndarray:
        img = np.ascontiguousarray(image[..., ::-1]) if self.color == "bgr" else image
        boxes = as_boxes(self.fn(img), self.fmt)
        return boxes[boxes[:, 4] >= self.min_score]


class ONNXDetector:
    """Person boxes from an exported ONNX detector the user already has, in one of two layouts
    (``layout="auto"`` tells them apart by the outputs):

    ``"rtmdet"`` - RTMDet / YOLOX as mmdeploy and rtmlib export them (NMS inside the graph): input
        ``(1, 3, H, W)`` BGR, letterboxed to the model's size keeping the ratio, padded with 114 at
        the bottom/right, then ``(x - mean) / std`` (default rtmlib's RTMDet mean
        ``(103.53, 116.28, 123.675)`` / std ``(57.375, 57.12, 58.395)``; pass ``mean=(0, 0, 0),
        std=(1, 1, 1)`` for YOLOX); outputs ``dets (1, N, 5)`` ``[x1, y1, x2, y2, score]`` in input
        pixels and ``labels (1, N)`` (class 0 = person).
    ``"yolov8"`` - YOLOv8 / YOLO11 as ``ultralytics`` ``export(format="onnx")`` writes it (no NMS in
        the graph): input ``(1, 3, H, W)`` RGB in 0..1, letterboxed centred with 114; output
        ``(1, 4 + C, N)``: ``cx, cy, w, h`` in input pixels, then C class scores (class 0 = person).

    Boxes are mapped back through the letterbox, then kept above ``min_score`` and merged by NMS at
    ``nms_iou`` (see :func:`filter_detections`). The input size is read from the graph (640x640
    when it is dynamic). Runs on onnxruntime (the ``export`` extra)."""

    RTMDET_MEAN = (103.53, 116.28, 123.675)
    RTMDET_STD = (57.375, 57.12, 58.395)

    def __init__(self, path: str | os.PathLike, layout: str = "auto", *, min_score: float = DEFAULT_DET_SCORE,
                 nms_iou: float = DEFAULT_DET_NMS, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None, person_class: int = 0, providers: Sequence[str] | None = None
                 ) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise ImportError("an ONNX detector needs onnxruntime: pip install 'stnet[export]'") from None
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"detector {self.path} not found")
        try:
            self.session = ort.InferenceSession(str(self.path), providers=list(providers or ["CPUExecutionProvider"]))
        except Exception as e:  # onnxruntime raises its own untyped errors for corrupt files
            first = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
            raise ValueError(f"detector {self.path}: not a loadable ONNX model ({first})") from None
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        hw = inp.shape[2:4] if len(inp.shape) == 4 else (None, None)
        h, w = (int(v) if isinstance(v, int) and v > 0 else 640 for v in hw)
        self.size = (h, w)
        outs = self.session.get_outputs()
        if layout == "auto":
            layout = "rtmdet" if len(outs) >= 2 else "yolov8"
        if layout not in ("rtmdet", "yolov8"):
            raise ValueError(f"detector layout must be 'auto', 'rtmdet' or 'yolov8', got {layout!r}")
        self.layout = layout
        self.min_score, self.nms_iou, self.person_class = float(min_score), float(nms_iou), int(person_class)
        m = mean if mean is not None else (self.RTMDET_MEAN if layout == "rtmdet" else (0.0, 0.0, 0.0))
        sd = std if std is not None else (self.RTMDET_STD if layout == "rtmdet" else (255.0, 255.0, 255.0))
        self.mean, self.std = np.asarray(m, np.float32), np.asarray(sd, np.float32)

    def __repr__(self) -> str:
        return f"ONNXDetector({str(self.path)!r}, layout={self.layout!r})"

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Boxes ``(N, 5)`` xywh + score of an RGB image."""
        src = image[..., ::-1] if self.layout == "rtmdet" else image  # rtmdet/YOLOX graphs take BGR
        img, r, (dx, dy) = letterbox(np.ascontiguousarray(src), self.size, centre=self.layout == "yolov8")
        x = ((img.astype(np.float32) - self.mean) / self.std).transpose(2, 0, 1)[None]
        outs = self.session.run(None, {self.input_name: np.ascontiguousarray(x)})
        if self.layout == "rtmdet":
            dets = np.asarray(outs[0], np.float64).reshape(-1, 5)
            labels = np.asarray(outs[1]).reshape(-1)
            dets = dets[labels == self.person_class]
            xyxy, score = dets[:, :4], dets[:, 4]
        else:
            pred = np.asarray(outs[0], np.float64)[0]  # (4 + C, N)
            if pred.ndim != 2 or pred.shape[0] < 5:
                raise ValueError(f"detector {self.path}: expected a (1, 4 + classes, N) output, got "
                                 f"{np.asarray(outs[0]).shape}")
            c, wh, score = pred[:2].T, pred[2:4].T, pred[4 + self.person_class]
            xyxy = np.concatenate([c - wh / 2, c + wh / 2], 1)
        xyxy = (xyxy - [dx, dy, dx, dy]) / r
        boxes = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2], score[:, None]], 1)
        return filter_detections(boxes, self.min_score, self.nms_iou)


class StaticBoxes:
    """Boxes looked up by image file name (a path's full string, then its name, then its stem),
    kept above ``min_score`` and merged by NMS at ``nms_iou`` (1: off)."""

    def __init__(self, boxes: Mapping[str, Any], min_score: float = 0.0, nms_iou: float = 1.0) -> None:
        self.boxes = {str(k): as_boxes(v) for k, v in boxes.items()}
        self.min_score, self.nms_iou = float(min_score), float(nms_iou)

    def lookup_key(self, name: str | os.PathLike) -> tuple[np.ndarray | None, str | None]:
        """(boxes, the key they were found under) or (None, None)."""
        p = Path(name)
        for key in (str(name), p.name, p.stem):
            if key in self.boxes:
                return filter_detections(self.boxes[key], self.min_score, self.nms_iou), key
        return None, None

    def lookup(self, name: str | os.PathLike) -> np.ndarray | None:
        return self.lookup_key(name)[0]

    def keys(self) -> list[str]:
        return list(self.boxes)

    def __len__(self) -> int:
        return len(self.boxes)


BOX_FORMATS = ("a json object {\"image file name\": [[x, y, w, h(, score)], ...]}, a COCO detection-results list "
               "[{\"image_id\", \"bbox\", \"score\"}, ...] (with --ann for the file names), or a COCO annotation "
               "json {\"images\", \"annotations\"} (its ground-truth person boxes)")


def _coco_annotation_boxes(data: dict[str, Any], path: Path, category_id: int | None) -> dict[str, list[list[float]]]:
    """Ground-truth person boxes of a COCO annotation json by file name, as the ground-truth-box
    protocol takes them (HRNet, mmpose, ``stnet eval``): not crowd, at least one labelled keypoint
    when the file has keypoints, the box clipped into ``[0, W - 1] x [0, H - 1]``; score 1."""
    try:
        images = {im["id"]: im for im in data["images"] if str(im["file_name"])}
    except (TypeError, KeyError, AttributeError) as e:
        raise ValueError(f"boxes file {path}: 'images' must be a list of {{id, file_name}} objects ({e})") from None
    if not isinstance(data["annotations"], list):
        raise ValueError(f"boxes file {path}: 'annotations' must be a list")
    out: dict[str, list[list[float]]] = {str(im["file_name"]): [] for im in images.values()}
    for i, a in enumerate(data["annotations"]):
        try:
            _add_annotation_box(out, images, a, i, path, category_id)
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as e:
            if isinstance(e, ValueError) and str(e).startswith("boxes file"):
                raise
            raise ValueError(f"boxes file {path}: annotations[{i}]: {e!r}") from None
    return out


def _add_annotation_box(out: dict[str, list[list[float]]], images: dict[Any, dict[str, Any]], a: Any, i: int,
                    path: Path, category_id: int | None) -> None:
    where = f"boxes file {path}: annotations[{i}]"
    if not isinstance(a, dict) or a.get("image_id") not in images:
        raise ValueError(f"{where}: not an annotation of one of the file's images")
    if (category_id is not None and a.get("category_id", category_id) != category_id) or a.get("iscrowd", 0):
        return
    if "keypoints" in a and not any(float(v) > 0 for v in a["keypoints"][2::3]):
        return
    im = images[a["image_id"]]
    try:
        x, y, w, h = (float(v) for v in a["bbox"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{where}: 'bbox' must be [x, y, w, h], got {a.get('bbox')!r}") from None
    x0, y0, x1, y1 = x, y, x + w, y + h
    if im.get("width"):
        x0, x1 = (min(max(v, 0.0), float(im["width"]) - 1) for v in (x0, x1))
    if im.get("height"):
        y0, y1 = (min(max(v, 0.0), float(im["height"]) - 1) for v in (y0, y1))
    if not all(np.isfinite([x0, y0, x1, y1])):
        raise ValueError(f"{where}: 'bbox' must be finite, got {a.get('bbox')!r}")
    out[str(im["file_name"])].append([x0, y0, x1 - x0, y1 - y0, 1.0])


def _detection_result_boxes(data: list, path: Path, ann: str | os.PathLike | None, category_id: int | None
                            ) -> dict[str, list[list[float]]]:
    """A COCO detection-results list's boxes by file name (the names from the annotation json ``ann``)."""
    bad = next((i for i, d in enumerate(data) if not isinstance(d, dict) or "bbox" not in d or "image_id" not in d),
               None)
    if bad is not None:
        raise ValueError(f"boxes file {path}: item {bad} of its list is not a detection {{image_id, bbox, score}}; "
                         f"expected {BOX_FORMATS}")
    if ann is None:
        raise ValueError(f"boxes file {path} is a COCO detection-results list; pass the annotation json "
                         "(--ann) so image ids can be matched to file names")
    ann = Path(ann)
    if not ann.is_file():
        raise FileNotFoundError(f"annotation file {ann} not found")
    doc = read_json(ann, "--ann")
    try:
        names = {int(im["id"]): str(im["file_name"]) for im in (doc.get("images") or [])}
    except (AttributeError, KeyError, TypeError, ValueError, OverflowError):
        raise ValueError(f"--ann {ann}: expected a COCO annotation json with images [{{id, file_name}}]") from None
    grouped: dict[str, list[list[float]]] = {}
    unknown = 0
    for i, det in enumerate(data):
        field = "category_id"
        try:  # each field's type checked here, so a bad one is named rather than a bare int(None)
            if category_id is not None and int(det.get("category_id", 1)) != category_id:
                continue
            field = "image_id"
            name = names.get(int(det["image_id"]))
            if name is None:
                unknown += 1
                continue
            field = "bbox"
            bbox = [float(v) for v in det["bbox"]]
            if len(bbox) != 4:
                raise ValueError
            field = "score"
            grouped.setdefault(name, []).append([*bbox, float(det.get("score", 1.0))])
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"boxes file {path}: item {i}: {field} {det.get(field)!r} is not "
                             + ("[x, y, w, h]" if field == "bbox" else "a number")) from None
    if unknown and not grouped:
        raise ValueError(f"boxes file {path}: none of its image ids is in --ann {ann} ({len(names)} images): "
                         "the detections and the annotations are of different datasets")
    if unknown:
        warnings.warn(f"{path}: {unknown} detection(s) have image ids not in {ann}; ignored", stacklevel=3)
    return grouped


def load_boxes_file(path: str | os.PathLike, ann: str | os.PathLike | None = None,
                    min_score: float = 0.0, category_id: int | None = 1, nms_iou: float = 1.0) -> StaticBoxes:
    """Read person boxes from ``path``, one of three formats (:data:`BOX_FORMATS`): a json object
    ``{"file.jpg": [[x, y, w, h(, s)], ...]}``; a COCO detection-results json (a list of
    ``{"image_id", "bbox", "score", "category_id"}``), for which ``ann`` (a COCO annotation json with
    an ``images`` list) maps ids to file names; or a COCO annotation json itself (``images`` and
    ``annotations``): its ground-truth person boxes, taken as the ground-truth-box protocol does
    (see :func:`_coco_annotation_boxes`). Only ``category_id`` (1 = person; None keeps all) is used."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"boxes file {path} not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"boxes file {path} is not valid json: {e}") from None
    except RecursionError:
        raise ValueError(f"boxes file {path} is not valid json: nested too deeply") from None
    if isinstance(data, dict) and "annotations" in data and "images" in data:
        return StaticBoxes(_finite(_coco_annotation_boxes(data, path, category_id), path), min_score, nms_iou)
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            try:
                out[k] = as_boxes(v)
            except (ValueError, TypeError) as e:
                raise ValueError(f"boxes file {path}, entry {k!r}: {e}; expected {BOX_FORMATS}") from None
        return StaticBoxes(_finite(out, path), min_score, nms_iou)
    if not isinstance(data, list):
        raise ValueError(f"boxes file {path}: expected {BOX_FORMATS}; got a json {type(data).__name__}")
    return StaticBoxes(_finite(_detection_result_boxes(data, path, ann, category_id), path), min_score, nms_iou)


def _finite(boxes: dict[str, Any], path: Path) -> dict[str, Any]:
    """``boxes`` unchanged; json allows NaN and Infinity, which no box may hold."""
    for k, v in boxes.items():
        if len(v) and not np.isfinite(np.asarray(v, np.float64)).all():
            raise ValueError(f"boxes file {path}, entry {k!r}: boxes must be finite numbers (NaN or Infinity found)")
    return boxes


def build_detector(spec: str | Callable[[np.ndarray], Any] | None) -> Callable[[np.ndarray], np.ndarray]:
    """``"blazepose"`` / ``"hog"`` / ``"whole"`` / ``"auto"`` (the best one installed: BlazePose when
    OpenVINO is, else HOG when this OpenCV has it, else the whole image with a warning) / a path to
    an exported ``.onnx`` detector (:class:`ONNXDetector`) / a callable (wrapped in
    :class:`CallableDetector`) / None (:data:`DEFAULT_DETECTOR`)."""
    if spec is None:
        spec = DEFAULT_DETECTOR
    if spec == "whole":
        return WholeImage()
    if spec == "auto":
        if blazepose_available():
            return BlazePoseDetector()
        if hog_available():
            warnings.warn("the BlazePose person detector needs OpenVINO (pip install 'stnet[openvino]'); using "
                          "OpenCV's HOG detector, which finds far fewer people", stacklevel=2)
            return HOGDetector()
        warnings.warn(f"no person detector installed (BlazePose needs OpenVINO: pip install 'stnet[openvino]'; "
                      f"OpenCV {cv2.__version__} has no HOG); using the whole image as the person box",
                      stacklevel=2)
        return WholeImage()
    if spec == "blazepose":
        return BlazePoseDetector()
    if spec == "hog":
        return HOGDetector()
    if isinstance(spec, (str, os.PathLike)) and str(spec).endswith(".onnx"):
        return ONNXDetector(spec)
    if isinstance(spec, (WholeImage, HOGDetector, CallableDetector, ONNXDetector, BlazePoseDetector)):
        return spec
    if callable(spec):
        return CallableDetector(spec)
    raise ValueError(f"unknown detector {spec!r}; expected one of {', '.join(DETECTORS)}, an .onnx file or a callable")
