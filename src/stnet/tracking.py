"""Person ids across video frames and keypoint smoothing.

:class:`Tracker` assigns each :class:`~stnet.results.PoseResult` of a frame a ``track_id`` by
optimal (Hungarian, ``scipy.optimize.linear_sum_assignment``) matching to the tracks of the
previous frames, in two stages as ByteTrack does (Zhang et al., ECCV 2022): persons scoring at
least ``high_score`` first, on a similarity of at least ``threshold``; then the low-scoring ones
(a half-occluded or blurred person) against the tracks still free, on at least ``low_threshold``.
The similarity is the IoU of boxes drawn around each person's confident keypoints (the same box
whether the frame's person came from a detector or from the previous frame's keypoints, so
``--detect-every`` does not change it), with each track's box moved by its recent, damped velocity
for the frames since it was seen; in the first stage both boxes are grown by ``buffer`` a side
first (C-BIoU, Yang et al., WACV 2023), since a pose box jumps in width when one wrist crosses the
score floor. The first-stage threshold 0.2 is ByteTrack's (its ``match_thresh`` 0.8 on 1 - IoU).
Or the OKS of the keypoints (``metric="oks"``, the skeleton's OKS
sigmas). Unmatched persons start new tracks; a track unseen for ``max_age`` frames is dropped, so
a person missed for a few frames (not detected, occluded) keeps its id. Persons crossing each
other closely can still swap ids.

:class:`OneEuroFilter` (Casiez et al., CHI 2012) smooths each track's keypoints: an adaptive
low-pass filter whose cut-off rises with speed, removing jitter when still and lag when moving.
``min_cutoff`` lower = smoother when still; ``beta`` higher = less lag on fast motion.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from .detectors import box_iou, pose_boxes
from .evaluation.metrics import keypoint_similarity

__all__ = ["Tracker", "OneEuroFilter", "oks"]


def oks(a: np.ndarray, b: np.ndarray, area: float, sigmas: np.ndarray) -> float:
    """Object keypoint similarity of two ``(K, 2)`` keypoint sets for an object of ``area`` px^2
    (at least 1), averaged over all K joints."""
    d2 = ((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2).sum(-1)
    return float(np.mean(keypoint_similarity(d2, max(area, 1.0), sigmas)))


class OneEuroFilter:
    """Vectorised one-euro filter over arrays of any fixed shape."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.01, d_cutoff: float = 1.0) -> None:
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self.x: np.ndarray | None = None
        self.dx: np.ndarray | None = None
        self.t: float | None = None

    @staticmethod
    def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
        tau = 1.0 / (2 * math.pi * np.asarray(cutoff))
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.x is None or self.t is None or t <= self.t:
            self.x, self.dx, self.t = x.copy(), np.zeros_like(x), float(t)
            return x.copy()
        dt = t - self.t
        dx = (x - self.x) / dt
        a_d = self._alpha(self.d_cutoff, dt)
        self.dx = a_d * dx + (1 - a_d) * self.dx  # type: ignore[operator]  # set with x above
        cutoff = self.min_cutoff + self.beta * np.abs(self.dx)
        a = self._alpha(cutoff, dt)
        self.x = a * x + (1 - a) * self.x
        self.t = float(t)
        return self.x.copy()


@dataclasses.dataclass
class _Track:
    id: int
    box: np.ndarray
    keypoints: np.ndarray
    last_seen: int
    filter: OneEuroFilter | None = None
    velocity: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(2))

    def predicted(self, frame: int) -> np.ndarray:
        """The box with its centre moved by the track's velocity to ``frame``; its size kept."""
        b = self.box.copy()
        b[:2] += self.velocity * (frame - self.last_seen)
        return b

    def update(self, box: np.ndarray, frame: int) -> None:
        """Follow a matched box. The velocity is of the centre only, damped and capped at a
        quarter of the box per frame, and the size is averaged with the track's: a pose box
        jitters by tens of pixels between frames (one wrist more or less above the score floor),
        and an undamped velocity from two such boxes threw the prediction off the person."""
        gap = max(1, frame - self.last_seen)
        step = (box[:2] + box[2:4] / 2 - self.box[:2] - self.box[2:4] / 2) / gap
        cap = 0.25 * self.box[2:4]
        self.velocity = np.clip(0.7 * self.velocity + 0.3 * step, -cap, cap)
        size = 0.5 * self.box[2:4] + 0.5 * box[2:4]
        centre = box[:2] + box[2:4] / 2
        self.box = np.concatenate([centre - size / 2, size])
        self.last_seen = frame


def _buffered(box: np.ndarray, buffer: float) -> np.ndarray:
    """``box`` grown by ``buffer`` times its size on every side (Yang et al., "Hard to track
    objects with irregular motions and similar appearances? Make it easier by buffering the
    matching space", WACV 2023): boxes of a person that moved or changed shape still overlap."""
    b = np.asarray(box, np.float64).copy()
    b[:2] -= buffer * b[2:4]
    b[2:4] *= 1 + 2 * buffer
    return b


def _person_box(p) -> np.ndarray:
    """``[x, y, w, h]`` around the confident keypoints of a person; its box when they are too few
    or bunched up (under 5 % of the box's area: an untrained or failed pose)."""
    box = np.asarray(p.box, np.float64)
    kb = pose_boxes(np.asarray(p.keypoints)[None], np.asarray(p.scores)[None], np.array([[*box, 0.0]]))[0, :4]
    return kb if kb[2] * kb[3] >= 0.05 * box[2] * box[3] else box


class Tracker:
    """Two-stage Hungarian IoU / OKS tracker with optional one-euro smoothing (see the module
    docstring).

    Args:
        metric: ``"iou"`` (boxes) or ``"oks"`` (keypoints).
        threshold: minimum similarity to continue a track with a person scoring ``high_score`` or more.
        buffer: the first stage's box growth per side, as a fraction of the box (0 = plain IoU).
        max_age: frames a track survives unseen.
        smooth: apply a :class:`OneEuroFilter` per track to keypoints (and boxes stay raw).
        min_cutoff, beta, d_cutoff: the one-euro parameters (Hz; ``stnet predict --smooth-min-cutoff``,
            ``--smooth-beta``, ``--smooth-d-cutoff``).
        sigmas: OKS sigmas for ``metric="oks"`` (default 0.05 for every keypoint).
        fps: frame rate used as the filter's time base.
        high_score: persons (:attr:`PoseResult.score`) at or above it are matched first. 0.15,
            not a detector's 0.3: the person score is the box score times the mean keypoint
            score, and real people score 0.2-0.45 on benchmarks/tracking_ids.py's clip; at 0.3
            half of them went to the stricter second stage and took new ids.
        low_threshold: minimum similarity for a lower-scoring person, matched second (stricter:
            a low score is as often a false box as a hard-to-see person).
    """

    def __init__(self, metric: str = "iou", threshold: float = 0.2, max_age: int = 30, smooth: bool = False,
                 min_cutoff: float = 1.0, beta: float = 0.01, sigmas: Sequence[float] | None = None,
                 fps: float = 30.0, d_cutoff: float = 1.0, high_score: float = 0.15,
                 low_threshold: float = 0.5, buffer: float = 0.3) -> None:
        if metric not in ("iou", "oks"):
            raise ValueError(f"metric must be 'iou' or 'oks', got {metric!r}")
        self.metric, self.threshold, self.max_age = metric, float(threshold), int(max_age)
        self.high_score, self.low_threshold = float(high_score), float(low_threshold)
        if not 0 <= buffer < float("inf"):
            raise ValueError(f"buffer must be >= 0, got {buffer}")
        self.buffer = float(buffer)
        self.smooth, self.min_cutoff, self.beta = bool(smooth), float(min_cutoff), float(beta)
        self.d_cutoff = float(d_cutoff)
        if not (self.min_cutoff > 0 and self.d_cutoff > 0 and 0 <= self.beta < float("inf")):  # NaN fails too
            raise ValueError(f"one-euro parameters must be min_cutoff > 0, d_cutoff > 0, beta >= 0; got "
                             f"{min_cutoff}, {d_cutoff}, {beta}")
        self.sigmas = None if sigmas is None else np.asarray(sigmas, dtype=np.float64)
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self.tracks: list[_Track] = []
        self.frame = -1
        self._next_id = 0

    def _sim(self, track: _Track, person, box: np.ndarray, buffer: float = 0.0) -> float:
        pred = track.predicted(self.frame)
        if self.metric == "iou":
            return box_iou(_buffered(pred, buffer), _buffered(box, buffer))  # type: ignore[arg-type]
        sig = self.sigmas if self.sigmas is not None else np.full(len(person.keypoints), 0.05)
        shift = pred[:2] + pred[2:4] / 2 - track.box[:2] - track.box[2:4] / 2
        return oks(track.keypoints + shift, person.keypoints, float(box[2] * box[3]), sig)

    def _associate(self, persons: list, boxes: list[np.ndarray]) -> dict[int, _Track]:
        """Person index -> the track it continues: high-scoring persons first, then the rest."""
        assigned: dict[int, _Track] = {}
        free = list(self.tracks)
        high = [i for i, p in enumerate(persons) if p.score >= self.high_score]
        low = [i for i, p in enumerate(persons) if p.score < self.high_score]
        # The buffer widens the first stage only: a low-scoring person must overlap a track as it is.
        for group, thr, buf in ((high, self.threshold, self.buffer), (low, self.low_threshold, 0.0)):
            if not group or not free:
                continue
            sim = np.array([[self._sim(t, persons[i], boxes[i], buf) for i in group] for t in free])
            rows, cols = linear_sum_assignment(sim, maximize=True)
            used = set()
            for r, c in zip(rows, cols):
                if sim[r, c] >= thr:
                    assigned[group[c]] = free[r]
                    used.add(int(r))
            free = [t for k, t in enumerate(free) if k not in used]
        return assigned

    def update(self, persons: list, frame: int | None = None) -> list:
        """Results of one frame -> the same results with ``track_id`` set (and keypoints smoothed
        when ``smooth``), in the input order."""
        self.frame = self.frame + 1 if frame is None else int(frame)
        self.tracks = [t for t in self.tracks if self.frame - t.last_seen <= self.max_age]
        boxes = [_person_box(p) for p in persons]
        assigned = self._associate(persons, boxes)
        out = []
        t = self.frame / self.fps
        for pi, p in enumerate(persons):
            track = assigned.get(pi)
            if track is None:
                track = _Track(self._next_id, boxes[pi], np.asarray(p.keypoints, float), self.frame,
                               OneEuroFilter(self.min_cutoff, self.beta, self.d_cutoff) if self.smooth else None)
                self._next_id += 1
                self.tracks.append(track)
            else:
                track.update(boxes[pi], self.frame)
            kps = p.keypoints
            if track.filter is not None:
                kps = track.filter(p.keypoints, t).astype(np.float32)
            track.keypoints = np.asarray(kps, float)
            out.append(dataclasses.replace(p, keypoints=kps, track_id=track.id))
        return out
