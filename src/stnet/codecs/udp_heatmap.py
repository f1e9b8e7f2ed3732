"""UDP Gaussian heatmaps (Huang et al., "The Devil is in the Details: Delving into Unbiased Data
Processing for Human Pose Estimation", CVPR 2020) - the codec STNet decodes with.

Lengths are measured between pixel centres, so crop pixel ``x`` sits at heatmap pixel
``x * (w_hm - 1) / (w_in - 1)`` exactly (no quantisation), and a horizontal flip of the crop is an
exact flip of the heatmap. Decoding takes the argmax and, by default, a DARK step.

Shapes::

    encode(keypoints, visibility)
        keypoints   (K, 2) or (N, K, 2)   crop (input) pixels, (x, y)
        visibility  (K,)   or (N, K)      > 0 means labelled; None = all labelled
        -> heatmaps (K, h, w) or (N, K, h, w) float32, peak 1.0 at the exact location
        -> weights  (K,) or (N, K) float32: 0 for unlabelled joints and joints whose 3-sigma
                    window misses the heatmap, else 1 (the reference rule: a joint just off the
                    map keeps weight 1 and its Gaussian's tail as target; see window_on_map)
    decode(heatmaps)   numpy array or torch tensor, (K, h, w) or (B, K, h, w)
        -> keypoints (.., K, 2) float32 in crop (input) pixels, scores (.., K) float32 = the
           heatmap maximum; same library (numpy/torch) and device as the input
"""
from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
import torch

from ._common import (GaussianHeatmapBase, ArrayLike, gaussian_heatmaps, heatmap_peaks, keypoints_in, outputs,
                      window_on_map)

__all__ = ["UDPHeatmap"]

Refine = Literal["dark", "quarter", "none"]


class UDPHeatmap(GaussianHeatmapBase):
    """Unbiased Gaussian heatmap codec.

    Args:
        input_size: crop ``(H, W)`` the model sees.
        heatmap_size: ``(h, w)``; default ``input_size / 4``.
        sigma: Gaussian sigma in heatmap pixels (2 for 256x192 / 256x256, 3 for 384x288 in
            the standard recipes).
        refine: ``"dark"`` (default), ``"quarter"`` or ``"none"``.
        blur_kernel_size: DARK's smoothing kernel (odd; 11 for sigma 2, 17 for sigma 3; 1 = off).
    """

    unbiased = True

    def __init__(self, input_size: Sequence[int] = (256, 192), heatmap_size: Sequence[int] | None = None,
                 sigma: float = 2.0, refine: Refine = "dark", blur_kernel_size: int = 11) -> None:
        super().__init__(input_size, heatmap_size, sigma, refine, blur_kernel_size)

    def _init_geometry(self) -> None:
        (hi, wi), (hh, wh) = self.input_size, self.heatmap_size
        # Heatmap pixels per input pixel along x and y.
        self._ratio = np.array([(wh - 1) / (wi - 1), (hh - 1) / (hi - 1)], dtype=np.float64)

    def __repr__(self) -> str:
        return (f"UDPHeatmap(input_size={self.input_size}, heatmap_size={self.heatmap_size}, "
                f"sigma={self.sigma}, refine={self.refine!r}, blur_kernel_size={self.blur_kernel_size})")

    def encode(self, keypoints: ArrayLike, visibility: ArrayLike | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        kp, vis, single = keypoints_in(keypoints, visibility)
        h, w = self.heatmap_size
        mu = kp * self._ratio
        valid = (vis > 0) & window_on_map(mu, (h, w), self.sigma)
        heatmaps = gaussian_heatmaps(mu, valid, self.heatmap_size, self.sigma)
        weights = valid.astype(np.float32)
        return (heatmaps[0], weights[0]) if single else (heatmaps, weights)

    def decode(self, heatmaps: ArrayLike) -> tuple[ArrayLike, ArrayLike]:
        coords, scores, was_numpy, single = heatmap_peaks(self, heatmaps)
        coords = coords / torch.as_tensor(self._ratio, dtype=coords.dtype, device=coords.device)
        return outputs(coords, scores, was_numpy, single)
