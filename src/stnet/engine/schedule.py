"""Optimiser, per-iteration learning-rate schedule, and the epoch plan a time budget sets."""
from __future__ import annotations

import math
import time
from collections.abc import Sequence

import torch
import torch.nn as nn

from .config import TrainConfig

__all__ = ["EpochPlan", "build_optimizer", "build_scheduler"]


def build_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    o = cfg.optim
    cls = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
    params = list(model.parameters())
    return cls(params, lr=o.lr, weight_decay=o.weight_decay, betas=(o.betas[0], o.betas[1]), eps=o.eps,
               fused=fused_supported(params) or None)


def fused_supported(params: Sequence[torch.Tensor]) -> bool:
    """Whether torch's single-kernel Adam can update ``params``. On CPU torch otherwise runs its
    per-tensor loop (``foreach`` is a CUDA-only default): several elementwise passes over each of
    STNet's ~480 tensors, each a separate dispatch."""
    return bool(params) and all(p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point for p in params)


class EpochPlan:
    """How far the schedule has come and how many epochs the run has.

    Without a budget: ``schedule.epochs`` epochs, progress counted in iterations. With
    ``schedule.time_budget_min``: progress is the fraction of the training time spent, so the decay
    follows the wall clock whatever the speed (a machine that gets busier mid-run still ends its
    decay at the budget), and the epoch count is re-planned after every epoch from the last
    epoch's time, for logging and for knowing which epoch is the last."""

    def __init__(self, cfg: TrainConfig, epochs: int | None = None, elapsed_s: float = 0.0) -> None:
        s = cfg.schedule
        self.max_epochs = s.epochs
        self.budget_s = float(s.time_budget_min) * 60.0 if s.time_budget_min else None
        self.epochs = int(epochs) if epochs else s.epochs
        self.elapsed_before = float(elapsed_s)  # wall clock of earlier sessions of this run
        self.started = time.perf_counter()
        self.epoch_times: list[float] = []
        self.reserve_s = 0.0  # kept free at the end for the final validation and saving

    def start_clock(self) -> None:
        """Start this session's clock now: building the run and checking it before training are
        not training time, so they do not eat into the budget."""
        self.started = time.perf_counter()

    def progress(self, it: int, iters_per_epoch: int) -> float:
        """Fraction of the schedule done at iteration ``it`` (0..1)."""
        if self.budget_s is None:
            return min(it / max(self.epochs * iters_per_epoch, 1), 1.0)
        return min(self.elapsed_s / max(self.budget_s - self.reserve_s, 1e-9), 1.0)

    @property
    def elapsed_s(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.started

    def deadline(self, reserve_s: float) -> float | None:
        """``perf_counter`` time at which training must stop to leave ``reserve_s`` for validation
        and saving; None without a budget."""
        if self.budget_s is None:
            return None
        return self.started + self.budget_s - self.elapsed_before - reserve_s

    def replan(self, epochs_done: int, epoch_s: float) -> None:
        self.epoch_times.append(epoch_s)
        if self.budget_s is None:
            return
        # The last epoch's time, not a mean: the load of a shared machine changes during a run.
        more = int(max(self.budget_s - self.elapsed_s, 0.0) // max(epoch_s, 1e-9))
        self.epochs = max(epochs_done, min(self.max_epochs, epochs_done + more))


def build_scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer, iters_per_epoch: int,
                    plan: EpochPlan | None = None) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-iteration LR factor: linear warm-up x decay (``gamma ** milestones passed``, or cosine /
    linear to ``min_lr_ratio`` over the plan's epochs)."""
    s = cfg.schedule
    plan = plan or EpochPlan(cfg)
    milestones = sorted(s.milestones)
    ipe = max(iters_per_epoch, 1)

    def factor(it: int) -> float:
        if s.decay == "step" and plan.budget_s is None:
            f = s.gamma ** sum(it // ipe >= m for m in milestones)
        elif s.decay == "step":  # milestones at the same fractions of the budget
            f = s.gamma ** sum(plan.progress(it, ipe) >= m / s.epochs for m in milestones)
        else:
            t = plan.progress(it, ipe)
            shape = 0.5 * (1.0 + math.cos(math.pi * t)) if s.decay == "cosine" else 1.0 - t
            f = s.min_lr_ratio + (1.0 - s.min_lr_ratio) * shape
        if s.warmup_iters and it < s.warmup_iters:
            f *= s.warmup_ratio + (1.0 - s.warmup_ratio) * it / s.warmup_iters
        return f

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
