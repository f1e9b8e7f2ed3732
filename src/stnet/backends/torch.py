"""PyTorch backend: the network with BatchNorm folded, channels-last on CPU, under inference_mode."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from stnet.card import ModelCard
from stnet.models.fuse import optimize_for_inference
from stnet.models.outputs import last_stage

from .base import BackendOutput
from .fast_cuda import FastRunner

__all__ = ["TorchBackend"]


class TorchBackend:
    """Runs ``network`` on ``device`` (see :class:`stnet.backends.Backend`). The network is copied
    (BatchNorm folded into the convolutions; weights channels-last on CPU), so later changes to it
    do not reach the backend. ``fast``: on CUDA, ``auto``/``graph`` replay a CUDA graph per batch
    size (see :mod:`stnet.backends.fast_cuda`), ``compile`` uses ``torch.compile``, ``eager`` neither;
    elsewhere every mode runs eagerly."""

    name = "torch"

    def __init__(self, network: nn.Module, input_size: tuple[int, int], device: str | torch.device = "cpu",
                 fast: str = "auto") -> None:
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.device = torch.device(device)
        self.channels_last = self.device.type == "cpu"
        self.model = optimize_for_inference(network.eval(), channels_last=self.channels_last).to(self.device)
        self.runner = FastRunner(self.model, self.device, fast)
        self.card = ModelCard(input_size=self.input_size)

    def run(self, batch: np.ndarray, affine: np.ndarray | None = None) -> BackendOutput:
        return BackendOutput(heatmaps=self(batch))

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.as_tensor(batch, dtype=torch.float32).to(self.device)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            return last_stage(self.runner(x)).float().cpu().numpy()

    def __repr__(self) -> str:
        return f"TorchBackend(device={str(self.device)!r}, input_size={self.input_size})"
