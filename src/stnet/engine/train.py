"""Training and evaluation loop, readable top to bottom.

    setup_distributed  torchrun env (RANK / WORLD_SIZE / LOCAL_RANK) -> process group, device
    build_*            model, data, loss, optimiser, per-iteration LR schedule, evaluator
    train_one_epoch    forward under autocast, weighted heatmap MSE, backward (GradScaler for fp16),
                       optional grad clipping and EMA, LR step per iteration
    evaluate           predict heatmaps (optional flip test), decode with the codec, map back to
                       image pixels, feed the task evaluator (COCO AP / PCK / PCKh), reduced
                       across ranks by the evaluator itself
    train              the epoch loop: resume, validate every ``val_interval`` epochs, best.pt by
                       the task metric, last.pt every epoch (atomically), metrics.jsonl, curves.png

Only rank 0 writes files. The same code runs on CPU, one GPU or under
``torchrun --nproc_per_node N`` (DDP: NCCL on GPU, gloo on CPU).
"""
from __future__ import annotations

import contextlib
import copy
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.utils.data import DataLoader, DistributedSampler

from stnet.codecs import flip_test
from stnet.data.dataset import align_multiscale_heatmaps
from stnet.data.build import (EpochTaggedSampler, build_dataloader, build_dataset, build_skeleton,
                              load_records)
from stnet.data.config import DataConfig
from stnet.data.transforms import crop_to_image
from stnet.models import create_model

from .checkpoint import (CheckpointError, check_resumable, find_resume, load_checkpoint, rng_state,
                         save_checkpoint, set_rng_state)
from .config import TrainConfig, config_to_dict, resolve_data_path, save_config
from .logger import Progress, RunLogger

__all__ = ["DistInfo", "setup_distributed", "cleanup_distributed", "build_model", "build_datasets",
           "HeatmapLoss", "ModelEMA", "EpochPlan", "build_optimizer", "build_scheduler", "amp_settings",
           "train_one_epoch", "predict_heatmaps", "build_evaluator", "evaluate", "train",
           "evaluate_checkpoint", "metric_key"]


# ----------------------------------------------------------------------------------------------
# Distributed setup
# ----------------------------------------------------------------------------------------------
@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup_distributed(device: str = "auto") -> DistInfo:
    """Read torchrun's env vars; with WORLD_SIZE > 1 initialise the process group (NCCL on CUDA,
    gloo on CPU). ``device``: ``auto`` (CUDA when available), ``cpu``, ``cuda``."""
    rank = int(os.environ.get("RANK", 0))
    world = int(os.environ.get("WORLD_SIZE", 1))
    local = int(os.environ.get("LOCAL_RANK", 0))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if use_cuda and not torch.cuda.is_available():
        raise ValueError(f"runtime.device={device!r} but CUDA is not available")
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


def _all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    if not (dist.is_available() and dist.is_initialized()):
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def seed_everything(seed: int, deterministic: bool) -> None:
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


# ----------------------------------------------------------------------------------------------
# Builders
# ----------------------------------------------------------------------------------------------
def build_model(cfg: TrainConfig, num_joints: int) -> nn.Module:
    """``create_model(cfg.model.name, **overrides)`` with num_joints / input_size from the data."""
    over = {"num_joints": num_joints, "input_size": tuple(cfg.input_size), **cfg.model.overrides}
    model = create_model(cfg.model.name, **over)
    if cfg.model.weights:
        from stnet.hub import is_shipped_name, shipped_weights

        ref = cfg.model.weights
        state = load_checkpoint(shipped_weights(ref)[0] if is_shipped_name(ref) else ref)
        src = state.get("ema") or state["model"]
        src = {k[len("module."):] if k.startswith("module.") else k: v for k, v in src.items()}
        own = model.state_dict()
        fit = {k: v for k, v in src.items() if k in own and own[k].shape == v.shape}
        skipped = sorted(set(own) - set(fit))
        model.load_state_dict(fit, strict=False)
        print(f"model.weights: initialised {len(fit)}/{len(own)} tensors from {cfg.model.weights}"
              + (f"; kept the new init for {len(skipped)} ({', '.join(skipped[:4])}{', ...' if len(skipped) > 4 else ''})"
                 if skipped else ""), flush=True)
    return model


def _resolved(cfg: TrainConfig, dc: DataConfig) -> DataConfig:
    import dataclasses

    return dataclasses.replace(dc, ann_file=resolve_data_path(cfg, dc.ann_file) or "",
                               image_dir=resolve_data_path(cfg, dc.image_dir) or "",
                               det_file=resolve_data_path(cfg, dc.det_file),
                               skeleton_meta=resolve_data_path(cfg, dc.skeleton_meta))


def build_datasets(cfg: TrainConfig, *, train: bool = True, val: bool = True) -> tuple[Any, Any]:
    """(train_dataset, val_dataset) with paths resolved against the data root and the
    ``runtime.limit_*`` subsets applied (first N records, deterministic)."""
    out = []
    for want, dc, limit, is_train in ((train, cfg.train, cfg.runtime.limit_train, True),
                                      (val, cfg.val, cfg.runtime.limit_val, False)):
        if not want:
            out.append(None)
            continue
        dc = _resolved(cfg, dc)
        records = load_records(dc, build_skeleton(dc))
        if limit is not None:
            records = records[: int(limit)]
        ds = build_dataset(dc, train=is_train, records=records)
        if not is_train and cfg.eval.test_scales != (1.0,):
            ds.test_scales = cfg.eval.test_scales
        out.append(ds)
    return out[0], out[1]


class HeatmapLoss(nn.Module):
    """``0.5 * mean((pred - target)^2 * w)`` over batch, joints and pixels (HRNet's JointsMSELoss),
    ``w`` the per-joint target weight; with ``ohkm_topk`` only the hardest k joints per sample."""

    def __init__(self, use_target_weight: bool = True, ohkm_topk: int | None = None) -> None:
        super().__init__()
        self.use_target_weight = use_target_weight
        self.ohkm_topk = ohkm_topk

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        pred, target = pred.float(), target.float()
        err = (pred - target) ** 2  # (B, K, h, w)
        per_joint = 0.5 * err.flatten(2).mean(-1)  # (B, K)
        if self.use_target_weight:
            per_joint = per_joint * weight.float() ** 2  # weight multiplies pred and target, as HRNet
        if self.ohkm_topk:
            k = min(int(self.ohkm_topk), per_joint.shape[1])
            return per_joint.topk(k, dim=1).values.mean()
        return per_joint.mean()


class ModelEMA:
    """Exponential moving average of a model's parameters (buffers are copied)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.module = copy.deepcopy(_unwrap(model)).eval()
        self.decay = float(decay)
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        src = _unwrap(model).state_dict()
        for k, v in self.module.state_dict().items():
            if v.dtype.is_floating_point:
                v.mul_(self.decay).add_(src[k].detach(), alpha=1.0 - self.decay)
            else:
                v.copy_(src[k])

    def state_dict(self) -> dict[str, Any]:
        return self.module.state_dict()

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        self.module.load_state_dict(sd)


def weights_digest(model: nn.Module) -> str:
    """SHA-1 of all parameters and buffers (exact bytes): equal digests = identical weights."""
    import hashlib

    h = hashlib.sha1()
    for k, v in _unwrap(model).state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _broadcast_buffers(model: nn.Module) -> None:
    for b in model.buffers():
        dist.broadcast(b.data, 0)


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def build_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    o = cfg.optim
    cls = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
    return cls(model.parameters(), lr=o.lr, weight_decay=o.weight_decay, betas=tuple(o.betas), eps=o.eps)


class EpochPlan:
    """How many epochs the LR schedule spans. Fixed at ``schedule.epochs``, or, with
    ``schedule.time_budget_min``, re-planned after every epoch from the measured epoch time so that
    the run (validation included) ends within the budget."""

    def __init__(self, cfg: TrainConfig, epochs: int | None = None, elapsed_s: float = 0.0) -> None:
        s = cfg.schedule
        self.max_epochs = s.epochs
        self.budget_s = float(s.time_budget_min) * 60.0 if s.time_budget_min else None
        self.epochs = int(epochs) if epochs else s.epochs
        self.elapsed_before = float(elapsed_s)  # wall clock of earlier sessions of this run
        self.started = time.perf_counter()
        self.epoch_times: list[float] = []

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
        per_epoch = sum(self.epoch_times[-5:]) / len(self.epoch_times[-5:])
        more = int(max(self.budget_s - self.elapsed_s, 0.0) // max(per_epoch, 1e-9))
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
        if s.decay == "step":
            stretch = plan.epochs / s.epochs  # milestones move with a budget's plan
            f = s.gamma ** sum(it // ipe >= round(m * stretch) for m in milestones)
        else:
            t = min(it / (plan.epochs * ipe), 1.0)
            shape = 0.5 * (1.0 + math.cos(math.pi * t)) if s.decay == "cosine" else 1.0 - t
            f = s.min_lr_ratio + (1.0 - s.min_lr_ratio) * shape
        if s.warmup_iters and it < s.warmup_iters:
            f *= s.warmup_ratio + (1.0 - s.warmup_ratio) * it / s.warmup_iters
        return f

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def amp_settings(amp: str, device: torch.device) -> tuple[bool, torch.dtype, bool]:
    """(autocast enabled, dtype, use GradScaler) for ``runtime.amp`` on ``device``."""
    if amp == "off":
        return False, torch.float32, False
    if amp == "auto" and device.type != "cuda":
        from stnet.cpuinfo import cpu_info

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


def _autocast(device: torch.device, enabled: bool, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _last(output: Any) -> torch.Tensor:
    while isinstance(output, (list, tuple)):
        output = output[-1]
    return output["heatmaps"] if isinstance(output, dict) else output


def _outputs(output: Any) -> list[torch.Tensor]:
    if isinstance(output, (list, tuple)):
        return [_last(o) for o in output]
    return [_last(output)]


def _past(deadline: float, device: torch.device) -> bool:
    """Whether ``deadline`` has passed, agreed by every rank (they must stop at the same step)."""
    flag = [1.0 if time.perf_counter() >= deadline else 0.0]
    return _all_reduce_sum(flag, device)[0] > 0


# ----------------------------------------------------------------------------------------------
# One epoch of training
# ----------------------------------------------------------------------------------------------
def train_one_epoch(model: nn.Module, loader: DataLoader, loss_fn: HeatmapLoss,
                    optimizer: torch.optim.Optimizer, scheduler: Any, scaler: torch.amp.GradScaler,
                    *, device: torch.device, epoch: int, amp: tuple[bool, torch.dtype, bool],
                    grad_clip: float | None = None, ema: ModelEMA | None = None,
                    intermediate_supervision: bool = False, max_iters: int | None = None,
                    show: bool = True, log_interval: int = 50, channels_last: bool = False,
                    deadline: float | None = None) -> dict[str, float]:
    """Train for one epoch; returns the mean loss (reduced across ranks), images/s and the last LR.
    ``deadline`` (a ``time.perf_counter()`` value) ends the epoch early, between two steps."""
    model.train()
    total = len(loader) if max_iters is None else min(len(loader), int(max_iters))
    progress = Progress(loader, total, f"epoch {epoch + 1}", enabled=show, log_interval=log_interval)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    loss_sum, n_seen = 0.0, 0
    for batch in progress:
        if deadline is not None and _past(deadline, device):
            break
        images = batch["image"].to(device, non_blocking=True).contiguous(memory_format=memory_format)
        target = batch["heatmaps"].to(device, non_blocking=True)
        weight = batch["target_weight"].to(device, non_blocking=True)

        with _autocast(device, amp[0], amp[1]):
            outputs = _outputs(model(images))
        supervised = outputs if intermediate_supervision else outputs[-1:]
        loss = sum(loss_fn(o, target, weight) for o in supervised) / len(supervised)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at epoch {epoch + 1}; lower optim.lr, "
                                     "set runtime.grad_clip, or check the data")

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
    loss_sum, n_seen_all, secs = _all_reduce_sum([loss_sum, float(n_seen), 0.0], device)
    return {"train_loss": loss_sum / max(n_seen_all, 1.0), "lr": optimizer.param_groups[0]["lr"],
            "img_per_s": progress.img_per_s * (n_seen_all / max(n_seen, 1)), "iters": progress.n}


# ----------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------
@torch.no_grad()
def predict_heatmaps(model: nn.Module, images: torch.Tensor, *, flip_index: Any = None,
                     unbiased: bool = True) -> torch.Tensor:
    """Heatmaps of the last stage, averaged with the flipped image's when ``flip_index`` is given."""
    if flip_index is not None:
        return flip_test(model, images, flip_index, unbiased=unbiased)
    return _last(model(images))


def metric_key(cfg: TrainConfig) -> tuple[str, str]:
    """(evaluator kind, name of the metric that picks the best checkpoint)."""
    kind = cfg.eval.metric
    if kind == "auto":
        kind = {"coco": "coco", "lsp": "pck", "cache": "pck",
                "mpii": "pckh" if cfg.eval.mpii_gt_valid else "pck"}[cfg.val.kind]
    if kind == "coco":
        return "coco", "AP"
    if kind == "pckh":
        return "pckh", "Mean"
    return "pck", f"PCK@{cfg.eval.pck_threshold:g}"


def build_evaluator(cfg: TrainConfig, dataset: Any, *, output_dir: str | Path | None,
                    print_fn: Callable[[str], None] | None) -> Any:
    from stnet.evaluation import CocoEvaluator, MPIIEvaluator, PCKEvaluator

    kind, _ = metric_key(cfg)
    names = dataset.skeleton.keypoint_names
    if kind == "coco":
        det = cfg.val.det_file
        return CocoEvaluator(resolve_data_path(cfg, cfg.val.ann_file),
                             box_source=f"detections: {Path(det).name}" if det else "ground-truth boxes",
                             output_dir=output_dir, print_fn=print_fn, name=cfg.name)
    if kind == "pckh":
        return MPIIEvaluator(resolve_data_path(cfg, cfg.eval.mpii_gt_valid), output_dir=output_dir,
                             print_fn=print_fn, name=cfg.name)
    return PCKEvaluator(joint_names=names, threshold=cfg.eval.pck_threshold, normalize=cfg.eval.pck_normalize,
                        output_dir=output_dir, print_fn=print_fn, name=cfg.name)


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, evaluator: Any, *, device: torch.device,
             flip: bool = True, amp: tuple[bool, torch.dtype, bool] = (False, torch.float32, False),
             show: bool = False, channels_last: bool = False) -> dict[str, float]:
    """Predict every sample of ``loader``, decode, map to image pixels, feed ``evaluator``; returns
    its metrics (identical on every rank: the evaluators gather and score on rank 0)."""
    from stnet.evaluation import CocoEvaluator, MPIIEvaluator

    dataset = loader.dataset
    codec = dataset.codec
    flip_index = dataset.skeleton.flip_index if flip else None
    model.eval()
    evaluator.reset()
    total = len(loader)
    for batch in Progress(loader, total, "eval", enabled=show, log_interval=max(total // 4, 1)):
        images = batch["image"].to(device, non_blocking=True)
        scales = None
        if images.dim() == 5:  # multi-scale testing: (B, S, 3, H, W)
            scales = dataset.test_scales
            b, n = images.shape[:2]
            images = images.flatten(0, 1)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with _autocast(device, amp[0], amp[1]):
            heat = predict_heatmaps(model, images, flip_index=flip_index, unbiased=codec.unbiased)
        if scales is not None:
            heat = align_multiscale_heatmaps(heat.float().unflatten(0, (b, n)), scales)
        kps_crop, scores = codec.decode(heat.float().cpu().numpy())
        center = batch["center"].numpy()
        scale = batch["scale"].numpy()
        kps = crop_to_image(np.asarray(kps_crop), center, scale, dataset.input_size,
                            rotation=batch["rotation"].numpy(), unbiased=codec.unbiased)
        index = batch["index"].numpy()
        if isinstance(evaluator, CocoEvaluator):
            evaluator.process(np.asarray(batch["image_id"]), kps, np.asarray(scores),
                              box_scores=batch["score"].numpy(), areas=scale[:, 0] * scale[:, 1],
                              instance_ids=index)
        elif isinstance(evaluator, MPIIEvaluator):
            evaluator.process(kps, indices=index)
        else:
            evaluator.process(kps, batch["keypoints_image"].numpy(), batch["visibility_image"].numpy() > 0,
                              boxes=batch["box"].numpy(), indices=index)
    return evaluator.evaluate()


# ----------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------
def _say(info: DistInfo, msg: str) -> None:
    if info.is_main:
        print(msg, flush=True)


def _set_epoch(loader: DataLoader, epoch: int, seed: int) -> None:
    """Make epoch ``epoch``'s order and augmentation a function of (seed, epoch) only, so a
    resumed run sees exactly the batches an uninterrupted one would."""
    sampler = loader.sampler
    if isinstance(sampler, (DistributedSampler, EpochTaggedSampler)):
        sampler.set_epoch(epoch)
    if not isinstance(getattr(sampler, "sampler", sampler), DistributedSampler) \
            and getattr(sampler, "generator", None) is not None:
        sampler.generator.manual_seed(seed * 1000 + epoch)
    if hasattr(loader.dataset, "set_epoch"):
        loader.dataset.set_epoch(epoch)


def train(cfg: TrainConfig, *, resume: str | Path | None = None) -> dict[str, Any]:
    """Run training as configured; returns a summary (best metric, epochs, run dir)."""
    info = setup_distributed(cfg.runtime.device)
    try:
        return _train(cfg, info, resume)
    finally:
        cleanup_distributed()


def _train(cfg: TrainConfig, info: DistInfo, resume: str | Path | None) -> dict[str, Any]:
    rt = cfg.runtime
    run_dir = cfg.run_dir
    seed_everything(rt.seed + info.rank * 0, rt.deterministic)  # same init on every rank

    # --- resume: find and read the checkpoint first, so a bad one fails before any work -----------
    ckpt_path: Path | None = None
    if resume == "auto":
        ckpt_path = find_resume(run_dir)
        _say(info, f"resume auto: {'continuing from ' + str(ckpt_path) if ckpt_path else 'no last.pt in ' + str(run_dir) + ', starting fresh'}")
    elif resume:
        ckpt_path = Path(resume)
    state = None
    if ckpt_path is not None:
        state = load_checkpoint(ckpt_path)
        check_resumable(state, ckpt_path)

    # --- data ------------------------------------------------------------------------------------
    train_ds, val_ds = build_datasets(cfg)
    train_loader = build_dataloader(train_ds, batch_size=rt.batch_size, train=True, num_workers=rt.workers,
                                    seed=rt.seed, persistent_workers=True)
    val_loader = build_dataloader(val_ds, batch_size=rt.val_batch_size or rt.batch_size, train=False,
                                  num_workers=rt.workers, persistent_workers=True)
    iters_per_epoch = len(train_loader) if rt.max_iters_per_epoch is None else min(len(train_loader),
                                                                                     rt.max_iters_per_epoch)
    if iters_per_epoch == 0:
        raise ValueError(f"no training iterations: {len(train_ds)} samples < batch size {rt.batch_size} "
                         f"x {info.world_size} process(es) (the last incomplete batch is dropped)")

    # --- model, loss, optimiser ------------------------------------------------------------------
    model = build_model(cfg, train_ds.skeleton.num_keypoints).to(info.device)
    if rt.channels_last:
        model = model.to(memory_format=torch.channels_last)
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
    loss_fn = HeatmapLoss(cfg.loss.use_target_weight, cfg.loss.ohkm_topk if cfg.loss.ohkm else None)
    optimizer = build_optimizer(cfg, model)
    plan = EpochPlan(cfg, epochs=state.get("planned_epochs") if state else None,
                     elapsed_s=float(state.get("elapsed_s") or 0.0) if state else 0.0)
    scheduler = build_scheduler(cfg, optimizer, iters_per_epoch, plan)
    amp = amp_settings(rt.amp, info.device)
    scaler = torch.amp.GradScaler(info.device.type, enabled=amp[2])
    kind, metric_name = metric_key(cfg)

    start_epoch, iteration, best = 0, 0, -math.inf
    if state is not None:
        _unwrap(model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        if ema is not None and state.get("ema"):
            ema.load_state_dict(state["ema"])
        start_epoch, iteration = int(state["epoch"]), int(state["iteration"])
        best = float(state["best_metric"]) if state.get("best_metric") is not None else -math.inf
        set_rng_state(state.get("rng"))
        _say(info, f"resumed from {ckpt_path}: epoch {start_epoch}, iteration {iteration}")

    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")
    logger = RunLogger(run_dir if info.is_main else None, tensorboard=rt.tensorboard)
    _say(info, f"run dir {run_dir} | {cfg.model.name} {cfg.input_size[0]}x{cfg.input_size[1]} | "
               f"{len(train_ds)} train / {len(val_ds)} val persons | {info.world_size} process(es) on "
               f"{info.device} | batch {rt.batch_size}/device | amp {amp[1] if amp[0] else 'off'}")

    # --- epochs ----------------------------------------------------------------------------------
    summary: dict[str, Any] = {"run_dir": str(run_dir), "metric_name": metric_name}
    if plan.budget_s is not None:
        _say(info, f"time budget {plan.budget_s / 60:.1f} min ({plan.elapsed_s / 60:.1f} used): the schedule "
                   f"spans {plan.epochs} epoch(s) until the first epoch is timed")
    val_s = 0.0  # last validation + save time, reserved at the end of a budgeted run
    for epoch in range(start_epoch, cfg.schedule.epochs):
        if epoch >= plan.epochs:
            break
        _set_epoch(train_loader, epoch, rt.seed)
        t0 = time.perf_counter()
        reserve = val_s if val_s else 0.05 * (plan.budget_s or 0.0)
        stats = train_one_epoch(model, train_loader, loss_fn, optimizer, scheduler, scaler,
                                device=info.device, epoch=epoch, amp=amp, grad_clip=rt.grad_clip, ema=ema,
                                intermediate_supervision=cfg.loss.intermediate_supervision,
                                max_iters=rt.max_iters_per_epoch, show=info.is_main,
                                log_interval=rt.log_interval, channels_last=rt.channels_last,
                                deadline=plan.deadline(reserve))
        iteration += stats["iters"]
        train_s = time.perf_counter() - t0
        if info.distributed:  # BN running stats are per rank; evaluate and save rank 0's everywhere
            _broadcast_buffers(_unwrap(model))
            if ema is not None:
                _broadcast_buffers(ema.module)
        cut_short = stats["iters"] < iters_per_epoch
        plan.replan(epoch + 1, train_s + val_s / rt.val_interval)
        if info.distributed:  # every rank must follow the same plan
            plan.epochs = int(_all_reduce_sum([float(plan.epochs)], info.device)[0]) // info.world_size
        final = epoch + 1 >= plan.epochs or cut_short
        record: dict[str, Any] = {"epoch": epoch + 1, "iteration": iteration, "train_loss": stats["train_loss"],
                                  "lr": stats["lr"], "img_per_s": stats["img_per_s"], "epoch_time_s": train_s}
        if plan.budget_s is not None:
            record.update(planned_epochs=plan.epochs, elapsed_min=plan.elapsed_s / 60)
        is_best = False
        t1 = time.perf_counter()
        if (epoch + 1) % rt.val_interval == 0 or final:
            evaluator = build_evaluator(cfg, val_ds, output_dir=run_dir / "eval" if info.is_main else None,
                                        print_fn=print if info.is_main else None)
            eval_model = ema.module if ema is not None else _unwrap(model)
            metrics = evaluate(eval_model, val_loader, evaluator, device=info.device, flip=cfg.eval.flip_test,
                               amp=amp, channels_last=rt.channels_last)
            value = float(metrics[metric_name])
            record.update(metric_name=metric_name, metric=value,
                          val={k: v for k, v in metrics.items() if isinstance(v, (int, float))})
            if value > best:
                best, is_best = value, True
        _say(info, f"epoch {epoch + 1}/{plan.epochs} loss {stats['train_loss']:.4e} "
                   f"lr {stats['lr']:.2e} {stats['img_per_s']:.1f} img/s"
                   + (f" | {metric_name} {record['metric']:.4f} (best {best:.4f})" if "metric" in record else "")
                   + (f" | {plan.elapsed_s / 60:.1f}/{plan.budget_s / 60:.1f} min" if plan.budget_s else ""))
        if info.is_main:
            ckpt = {"model": _unwrap(model).state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                    "ema": ema.state_dict() if ema is not None else None, "epoch": epoch + 1,
                    "iteration": iteration, "best_metric": best if best > -math.inf else None,
                    "metric_name": metric_name, "rng": rng_state(), "config": config_to_dict(cfg),
                    "planned_epochs": plan.epochs, "elapsed_s": plan.elapsed_s}
            save_checkpoint(ckpt, run_dir / "last.pt")
            if is_best:
                save_checkpoint(ckpt, run_dir / "best.pt")
            logger.log_epoch(record)
        if info.distributed:
            dist.barrier()
        if (epoch + 1) % rt.val_interval == 0 or final:
            val_s = time.perf_counter() - t1
        if cut_short and plan.budget_s is not None:
            _say(info, f"time budget reached after {plan.elapsed_s / 60:.1f} min: stopped in epoch {epoch + 1}")
            break
    logger.close()
    summary["weights_digest"] = weights_digest(_unwrap(model))
    if info.distributed:  # DDP sanity check: every rank must end with the same weights
        digests: list[Any] = [None] * info.world_size
        dist.all_gather_object(digests, summary["weights_digest"])
        summary["rank_digests"] = digests
        if len(set(digests)) > 1:
            _say(info, f"WARNING: ranks ended with different weights: {digests}")
    if info.is_main:
        try:
            from .plot import plot_run

            summary["curves"] = str(plot_run(run_dir))
        except ValueError as e:  # nothing logged yet (e.g. resumed after the final epoch)
            print(f"plot skipped: {e}")
    summary.update(best_metric=best if best > -math.inf else None, epochs=plan.epochs,
                   iteration=iteration)
    return summary


def evaluate_checkpoint(cfg: TrainConfig, checkpoint: str | Path, *, output_dir: str | Path,
                        use_ema: bool = True) -> dict[str, float]:
    """``stnet eval``: load weights (EMA when the checkpoint has them and ``use_ema``), evaluate the
    val split, write metrics.json and raw predictions into ``output_dir``."""
    info = setup_distributed(cfg.runtime.device)
    try:
        state = load_checkpoint(checkpoint)
        _, val_ds = build_datasets(cfg, train=False)
        loader = build_dataloader(val_ds, batch_size=cfg.runtime.val_batch_size or cfg.runtime.batch_size,
                                  train=False, num_workers=cfg.runtime.workers, persistent_workers=False)
        model = build_model(cfg, val_ds.skeleton.num_keypoints).to(info.device)
        weights = state["ema"] if use_ema and state.get("ema") else state["model"]
        try:
            model.load_state_dict(weights)
        except RuntimeError as e:
            raise CheckpointError(f"checkpoint {checkpoint} does not fit {cfg.model.name} "
                                  f"({str(e).splitlines()[0]}...)") from None
        _say(info, f"evaluating {checkpoint} ({'EMA' if weights is state.get('ema') else 'model'} weights)"
                   f" on {len(val_ds)} persons")
        evaluator = build_evaluator(cfg, val_ds, output_dir=output_dir if info.is_main else None,
                                    print_fn=print if info.is_main else None)
        return evaluate(model, loader, evaluator, device=info.device, flip=cfg.eval.flip_test,
                        amp=amp_settings(cfg.runtime.amp, info.device), show=info.is_main)
    finally:
        cleanup_distributed()
