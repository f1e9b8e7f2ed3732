"""Flip test: average the heatmaps of a crop and of its mirror image.

The mirrored crop's heatmaps are mirrored back and their left/right channels swapped
(``flip_index`` from :class:`~stnet.data.skeletons.Skeleton`). Under the unbiased (UDP)
convention a mirror of the crop (``x -> W_in - 1 - x``) is exactly a mirror of the heatmap
(``x -> w_hm - 1 - x``), so nothing else is needed. Under the classic convention the mirrored
heatmap lands ``1 - stride^-1`` (about 0.75) heatmap pixels to the left, which HRNet compensates
by shifting it one pixel right; ``shift=True`` reproduces that.

Shapes::

    heatmaps (B, K, h, w)  numpy or torch
    images   (B, 3, H, W)  numpy or torch (what the model takes)
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
def flip_test(model: Callable[[Any], Any], images: Any, flip_index: Sequence[int], *, unbiased: bool = True) -> Any:
    """Heatmaps ``(B, K, h, w)`` averaged over ``images`` and their horizontal mirrors, both in one
    call of ``model`` (one batch of 2B crops).

    ``images``: ``(B, 3, H, W)``, a torch tensor or a numpy array; ``model`` maps such a batch to
    heatmaps of the same kind (or a list/tuple of per-stage tensors of which the last is used).
    ``unbiased=False`` applies the classic one-pixel shift."""
    n = len(images)
    both: Any
    if isinstance(images, torch.Tensor):
        both = torch.cat([images, images.flip(-1)], 0)
    else:
        both = np.concatenate([images, images[..., ::-1]], 0)
    heat = last_stage(model(both))
    return 0.5 * (heat[:n] + flip_heatmaps_back(heat[n:], flip_index, shift=not unbiased))
