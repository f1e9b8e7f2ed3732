"""What a training run changes epoch by epoch (:class:`RunState`): built from the config, restored
from a checkpoint, and written to one."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from stnet.card import card_from_checkpoint
from stnet.data.skeletons import Skeleton, skeleton_to_dict
from stnet.model_files import CheckpointError

from .amp import AmpSettings, amp_settings
from .build import build_model
from .checkpoint import rng_state, save_checkpoint, set_rng_state
from .config import TrainConfig, config_to_dict
from .distributed import DistInfo, unwrap
from .ema import ModelEMA
from .evaluate import metric_key
from .losses import HeatmapLoss
from .schedule import EpochPlan, build_optimizer, build_scheduler

__all__ = ["RunState", "build_run_state", "restore_run_state", "save_run_state"]


@dataclass
class RunState:
    """Everything the epoch loop changes, in one place (what a checkpoint stores)."""

    model: nn.Module  # DDP-wrapped under torchrun
    ema: ModelEMA | None
    loss_fn: HeatmapLoss
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    plan: EpochPlan
    amp: AmpSettings
    metric_name: str
    skeleton: Skeleton | None = None  # stored in every checkpoint: the model carries its layout
    start_epoch: int = 0
    iteration: int = 0
    best: float = -math.inf

    @property
    def best_or_none(self) -> float | None:
        return self.best if self.best > -math.inf else None


def build_run_state(cfg: TrainConfig, info: DistInfo, num_joints: int, iters_per_epoch: int,
                    state: dict[str, Any] | None, skeleton: Skeleton | None = None) -> RunState:
    """Model (channels-last, SyncBN, DDP as configured), EMA, loss, optimiser, schedule, scaler."""
    rt = cfg.runtime
    model = build_model(cfg, num_joints, skeleton).to(info.device)
    if rt.channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    if cfg.loss.intermediate_supervision:
        with torch.no_grad():
            probe = model.eval()(torch.zeros(1, 3, *cfg.input_size, device=info.device))
        if not isinstance(probe, (list, tuple)):
            raise ValueError(f"loss.intermediate_supervision=true but {cfg.model.name} has a single "
                             "prediction head (STNet supervises only its final output)")
    if info.distributed and rt.sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ema = ModelEMA(model, rt.ema_decay) if rt.ema_decay else None
    if info.distributed:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[info.device.index] if info.device.type == "cuda" else None)
    optimizer = build_optimizer(cfg, model)
    plan = EpochPlan(cfg, epochs=state.get("planned_epochs") if state else None,
                     elapsed_s=float(state.get("elapsed_s") or 0.0) if state else 0.0)
    amp = amp_settings(rt.amp, info.device)
    return RunState(model=model, ema=ema,
                loss_fn=HeatmapLoss(cfg.loss.use_target_weight, cfg.loss.ohkm_topk if cfg.loss.ohkm else None),
                optimizer=optimizer, scheduler=build_scheduler(cfg, optimizer, iters_per_epoch, plan),
                scaler=torch.amp.GradScaler(info.device.type, enabled=amp[2]), plan=plan, amp=amp,
                metric_name=metric_key(cfg)[1])


def restore_run_state(run: RunState, state: dict[str, Any], path: Path | None) -> None:
    """Continue exactly where the checkpoint left off (weights, optimiser, schedule, RNGs)."""
    try:
        unwrap(run.model).load_state_dict(state["model"])
    except RuntimeError as e:  # e.g. a checkpoint of another skeleton (head size) or model
        raise CheckpointError(f"--resume {path}: the checkpoint's weights do not fit this run's model "
                              f"({str(e).splitlines()[-1].strip()[:200]})") from None
    part = "optimizer"
    try:
        run.optimizer.load_state_dict(state["optimizer"])
        part = "scheduler"
        run.scheduler.load_state_dict(state["scheduler"])
        part = "scaler"
        if state.get("scaler"):
            run.scaler.load_state_dict(state["scaler"])
        part = "ema"
        if run.ema is not None and state.get("ema"):
            run.ema.load_state_dict(state["ema"])
    except (KeyError, ValueError, TypeError, AttributeError, IndexError, RuntimeError) as e:
        # torch's own errors name a key (KeyError: 'lr_lambdas') or a size, never the file
        raise CheckpointError(f"--resume {path}: its {part} state does not fit this run ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:160] if str(e) else '?'}); resume from last.pt of "
                              "the same recipe, or start from these weights with --set model.weights=...") from None
    run.start_epoch, run.iteration = int(state["epoch"]), int(state["iteration"])
    run.best = float(state["best_metric"]) if state.get("best_metric") is not None else -math.inf
    set_rng_state(state.get("rng"))


def save_run_state(cfg: TrainConfig, run: RunState, epochs_done: int, is_best: bool,
                   pending: dict[str, Any] | None = None, record: dict[str, Any] | None = None) -> None:
    """``last.pt`` (and ``best.pt`` when ``is_best``), atomically; rank 0 only. ``pending``: the
    epoch's record, saved before its validation (a resume validates it first). ``record``: the
    finished epoch's metrics row, logged after this save: a resume logs it again, so a kill between
    the save and the log loses no row."""
    ckpt = {"model": unwrap(run.model).state_dict(), "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(), "scaler": run.scaler.state_dict(),
            "ema": run.ema.state_dict() if run.ema is not None else None, "epoch": epochs_done,
            "iteration": run.iteration, "best_metric": run.best_or_none, "metric_name": run.metric_name,
            "rng": rng_state(), "config": config_to_dict(cfg), "planned_epochs": run.plan.epochs,
            "elapsed_s": run.plan.elapsed_s, "pending_validation": pending, "record": record,
            "skeleton": skeleton_to_dict(run.skeleton) if run.skeleton is not None else None}
    ckpt["card"] = card_from_checkpoint(ckpt).to_dict()  # what the weights are, as packs and graphs say it
    # best.pt first: if its write fails (disk full), last.pt still holds the state before this
    # epoch's validation, and the resumed run writes best.pt at its next validation (see stnet.engine.train._validate).
    if is_best:
        save_checkpoint(ckpt, cfg.run_dir / "best.pt")
    save_checkpoint(ckpt, cfg.run_dir / "last.pt")
