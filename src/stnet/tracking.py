"""Person ids across video frames and keypoint smoothing.

:class:`Tracker` assigns each :class:`~stnet.results.PoseResult` of a frame a ``track_id`` by
optimal (Hungarian, ``scipy.optimize.linear_sum_assignment``) matching to the tracks of the
previous frames, in two stages as ByteTrack does (Zhang et al., ECCV 2022): persons scoring at
least ``high_score`` first, on a similarity of at least ``threshold``; then the low-scoring ones
(a half-occluded or blurred person) against the tracks still free, on at least ``low_threshold``.
The similarity is the IoU of boxes drawn around each person's confident keypoints (the same box
whether the frame's person came from a detector or from the previous frame's keypoints, so
``--detect-every`` does not change it), with each track's box moved by its recent velocity for
the frames since it was seen; or the OKS of the keypoints (``metric="oks"``, the skeleton's OKS
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
    velocity: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(4))

    def predicted(self, frame: int) -> np.ndarray:
        """The box moved by the track's velocity to ``frame`` (its size change too, kept > 1 px)."""
        b = self.box + self.velocity * (frame - self.last_seen)
        b[2:4] = np.maximum(b[2:4], 1.0)
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

    def __init__(self, metric: str = "iou", threshold: float = 0.3, max_age: int = 30, smooth: bool = False,
                 min_cutoff: float = 1.0, beta: float = 0.01, sigmas: Sequence[float] | None = None,
                 fps: float = 30.0, d_cutoff: float = 1.0, high_score: float = 0.15,
                 low_threshold: float = 0.5) -> None:
        if metric not in ("iou", "oks"):
            raise ValueError(f"metric must be 'iou' or 'oks', got {metric!r}")
        self.metric, self.threshold, self.max_age = metric, float(threshold), int(max_age)
        self.high_score, self.low_threshold = float(high_score), float(low_threshold)
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

    def _sim(self, track: _Track, person, box: np.ndarray) -> float:
        pred = track.predicted(self.frame)
        if self.metric == "iou":
            return box_iou(pred, box)  # type: ignore[arg-type]  # any (4,) sequence
        sig = self.sigmas if self.sigmas is not None else np.full(len(person.keypoints), 0.05)
        shift = pred[:2] + pred[2:4] / 2 - track.box[:2] - track.box[2:4] / 2
        return oks(track.keypoints + shift, person.keypoints, float(box[2] * box[3]), sig)

    def _associate(self, persons: list, boxes: list[np.ndarray]) -> dict[int, _Track]:
        """Person index -> the track it continues: high-scoring persons first, then the rest."""
        assigned: dict[int, _Track] = {}
        free = list(self.tracks)
        high = [i for i, p in enumerate(persons) if p.score >= self.high_score]
        low = [i for i, p in enumerate(persons) if p.score < self.high_score]
        for group, thr in ((high, self.threshold), (low, self.low_threshold)):
            if not group or not free:
                continue
            sim = np.array([[self._sim(t, persons[i], boxes[i]) for i in group] for t in free])
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
            else:  # velocity per frame, averaged with the previous estimate against jitter
                gap = max(1, self.frame - track.last_seen)
                track.velocity = 0.5 * track.velocity + 0.5 * (boxes[pi] - track.box) / gap
            kps = p.keypoints
            if track.filter is not None:
                kps = track.filter(p.keypoints, t).astype(np.float32)
            track.box, track.keypoints, track.last_seen = boxes[pi], np.asarray(kps, float), self.frame
            out.append(dataclasses.replace(p, keypoints=kps, track_id=track.id))
        return out
