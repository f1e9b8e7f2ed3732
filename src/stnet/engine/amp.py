"""Mixed precision: which autocast dtype ``runtime.amp`` means on a device, and the context."""
from __future__ import annotations

import contextlib

import torch

from stnet.cpuinfo import cpu_info

__all__ = ["AmpSettings", "amp_settings", "autocast"]

#: (autocast enabled, dtype, use GradScaler)
AmpSettings = tuple[bool, torch.dtype, bool]


def amp_settings(amp: str, device: torch.device) -> AmpSettings:
    """(autocast enabled, dtype, use GradScaler) for ``runtime.amp`` on ``device``."""
    if amp == "off":
        return False, torch.float32, False
    if amp == "auto" and device.type != "cuda":
        return (True, torch.bfloat16, False) if device.type == "cpu" and cpu_info().has_bf16 \
            else (False, torch.float32, False)
    if amp == "auto":
        amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if amp == "bf16":
        return True, torch.bfloat16, False
    if amp == "fp16":
        if device.type != "cuda":
            raise ValueError("runtime.amp=fp16 needs a CUDA device; use bf16 for CPU autocast")
        return True, torch.float16, True
    raise ValueError(f"runtime.amp must be auto, bf16, fp16 or off, got {amp!r}")


def autocast(device: torch.device, amp: AmpSettings) -> contextlib.AbstractContextManager:
    """``torch.autocast`` as ``amp`` says (a no-op context when it is off)."""
    enabled, dtype, _ = amp
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
