"""Heatmap codecs: matched ``encode`` (keypoints -> training targets) and ``decode`` (model
heatmaps -> keypoints in crop pixels + confidences), plus DARK refinement and flip test."""
from .build import CodecConfig, HeatmapCodec, build_codec
from .dark import gaussian_blur, refine_dark
from .flip import flip_heatmaps_back, flip_test
from .msra_heatmap import MSRAHeatmap
from .udp_heatmap import UDPHeatmap

__all__ = ["UDPHeatmap", "MSRAHeatmap", "CodecConfig", "HeatmapCodec", "build_codec", "refine_dark",
           "gaussian_blur", "flip_heatmaps_back", "flip_test"]
