"""Decoding as a traceable module, for exported graphs (``stnet export --decode``).

:class:`DecodeHead` maps heatmaps to keypoints and scores with no data-dependent control flow, so
it exports to ONNX / OpenVINO:

* integer argmax of each heatmap, score = the heatmap maximum (as the codecs);
* DARK sub-pixel refinement: the whole heatmap is Gaussian-blurred (the codec's
  ``blur_kernel_size``), and :func:`stnet.codecs.dark.newton_step`, the step
  :func:`~stnet.codecs.dark.refine_dark` takes, is taken on the log of the blurred map's 3x3
  neighbourhood of the argmax. This equals ``refine_dark(..., sigma=None)`` (no border-bias
  lookup table), so it differs from the Python decoder only within ~2 heatmap pixels of the border;
* heatmap -> crop pixels with the codec's geometry (UDP: ``x * (W-1)/(w-1)``; classic: ``x * W/w``);
* with an ``affine`` ``(B, 2, 3)`` input of crop->image matrices (the inverse crop warp,
  ``stnet.data.transforms.get_warp_matrix(center, scale, 0, (H, W), inverse=True)``), the
  keypoints come out in image pixels.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .dark import blur_kernel_1d, newton_step

__all__ = ["DecodeHead"]


class DecodeHead(nn.Module):
    """Heatmaps ``(B, K, h, w)`` -> keypoints ``(B, K, 2)`` in crop pixels (image pixels when an
    ``affine`` crop->image matrix is given) and scores ``(B, K)``; see the module docstring."""

    ratio: torch.Tensor
    gx: torch.Tensor
    gy: torch.Tensor

    def __init__(self, num_joints: int, input_size: Sequence[int], heatmap_size: Sequence[int] | None = None,
                 blur_kernel_size: int = 11, unbiased: bool = True, refine: bool = True, eps: float = 1e-10) -> None:
        super().__init__()
        hi, wi = int(input_size[0]), int(input_size[1])
        hh, wh = (int(heatmap_size[0]), int(heatmap_size[1])) if heatmap_size else (hi // 4, wi // 4)
        self.num_joints, self.heatmap_size, self.refine, self.eps = int(num_joints), (hh, wh), bool(refine), float(eps)
        ratio = [(wi - 1) / (wh - 1), (hi - 1) / (hh - 1)] if unbiased else [wi / wh, hi / hh]
        self.register_buffer("ratio", torch.tensor(ratio, dtype=torch.float32), persistent=False)
        self.ks = int(blur_kernel_size)
        if self.ks > 1 and self.ks % 2 == 0:
            raise ValueError(f"blur kernel size must be odd, got {self.ks}")
        g = torch.as_tensor(blur_kernel_1d(max(self.ks, 1)), dtype=torch.float32)
        k = self.num_joints
        self.register_buffer("gx", g.view(1, 1, 1, -1).repeat(k, 1, 1, 1), persistent=False)
        self.register_buffer("gy", g.view(1, 1, -1, 1).repeat(k, 1, 1, 1), persistent=False)

    def _log_stencil(self, heatmaps: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor) -> torch.Tensor:
        """``log(blur(heatmaps))`` on the 3x3 stencil at ``(cx, cy)``: ``(B, K, 3, 3)``."""
        b, k, h, w = heatmaps.shape
        hm = heatmaps
        if self.ks > 1:
            p = self.ks // 2
            hm = F.conv2d(hm, self.gx.to(hm.dtype), padding=(0, p), groups=k)
            hm = F.conv2d(hm, self.gy.to(hm.dtype), padding=(p, 0), groups=k)
        logm = torch.log(hm.clamp_min(self.eps)).reshape(b, k, h * w)
        centre = cy * w + cx
        offs = torch.tensor([-w - 1, -w, -w + 1, -1, 0, 1, w - 1, w, w + 1], dtype=centre.dtype, device=centre.device)
        return logm.gather(-1, centre.unsqueeze(-1) + offs).reshape(b, k, 3, 3)

    def forward(self, heatmaps: torch.Tensor, affine: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        b, k, h, w = heatmaps.shape
        scores, idx = heatmaps.reshape(b, k, h * w).max(dim=-1)
        ax = idx % w
        ay = torch.div(idx, w, rounding_mode="floor")
        x = ax.to(heatmaps.dtype)
        y = ay.to(heatmaps.dtype)
        if self.refine and h >= 3 and w >= 3:
            cx = ax.clamp(1, w - 2)
            cy = ay.clamp(1, h - 2)
            nx, ny, ok = newton_step(self._log_stencil(heatmaps, cx, cy), cx, cy, h, w, max(self.ks, 1))
            x = torch.where(ok, nx, x)
            y = torch.where(ok, ny, y)
        kp = torch.stack([x, y], dim=-1) * self.ratio.to(heatmaps.dtype)
        if affine is not None:
            a = affine.to(kp.dtype)
            kp = kp @ a[:, :, :2].transpose(1, 2) + a[:, None, :, 2]
        return kp, scores
