"""Blocks shared by STNet and HRNet: conv-BN(-ReLU), squeeze-excitation, the bottleneck of the
stem / layer1, and HRNet's multi-scale fusion.

Conv -> BN (-> ReLU) sit inside ``nn.Sequential`` so BatchNorm folds into the conv at inference
(:mod:`stnet.models.fuse`); the parameter/GFLOPs counts do not depend on this ordering.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["BN_MOMENTUM", "check_images", "conv_bn", "DepthwiseConv2d", "SqueezeExcite",
           "Bottleneck", "MultiScaleFusion", "fusion_layers",
           "fuse_branches", "resize"]

BN_MOMENTUM = 0.1


def check_images(x: torch.Tensor, model: str, multiple: int = 32) -> None:
    """Raise ValueError unless ``x`` is ``(B, 3, H, W)`` with H and W multiples of ``multiple`` (the
    networks' total stride)."""
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"{model} expects images as (B, 3, H, W), got {tuple(x.shape)}")
    if x.shape[-2] % multiple or x.shape[-1] % multiple:
        raise ValueError(f"{model} input H and W must be multiples of {multiple}, got {tuple(x.shape[-2:])}")


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, act: bool = True, groups: int = 1) -> nn.Sequential:
    """``k x k`` conv (no bias, "same" padding) -> BatchNorm (-> ReLU when ``act``)."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(cout, momentum=BN_MOMENTUM)]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class DepthwiseConv2d(nn.Conv2d):
    """Depthwise 3x3 conv (``groups == channels``), optionally atrous.

    Same parameters and maths as ``nn.Conv2d``. oneDNN's bf16 NHWC backward-weights kernel for dilated
    depthwise convs on AVX512-BF16 CPUs (torch 2.13, ``jit_bf16:avx512_core_bf16``) returns wrong
    weight gradients, NaN or a segfault on maps of about 40x32 and larger (stnet_1s at 256x192), and
    is slow everywhere. So under CPU bf16 autocast with channels_last tensors, when the weight
    gradient is wanted, a "same"-padded stride-1 atrous conv runs as an undilated one on its ``d x d``
    interleaved sub-grids stacked into the batch (space-to-batch: exact), and any other dilated one
    in NCHW. Without a weight gradient (inference) oneDNN's own kernel runs: its forward is right.
    ``tests/test_models.py -k depthwise`` checks the maths, ``benchmarks/bf16_depthwise.py`` the speed.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.device.type == "cpu" and torch.is_autocast_enabled("cpu") and x.dim() == 4
                and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)):
            d = self.dilation[0]
            if (d == 1 and self.dilation[1] == 1) or not (torch.is_grad_enabled() and self.weight.requires_grad):
                return super().forward(x)  # only the weight gradient is at fault
            if (self.dilation[1] == d and self.stride == (1, 1) and self.kernel_size == (3, 3)
                    and self.padding == (d, d) and self.padding_mode == "zeros"):
                return self._space_to_batch_forward(x, d)
            # clone, not contiguous(): a (C, 1, k, k) weight in channels_last counts as contiguous
            # yet still steers the convolution to NHWC
            w = self.weight.clone(memory_format=torch.contiguous_format)
            y = self._conv_forward(x.contiguous(), w, self.bias)
            return y.contiguous(memory_format=torch.channels_last)
        return super().forward(x)

    def _space_to_batch_forward(self, x: torch.Tensor, d: int) -> torch.Tensor:
        # Output pixel (i, j) reads inputs (i + d*a, j + d*b), a, b in {-1, 0, 1}: all on the sub-grid
        # (i mod d, j mod d), where they are plain 3x3 neighbours. Zero-padding H and W up to
        # multiples of d adds only inputs the atrous conv's own padding would read as zeros.
        n, c, h, w = x.shape
        hp, wp = -(-h // d) * d, -(-w // d) * d
        if (hp, wp) != (h, w):
            x = F.pad(x, (0, wp - w, 0, hp - h))
        sub = x.reshape(n, c, hp // d, d, wp // d, d).permute(0, 3, 5, 1, 2, 4)
        sub = sub.reshape(n * d * d, c, hp // d, wp // d).contiguous(memory_format=torch.channels_last)
        y = F.conv2d(sub, self.weight, self.bias, 1, 1, 1, self.groups)
        y = y.reshape(n, d, d, c, hp // d, wp // d).permute(0, 3, 4, 1, 5, 2).reshape(n, c, hp, wp)
        return y[:, :, :h, :w].contiguous(memory_format=torch.channels_last)


class SqueezeExcite(nn.Module):
    """Channel attention: global average pool -> 1x1 (/ ``reduction``) -> ReLU -> 1x1 -> sigmoid gate."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=False)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(s), inplace=True)))


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 (x4 expansion) (-> squeeze-excitation when ``se_reduction``), projection
    shortcut when the width changes, ReLU after the sum (HRNet's layer1; STNet adds the SE)."""

    expansion = 4

    def __init__(self, cin: int, planes: int, se_reduction: int = 0) -> None:
        super().__init__()
        cout = planes * self.expansion
        self.body = nn.Sequential(conv_bn(cin, planes, 1), conv_bn(planes, planes, 3),
                                  conv_bn(planes, cout, 1, act=False))
        self.se = SqueezeExcite(cout, se_reduction) if se_reduction else nn.Identity()
        self.shortcut = conv_bn(cin, cout, 1, act=False) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.se(self.body(x)) + self.shortcut(x))


# --------------------------------------------------------------------------------------------
# Multi-scale fusion (HRNet's exchange unit, also STNet's, Sec. III-B)
# --------------------------------------------------------------------------------------------
def fusion_layers(widths: Sequence[int], num_out: int) -> nn.ModuleList:
    """Row ``i`` (one per output branch) holds, for every input branch ``j``: identity (``j == i``),
    a 1x1 conv-BN to the target width (``j > i``, lower resolution, upsampled in
    :func:`fuse_branches`), or ``i - j`` stride-2 3x3 conv-BNs, ReLU on all but the last (``j < i``)."""
    rows = nn.ModuleList()
    for i in range(num_out):
        row = nn.ModuleList()
        for j in range(len(widths)):
            if j == i:
                row.append(nn.Identity())
            elif j > i:
                row.append(conv_bn(widths[j], widths[i], 1, act=False))
            else:
                steps = [conv_bn(widths[j], widths[j], 3, 2) for _ in range(i - j - 1)]
                steps.append(conv_bn(widths[j], widths[i], 3, 2, act=False))
                row.append(nn.Sequential(*steps))
        rows.append(row)
    return rows


def fuse_branches(rows: nn.ModuleList, xs: list[torch.Tensor], upsample_mode: str) -> list[torch.Tensor]:
    """Every output branch ``i`` = ReLU(sum over inputs ``j`` of ``rows[i][j](xs[j])``, resampled to
    branch ``i``'s resolution)."""
    outs = []
    for i, row in enumerate(rows):
        acc = xs[i]
        layer: nn.Module
        for j, layer in enumerate(row):  # type: ignore[arg-type]  # a ModuleList row
            if j == i:
                continue
            y: torch.Tensor = layer(xs[j])
            if j > i:
                y = resize(y, xs[i].shape[-2:], upsample_mode)
            acc = acc + y
        outs.append(F.relu(acc))
    return outs


def resize(x: torch.Tensor, size: Sequence[int], mode: str) -> torch.Tensor:
    """``x`` resampled to ``size`` (H, W): ``"nearest"`` or ``"bilinear"`` (align_corners=False)."""
    if mode == "nearest":
        return F.interpolate(x, size=tuple(size), mode="nearest")
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class MultiScaleFusion(nn.Module):
    """Every one of the first ``num_out`` branches sums all input branches, resampled to its
    resolution (:func:`fusion_layers` / :func:`fuse_branches`)."""

    def __init__(self, widths: Sequence[int], num_out: int, upsample_mode: str) -> None:
        super().__init__()
        self.mode = upsample_mode
        self.layers = fusion_layers(widths, num_out)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        return fuse_branches(self.layers, xs, self.mode)
