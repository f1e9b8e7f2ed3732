"""Classic MSRA heatmaps (Xiao et al., SimpleBaseline, ECCV 2018; HRNet): the biased convention,
kept to reproduce models trained with it.

The keypoint is quantised to the nearest heatmap pixel ``round(x / stride)`` with
``stride = w_in / w_hm`` before drawing the Gaussian, and decoding takes the argmax plus a quarter
pixel toward the higher neighbour (``refine="quarter"``), or a DARK step (``refine="dark"``).
Encoding then decoding therefore loses up to half a heatmap pixel (``stride / 2`` input pixels)
per axis; use :class:`~stnet.codecs.UDPHeatmap` for new work.

Shapes::

    encode(keypoints, visibility)
        keypoints   (K, 2) or (N, K, 2)   crop (input) pixels, (x, y)
        visibility  (K,)   or (N, K)      > 0 means labelled; None = all labelled
        -> heatmaps (K, h, w) or (N, K, h, w) float32, peak 1.0 at the quantised centre
        -> weights  (K,) or (N, K) float32: 0 for unlabelled joints and joints whose 3-sigma
                    window around the quantised centre misses the heatmap, else 1 (the HRNet /
                    mmpose rule; a joint just off the map keeps weight 1)
    decode(heatmaps)   numpy array or torch tensor, (K, h, w) or (B, K, h, w)
        -> keypoints (.., K, 2) float32 in crop (input) pixels, scores (.., K) float32
"""
from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
import torch

from ._common import (GaussianHeatmapBase, ArrayLike, gaussian_heatmaps, heatmap_peaks, keypoints_in, outputs,
                      window_on_map)

__all__ = ["MSRAHeatmap"]

Refine = Literal["dark", "quarter", "none"]


class MSRAHeatmap(GaussianHeatmapBase):
    """Classic (quantised) Gaussian heatmap codec; arguments as :class:`UDPHeatmap`, with
    ``refine="quarter"`` by default."""

    unbiased = False

    def __init__(self, input_size: Sequence[int] = (256, 192), heatmap_size: Sequence[int] | None = None,
                 sigma: float = 2.0, refine: Refine = "quarter", blur_kernel_size: int = 11) -> None:
        super().__init__(input_size, heatmap_size, sigma, refine, blur_kernel_size)

    def _init_geometry(self) -> None:
        (hi, wi), (hh, wh) = self.input_size, self.heatmap_size
        self._stride = np.array([wi / wh, hi / hh], dtype=np.float64)

    def __repr__(self) -> str:
        return (f"MSRAHeatmap(input_size={self.input_size}, heatmap_size={self.heatmap_size}, "
                f"sigma={self.sigma}, refine={self.refine!r}, blur_kernel_size={self.blur_kernel_size})")

    def encode(self, keypoints: ArrayLike, visibility: ArrayLike | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        kp, vis, single = keypoints_in(keypoints, visibility)
        h, w = self.heatmap_size
        finite = np.isfinite(kp).all(-1)
        # Quantised centre int(x / stride + 0.5), truncating toward zero as HRNet and mmpose do
        # (the same as rounding for every centre on the map).
        mu = np.trunc(np.where(finite[..., None], kp, 0.0) / self._stride + 0.5)
        # Target weight: 1 while the joint's 3-sigma window overlaps the heatmap (HRNet's
        # generate_target rule), so a joint just past the crop edge still gets its Gaussian's tail.
        valid = (vis > 0) & finite & window_on_map(kp / self._stride, (h, w), self.sigma)
        heatmaps = gaussian_heatmaps(mu, valid, self.heatmap_size, self.sigma)
        weights = valid.astype(np.float32)
        return (heatmaps[0], weights[0]) if single else (heatmaps, weights)

    def decode(self, heatmaps: ArrayLike) -> tuple[ArrayLike, ArrayLike]:
        coords, scores, was_numpy, single = heatmap_peaks(self, heatmaps)
        coords = coords * torch.as_tensor(self._stride, dtype=coords.dtype, device=coords.device)
        return outputs(coords, scores, was_numpy, single)
