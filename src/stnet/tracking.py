"""Person ids across video frames and keypoint smoothing.

:class:`Tracker` assigns each :class:`~stnet.results.PoseResult` of a frame a ``track_id`` by
optimal (Hungarian, ``scipy.optimize.linear_sum_assignment``) matching to the previous frames'
tracks on a similarity that is the box IoU, or the OKS of the keypoints (``metric="oks"``, uses the
skeleton's OKS sigmas); pairs below ``threshold`` are not matched. Unmatched persons start new
tracks; tracks unseen for ``max_age`` frames are dropped. This is the simple baseline used by
top-down video pipelines (e.g. SimpleBaseline's flow-free variant): fine for a few well-separated
persons, it swaps ids when people cross or occlude each other.

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

from .detectors import box_iou
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


class Tracker:
    """Hungarian IoU / OKS tracker with optional one-euro smoothing (see the module docstring).

    Args:
        metric: ``"iou"`` (boxes) or ``"oks"`` (keypoints).
        threshold: minimum similarity to continue a track.
        max_age: frames a track survives unseen.
        smooth: apply a :class:`OneEuroFilter` per track to keypoints (and boxes stay raw).
        min_cutoff, beta, d_cutoff: the one-euro parameters (Hz; ``stnet predict --smooth-min-cutoff``,
            ``--smooth-beta``, ``--smooth-d-cutoff``).
        sigmas: OKS sigmas for ``metric="oks"`` (default 0.05 for every keypoint).
        fps: frame rate used as the filter's time base.
    """

    def __init__(self, metric: str = "iou", threshold: float = 0.3, max_age: int = 30, smooth: bool = False,
                 min_cutoff: float = 1.0, beta: float = 0.01, sigmas: Sequence[float] | None = None,
                 fps: float = 30.0, d_cutoff: float = 1.0) -> None:
        if metric not in ("iou", "oks"):
            raise ValueError(f"metric must be 'iou' or 'oks', got {metric!r}")
        self.metric, self.threshold, self.max_age = metric, float(threshold), int(max_age)
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

    def _sim(self, track: _Track, person) -> float:
        if self.metric == "iou":
            return box_iou(track.box, person.box)  # type: ignore[arg-type]  # any (4,) sequence
        sig = self.sigmas if self.sigmas is not None else np.full(len(person.keypoints), 0.05)
        return oks(track.keypoints, person.keypoints, float(person.box[2] * person.box[3]), sig)

    def update(self, persons: list, frame: int | None = None) -> list:
        """Results of one frame -> the same results with ``track_id`` set (and keypoints smoothed
        when ``smooth``), in the input order."""
        self.frame = self.frame + 1 if frame is None else int(frame)
        self.tracks = [t for t in self.tracks if self.frame - t.last_seen <= self.max_age]
        assigned = {}
        if self.tracks and persons:
            sim = np.array([[self._sim(t, p) for p in persons] for t in self.tracks])
            rows, cols = linear_sum_assignment(sim, maximize=True)
            assigned = {int(pi): self.tracks[ti] for ti, pi in zip(rows, cols) if sim[ti, pi] >= self.threshold}
        out = []
        t = self.frame / self.fps
        for pi, p in enumerate(persons):
            track = assigned.get(pi)
            if track is None:
                track = _Track(self._next_id, np.asarray(p.box, float), np.asarray(p.keypoints, float), self.frame,
                               OneEuroFilter(self.min_cutoff, self.beta, self.d_cutoff) if self.smooth else None)
                self._next_id += 1
                self.tracks.append(track)
            kps = p.keypoints
            if track.filter is not None:
                kps = track.filter(p.keypoints, t).astype(np.float32)
            track.box, track.keypoints, track.last_seen = np.asarray(p.box, float), np.asarray(kps, float), self.frame
            out.append(dataclasses.replace(p, keypoints=kps, track_id=track.id))
        return out
