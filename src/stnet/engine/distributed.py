"""Processes and devices: torchrun's environment, the process group, reductions across ranks, seeding.

The same code runs on CPU, one GPU or under ``torchrun --nproc_per_node N`` (DDP: NCCL on GPU,
gloo on CPU); every helper here is a no-op in a single process.
"""
from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

__all__ = ["DistInfo", "check_device", "setup_distributed", "cleanup_distributed", "all_reduce_sum",
           "broadcast_buffers", "deadline_passed", "unwrap", "seed_everything"]


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def say(self, msg: str) -> None:
        """Print on rank 0 only."""
        if self.is_main:
            print(msg, flush=True)


def check_device(device: str) -> None:
    """ValueError (one line) unless ``device`` is ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` with an
    existing GPU ``N``."""
    kind, _, index = device.partition(":")
    if kind not in ("auto", "cpu", "cuda") or (index and (kind != "cuda" or not index.isdigit())):
        raise ValueError(f"runtime.device={device!r}: expected auto, cpu, cuda or cuda:N")
    if kind == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ValueError(f"runtime.device={device!r} but CUDA is not available (use cpu or auto)")
        if index and int(index) >= n:
            raise ValueError(f"runtime.device={device!r} but this machine has {n} GPU(s): cuda:0"
                             + (f" to cuda:{n - 1}" if n > 1 else ""))


def setup_distributed(device: str = "auto") -> DistInfo:
    """Read torchrun's env vars; with WORLD_SIZE > 1 initialise the process group (NCCL on CUDA,
    gloo on CPU). ``device``: ``auto`` (CUDA when available), ``cpu``, ``cuda``."""
    rank = int(os.environ.get("RANK", 0))
    world = int(os.environ.get("WORLD_SIZE", 1))
    local = int(os.environ.get("LOCAL_RANK", 0))
    check_device(device)
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if use_cuda:
        dev = torch.device("cuda", local) if device in ("auto", "cuda") else torch.device(device)
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistInfo(rank, world, local, dev)


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sum over ranks (the values unchanged in a single process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def broadcast_buffers(model: nn.Module) -> None:
    """Rank 0's buffers (BatchNorm running statistics) on every rank."""
    for b in model.buffers():
        dist.broadcast(b.data, 0)


def deadline_passed(deadline: float, device: torch.device) -> bool:
    """Whether ``deadline`` (a ``time.perf_counter()`` value) has passed, agreed by every rank (they
    must stop at the same step)."""
    flag = [1.0 if time.perf_counter() >= deadline else 0.0]
    return all_reduce_sum(flag, device)[0] > 0


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a ``DistributedDataParallel`` wrapper (the model itself otherwise)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed python, numpy and torch; ``deterministic`` also asks torch/cuDNN for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    else:
        torch.backends.cudnn.benchmark = True
