"""Defaults stated once. Everything that would otherwise repeat a literal imports it from here."""
from __future__ import annotations

from pathlib import Path

__all__ = ["DEFAULT_MODEL", "DEFAULT_ARCHITECTURE", "DEFAULT_INPUT_SIZE", "IMAGENET_MEAN", "IMAGENET_STD",
           "WEIGHTS_DIR", "GRAPH_METADATA_KEY"]

#: Shipped weights ``PoseEstimator()`` and ``stnet predict`` use when no model is named: COCO's 17
#: keypoints, the layout rtmlib, ultralytics, mmpose and ``stnet score`` expect (issue 24).
DEFAULT_MODEL = "stnet_1s.coco17_192x160"

#: The registered network built when only an architecture is asked for.
DEFAULT_ARCHITECTURE = "stnet_1s"

#: Crop size (H, W) when neither the model nor the user gives one: the paper's COCO setting.
DEFAULT_INPUT_SIZE: tuple[int, int] = (256, 192)

#: Input normalisation of every stnet network: RGB scaled to 0..1, then ImageNet mean/std.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

#: Folder of the weights shipped inside the package.
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

#: Key of the model card json in an exported graph: ONNX ``metadata_props``, OpenVINO IR rt_info.
GRAPH_METADATA_KEY = "stnet"
