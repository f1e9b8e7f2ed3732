"""Helpers shared by the heatmap codecs: array/tensor plumbing, argmax, Gaussian rows."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

ArrayLike = Any  # np.ndarray | torch.Tensor; kept loose so either passes type checkers


def pair(size: Sequence[int] | int, what: str) -> tuple[int, int]:
    """``(H, W)`` from an int or a 2-sequence, validated."""
    if isinstance(size, (int, np.integer)):
        size = (int(size), int(size))
    t = tuple(int(s) for s in size)
    if len(t) != 2 or min(t) < 2:
        raise ValueError(f"{what} must be (H, W) with both >= 2, got {size!r}")
    return t  # type: ignore[return-value]


def default_heatmap_size(input_size: tuple[int, int], stride: int = 4) -> tuple[int, int]:
    return (input_size[0] // stride, input_size[1] // stride)


def keypoints_in(keypoints: ArrayLike, visibility: ArrayLike | None
                 ) -> tuple[np.ndarray, np.ndarray, bool]:
    """Encode inputs as float64 ``(N, K, 2)`` and ``(N, K)``; ``single`` when given ``(K, 2)``."""
    if isinstance(keypoints, torch.Tensor):
        keypoints = keypoints.detach().cpu().numpy()
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim not in (2, 3) or kp.shape[-1] != 2:
        raise ValueError(f"keypoints must be (K, 2) or (N, K, 2), got shape {kp.shape}")
    single = kp.ndim == 2
    if single:
        kp = kp[None]
    if visibility is None:
        vis = np.ones(kp.shape[:2], dtype=np.float64)
    else:
        if isinstance(visibility, torch.Tensor):
            visibility = visibility.detach().cpu().numpy()
        vis = np.asarray(visibility, dtype=np.float64)
        if single and vis.ndim == 1:
            vis = vis[None]
        if vis.shape != kp.shape[:2]:
            raise ValueError(f"visibility shape {vis.shape} does not match keypoints {kp.shape}")
    return kp, vis, single


def gaussian_heatmaps(mu: np.ndarray, valid: np.ndarray, heatmap_size: tuple[int, int],
                      sigma: float) -> np.ndarray:
    """Unnormalised separable Gaussians with peak 1 at ``mu`` (heatmap pixels, ``(N, K, 2)``).

    Evaluated over the whole map (no 3-sigma cut-off): the separable product costs the same and a
    decoder sees an exact Gaussian. Entries with ``valid == False`` are all zero.
    """
    h, w = heatmap_size
    m = np.where(valid[..., None], mu, 0.0)
    inv = -0.5 / (sigma * sigma)
    gx = np.exp(inv * (np.arange(w, dtype=np.float64) - m[..., 0:1]) ** 2)  # (N, K, w)
    gy = np.exp(inv * (np.arange(h, dtype=np.float64) - m[..., 1:2]) ** 2)  # (N, K, h)
    gy *= valid[..., None]
    return (gy[..., :, None] * gx[..., None, :]).astype(np.float32)


def window_on_map(mu: np.ndarray, heatmap_size: tuple[int, int], sigma: float) -> np.ndarray:
    """Whether each joint's 3-sigma target window overlaps the heatmap, the target-weight rule of
    HRNet, the UDP code and mmpose: the centre is rounded as ``int(mu + 0.5)`` (toward zero, as
    they do) and the window ``[int(c - 3 sigma), int(c + 3 sigma + 1))`` must reach into the map.
    A joint whose centre is just off the map therefore keeps weight 1 (its Gaussian's tail is on
    the map). ``mu``: ``(..., 2)`` heatmap pixels (x, y); non-finite entries give False."""
    h, w = heatmap_size
    finite = np.isfinite(mu).all(-1)
    m = np.trunc(np.where(finite[..., None], mu, 0.0) + 0.5)
    r = 3.0 * float(sigma)
    lo = np.trunc(m - r)
    hi = np.trunc(m + r + 1)
    return (finite & (lo[..., 0] < w) & (lo[..., 1] < h) & (hi[..., 0] >= 0) & (hi[..., 1] >= 0))


def heatmaps_in(heatmaps: ArrayLike) -> tuple[torch.Tensor, bool, bool]:
    """Decode inputs as a torch ``(B, K, h, w)`` tensor; returns (tensor, was_numpy, single)."""
    was_numpy = not isinstance(heatmaps, torch.Tensor)
    t = torch.from_numpy(np.ascontiguousarray(heatmaps)) if was_numpy else heatmaps.detach()
    if t.ndim not in (3, 4):
        raise ValueError(f"heatmaps must be (K, h, w) or (B, K, h, w), got shape {tuple(t.shape)}")
    single = t.ndim == 3
    if single:
        t = t[None]
    # float64 on CPU keeps DARK's log-Taylor step exact to ~1e-6 px; float32 on accelerators.
    t = t.to(torch.float64 if t.device.type == "cpu" else torch.float32)
    return t, was_numpy, single


def outputs(keypoints: torch.Tensor, scores: torch.Tensor, was_numpy: bool, single: bool
            ) -> tuple[ArrayLike, ArrayLike]:
    keypoints = keypoints.to(torch.float32)
    scores = scores.to(torch.float32)
    if single:
        keypoints, scores = keypoints[0], scores[0]
    if was_numpy:
        return keypoints.cpu().numpy(), scores.cpu().numpy()
    return keypoints, scores


def get_heatmap_maximum(heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer argmax ``(B, K, 2)`` as (x, y) and the maximum value ``(B, K)``."""
    b, k, h, w = heatmaps.shape
    vals, idx = heatmaps.reshape(b, k, h * w).max(dim=-1)
    coords = torch.stack([idx % w, torch.div(idx, w, rounding_mode="floor")], dim=-1)
    return coords.to(heatmaps.dtype), vals


def refine_quarter(heatmaps: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Classic refinement: move a quarter pixel from the argmax toward the higher neighbour."""
    b, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(b, k, h * w)
    x = coords[..., 0].long()
    y = coords[..., 1].long()

    def at(xx: torch.Tensor, yy: torch.Tensor) -> torch.Tensor:
        return flat.gather(-1, (yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1)).unsqueeze(-1)).squeeze(-1)

    dx = torch.where((x > 0) & (x < w - 1), at(x + 1, y) - at(x - 1, y), torch.zeros_like(flat[..., 0]))
    dy = torch.where((y > 0) & (y < h - 1), at(x, y + 1) - at(x, y - 1), torch.zeros_like(flat[..., 0]))
    return coords + 0.25 * torch.stack([torch.sign(dx), torch.sign(dy)], dim=-1)


def heatmap_peaks(codec: Any, heatmaps: ArrayLike) -> tuple[torch.Tensor, torch.Tensor, bool, bool]:
    """Shared first half of the heatmap codecs' ``decode``: checks the map size, takes the
    per-joint maximum and refines it (``codec.refine``: "dark", "quarter" or None). Returns
    (coords in heatmap pixels, scores, was_numpy, single); each codec then maps to input pixels."""
    from .dark import refine_dark

    hm, was_numpy, single = heatmaps_in(heatmaps)
    if tuple(hm.shape[-2:]) != codec.heatmap_size:
        raise ValueError(f"heatmaps are {tuple(hm.shape[-2:])}, codec expects {codec.heatmap_size}")
    coords, scores = get_heatmap_maximum(hm)
    if codec.refine == "dark":
        coords = refine_dark(hm, coords, codec.blur_kernel_size, sigma=codec.sigma)
    elif codec.refine == "quarter":
        coords = refine_quarter(hm, coords)
    return coords, scores, was_numpy, single


class GaussianHeatmapBase:
    """Shared constructor of the Gaussian heatmap codecs: sizes, sigma and refinement checked in
    one place. Subclasses set ``unbiased`` and derive their pixel mapping in ``_init_geometry``."""

    unbiased: bool

    def __init__(self, input_size: Sequence[int] = (256, 192), heatmap_size: Sequence[int] | None = None,
                 sigma: float = 2.0, refine: str = "dark", blur_kernel_size: int = 11) -> None:
        self.input_size = pair(input_size, "input_size")
        self.heatmap_size = pair(heatmap_size, "heatmap_size") if heatmap_size is not None \
            else default_heatmap_size(self.input_size)
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        if refine not in ("dark", "quarter", "none"):
            raise ValueError(f"refine must be 'dark', 'quarter' or 'none', got {refine!r}")
        self.sigma = float(sigma)
        self.refine = refine
        self.blur_kernel_size = int(blur_kernel_size)
        self._init_geometry()

    def _init_geometry(self) -> None:
        raise NotImplementedError
