"""Inference-only rewrites that keep the function: BatchNorm folded into the preceding conv.

Every conv followed by a BatchNorm inside an ``nn.Sequential`` (how stnet builds conv-BN-act
layers) becomes one conv with a bias. Pre-activation BatchNorms (BN before ReLU before conv) are
left alone: a ReLU between them does not commute with the affine map.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn

__all__ = ["fold_batchnorm", "fuse_conv_bn", "optimize_for_inference"]


@torch.no_grad()
def fuse_conv_bn(conv: nn.Conv2d | nn.ConvTranspose2d, bn: nn.BatchNorm2d) -> nn.Module:
    """Return a new conv computing ``bn(conv(x))`` in eval mode."""
    fused = copy.deepcopy(conv)
    assert bn.running_var is not None and bn.running_mean is not None, "BatchNorm without running statistics"
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    if isinstance(conv, nn.ConvTranspose2d):
        # weight is (in, out/groups, kh, kw): output channels are dim 1
        if conv.groups != 1:
            raise NotImplementedError("grouped transposed conv folding")
        fused.weight.copy_(conv.weight * scale.view(1, -1, 1, 1))
    else:
        fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
    fused.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias)
    return fused


def fold_batchnorm(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Fold every (conv, BatchNorm) pair that sits consecutively in an ``nn.Sequential``.

    The result is for inference only (BatchNorm statistics are frozen into the weights); it is put
    in eval mode. Outputs match the original eval-mode model up to float rounding.
    """
    if not inplace:
        model = copy.deepcopy(model)
    model.eval()
    for module in list(model.modules()):
        if not isinstance(module, nn.Sequential):
            continue
        keys = list(module._modules.keys())
        for a, b in zip(keys, keys[1:]):
            conv, bn = module._modules[a], module._modules[b]
            if (isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(bn, nn.BatchNorm2d)
                    and bn.track_running_stats and bn.running_var is not None):
                module._modules[a] = fuse_conv_bn(conv, bn)
                module._modules[b] = nn.Identity()
    return model


def optimize_for_inference(model: nn.Module, channels_last: bool = True) -> nn.Module:
    """Copy of ``model`` for CPU/GPU inference: BatchNorm folded, weights in channels-last layout.

    Feed it channels-last inputs (``x.to(memory_format=torch.channels_last)``) for the full effect;
    plain contiguous inputs still work. The function computed is unchanged.
    """
    model = fold_batchnorm(model)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return model
