"""Exponential moving average of the weights, and a digest to compare weights across ranks."""
from __future__ import annotations

import copy
import hashlib
from typing import Any

import torch
import torch.nn as nn

from .distributed import unwrap

__all__ = ["ModelEMA", "weights_digest"]


class ModelEMA:
    """Exponential moving average of a model's floating-point parameters and buffers (BatchNorm
    running statistics included); integer buffers are copied."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.module = copy.deepcopy(unwrap(model)).eval()
        self.decay = float(decay)
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        src = unwrap(model).state_dict()
        avg, new = [], []
        for k, v in self.module.state_dict().items():
            if v.dtype.is_floating_point:
                avg.append(v)
                new.append(src[k].detach())
            else:
                v.copy_(src[k])
        # One multi-tensor call instead of a Python loop over STNet's ~880 tensors.
        if avg:
            torch._foreach_lerp_(avg, new, 1.0 - self.decay)

    def state_dict(self) -> dict[str, Any]:
        return self.module.state_dict()

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        self.module.load_state_dict(sd)


def weights_digest(model: nn.Module) -> str:
    """SHA-1 of all parameters and buffers (exact bytes): equal digests = identical weights."""
    h = hashlib.sha1()
    for k, v in unwrap(model).state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
