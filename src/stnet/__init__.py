"""stnet: STNet (Stair Network) top-down 2D human pose estimation.

Conventions used everywhere (see docs/conventions.md): image sizes are (H, W); keypoints are
(N, K, 2) arrays of (x, y) in image pixels; heatmaps are (B, K, h, w).
"""
from .models import STNet, STNetConfig, create_model, list_models, register_model
from .inference import PoseEstimator, PoseResult, Results

__version__ = "0.1.0"
__all__ = ["STNet", "STNetConfig", "PoseEstimator", "PoseResult", "Results", "create_model", "list_models",
           "register_model", "__version__"]
