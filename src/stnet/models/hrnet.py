"""HRNet baseline (Sun et al., "Deep High-Resolution Representation Learning for Human Pose
Estimation", CVPR 2019): the top-down pose network STNet is compared against.

Layout follows stnet.py: a config dataclass, the blocks, the network, a table of named variants and
one-line registered builders.

Architecture (the paper's pose HRNet): a stem of two stride-2 3x3 convs and four bottlenecks
(layer1, 64 -> 256 channels at 1/4), then stages 2-4 with 2, 3 and 4 parallel branches of widths
C, 2C, 4C, 8C at 1/4 ... 1/32 (C = 32 for W32, 48 for W48). Each stage is a sequence of modules:
four BasicBlocks per branch followed by a multi-scale fusion in which every output branch sums all
input branches (1x1 conv + BN + nearest upsampling from lower resolutions, chains of stride-2 3x3
conv + BN from higher ones) and applies ReLU. A transition opens each new branch from the lowest one
with a stride-2 3x3 conv. The last module of stage 4 fuses into the 1/4 branch only, and a 1x1 conv
with bias maps its C channels to the K joint heatmaps.

Shapes: input (B, 3, H, W) with H and W divisible by 32; output heatmaps (B, K, H/4, W/4).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import replace_typed
from ._registry import register_model
from .layers import Bottleneck, check_images, conv_bn, fuse_branches, fusion_layers

__all__ = ["HRNetConfig", "HRNet", "BasicBlock", "Bottleneck", "HighResolutionModule", "HRNET_VARIANTS",
           "HRNET_WIDTHS", "HRNET_STAGES"]

HRNET_WIDTHS = (32, 48)  # the paper's W32 and W48
STEM_CHANNELS = 64
LAYER1_BLOCKS = 4  # bottlenecks in layer1: 64 -> 256 channels
BLOCKS_PER_BRANCH = 4
INIT_STD = 0.001
# (modules, branches) of stages 2, 3 and 4.
HRNET_STAGES: tuple[tuple[int, int], ...] = ((1, 2), (4, 3), (3, 4))


@dataclass(frozen=True)
class HRNetConfig:
    """The switches of the paper's pose HRNet: ``width`` picks W32 or W48, ``num_joints`` the
    dataset (17 COCO, 16 MPII, 14 LSP), ``input_size`` the (H, W) crop it is trained and counted at."""

    width: int = 32
    num_joints: int = 17
    input_size: tuple[int, int] = (256, 192)  # (H, W); any multiple of 32 runs, this one is checked

    def __post_init__(self) -> None:
        # Normalise sequences coming from YAML/CLI so configs compare and hash equal.
        try:
            size = tuple(int(v) for v in self.input_size)
        except (TypeError, ValueError):
            size = self.input_size  # left as given; validate() reports it
        object.__setattr__(self, "input_size", size)
        self.validate()

    @property
    def widths(self) -> tuple[int, int, int, int]:
        return (self.width, 2 * self.width, 4 * self.width, 8 * self.width)

    def validate(self) -> None:
        def bad(name: str, allowed: str) -> ValueError:
            return ValueError(f"HRNetConfig.{name}={getattr(self, name)!r} is invalid: expected {allowed}")

        def is_int(v) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        if not is_int(self.width) or self.width not in HRNET_WIDTHS:
            raise bad("width", " or ".join(str(w) for w in HRNET_WIDTHS) + " (HRNet-W32 / HRNet-W48)")
        if not is_int(self.num_joints) or self.num_joints < 1:
            raise bad("num_joints", "a positive integer (17 COCO, 16 MPII, 14 LSP)")
        if (not isinstance(self.input_size, tuple) or len(self.input_size) != 2
                or any(v <= 0 or v % 32 for v in self.input_size)):
            raise bad("input_size", "(H, W) with both sides positive multiples of 32, e.g. (256, 192)")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        return d


# --------------------------------------------------------------------------------------------
# Residual block (the bottleneck of layer1 and conv_bn are shared with STNet, in .layers)
# --------------------------------------------------------------------------------------------
class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity shortcut (widths never change inside a branch)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(channels, channels, 3), conv_bn(channels, channels, 3, act=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + x)


# --------------------------------------------------------------------------------------------
# High-resolution module: parallel branches, then the multi-scale fusion
# --------------------------------------------------------------------------------------------
class HighResolutionModule(nn.Module):
    """``BLOCKS_PER_BRANCH`` BasicBlocks on every branch, then each of the first ``num_out``
    branches receives the sum of all branches resampled to its resolution, followed by ReLU."""

    def __init__(self, widths: Sequence[int], num_out: int | None = None) -> None:
        super().__init__()
        n = len(widths)
        num_out = n if num_out is None else num_out
        if not 1 <= num_out <= n:
            raise ValueError(f"num_out={num_out} is invalid for {n} branches: expected 1..{n}")
        self.branches = nn.ModuleList(
            nn.Sequential(*[BasicBlock(c) for _ in range(BLOCKS_PER_BRANCH)]) for c in widths)
        self.fuse = fusion_layers(widths, num_out) if n > 1 else nn.ModuleList()

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        if not len(self.fuse):
            return xs
        return fuse_branches(self.fuse, xs, "nearest")


# --------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------
class HRNet(nn.Module):
    """Stem -> layer1 -> [transition -> stage] x 3 -> 1x1 head on the 1/4 branch."""

    def __init__(self, cfg: HRNetConfig | None = None, **overrides) -> None:
        super().__init__()
        cfg = replace(cfg, **overrides) if cfg is not None else HRNetConfig(**overrides)
        self.cfg = cfg
        w = cfg.widths
        self.stem = nn.Sequential(conv_bn(3, STEM_CHANNELS, 3, 2), conv_bn(STEM_CHANNELS, STEM_CHANNELS, 3, 2))
        planes = STEM_CHANNELS
        layer1_out = planes * Bottleneck.expansion
        self.layer1 = nn.Sequential(*[Bottleneck(STEM_CHANNELS if b == 0 else layer1_out, planes)
                                      for b in range(LAYER1_BLOCKS)])
        self.transitions = nn.ModuleList()
        self.stages = nn.ModuleList()
        prev: list[int] = [layer1_out]
        last = len(HRNET_STAGES) - 1
        for s, (num_modules, num_branches) in enumerate(HRNET_STAGES):
            cur = list(w[:num_branches])
            self.transitions.append(self._transition(prev, cur))
            modules = []
            for m in range(num_modules):
                final = s == last and m == num_modules - 1
                modules.append(HighResolutionModule(cur, num_out=1 if final else None))
            self.stages.append(nn.Sequential(*modules))
            prev = cur
        self.head = nn.Conv2d(w[0], cfg.num_joints, 1)
        self._init_weights()

    @staticmethod
    def _transition(prev: Sequence[int], cur: Sequence[int]) -> nn.ModuleList:
        """Existing branches keep their input (a 3x3 conv where the width changes, as after
        layer1); each new branch is a stride-2 3x3 conv of the previous stage's lowest branch."""
        layers = nn.ModuleList()
        for i, c in enumerate(cur):
            if i < len(prev):
                layers.append(conv_bn(prev[i], c, 3) if prev[i] != c else nn.Identity())
            else:
                layers.append(conv_bn(prev[-1], c, 3, 2))
        return layers

    def _init_weights(self) -> None:
        # HRNet's initialisation: N(0, 0.001) convs, unit BatchNorm, zero biases.
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(m.weight, std=INIT_STD)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def num_joints(self) -> int:
        return self.cfg.num_joints

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, "HRNet")
        xs = [self.layer1(self.stem(x))]
        for transition, stage in zip(self.transitions, self.stages):
            # new branches come from the previous stage's lowest-resolution output
            xs = [t(xs[min(i, len(xs) - 1)]) for i, t in enumerate(transition)]  # type: ignore[arg-type,var-annotated]
            xs = stage(xs)
        return self.head(xs[0])


# --------------------------------------------------------------------------------------------
# Named variants and registered builders
# --------------------------------------------------------------------------------------------
HRNET_VARIANTS: dict[str, HRNetConfig] = {
    "hrnet_w32": HRNetConfig(width=32),
    "hrnet_w48": HRNetConfig(width=48),
}

def _build(variant: str, **overrides) -> HRNet:
    # Values from --set / YAML are converted to the config fields' types (mdbs=maybe fails).
    return HRNet(replace_typed(HRNET_VARIANTS[variant], overrides, where=variant))


@register_model()
def hrnet_w32(**overrides) -> HRNet:
    return _build("hrnet_w32", **overrides)


@register_model()
def hrnet_w48(**overrides) -> HRNet:
    return _build("hrnet_w48", **overrides)
