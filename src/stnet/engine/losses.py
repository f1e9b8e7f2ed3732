"""Training losses."""
from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["HeatmapLoss"]


class HeatmapLoss(nn.Module):
    """``0.5 * mean((pred - target)^2 * w)`` over batch, joints and pixels (HRNet's JointsMSELoss),
    ``w`` the per-joint target weight; with ``ohkm_topk`` only the hardest k joints per sample."""

    def __init__(self, use_target_weight: bool = True, ohkm_topk: int | None = None) -> None:
        super().__init__()
        self.use_target_weight = use_target_weight
        self.ohkm_topk = ohkm_topk

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        pred, target = pred.float(), target.float()
        err = (pred - target) ** 2  # (B, K, h, w)
        per_joint = 0.5 * err.flatten(2).mean(-1)  # (B, K)
        if self.use_target_weight:
            per_joint = per_joint * weight.float() ** 2  # weight multiplies pred and target, as HRNet
        if self.ohkm_topk:
            k = min(int(self.ohkm_topk), per_joint.shape[1])
            return per_joint.topk(k, dim=1).values.mean()
        return per_joint.mean()
