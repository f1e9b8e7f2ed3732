"""The training loop, readable top to bottom: :func:`train_one_epoch` (forward under autocast,
heatmap loss, backward, clipping, EMA, LR step per iteration) and :func:`train` (resume, build, then
per epoch: train, validate every ``val_interval`` epochs, save ``last.pt`` / ``best.pt`` atomically,
log; ``curves.png`` at the end). Parts live next door: :mod:`.distributed`, :mod:`.build`,
:mod:`.losses`, :mod:`.ema`, :mod:`.schedule`, :mod:`.amp`, :mod:`.evaluate`, :mod:`.state` (what a
checkpoint holds), :mod:`.checkpoint`, :mod:`.rundir` (lock, resume rules, config.yaml).
Only rank 0 writes files; the same code runs on CPU, one GPU or under ``torchrun`` (DDP).
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.utils.data import DataLoader, DistributedSampler

from stnet.data.build import EpochTaggedSampler, build_dataloader
from stnet.data.device_augment import DeviceAugment, collate_deferred, use_device_augment
from stnet.io import WriteError
from stnet.model_files import load_state
from stnet.models import all_stages

from .amp import AmpSettings, amp_settings, autocast
from .build import build_datasets, build_model
from .checkpoint import check_resumable, find_resume
from .config import TrainConfig, config_to_dict
from .distributed import (DistInfo, all_reduce_sum, broadcast_buffers, cleanup_distributed, deadline_passed,
                          seed_everything, setup_distributed, unwrap)
from .ema import ModelEMA, weights_digest
from .evaluate import build_evaluator, evaluate, evaluate_checkpoint, metric_key, predict_heatmaps
from .logger import Progress, RunLogger
from .losses import HeatmapLoss
from .plot import plot_run
from .preflight import check_before_training
from .rundir import RunLock, check_new_run_dir, remove_stale_temp_files, resume_changes, saved_note, write_run_config
from .schedule import EpochPlan, build_optimizer, build_scheduler
from .state import RunState, build_run_state, restore_run_state, save_run_state

# Re-exported: the names code and recipes import from stnet.engine.train.
__all__ = ["DistInfo", "setup_distributed", "cleanup_distributed", "build_model", "build_datasets",
           "HeatmapLoss", "ModelEMA", "weights_digest", "EpochPlan", "build_optimizer", "build_scheduler",
           "amp_settings", "train_one_epoch", "predict_heatmaps", "build_evaluator", "evaluate", "train",
           "evaluate_checkpoint", "metric_key"]


def train_one_epoch(model: nn.Module, loader: DataLoader, loss_fn: HeatmapLoss,
                    optimizer: torch.optim.Optimizer, scheduler: Any, scaler: torch.amp.GradScaler,
                    *, device: torch.device, epoch: int, amp: AmpSettings,
                    grad_clip: float | None = None, ema: ModelEMA | None = None,
                    intermediate_supervision: bool = False, max_iters: int | None = None,
                    show: bool = True, log_interval: int = 50, channels_last: bool = False,
                    deadline: float | None = None,
                    batch_transform: Callable[[dict, torch.device], dict] | None = None) -> dict[str, float]:
    """Train for one epoch; returns the mean loss (reduced across ranks), images/s and the last LR.
    ``deadline`` (a ``time.perf_counter()`` value) ends the epoch early, between two steps.
    ``batch_transform(batch, device)`` makes the model's batch from the loader's (the device
    pipeline, :class:`~stnet.data.device_augment.DeviceAugment`)."""
    model.train()
    total = len(loader) if max_iters is None else min(len(loader), int(max_iters))
    progress = Progress(loader, total, f"epoch {epoch + 1}", enabled=show, log_interval=log_interval)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    loss_sum, n_seen = 0.0, 0
    for batch in progress:
        if deadline is not None and deadline_passed(deadline, device):
            break
        if batch_transform is not None:
            batch = batch_transform(batch, device)
        images = batch["image"].to(device, non_blocking=True).contiguous(memory_format=memory_format)
        target = batch["heatmaps"].to(device, non_blocking=True)
        weight = batch["target_weight"].to(device, non_blocking=True)

        with autocast(device, amp):
            outputs = all_stages(model(images))
        supervised = outputs if intermediate_supervision else outputs[-1:]
        loss = sum(loss_fn(o, target, weight) for o in supervised) / len(supervised)
        if not torch.isfinite(loss):
            # Raised before the step: the weights are not updated with it and no checkpoint of this
            # epoch is written, so last.pt keeps the last good state.
            what = "NaN" if torch.isnan(loss) else "inf"
            raise FloatingPointError(f"loss became {what} at epoch {epoch + 1} iter {progress.n + 1}; lower "
                                     "optim.lr (or set runtime.grad_clip, or check the data)")

        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if grad_clip:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        if ema is not None:
            ema.update(model)

        b = images.shape[0]
        loss_sum += float(loss.detach()) * b
        n_seen += b
        progress.update(b, float(loss.detach()), optimizer.param_groups[0]["lr"])
    loss_sum, n_seen_all, _ = all_reduce_sum([loss_sum, float(n_seen), 0.0], device)
    return {"train_loss": loss_sum / max(n_seen_all, 1.0), "lr": optimizer.param_groups[0]["lr"],
            "img_per_s": progress.img_per_s * (n_seen_all / max(n_seen, 1)), "iters": progress.n}


def train(cfg: TrainConfig, *, resume: str | Path | None = None) -> dict[str, Any]:
    """Run training as configured; returns a summary (best metric, epochs, run dir)."""
    info = setup_distributed(cfg.runtime.device)
    try:
        return _train(cfg, info, resume)
    finally:
        cleanup_distributed()


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training; the message says what the run folder holds."""


def _train(cfg: TrainConfig, info: DistInfo, resume: str | Path | None) -> dict[str, Any]:
    rt = cfg.runtime
    # The same seed on every rank: every rank builds identical initial weights (DDP also broadcasts
    # rank 0's, but EMA copies and anything created before wrapping must agree too); each rank's data
    # order comes from its DistributedSampler shard, not from this seed.
    seed_everything(rt.seed, rt.deterministic)
    state, ckpt_path, changes = _read_resume(cfg, info, resume)  # first: a bad checkpoint fails before any work
    if state is None:
        check_new_run_dir(cfg.run_dir)
    lock = RunLock(cfg.run_dir, info.say) if info.is_main else None
    if lock is not None:
        lock.acquire()
    try:
        return _locked_train(cfg, info, state, ckpt_path, changes)
    except FloatingPointError as e:
        raise FloatingPointError(f"{e}; {saved_note(cfg.run_dir)}") from None
    except WriteError as e:  # a full or read-only disk: say what the run folder still holds
        e.strerror = f"{e.strerror}; {saved_note(cfg.run_dir)}"
        raise
    except KeyboardInterrupt:
        raise TrainingInterrupted(f"training stopped; {saved_note(cfg.run_dir)}") from None
    finally:
        if lock is not None:
            lock.release()


def _locked_train(cfg: TrainConfig, info: DistInfo, state: dict[str, Any] | None, ckpt_path: Path | None,
                  changes: dict[str, Any]) -> dict[str, Any]:
    rt = cfg.runtime
    if info.is_main:
        for tmp in remove_stale_temp_files(cfg.run_dir):
            info.say(f"note: removed {tmp}, left by an interrupted write")
    train_loader, val_loader, iters_per_epoch = _build_loaders(cfg, info)
    train_ds: Any = train_loader.dataset
    run = build_run_state(cfg, info, train_ds.skeleton.num_keypoints, iters_per_epoch, state, train_ds.skeleton)
    run.skeleton = train_ds.skeleton
    if state is not None:
        restore_run_state(run, state, ckpt_path)
        info.say(f"resumed from {ckpt_path}: epoch {run.start_epoch}, iteration {run.iteration}")
    # Before anything is written: a recipe that cannot validate fails now, not after an epoch.
    check_before_training(cfg, info, run, train_ds, val_loader.dataset)
    # After the check, which reads plain items: the workers fork at the first epoch and copy this.
    train_ds.defer_warp = train_loader.collate_fn is collate_deferred
    run.plan.start_clock()
    if info.is_main:
        write_run_config(cfg.run_dir, config_to_dict(cfg), state, changes)
    logger = RunLogger(cfg.run_dir if info.is_main else None, tensorboard=rt.tensorboard)
    if state is not None:  # epochs after the checkpoint's are trained again: their old rows go
        logger.forget_after(int(state["epoch"]) - (1 if state.get("pending_validation") else 0))
    info.say(f"run dir {cfg.run_dir} | {cfg.model.name} {cfg.input_size[0]}x{cfg.input_size[1]} | "
             f"{len(train_ds)} train / {len(val_loader.dataset)} val persons | {info.world_size} "  # type: ignore[arg-type]
             f"process(es) on {info.device} | batch {rt.batch_size}/device | "
             f"amp {run.amp[1] if run.amp[0] else 'off'}")
    if state is not None and state.get("pending_validation"):
        _pending_validation(cfg, info, run, state, val_loader, logger)
    elif state is not None and state.get("record") and info.is_main:
        logger.log_epoch(state["record"])  # the kill may have come between the save and the log
    if run.plan.budget_s is not None:
        info.say(f"time budget {run.plan.budget_s / 60:.1f} min ({run.plan.elapsed_s / 60:.1f} used): the schedule "
                 f"spans {run.plan.epochs} epoch(s) until the first epoch is timed")

    val_s = 0.0  # last validation + save time, reserved at the end of a budgeted run
    last: dict[str, Any] | None = None  # the previous epoch's record
    for epoch in range(run.start_epoch, cfg.schedule.epochs):
        if epoch >= run.plan.epochs:
            break
        val_s, last = _epoch(cfg, info, run, epoch, train_loader, val_loader, iters_per_epoch, logger, val_s, last)
        if last is None or last.get("stop"):
            break
    logger.close()
    return _summary(cfg, info, run)


def _read_resume(cfg: TrainConfig, info: DistInfo, resume: str | Path | None
                 ) -> tuple[dict[str, Any] | None, Path | None, dict[str, Any]]:
    """The checkpoint to continue from (``--resume PATH|auto``), read and checked, its path, and the
    config fields that differ from the checkpoint's (only ones a resume may change; others raise)."""
    ckpt_path: Path | None = None
    if resume == "auto":
        ckpt_path = find_resume(cfg.run_dir)
        info.say("resume auto: " + (f"continuing from {ckpt_path}" if ckpt_path else
                                    f"no last.pt in {cfg.run_dir}, starting fresh"))
    elif resume:
        ckpt_path = Path(resume)
    if ckpt_path is None:
        return None, None, {}
    state = load_state(ckpt_path)
    check_resumable(state, ckpt_path)
    old = state.get("config")
    changes = resume_changes(old, config_to_dict(cfg), ckpt_path) if isinstance(old, dict) else {}
    return state, ckpt_path, changes


def _build_loaders(cfg: TrainConfig, info: DistInfo) -> tuple[DataLoader, DataLoader, int]:
    """Train and val loaders, and the optimizer steps per epoch."""
    rt = cfg.runtime
    train_ds, val_ds = build_datasets(cfg)
    device_aug = use_device_augment(rt.augment_on, info.device)
    if device_aug:
        info.say(f"runtime.augment_on={rt.augment_on}: crops warped and targets drawn on {info.device}")
    train_loader = build_dataloader(train_ds, batch_size=rt.batch_size, train=True, num_workers=rt.workers,
                                    seed=rt.seed, persistent_workers=True,
                                    collate_fn=collate_deferred if device_aug else None)
    val_loader = build_dataloader(val_ds, batch_size=rt.val_batch_size or rt.batch_size, train=False,
                                  num_workers=rt.workers, persistent_workers=True)
    iters_per_epoch = len(train_loader)
    if rt.max_iters_per_epoch is not None:
        iters_per_epoch = min(iters_per_epoch, rt.max_iters_per_epoch)
    if iters_per_epoch == 0:
        raise ValueError(f"no training iterations: {len(train_ds)} samples < batch size {rt.batch_size} "
                         f"x {info.world_size} process(es) (the last incomplete batch is dropped)")
    return train_loader, val_loader, iters_per_epoch


def _epoch(cfg: TrainConfig, info: DistInfo, run: RunState, epoch: int, train_loader: DataLoader,
           val_loader: DataLoader, iters_per_epoch: int, logger: RunLogger, val_s: float,
           previous: dict[str, Any] | None) -> tuple[float, dict[str, Any] | None]:
    """Train, re-plan, validate when due, save and log one epoch; returns the (updated) time the
    last validation + save took and the epoch's record (``"stop": True`` in it when the run stops
    here), or None when the budget ran out before the epoch's first step (nothing logged)."""
    rt, plan = cfg.runtime, run.plan
    _set_epoch(train_loader, epoch, rt.seed)
    t0 = time.perf_counter()
    reserve = val_s if val_s else 0.05 * (plan.budget_s or 0.0)
    plan.reserve_s = reserve
    stats = train_one_epoch(run.model, train_loader, run.loss_fn, run.optimizer, run.scheduler, run.scaler,
                            device=info.device, epoch=epoch, amp=run.amp, grad_clip=rt.grad_clip, ema=run.ema,
                            intermediate_supervision=cfg.loss.intermediate_supervision,
                            max_iters=rt.max_iters_per_epoch, show=info.is_main, log_interval=rt.log_interval,
                            channels_last=rt.channels_last, deadline=plan.deadline(reserve),
                            batch_transform=DeviceAugment.from_dataset(train_loader.dataset)  # type: ignore[arg-type]
                            if getattr(train_loader.dataset, "defer_warp", False) else None)
    if stats["iters"] == 0:
        _stop_between_epochs(cfg, info, run, epoch, val_loader, logger, previous)
        return val_s, None
    run.iteration += int(stats["iters"])
    train_s = time.perf_counter() - t0
    if info.distributed:  # BN running stats are per rank; evaluate and save rank 0's everywhere
        broadcast_buffers(unwrap(run.model))
        if run.ema is not None:
            broadcast_buffers(run.ema.module)
    cut_short = stats["iters"] < iters_per_epoch
    plan.replan(epoch + 1, train_s + val_s / rt.val_interval)
    if info.distributed:  # every rank must follow the same plan
        plan.epochs = int(all_reduce_sum([float(plan.epochs)], info.device)[0]) // info.world_size
    validate = (epoch + 1) % rt.val_interval == 0 or epoch + 1 >= plan.epochs or cut_short
    record: dict[str, Any] = {"epoch": epoch + 1, "iteration": run.iteration, "train_loss": stats["train_loss"],
                              "lr": stats["lr"], "img_per_s": stats["img_per_s"], "epoch_time_s": train_s}
    if plan.budget_s is not None:
        record.update(planned_epochs=plan.epochs, elapsed_min=plan.elapsed_s / 60)

    t1 = time.perf_counter()
    if validate and info.is_main:
        # Before validating: a validation that fails (or is killed) must not cost the epoch's training;
        # a resume from this checkpoint runs the validation first (_pending_validation).
        save_run_state(cfg, run, epoch + 1, False, pending=record)
    is_best = _validate(cfg, info, run, val_loader, record) if validate else False
    if validate:
        record["val_time_s"] = time.perf_counter() - t1
    info.say(f"epoch {epoch + 1}/{plan.epochs} loss {stats['train_loss']:.4e} "
             f"lr {stats['lr']:.2e} {stats['img_per_s']:.1f} img/s"
             + (f" | {run.metric_name} {record['metric']:.4f} (best {run.best:.4f})" if "metric" in record else "")
             + (f" | {plan.elapsed_s / 60:.1f}/{plan.budget_s / 60:.1f} min" if plan.budget_s else ""))
    if info.is_main:
        save_run_state(cfg, run, epoch + 1, is_best, record=record)
        logger.log_epoch(record)
    if info.distributed:
        dist.barrier()
    if validate:
        val_s = time.perf_counter() - t1
    if cut_short and plan.budget_s is not None:
        info.say(f"time budget reached after {plan.elapsed_s / 60:.1f} min: stopped in epoch {epoch + 1}")
        return val_s, {**record, "stop": True}
    return val_s, record


def _stop_between_epochs(cfg: TrainConfig, info: DistInfo, run: RunState, epoch: int, val_loader: DataLoader,
                         logger: RunLogger, previous: dict[str, Any] | None) -> None:
    """The time budget ran out before epoch ``epoch + 1``'s first step (the re-plan had counted on
    time that the last validation took): the run ends with epoch ``epoch`` and no empty row is
    logged. That epoch is validated now if it was not, so the final weights always have a metric."""
    plan = run.plan
    plan.epochs = epoch
    info.say(f"time budget reached after {plan.elapsed_s / 60:.1f} min: the run ends with epoch {epoch}")
    if previous is None:  # nothing trained in this session (a resume with its budget spent)
        return
    is_best = False
    if "metric" not in previous:
        t1 = time.perf_counter()
        if info.is_main:
            save_run_state(cfg, run, epoch, False, pending=previous)
        is_best = _validate(cfg, info, run, val_loader, previous)
        previous["val_time_s"] = time.perf_counter() - t1
        if info.is_main:
            logger.log_epoch(previous)  # the same epoch again, now with its metric (it replaces the row)
    if info.is_main:  # last.pt records the final plan (planned_epochs == epoch)
        save_run_state(cfg, run, epoch, is_best, record=previous)
    if info.distributed:
        dist.barrier()


def _validate(cfg: TrainConfig, info: DistInfo, run: RunState, val_loader: DataLoader, record: dict[str, Any]) -> bool:
    """Evaluate (the EMA weights when kept), add the metrics to ``record``; whether it is the best."""
    evaluator = build_evaluator(cfg, val_loader.dataset, output_dir=cfg.run_dir / "eval" if info.is_main else None,
                                print_fn=print if info.is_main else None)
    eval_model = run.ema.module if run.ema is not None else unwrap(run.model)
    metrics = evaluate(eval_model, val_loader, evaluator, device=info.device, flip=cfg.eval.flip_test,
                       amp=run.amp, channels_last=cfg.runtime.channels_last)
    value = float(metrics[run.metric_name])
    if info.is_main and not (cfg.run_dir / "best.pt").is_file():
        # The best metric's checkpoint is gone (e.g. its write failed on a full disk and the run was
        # resumed): only metrics whose weights exist count, so this epoch's becomes best.pt.
        run.best = -math.inf
    record.update(metric_name=run.metric_name, metric=value,
                  val={k: v for k, v in metrics.items() if isinstance(v, (int, float))})
    if value > run.best:
        run.best = value
        return True
    return False


def _pending_validation(cfg: TrainConfig, info: DistInfo, run: RunState, state: dict[str, Any], val_loader: DataLoader,
                        logger: RunLogger) -> None:
    """Validate, save and log the epoch a resumed checkpoint was saved in before its validation
    finished (RNG states are those before that validation, so the run continues bit-exactly)."""
    record = dict(state["pending_validation"])
    info.say(f"epoch {run.start_epoch} was saved before its validation finished; validating it now")
    is_best = _validate(cfg, info, run, val_loader, record)
    if info.is_main:
        save_run_state(cfg, run, run.start_epoch, is_best, record=record)
        logger.log_epoch(record)
    if info.distributed:
        dist.barrier()


def _summary(cfg: TrainConfig, info: DistInfo, run: RunState) -> dict[str, Any]:
    """The run's summary; checks that every rank ended with the same weights; plots the curves."""
    summary: dict[str, Any] = {"run_dir": str(cfg.run_dir), "metric_name": run.metric_name,
                               "weights_digest": weights_digest(unwrap(run.model))}
    if info.distributed:  # DDP sanity check: every rank must end with the same weights
        digests: list[Any] = [None] * info.world_size
        dist.all_gather_object(digests, summary["weights_digest"])
        summary["rank_digests"] = digests
        if len(set(digests)) > 1:
            info.say(f"WARNING: ranks ended with different weights: {digests}")
    if info.is_main:
        try:
            summary["curves"] = str(plot_run(cfg.run_dir))
        except ValueError as e:  # nothing logged yet (e.g. resumed after the final epoch)
            print(f"plot skipped: {e}")
    summary.update(best_metric=run.best_or_none, epochs=run.plan.epochs, iteration=run.iteration)
    return summary


def _set_epoch(loader: DataLoader, epoch: int, seed: int) -> None:
    """Make epoch ``epoch``'s order and augmentation a function of (seed, epoch) only, so a
    resumed run sees exactly the batches an uninterrupted one would."""
    sampler: Any = loader.sampler
    if isinstance(sampler, (DistributedSampler, EpochTaggedSampler)):
        sampler.set_epoch(epoch)
    if not isinstance(getattr(sampler, "sampler", sampler), DistributedSampler) \
            and getattr(sampler, "generator", None) is not None:
        sampler.generator.manual_seed(seed * 1000 + epoch)
    if hasattr(loader.dataset, "set_epoch"):
        loader.dataset.set_epoch(epoch)
