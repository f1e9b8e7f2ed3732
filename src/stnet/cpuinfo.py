"""What this CPU can do fast, detected at run time (machines differ: Intel Xeon with AMX,
AMD EPYC with AVX512-BF16 only, older CPUs with neither).

Used to pick bf16 autocast for CPU training and bf16 inference, and to label every speed figure
with the CPU it came from.
"""
from __future__ import annotations

import functools
import platform
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CpuInfo", "cpu_info"]


@dataclass(frozen=True)
class CpuInfo:
    model: str
    cores: int
    avx512_bf16: bool
    amx_bf16: bool

    @property
    def has_bf16(self) -> bool:
        """Native bf16 arithmetic (AVX512-BF16 or AMX): bf16 autocast is then faster than fp32."""
        return self.avx512_bf16 or self.amx_bf16

    def describe(self) -> str:
        feats = [n for n, on in (("AVX512-BF16", self.avx512_bf16), ("AMX-BF16", self.amx_bf16)) if on]
        return f"{self.model} ({self.cores} cores{', ' + ', '.join(feats) if feats else ', no bf16 units'})"


def _flags_and_model() -> tuple[set[str], str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set(), platform.processor() or platform.machine()
    flags: set[str] = set()
    model = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "flags" and not flags:
            flags = set(value.split())
        elif key == "model name" and not model:
            model = value.strip()
    return flags, model or platform.machine()


@functools.lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    import os

    flags, model = _flags_and_model()
    avx512_bf16 = "avx512_bf16" in flags
    amx = "amx_bf16" in flags
    if not flags:  # no /proc/cpuinfo (macOS, Windows): ask oneDNN instead
        try:
            import torch

            avx512_bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            avx512_bf16 = False
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return CpuInfo(model=model, cores=cores, avx512_bf16=avx512_bf16, amx_bf16=amx)
