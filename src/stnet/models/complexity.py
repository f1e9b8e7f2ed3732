"""Parameter and GFLOPs counting.

Default convention ``"hrnet"``: the model summary of the HRNet code base, which HRNet, Lite-HRNet
and STNet report in their tables. Only convolution, transposed convolution and linear layers count;
each contributes multiply-accumulates = weight elements x output spatial elements (a transposed
convolution is therefore counted at its *output* resolution); BatchNorm, activations, pooling,
interpolation and element-wise ops count zero; the total is divided by 2**30. This reproduces
HRNet-W32 (28.5M / 7.1 GFLOPs at 256x192, 16.0 at 384x288).

``"macs"`` counts the same layers but divides by 1e9 (the "GMACs" of most other tools).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn

__all__ = ["Complexity", "count_complexity", "CONVENTIONS"]

CONVENTIONS = {
    "hrnet": "HRNet model summary: conv/deconv/linear multiply-accumulates (deconv at output size) / 2**30",
    "macs": "conv/deconv/linear multiply-accumulates / 1e9",
}


@dataclass(frozen=True)
class Complexity:
    params: int
    macs: int
    gflops: float
    convention: str
    input_size: tuple[int, int]

    def as_dict(self) -> dict:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        d["convention_description"] = CONVENTIONS[self.convention]
        return d


def _layer_macs(module: nn.Module, output: torch.Tensor) -> int:
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d)):
        return module.weight.numel() * int(torch.tensor(output.shape[2:]).prod())
    if isinstance(module, nn.Linear):
        return output.numel() // output.shape[0] * module.in_features
    return 0


@torch.no_grad()
def count_complexity(
    model: nn.Module,
    input_size: tuple[int, int] = (256, 192),
    convention: str = "hrnet",
    in_channels: int = 3,
) -> Complexity:
    """Count parameters and GFLOPs of ``model`` for one (1, C, H, W) input."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {sorted(CONVENTIONS)}, got {convention!r}")
    h, w = input_size
    total = 0

    def hook(module, _inputs, output):
        nonlocal total
        # batch is 1, so MACs of one sample
        total += _layer_macs(module, output)

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Linear))]
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        model(torch.zeros(1, in_channels, h, w, device=device))
    finally:
        for hd in handles:
            hd.remove()
        model.train(was_training)
    params = sum(p.numel() for p in model.parameters())
    scale = 2 ** 30 if convention == "hrnet" else 1e9
    return Complexity(params=params, macs=total, gflops=total / scale, convention=convention,
                      input_size=(h, w))
