"""Flip test: average the heatmaps of a crop and of its mirror image.

The mirrored crop's heatmaps are mirrored back and their left/right channels swapped
(``flip_index`` from :class:`~stnet.data.skeletons.Skeleton`). Under the unbiased (UDP)
convention a mirror of the crop (``x -> W_in - 1 - x``) is exactly a mirror of the heatmap
(``x -> w_hm - 1 - x``), so nothing else is needed. Under the classic convention the mirrored
heatmap lands ``1 - stride^-1`` (about 0.75) heatmap pixels to the left, which HRNet compensates
by shifting it one pixel right; ``shift=True`` reproduces that.

Shapes::

    heatmaps (B, K, h, w)  numpy or torch
    images   (B, 3, H, W)  torch (what the model takes)
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch

from stnet.models.outputs import last_stage

__all__ = ["flip_heatmaps_back", "flip_test"]


def flip_heatmaps_back(heatmaps: Any, flip_index: Sequence[int], *, shift: bool = False) -> Any:
    """Mirror ``(B, K, h, w)`` heatmaps of mirrored crops back and swap left/right channels."""
    idx = list(flip_index)
    if isinstance(heatmaps, torch.Tensor):
        if heatmaps.shape[-3] != len(idx):
            raise ValueError(f"heatmaps have {heatmaps.shape[-3]} channels, flip_index {len(idx)}")
        out = heatmaps[..., idx, :, :].flip(-1)
        if shift:
            out = torch.cat([out[..., :1], out[..., :-1]], dim=-1)
        return out
    hm = np.asarray(heatmaps)
    if hm.shape[-3] != len(idx):
        raise ValueError(f"heatmaps have {hm.shape[-3]} channels, flip_index {len(idx)}")
    arr = hm[..., idx, :, ::-1]
    if shift:
        arr = np.concatenate([arr[..., :1], arr[..., :-1]], axis=-1)
    return np.ascontiguousarray(arr)


@torch.no_grad()
def flip_test(model: Callable[[torch.Tensor], Any], images: torch.Tensor, flip_index: Sequence[int],
              *, unbiased: bool = True) -> torch.Tensor:
    """Heatmaps ``(B, K, h, w)`` averaged over ``images`` and their horizontal mirrors.

    ``model`` maps ``(B, 3, H, W)`` to heatmaps (a tensor, or a list/tuple of per-stage tensors of
    which the last is used). ``unbiased=False`` applies the classic one-pixel shift.
    """
    heat = last_stage(model(images))
    heat_flipped = last_stage(model(images.flip(-1)))
    return 0.5 * (heat + flip_heatmaps_back(heat_flipped, flip_index, shift=not unbiased))
