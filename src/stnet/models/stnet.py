"""STNet: Stair Network (Jiang et al., "Towards Simple and Accurate Human Pose Estimation with
Stair Network"). Section III of the paper is the specification; docs/architecture.md maps every
module below to the paper's figures and equations and says which choices are fits to its tables.

Layout follows timm's model files: a config dataclass, the blocks, the network, a table of named
variants and one-line registered builders. Blocks shared with HRNet (conv-BN, squeeze-excitation,
bottleneck, multi-scale fusion) are in :mod:`.layers`; the STC structures A-D of the paper's
ablation (Fig. 7) are at the end of this file, off the path of the network as published.

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
from .layers import (BN_MOMENTUM, Bottleneck, DepthwiseConv2d, MultiScaleFusion, SqueezeExcite, check_images, conv_bn,
                     resize)

__all__ = ["STNetConfig", "STNet", "StairCell", "AblationStairCell", "make_stair_cell", "StairUnit", "StairFusion",
           "MDBS", "STEM_CHANNELS", "stc_channels", "STNET_VARIANTS"]

STEM_CHANNELS = 256
STC_STRUCTURES = ("A", "B", "C", "D", "E")
# STCs per branch in each of the three sub-stages of a unit: (2,1), (1,1,1), (1,1,1,1) sums to the
# paper's (4, 3, 2, 1) cells for branches 1-4 (Section III-B).
UNIT_LAYOUT: tuple[tuple[int, ...], ...] = ((2, 1), (1, 1, 1), (1, 1, 1, 1))


@dataclass(frozen=True)
class STNetConfig:
    """Every switch of the paper's tables, plus the choices the paper leaves open.

    Paper switches: ``num_stages`` (Table IV/XI), ``halve_channels`` (Table I, "*" rows),
    ``mix_attention`` (Table III), ``mdbs`` / ``stf`` (Table X), ``stc_branches`` (Table IX),
    ``stc_structure`` (Fig. 7 / Eq. 8 / Table VIII).
    Open choices (defaults fitted to the paper's parameter/GFLOPs counts, see docs/architecture.md):
    ``stc_post_kernel``, ``se_reduction``, ``mdbs_growth``, ``stf_reductions``, ``stem_se_reduction``.
    """

    num_stages: int = 1
    width: int = 32
    num_joints: int = 17
    input_size: tuple[int, int] = (256, 192)  # (H, W); any multiple of 32 runs, this one is checked
    halve_channels: bool = True
    mix_attention: bool = True
    mdbs: bool = True
    stf: bool = True
    stc_branches: int = 4
    stc_structure: str = "E"
    stc_post_kernel: int = 3
    se_reduction: int = 2
    mdbs_growth: int | None = None  # None: half the first branch's channels (paper, Sec. III-C)
    stf_reductions: tuple[int, ...] = (4, 8, 16, 32)
    stem_se_reduction: int = 8  # 0 disables SE in the stem bottlenecks
    upsample_mode: str = "bilinear"
    # Weight init: "kaiming" (He normal, fan-out) trains from scratch several times faster early on
    # than "hrnet" (N(0, 0.001) everywhere, the HRNet code base's), which sits on the predict-zero
    # plateau for hundreds of iterations; the paper does not say. The head is N(0, 0.001) in both.
    init: str = "kaiming"

    def __post_init__(self) -> None:
        # Normalise sequences coming from YAML/CLI so configs compare and hash equal.
        object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))
        object.__setattr__(self, "stf_reductions", tuple(int(v) for v in self.stf_reductions))
        object.__setattr__(self, "stc_structure", str(self.stc_structure).upper())
        self.validate()

    @property
    def widths(self) -> tuple[int, int, int, int]:
        return (self.width, 2 * self.width, 4 * self.width, 8 * self.width)

    @property
    def growth(self) -> int:
        return self.mdbs_growth if self.mdbs_growth is not None else self.width // 2

    def validate(self) -> None:  # noqa: C901 - one flat check per field, in field order
        def bad(name: str, allowed: str) -> ValueError:
            return ValueError(f"STNetConfig.{name}={getattr(self, name)!r} is invalid: expected {allowed}")

        def is_int(v) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        if not is_int(self.num_stages) or not 1 <= self.num_stages <= 8:
            raise bad("num_stages", "an integer in 1..8 (the paper uses 1, 2, 3)")
        if not is_int(self.width) or self.width < 8 or self.width % 8:
            raise bad("width", "a positive multiple of 8 (the paper uses 32)")
        if not is_int(self.num_joints) or self.num_joints < 1:
            raise bad("num_joints", "a positive integer (17 COCO, 16 MPII, 14 LSP)")
        if len(self.input_size) != 2 or any(v <= 0 or v % 32 for v in self.input_size):
            raise bad("input_size", "(H, W) with both sides positive multiples of 32, e.g. (256, 192)")
        if not is_int(self.stc_branches) or not 1 <= self.stc_branches <= 6:
            raise bad("stc_branches", "an integer in 1..6 (Table IX)")
        if self.stc_structure not in STC_STRUCTURES:
            raise bad("stc_structure", f"one of {', '.join(STC_STRUCTURES)} (Fig. 7; E is the paper's)")
        if self.stc_post_kernel not in (1, 3):
            raise bad("stc_post_kernel", "1 or 3")
        if not is_int(self.se_reduction) or self.se_reduction < 1:
            raise bad("se_reduction", "a positive integer")
        if self.mdbs_growth is not None and (not is_int(self.mdbs_growth) or self.mdbs_growth < 1):
            raise bad("mdbs_growth", "None or a positive integer")
        if len(self.stf_reductions) != 4 or any(r < 1 for r in self.stf_reductions):
            raise bad("stf_reductions", "four positive integers, one per branch")
        if not is_int(self.stem_se_reduction) or self.stem_se_reduction < 0:
            raise bad("stem_se_reduction", "a non-negative integer (0 disables)")
        if self.upsample_mode not in ("bilinear", "nearest"):
            raise bad("upsample_mode", "'bilinear' or 'nearest'")
        if self.init not in ("kaiming", "hrnet"):
            raise bad("init", "'kaiming' or 'hrnet'")
        for w in self.widths:
            stc_channels(w, self.stc_branches, self.stc_structure, self.halve_channels)
        for w, r in zip(self.widths, self.stf_reductions):
            if w // r < 1:
                raise bad("stf_reductions", f"reductions no larger than the branch widths {self.widths}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        d["stf_reductions"] = list(self.stf_reductions)
        return d


def stc_channels(channels: int, branches: int, structure: str = "E", halve: bool = True) -> list[int]:
    """Output channels of each atrous branch of a STair Cell with ``channels`` in/out.

    Halving (structures A and E, Eq. 1 / Table II): C/2, C/4, ..., and the last branch repeats the
    previous width, so the concatenation has C channels (32 -> 16, 8, 4, 4; with 6 branches the
    last two have 1 channel, as Sec. IV-C says). Without halving (Table I "*") every branch keeps C.
    Structures B-D split the channels evenly (Eq. 8).
    """
    if structure in ("A", "E"):
        if not halve:
            return [channels] * branches
        if branches == 1:
            return [channels]
        out = [channels >> (i + 1) for i in range(branches - 1)]
        out.append(out[-1])
        if out[-1] < 1 or channels % (1 << (branches - 1)):
            raise ValueError(
                f"STNetConfig.stc_branches={branches} is invalid for a {channels}-channel STair Cell: "
                f"halving needs channels divisible by {1 << (branches - 1)}")
        return out
    base, rem = divmod(channels, branches)
    if base < 1:
        raise ValueError(f"STNetConfig.stc_branches={branches} is invalid for {channels} channels")
    return [base + (1 if i < rem else 0) for i in range(branches)]


# --------------------------------------------------------------------------------------------
# STNet's own layers (the shared ones are in .layers)
# --------------------------------------------------------------------------------------------
def sep_conv(cin: int, cout: int, dilation: int) -> nn.Sequential:
    """Depthwise-separable atrous 3x3 (Eq. 2): depthwise with dilation, then pointwise, BN, ReLU."""
    return nn.Sequential(
        DepthwiseConv2d(cin, cin, 3, 1, dilation, dilation=dilation, groups=cin, bias=False),
        nn.Conv2d(cin, cout, 1, bias=False),
        nn.BatchNorm2d(cout, momentum=BN_MOMENTUM),
        nn.ReLU(inplace=True),
    )


def preact_conv1x1(cin: int, cout: int) -> nn.Sequential:
    """DenseNet's composite op H (BN, ReLU, 1x1 conv) used by MDBS (Eqs. 4-7)."""
    return nn.Sequential(nn.BatchNorm2d(cin, momentum=BN_MOMENTUM), nn.ReLU(inplace=True),
                         nn.Conv2d(cin, cout, 1, bias=False))


class SpatialAttention(nn.Module):
    """Two masks only (channel mean and max) -> 3x3 conv -> sigmoid (Sec. III-A b)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, 3, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)
        return x * torch.sigmoid(self.conv(m))


# --------------------------------------------------------------------------------------------
# STair Cell (Sec. III-A, Fig. 4, Table II, Eqs. 1-2, 8)
# --------------------------------------------------------------------------------------------
class StairCell(nn.Module):
    """STC: 1x1 -> atrous branches (structure E: a stair, each fed by the previous one, dilation
    1, 2, 3, ...) -> concat -> post conv -> mix attention (SE then spatial) -> + input.
    (:func:`make_stair_cell` builds the ablation structures A-D instead when the config asks.)"""

    def __init__(self, channels: int, cfg: STNetConfig) -> None:
        super().__init__()
        outs = stc_channels(channels, cfg.stc_branches, cfg.stc_structure, cfg.halve_channels)
        self.pre = conv_bn(channels, channels, 1)
        self.branches = self._build_branches(channels, outs)
        self.post = conv_bn(sum(outs), channels, cfg.stc_post_kernel, act=False)
        self.se = SqueezeExcite(channels, cfg.se_reduction) if cfg.mix_attention else nn.Identity()
        self.sa = SpatialAttention() if cfg.mix_attention else nn.Identity()

    def _build_branches(self, channels: int, outs: list[int]) -> nn.ModuleList:
        # stair: branch i reads branch i-1 (Eq. 1: 1/2 + 1/8 + 1/32 + 1/64 of T)
        cins = [channels] + outs[:-1]
        return nn.ModuleList(sep_conv(cin, c, dilation=i + 1) for i, (cin, c) in enumerate(zip(cins, outs)))

    def features(self, y: torch.Tensor) -> list[torch.Tensor]:
        """The branch outputs, in order, for the ``pre`` output ``y``."""
        feats = []
        for b in self.branches:
            y = b(y)
            feats.append(y)
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.features(self.pre(x))
        out = self.post(torch.cat(feats, 1) if len(feats) > 1 else feats[0])
        out = self.sa(self.se(out))
        return out + x  # no final ReLU: the fusion that follows applies one


def make_stair_cell(channels: int, cfg: STNetConfig) -> StairCell:
    """The paper's STC (structure E), or an ablation structure A-D when ``cfg.stc_structure`` says so."""
    return StairCell(channels, cfg) if cfg.stc_structure == "E" else AblationStairCell(channels, cfg)


# --------------------------------------------------------------------------------------------
# STair Unit (Sec. III-B, Fig. 5): four branches, (4, 3, 2, 1) STCs, four multi-scale fusions
# --------------------------------------------------------------------------------------------
class StairUnit(nn.Module):
    """STU: transition to branches 1-2, three sub-stages of STCs with a fusion after each (a new
    branch is opened from the lowest one before sub-stages 2 and 3), and a fourth fusion that
    gathers every branch into branch 1 (skipped when STair Fusion takes the branches instead)."""

    def __init__(self, in_channels: int, cfg: STNetConfig, gather: bool = True) -> None:
        super().__init__()
        w = cfg.widths
        # As in HRNet's transition layers, a branch whose width already matches needs no conv
        # (unit 2+ without MDBS reads the previous unit's 32-channel output directly).
        first = nn.Identity() if in_channels == w[0] else conv_bn(in_channels, w[0], 3)
        self.transition = nn.ModuleList([first, conv_bn(in_channels, w[1], 3, 2)])
        self.substages = nn.ModuleList()
        self.fusions = nn.ModuleList()
        self.new_branch = nn.ModuleList()
        for k, cells in enumerate(UNIT_LAYOUT):
            nb = len(cells)
            self.substages.append(nn.ModuleList(
                nn.Sequential(*[make_stair_cell(w[b], cfg) for _ in range(cells[b])]) for b in range(nb)))
            self.fusions.append(MultiScaleFusion(w[:nb], nb, cfg.upsample_mode))
            if k + 1 < len(UNIT_LAYOUT):
                self.new_branch.append(conv_bn(w[nb - 1], w[nb], 3, 2))
        self.gather = MultiScaleFusion(w, 1, cfg.upsample_mode) if gather else None

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        xs = [t(x) for t in self.transition]
        for k, (cells, fuse) in enumerate(zip(self.substages, self.fusions)):
            xs = fuse([c(t) for c, t in zip(cells, xs)])  # type: ignore[call-overload]  # ModuleList cells
            if k < len(self.new_branch):
                xs.append(self.new_branch[k](xs[-1]))
        if self.gather is not None:
            return self.gather(xs)
        return xs


# --------------------------------------------------------------------------------------------
# Multi-stage Dual Branch Structure (Sec. III-C, Eqs. 5-7)
# --------------------------------------------------------------------------------------------
class MDBS(nn.Module):
    """Keeps the consolidation sum C_i and the excavation list E_i across stages.

    ``step(i, x, cons, exc)`` applies stage ``i``'s composite op H_i (BN-ReLU-1x1 to width + n
    channels), adds its first ``width`` channels to the running consolidation branch (Eq. 5),
    prepends its last n channels to the excavation branch (Eq. 6) and returns C_i || E_i (Eq. 7).
    Stage 0 is the stem output; :class:`STNet` calls ``step`` once per stage.
    """

    def __init__(self, in_channels: Sequence[int], width: int, growth: int) -> None:
        super().__init__()
        self.width = width
        self.ops = nn.ModuleList(preact_conv1x1(c, width + growth) for c in in_channels)

    @staticmethod
    def out_channels(width: int, growth: int, step: int) -> int:
        return width + growth * (step + 1)

    def step(self, i: int, x: torch.Tensor, cons: torch.Tensor | None, exc: list[torch.Tensor]
             ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """(C_i, E_i, C_i || E_i) from stage ``i``'s output ``x`` and C_{i-1} (None at i = 0), E_{i-1}."""
        h = self.ops[i](x)
        c, e = h[:, : self.width], h[:, self.width:]
        cons = c if cons is None else cons + c
        exc = [e] + exc
        return cons, exc, torch.cat([cons] + exc, 1)


# --------------------------------------------------------------------------------------------
# STair Fusion (Sec. III-D, Fig. 6)
# --------------------------------------------------------------------------------------------
class TransformBlock(nn.Module):
    """Four light layers turning a downsampled image into branch features: 3x3, 1x1 (/r), 3x3, 1x1."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        mid = channels // reduction
        self.body = nn.Sequential(conv_bn(3, channels, 3), conv_bn(channels, mid, 1),
                                  conv_bn(mid, mid, 3), conv_bn(mid, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class StairFusion(nn.Module):
    """STF: image pyramid (max-pooled to 1/4 ... 1/32) -> transformation blocks -> concatenated
    with the last unit's four branches -> enlarged from 1/32 to 1/4 by deconvolution plus
    upsampling, merging each scale on the way -> one map at 1/4 with the first branch's width."""

    def __init__(self, cfg: STNetConfig) -> None:
        super().__init__()
        w = cfg.widths
        self.mode = cfg.upsample_mode
        self.transforms = nn.ModuleList(TransformBlock(c, r) for c, r in zip(w, cfg.stf_reductions))
        self.merge = nn.ModuleList(conv_bn(2 * c, c, 3) for c in w)
        self.deconv = nn.ModuleList(
            nn.Sequential(nn.ConvTranspose2d(w[b], w[b - 1], 4, 2, 1, bias=False),
                          nn.BatchNorm2d(w[b - 1], momentum=BN_MOMENTUM), nn.ReLU(inplace=True))
            for b in range(3, 0, -1))
        self.up_proj = nn.ModuleList(nn.Conv2d(w[b], w[b - 1], 1, bias=False) for b in range(3, 0, -1))
        self.reduce = nn.ModuleList(conv_bn(2 * w[b - 1], w[b - 1], 1) for b in range(3, 0, -1))

    def forward(self, image: torch.Tensor, branches: list[torch.Tensor]) -> torch.Tensor:
        img = F.max_pool2d(F.max_pool2d(image, 2, 2), 2, 2)  # 1/4
        scales = []
        for b, (t, m) in enumerate(zip(self.transforms, self.merge)):
            if b:
                img = F.max_pool2d(img, 2, 2)
            scales.append(m(torch.cat([branches[b], t(img)], 1)))
        y = scales[3]
        for k, b in enumerate(range(3, 0, -1)):
            size = scales[b - 1].shape[-2:]
            up = self.deconv[k](y) + self.up_proj[k](resize(y, size, self.mode))
            y = self.reduce[k](torch.cat([up, scales[b - 1]], 1))
        return y


# --------------------------------------------------------------------------------------------
# Stem: two stride-2 3x3 convs and HRNet's layer1 (4 bottlenecks) with squeeze-excitation
# --------------------------------------------------------------------------------------------
class Stem(nn.Module):
    def __init__(self, se_reduction: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(conv_bn(3, 64, 3, 2), conv_bn(64, 64, 3, 2))
        self.layer1 = nn.Sequential(*[Bottleneck(64 if i == 0 else STEM_CHANNELS, 64, se_reduction)
                                      for i in range(4)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer1(self.convs(x))


# --------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------
class STNet(nn.Module):
    """Stem -> [STU -> MDBS] x num_stages (STF inside the last stage) -> head (Fig. 2)."""

    def __init__(self, cfg: STNetConfig | None = None, **overrides) -> None:
        super().__init__()
        cfg = replace(cfg, **overrides) if cfg is not None else STNetConfig(**overrides)
        self.cfg = cfg
        w0, n = cfg.width, cfg.growth
        self.stem = Stem(cfg.stem_se_reduction)
        # Unit 1 reads the stem output itself; MDBS's H_0 on the stem output only seeds C_0 / E_0
        # (Eqs. 5-6). This matches the author's development code and Table X's MDBS rows; feeding
        # unit 1 with C_0 || E_0 (a literal reading of Eq. 7 at i = 0) undercounts them by 0.2M.
        unit_in = [STEM_CHANNELS] + [MDBS.out_channels(w0, n, s) if cfg.mdbs else w0
                                     for s in range(1, cfg.num_stages)]
        last_gather = not cfg.stf
        self.units = nn.ModuleList(
            StairUnit(c, cfg, gather=(s < cfg.num_stages - 1) or last_gather) for s, c in enumerate(unit_in))
        self.fusion = StairFusion(cfg) if cfg.stf else None
        self.mdbs: MDBS | None
        if cfg.mdbs:
            self.mdbs = MDBS([STEM_CHANNELS] + [w0] * cfg.num_stages, w0, n)
            head_in = MDBS.out_channels(w0, n, cfg.num_stages)
        else:
            self.mdbs = None
            head_in = w0
        self.neck = preact_conv1x1(head_in, w0)
        self.head = nn.Conv2d(w0, cfg.num_joints, 1)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                if self.cfg.init == "hrnet":
                    nn.init.normal_(m.weight, std=0.001)
                else:
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # Small heatmap head: predictions start near zero, the value of most target pixels.
        nn.init.normal_(self.head.weight, std=0.001)

    @property
    def num_joints(self) -> int:
        return self.cfg.num_joints

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, "STNet")
        feat = self.stem(x)
        cons: torch.Tensor | None = None
        exc: list[torch.Tensor] = []
        if self.mdbs is not None:
            cons, exc, _ = self.mdbs.step(0, feat, cons, exc)
        last = len(self.units) - 1
        for s, unit in enumerate(self.units):
            out = unit(feat)
            out = self.fusion(x, out) if (s == last and self.fusion is not None) else out[0]
            if self.mdbs is not None:
                cons, exc, feat = self.mdbs.step(s + 1, out, cons, exc)
            else:
                feat = out
        return self.head(self.neck(feat))


# --------------------------------------------------------------------------------------------
# Named variants and registered builders
# --------------------------------------------------------------------------------------------
STNET_VARIANTS: dict[str, STNetConfig] = {
    "stnet_1s": STNetConfig(num_stages=1),
    "stnet_2s": STNetConfig(num_stages=2),
    "stnet_3s": STNetConfig(num_stages=3),
}

def _build(variant: str, **overrides) -> STNet:
    # Values from --set / YAML are converted to the config fields' types (mdbs=maybe fails).
    return STNet(replace_typed(STNET_VARIANTS[variant], overrides, where=variant))


@register_model()
def stnet_1s(**overrides) -> STNet:
    return _build("stnet_1s", **overrides)


@register_model()
def stnet_2s(**overrides) -> STNet:
    return _build("stnet_2s", **overrides)


@register_model()
def stnet_3s(**overrides) -> STNet:
    return _build("stnet_3s", **overrides)


# --------------------------------------------------------------------------------------------
# Ablation only: STC structures A-D (Fig. 7, Eq. 8, Table VIII)
# --------------------------------------------------------------------------------------------
class AblationStairCell(StairCell):
    """STC with structure A-D: every atrous branch reads the cell input (Eq. 8 A-C: cost T). C sums
    each branch into the next before the concat; D adds a second row of atrous convs on the first
    row's concat, summed in (7/4 T). Only for reproducing the paper's ablation."""

    def __init__(self, channels: int, cfg: STNetConfig) -> None:
        if cfg.stc_structure not in ("A", "B", "C", "D"):
            raise ValueError(f"AblationStairCell is for structures A-D, got {cfg.stc_structure!r}")
        super().__init__(channels, cfg)
        self.structure = cfg.stc_structure
        outs = stc_channels(channels, cfg.stc_branches, cfg.stc_structure, cfg.halve_channels)
        self.second_row = nn.ModuleList()
        if self.structure == "D":
            for i, c in enumerate(outs[1:], start=1):
                self.second_row.append(sep_conv(sum(outs), c, dilation=i + 1))

    def _build_branches(self, channels: int, outs: list[int]) -> nn.ModuleList:
        return nn.ModuleList(sep_conv(channels, c, dilation=i + 1) for i, c in enumerate(outs))

    def features(self, y: torch.Tensor) -> list[torch.Tensor]:
        feats = [b(y) for b in self.branches]
        if self.structure == "C":  # hierarchical sum across branches before concat
            for i in range(1, len(feats)):
                feats[i] = feats[i] + feats[i - 1][:, : feats[i].shape[1]]
        elif self.structure == "D":
            first = torch.cat(feats, 1)
            for i, b in enumerate(self.second_row, start=1):
                feats[i] = feats[i] + b(first)
        return feats
