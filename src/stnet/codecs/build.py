"""Codec configuration and factory."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

from .msra_heatmap import MSRAHeatmap
from .udp_heatmap import UDPHeatmap

__all__ = ["CodecConfig", "build_codec", "HeatmapCodec"]

HeatmapCodec = UDPHeatmap | MSRAHeatmap


@dataclass
class CodecConfig:
    """Heatmap codec settings (the crop size itself lives in ``DataConfig.input_size``).

    ``kind="udp"`` also selects the unbiased crop warp and flip test; ``"msra"`` the classic ones.
    ``refine=None`` picks the codec's default (DARK for UDP, quarter offset for MSRA).
    """

    kind: Literal["udp", "msra"] = "udp"
    sigma: float = 2.0
    heatmap_stride: int = 4
    refine: Literal["dark", "quarter", "none"] | None = None
    blur_kernel_size: int = 11


def build_codec(cfg: CodecConfig | None = None, input_size: Sequence[int] = (256, 192)) -> HeatmapCodec:
    """Codec for ``input_size`` ``(H, W)`` with heatmaps ``input_size / cfg.heatmap_stride``."""
    cfg = cfg or CodecConfig()
    h, w = int(input_size[0]), int(input_size[1])
    s = int(cfg.heatmap_stride)
    if s < 1 or h % s or w % s:
        raise ValueError(f"input_size {(h, w)} is not divisible by heatmap_stride {s}")
    common: dict[str, Any] = dict(input_size=(h, w), heatmap_size=(h // s, w // s), sigma=cfg.sigma,
                                  blur_kernel_size=cfg.blur_kernel_size)
    if cfg.kind == "udp":
        return UDPHeatmap(refine=cfg.refine or "dark", **common)
    if cfg.kind == "msra":
        return MSRAHeatmap(refine=cfg.refine or "quarter", **common)
    raise ValueError(f"unknown codec kind {cfg.kind!r}; expected 'udp' or 'msra'")
