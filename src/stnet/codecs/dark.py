"""DARK sub-pixel refinement (Zhang et al., "Distribution-Aware Coordinate Representation for
Human Pose Estimation", CVPR 2020).

The heatmap is smoothed so that it is close to a Gaussian, its logarithm is then locally a
quadratic, and one Newton (second-order Taylor) step from the integer argmax lands on that
quadratic's maximum: ``x* = x - H^{-1} g`` with ``g``/``H`` the central-difference gradient and
Hessian of ``log(heatmap)``. Usable after either codec (``refine="dark"``).

Two details differ from the reference implementation, both only near the heatmap border:

* the 3x3 stencil is moved one pixel inward when the argmax is on the border (instead of
  edge-replicating, which makes the step meaningless there); on a log-quadratic the Newton step
  gives the same answer from any stencil position;
* the blur (zero padding, as in DARK) pulls peaks near the border inward by up to ~1.5 heatmap
  pixels. Given the Gaussian ``sigma`` the targets were drawn with, that bias is undone with a
  per-axis lookup table: the estimate the same procedure returns for an exact Gaussian at each
  true position (a monotone function, computed once per geometry) is inverted by interpolation.
  Interior keypoints are unaffected; ``sigma=None`` turns the correction off.

Shapes::

    heatmaps  (B, K, h, w)  torch, float
    coords    (B, K, 2)     integer argmax positions as float (x, y), heatmap pixels
    returns   (B, K, 2)     refined positions, heatmap pixels

Where the local quadratic is not a maximum (flat or saddle-shaped map, e.g. an empty heatmap),
the argmax is kept unchanged. The step itself is not limited: as in the reference (mmpose's
``refine_keypoints_dark_udp``), an argmax that sits on a noise spike a pixel or two away from
the smooth peak is moved back to it. Only on flat maps (untrained models) can the step become
large; it is bounded by the stencil's reach on the blurred map (kernel radius + 1 pixels) and
by the map, which never binds on peaked maps.
"""
from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["refine_dark", "newton_step", "gaussian_blur", "blur_kernel_1d"]


def blur_kernel_1d(kernel_size: int) -> np.ndarray:
    """Normalised 1-D Gaussian; sigma derived from the size as OpenCV does for sigma=0, so sizes
    mean what they do in DARK / mmpose configs (11 -> sigma 2.0, 17 -> 2.9)."""
    sigma = 0.3 * ((kernel_size - 1) * 0.5 - 1) + 0.8
    r = np.arange(kernel_size, dtype=np.float64) - (kernel_size - 1) / 2
    k = np.exp(-0.5 * (r / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(heatmaps: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Separable Gaussian blur of ``(B, K, h, w)`` maps with zero padding, rescaled so that each
    map keeps its original maximum (as DARK does)."""
    if kernel_size <= 1:
        return heatmaps
    if kernel_size % 2 == 0:
        raise ValueError(f"blur kernel size must be odd, got {kernel_size}")
    b, k, h, w = heatmaps.shape
    x = heatmaps.reshape(b * k, 1, h, w)
    g = torch.as_tensor(blur_kernel_1d(kernel_size), dtype=x.dtype, device=x.device)
    p = kernel_size // 2
    x = F.conv2d(x, g.view(1, 1, 1, -1), padding=(0, p))
    x = F.conv2d(x, g.view(1, 1, -1, 1), padding=(p, 0))
    x = x.reshape(b, k, h, w)
    orig_max = heatmaps.amax(dim=(-2, -1), keepdim=True)
    new_max = x.amax(dim=(-2, -1), keepdim=True)
    return x * torch.where(new_max > 0, orig_max / new_max.clamp_min(1e-30), torch.ones_like(new_max))


def _newton_1d(log_rows: np.ndarray, argmax: np.ndarray) -> np.ndarray:
    n, length = log_rows.shape
    c = np.clip(argmax, 1, length - 2)
    i = np.arange(n)
    g = 0.5 * (log_rows[i, c + 1] - log_rows[i, c - 1])
    h = log_rows[i, c + 1] - 2 * log_rows[i, c] + log_rows[i, c - 1]
    return c - g / h


@functools.lru_cache(maxsize=64)
def _border_table(length: int, sigma: float, kernel_size: int, step: float = 1 / 32
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(estimate, true position) along one axis for exact Gaussians; estimate is increasing."""
    mu = np.arange(-0.5, length - 0.5 + 1e-9, step)
    xs = np.arange(length, dtype=np.float64)
    f = np.exp(-0.5 * ((xs - mu[:, None]) / sigma) ** 2)
    g = blur_kernel_1d(kernel_size)
    p = kernel_size // 2
    blurred = np.stack([np.convolve(row, g, mode="full")[p:p + length] for row in f])
    est = _newton_1d(np.log(np.maximum(blurred, 1e-10)), f.argmax(1))
    # Guard against any non-monotone wiggle so that the inverse is well defined.
    est = np.maximum.accumulate(est)
    keep = np.concatenate([[True], np.diff(est) > 1e-9])
    return est[keep], mu[keep]


def _undo_border_bias(x: torch.Tensor, length: int, sigma: float, kernel_size: int) -> torch.Tensor:
    est, mu = _border_table(length, float(sigma), kernel_size)
    e = torch.as_tensor(est, dtype=x.dtype, device=x.device)
    m = torch.as_tensor(mu, dtype=x.dtype, device=x.device)
    xc = x.clamp(e[0], e[-1]).contiguous()
    j = torch.searchsorted(e, xc).clamp(1, len(e) - 1)
    e0, e1, m0, m1 = e[j - 1], e[j], m[j - 1], m[j]
    return m0 + (xc - e0) * (m1 - m0) / (e1 - e0)


def _blurred_log_stencil(heatmaps: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                         kernel_size: int, eps: float) -> torch.Tensor:
    """``log(blur(heatmaps))`` on the 3x3 stencil centred at ``(x, y)``: ``(B, K, 3, 3)``
    indexed ``[dy + 1, dx + 1]``.

    Only a ``(kernel + 2)^2`` patch per keypoint is blurred instead of the whole map: the result
    is the same as blurring everything with zero padding (DARK's rescaling to the original
    maximum is a constant factor, which the log turns into an offset the derivatives ignore).
    """
    b, k, h, w = heatmaps.shape
    ks = max(int(kernel_size), 1)
    p = ks // 2
    pad = p + 1
    hp = F.pad(heatmaps, (pad, pad, pad, pad))
    n = 2 * pad + 1
    off = torch.arange(n, device=heatmaps.device)
    # Patch rows/cols in the padded map: original index y - pad .. y + pad, shifted by +pad.
    rows = y.unsqueeze(-1) + off
    cols = x.unsqueeze(-1) + off
    flat = hp.reshape(b, k, -1)
    wp = w + 2 * pad
    idx = (rows.unsqueeze(-1) * wp + cols.unsqueeze(-2)).reshape(b, k, n * n)
    patch = flat.gather(-1, idx).reshape(b, k, n, n)
    if ks > 1:
        g = torch.as_tensor(blur_kernel_1d(ks), dtype=patch.dtype, device=patch.device)
        patch = patch.unfold(-1, ks, 1) @ g            # (B, K, n, 3): blur along x
        patch = (patch.unfold(-2, ks, 1) @ g)          # (B, K, 3, 3): then along y
    return torch.log(patch.clamp_min(eps))


def _bound_step(nx: torch.Tensor, ny: torch.Tensor, x: torch.Tensor, y: torch.Tensor, h: int, w: int,
                kernel_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Bound the Newton step from the stencil centre ``(x, y)`` to the stencil's reach on the
    blurred map (kernel radius + 1 pixels per axis) and the result to the map
    (``[-0.5, size - 0.5]``). Only flat maps (untrained models, no peak) take such steps: on
    trained or noisy-but-peaked maps the step stays far inside the bound (measured: identical
    results), while on flat ones an unbounded step is arbitrary (the reference's reaches
    thousands of pixels) and amplifies rounding differences (ONNX vs PyTorch)."""
    r = float(max(int(kernel_size), 1) // 2 + 1)
    x = x.to(nx.dtype)
    y = y.to(ny.dtype)
    nx = (x + (nx - x).clamp(-r, r)).clamp(-0.5, w - 0.5)
    ny = (y + (ny - y).clamp(-r, r)).clamp(-0.5, h - 0.5)
    return nx, ny


def newton_step(stencil: torch.Tensor, x: torch.Tensor, y: torch.Tensor, h: int, w: int, kernel_size: int
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One Newton step on the log-map's ``(B, K, 3, 3)`` ``stencil`` (indexed ``[dy + 1, dx + 1]``)
    centred at integer ``(x, y)``: ``(new x, new y, ok)``, the step bounded by :func:`_bound_step`;
    ``ok`` is False where the local quadratic is not a maximum (keep the argmax there). Traceable
    (no data-dependent control flow): the in-graph decoder (:mod:`stnet.codecs.decode_head`)
    takes this same step."""
    c = stencil[..., 1, 1]
    r, l, d, u = stencil[..., 1, 2], stencil[..., 1, 0], stencil[..., 2, 1], stencil[..., 0, 1]  # noqa: E741
    gx = 0.5 * (r - l)
    gy = 0.5 * (d - u)
    hxx = r - 2 * c + l
    hyy = d - 2 * c + u
    hxy = 0.25 * (stencil[..., 2, 2] - stencil[..., 0, 2] - stencil[..., 2, 0] + stencil[..., 0, 0])
    det = hxx * hyy - hxy * hxy
    ok = (det > 1e-12) & (hxx < 0)
    safe = torch.where(ok, det, torch.ones_like(det))
    nx = x.to(c.dtype) - (hyy * gx - hxy * gy) / safe
    ny = y.to(c.dtype) - (hxx * gy - hxy * gx) / safe
    nx, ny = _bound_step(nx, ny, x, y, h, w, kernel_size)
    return nx, ny, ok


def refine_dark(heatmaps: torch.Tensor, coords: torch.Tensor, blur_kernel_size: int = 11,
                *, sigma: float | None = None, eps: float = 1e-10) -> torch.Tensor:
    """Refine integer argmax ``coords`` on ``heatmaps``; see the module docstring.

    ``sigma``: Gaussian sigma (heatmap pixels) of the targets, enabling the border correction.
    """
    b, k, h, w = heatmaps.shape
    if h < 3 or w < 3:
        return coords
    if blur_kernel_size > 1 and blur_kernel_size % 2 == 0:
        raise ValueError(f"blur kernel size must be odd, got {blur_kernel_size}")
    ax = coords[..., 0].long()
    ay = coords[..., 1].long()
    x = ax.clamp(1, w - 2)
    y = ay.clamp(1, h - 2)
    st = _blurred_log_stencil(heatmaps, x, y, blur_kernel_size, eps)
    nx, ny, ok = newton_step(st, x, y, h, w, blur_kernel_size)
    ok = ok & torch.isfinite(nx) & torch.isfinite(ny)
    if sigma is not None and blur_kernel_size > 1:
        nx = _undo_border_bias(torch.where(ok, nx, x.to(nx.dtype)), w, sigma, blur_kernel_size)
        ny = _undo_border_bias(torch.where(ok, ny, y.to(ny.dtype)), h, sigma, blur_kernel_size)
    # No "stay near the argmax" rule: on a noisy map the argmax may sit on a spike a pixel or
    # two from the true peak, and the Newton step on the blurred log-map is what recovers it
    # (as in the reference implementation).
    refined = torch.stack([nx, ny], dim=-1).to(coords.dtype)
    return torch.where(ok.unsqueeze(-1), refined, coords)
