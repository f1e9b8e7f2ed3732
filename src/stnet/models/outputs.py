"""What a pose model returns, and how to get the prediction out of it.

A model maps images ``(B, 3, H, W)`` to heatmaps ``(B, K, H/4, W/4)``. Multi-stage models may
return one heatmap tensor per stage (a list or tuple, the last one is the prediction; nested lists
are allowed), and a model may wrap its heatmaps in a dict under ``"heatmaps"``.
"""
from __future__ import annotations

from typing import Any

import torch

__all__ = ["last_stage", "all_stages"]


def last_stage(output: Any) -> torch.Tensor:
    """The prediction: the last stage's heatmaps ``(B, K, h, w)``."""
    while isinstance(output, (list, tuple)):
        output = output[-1]
    return output["heatmaps"] if isinstance(output, dict) else output


def all_stages(output: Any) -> list[torch.Tensor]:
    """Every stage's heatmaps, last one last (a one-element list for a single-stage model)."""
    if isinstance(output, (list, tuple)):
        return [last_stage(o) for o in output]
    return [last_stage(output)]
