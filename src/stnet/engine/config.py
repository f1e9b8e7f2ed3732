"""Typed training configuration.

Defaults live here; recipe YAML files in ``configs/`` and ``--set key=value`` only override them.
A recipe may use nested mappings (``optim: {lr: 5e-4}``) or dotted keys (``optim.lr: 5e-4``);
unknown keys fail with a "did you mean". :func:`load_config` returns the resolved
:class:`TrainConfig`; :func:`config_to_dict` / :func:`save_config` write it back as YAML (the run
directory's ``config.yaml``), which :func:`load_config` reads again unchanged.

Shared settings live in exactly one place: ``input_size`` and ``codec`` (top level) are copied
into both data splits; ``runtime.batch_size``/``runtime.workers``/``runtime.seed`` and
``loss.use_joint_weights`` likewise. Setting the per-split copies (``train.input_size`` ...) is an
error that names the field to use instead.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml

from stnet.codecs.build import CodecConfig
from stnet.config import check_fields, load_yaml
from stnet.data.config import AugmentConfig, DataConfig, apply_overrides, config_from_dict
from stnet.io import write_text

__all__ = ["ModelSection", "OptimConfig", "ScheduleConfig", "LossConfig", "EvalConfig", "RuntimeConfig",
           "TrainConfig", "load_config", "config_to_dict", "save_config", "resolve_data_path",
           "data_root"]


@dataclass
class ModelSection:
    """``name`` is a registered model (``stnet list`` / ``stnet.models.list_models()``);
    ``overrides`` replace fields of its config dataclass (e.g. ``{mdbs: false}``).
    ``num_joints`` and ``input_size`` are filled in from the data unless given here.
    ``weights``: a checkpoint (training dict or bare state_dict, EMA preferred) whose weights
    initialise the model before training (warm start / fine-tuning on your own keypoints);
    tensors whose shape differs (e.g. the head for another joint count) are skipped with a note.
    Unlike ``--resume`` it restores nothing else (optimiser, schedule, epoch)."""

    name: str = "stnet_1s"
    overrides: dict = field(default_factory=dict)
    weights: str | None = None


@dataclass
class OptimConfig:
    """Adam, lr 1e-3, no weight decay (SimpleBaseline/HRNet/STNet recipe); ``adamw`` optional."""

    name: Literal["adam", "adamw"] = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8


@dataclass
class ScheduleConfig:
    """Learning-rate schedule, updated per iteration, with an optional linear warm-up over the
    first ``warmup_iters`` iterations starting at ``warmup_ratio * lr``.

    ``decay``: ``step`` multiplies by ``gamma`` at each of the ``milestones`` epochs (the
    SimpleBaseline/HRNet recipe); ``cosine`` and ``linear`` fall from ``lr`` to
    ``min_lr_ratio * lr`` at the last planned iteration.

    ``time_budget_min``: train for this many minutes of wall clock instead of a fixed epoch
    count. After each epoch the run measures its own epoch time (training plus validation) and
    plans how many epochs fit, up to ``epochs``; the decay is stretched to end with the plan
    (milestones scale with it), and an epoch that would overrun the budget is cut short. The last
    epoch is validated and ``last.pt``/``best.pt`` are complete when it ends."""

    epochs: int = 210
    milestones: tuple[int, ...] = (170, 200)
    gamma: float = 0.1
    decay: Literal["step", "cosine", "linear"] = "step"
    min_lr_ratio: float = 0.0
    warmup_iters: int = 0
    warmup_ratio: float = 0.001
    time_budget_min: float | None = None


@dataclass
class LossConfig:
    """MSE between predicted and target heatmaps, each joint weighted by its target weight
    (0 for unlabelled / out-of-crop joints), HRNet's ``0.5 * mean``.

    ``use_joint_weights`` multiplies the target weights by the skeleton's joint weights (HRNet's
    COCO option). ``ohkm=True`` keeps only the ``ohkm_topk`` joints with the largest loss per
    sample (online hard keypoint mining).

    ``intermediate_supervision``: STNet has a single prediction head after its last stair unit
    (the stair fusion feeds every stage's features into it), and the paper supervises only that
    output, so intermediate stages are NOT supervised. The switch exists so the decision is
    explicit and documented; a model returning a list of per-stage heatmaps would be supervised on
    every element when it is True and on the last one when False. With a single-head model True
    is an error.
    """

    use_target_weight: bool = True
    use_joint_weights: bool = False
    ohkm: bool = False
    ohkm_topk: int = 8
    intermediate_supervision: bool = False


@dataclass
class EvalConfig:
    """Validation protocol. ``metric`` ``auto`` picks by data kind: COCO -> OKS AP with GT boxes
    (CocoEvaluator), LSP -> PCK@``pck_threshold`` by torso (PCKEvaluator), MPII -> PCKh via
    ``mpii_gt_valid`` when given, else PCK by torso.
    ``test_scales``: multi-scale testing (the paper's six-scale MPII protocol): each person is
    also cropped with its region scaled by these factors and the heatmaps, aligned to the
    unscaled crop, are averaged (``stnet.data.align_multiscale_heatmaps``). ``[1.0]`` = off.
    ``nms`` (COCO): ``oks`` = greedy OKS-NMS at ``nms_thr`` (the HRNet/mmpose default, 0.9);
    ``soft_oks`` = soft-OKS-NMS (mmpose's ``soft_oks_nms``: scores decayed by ``soft_nms_method``
    ``gaussian`` or ``linear``, at most 20 results per image); ``none``."""

    metric: Literal["auto", "coco", "pck", "pckh"] = "auto"
    flip_test: bool = True
    test_scales: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        self.test_scales = tuple(float(f) for f in self.test_scales)  # type: ignore[assignment]
        if not self.test_scales or min(self.test_scales) <= 0:
            raise ValueError(f"EvalConfig.test_scales must be positive factors, got {self.test_scales}")
    pck_threshold: float = 0.2
    pck_normalize: Literal["torso", "bbox"] = "torso"
    mpii_gt_valid: str | None = None
    nms: Literal["oks", "soft_oks", "none"] = "oks"
    nms_thr: float = 0.9
    soft_nms_method: Literal["gaussian", "linear"] = "gaussian"

    def coco_nms_kwargs(self) -> dict[str, Any]:
        """The NMS keyword arguments of :class:`~stnet.evaluation.CocoEvaluator`."""
        return {"nms": "soft_oks" if self.nms == "soft_oks" else "oks",
                "nms_thr": None if self.nms == "none" else self.nms_thr,
                "soft_nms_method": self.soft_nms_method}


@dataclass
class RuntimeConfig:
    """Where and how the run executes.

    ``amp``: ``auto`` = bf16 on GPUs that support it, else fp16 with a GradScaler; on CPU, bf16
    when the CPU has bf16 units (AVX512-BF16 or AMX, detected at run time: about 1.8x faster
    than fp32 there), else off. ``bf16``/``fp16`` force it (bf16 also works with CPU autocast);
    ``off``.
    ``channels_last``: NHWC memory format for the model and its input batches (faster convolutions
    on CPU and on tensor-core GPUs).
    ``batch_size`` is per device (process); the global batch is ``batch_size x WORLD_SIZE``.
    ``output_dir`` is the run directory (default ``runs/<recipe name>``).
    ``limit_train``/``limit_val`` keep only the first N person records (smoke runs, overfit checks);
    ``max_iters_per_epoch`` cuts epochs short.
    ``augment_on``: where the training crops are warped and their targets drawn: ``workers`` (the
    DataLoader workers, the CPU pipeline), ``device`` (workers only read and decode; warp, flip,
    colour jitter, targets and normalisation run batched on the training device, see
    :mod:`stnet.data.device_augment`), ``auto`` = ``device`` on CUDA, else ``workers``.
    """

    device: str = "auto"
    amp: Literal["auto", "bf16", "fp16", "off"] = "auto"
    channels_last: bool = True
    grad_clip: float | None = None
    ema_decay: float | None = None
    seed: int = 0
    deterministic: bool = False
    val_interval: int = 1
    output_dir: str = ""
    workers: int = 4
    batch_size: int = 32
    val_batch_size: int | None = None
    sync_bn: bool = False
    log_interval: int = 50
    limit_train: int | None = None
    limit_val: int | None = None
    max_iters_per_epoch: int | None = None
    tensorboard: bool = True
    augment_on: Literal["auto", "workers", "device"] = "auto"


def _coco_split(split: str) -> DataConfig:
    return DataConfig(kind="coco", ann_file=f"coco/annotations/person_keypoints_{split}2017.json",
                      image_dir=f"coco/{split}2017", skeleton="coco17", split=split,  # type: ignore[arg-type]
                      augment=AugmentConfig.coco())


@dataclass
class TrainConfig:
    """Everything a training or evaluation run needs. A relative data path is taken from the
    current folder when it exists there, else from ``data_root`` (default ``$STNET_DATA_ROOT``,
    else ``../shared/data`` next to the repository)."""

    name: str = "stnet"
    model: ModelSection = field(default_factory=ModelSection)
    input_size: tuple[int, int] = (256, 192)
    codec: CodecConfig = field(default_factory=CodecConfig)
    data_root: str | None = None
    train: DataConfig = field(default_factory=lambda: _coco_split("train"))
    val: DataConfig = field(default_factory=lambda: _coco_split("val"))
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def __post_init__(self) -> None:
        self.input_size = tuple(int(v) for v in self.input_size)  # type: ignore[assignment]
        if len(self.input_size) != 2:
            raise ValueError(f"TrainConfig.input_size must be (H, W), got {self.input_size}")
        if self.runtime.amp not in ("auto", "bf16", "fp16", "off"):
            raise ValueError(f"runtime.amp must be auto, bf16, fp16 or off, got {self.runtime.amp!r}")
        if self.optim.name not in ("adam", "adamw"):
            raise ValueError(f"optim.name must be 'adam' or 'adamw', got {self.optim.name!r}")
        if self.schedule.epochs < 1:
            raise ValueError(f"schedule.epochs must be >= 1, got {self.schedule.epochs}")
        if self.schedule.decay not in ("step", "cosine", "linear"):
            raise ValueError(f"schedule.decay must be step, cosine or linear, got {self.schedule.decay!r}")
        if self.schedule.time_budget_min is not None and not float(self.schedule.time_budget_min) > 0:
            raise ValueError(f"schedule.time_budget_min must be > 0 minutes, got {self.schedule.time_budget_min}")
        if self.runtime.batch_size < 1:
            raise ValueError(f"runtime.batch_size must be >= 1, got {self.runtime.batch_size}")
        self._check_ranges()
        self.schedule.milestones = tuple(int(m) for m in self.schedule.milestones)
        self.optim.betas = tuple(float(b) for b in self.optim.betas)  # type: ignore[assignment]
        # One source of truth for the settings both splits share.
        for split in (self.train, self.val):
            split.input_size = self.input_size
            split.codec = self.codec
            split.batch_size = self.runtime.batch_size
            split.num_workers = self.runtime.workers
        self.train.use_joint_weights = self.loss.use_joint_weights
        self.train.seed = self.runtime.seed
        self.val.use_joint_weights = False

    def _check_ranges(self) -> None:
        """Reject values that would fail (or silently misbehave) only later in a run."""
        problems: list[str] = []

        def need(ok: bool, name: str, rule: str, value: Any) -> None:
            if not ok:
                problems.append(f"{name} must be {rule}, got {value!r}")

        def opt_int_min(name: str, value: Any, lo: int, what: str = "") -> None:
            need(value is None or value >= lo, name, f">= {lo}{what} or null", value)

        o, sc, rt, ls, ev = self.optim, self.schedule, self.runtime, self.loss, self.eval
        need(o.lr > 0, "optim.lr", "> 0", o.lr)
        need(o.weight_decay >= 0, "optim.weight_decay", ">= 0", o.weight_decay)
        need(len(o.betas) == 2 and all(0 <= b < 1 for b in o.betas), "optim.betas", "two values in [0, 1)",
             o.betas)
        need(o.eps > 0, "optim.eps", "> 0", o.eps)
        ms = tuple(sc.milestones)
        need(all(m >= 0 for m in ms) and all(a < b for a, b in zip(ms, ms[1:])), "schedule.milestones",
             "increasing non-negative epochs", list(ms))
        need(sc.gamma > 0, "schedule.gamma", "> 0", sc.gamma)
        need(0 <= sc.min_lr_ratio <= 1, "schedule.min_lr_ratio", "in [0, 1]", sc.min_lr_ratio)
        need(sc.warmup_iters >= 0, "schedule.warmup_iters", ">= 0", sc.warmup_iters)
        need(0 <= sc.warmup_ratio <= 1, "schedule.warmup_ratio", "in [0, 1]", sc.warmup_ratio)
        need(ls.ohkm_topk >= 1, "loss.ohkm_topk", ">= 1", ls.ohkm_topk)
        need(0 < ev.pck_threshold, "eval.pck_threshold", "> 0", ev.pck_threshold)
        need(0 < ev.nms_thr <= 1, "eval.nms_thr", "in (0, 1]", ev.nms_thr)
        need(rt.val_interval >= 1, "runtime.val_interval", ">= 1 (validate every N epochs)", rt.val_interval)
        need(rt.workers >= 0, "runtime.workers", ">= 0", rt.workers)
        need(rt.log_interval >= 1, "runtime.log_interval", ">= 1", rt.log_interval)
        need(rt.seed >= 0, "runtime.seed", ">= 0", rt.seed)
        need(rt.grad_clip is None or rt.grad_clip > 0, "runtime.grad_clip", "> 0 or null", rt.grad_clip)
        need(rt.ema_decay is None or 0 < rt.ema_decay < 1, "runtime.ema_decay", "in (0, 1) or null", rt.ema_decay)
        opt_int_min("runtime.val_batch_size", rt.val_batch_size, 1)
        opt_int_min("runtime.limit_train", rt.limit_train, 1, " (persons)")
        opt_int_min("runtime.limit_val", rt.limit_val, 1, " (persons)")
        opt_int_min("runtime.max_iters_per_epoch", rt.max_iters_per_epoch, 1)
        for split in ("train", "val"):
            d = getattr(self, split)
            need(d.max_bad_images >= 0, f"{split}.max_bad_images", ">= 0", d.max_bad_images)
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def run_dir(self) -> Path:
        return Path(self.runtime.output_dir or f"runs/{self.name}")


# Per-split fields that are owned by a top-level field (set those instead).
_OWNED = {"input_size": "input_size", "codec": "codec", "batch_size": "runtime.batch_size",
          "num_workers": "runtime.workers", "seed": "runtime.seed",
          "use_joint_weights": "loss.use_joint_weights"}

_SECTIONS = {"model": ModelSection, "optim": OptimConfig, "schedule": ScheduleConfig, "loss": LossConfig,
             "eval": EvalConfig, "runtime": RuntimeConfig, "codec": CodecConfig, "train": DataConfig,
             "val": DataConfig}


def data_root(cfg: TrainConfig) -> Path:
    from stnet.data.build import default_data_root

    return Path(os.path.expanduser(cfg.data_root)) if cfg.data_root else default_data_root()


def resolve_data_path(cfg: TrainConfig, path: str | None, field: str = "data path") -> str | None:
    """A data path as the readers need it. Absolute paths are kept; a relative one is taken from
    the current folder when it exists there (a user's own data next to their recipe), else from
    ``data_root`` (the shipped recipes name files under it). Neither existing is an error naming
    ``field`` (e.g. ``train.ann_file``), both candidates and how to set the root."""
    if not path:
        return path
    p = Path(os.path.expanduser(path))
    if p.is_absolute():
        if not p.exists():
            raise FileNotFoundError(f"{field}: {p} not found")
        return str(p)
    here, root = Path.cwd() / p, data_root(cfg) / p
    if here.exists():
        return str(here)
    if root.exists():
        return str(root)
    raise FileNotFoundError(f"{field}: {path} not found, neither as {here} (current folder) nor as {root} "
                            "(under the data root; set data_root in the recipe or STNET_DATA_ROOT)")


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings -> dotted keys, except under ``model.overrides`` (a free-form dict)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and key != "model.overrides" and not key.startswith("model.overrides."):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _check_owned(keys: list[str]) -> None:
    for key in keys:
        parts = key.split(".")
        if parts[0] in ("train", "val") and len(parts) > 1 and parts[1] in _OWNED:
            raise ValueError(f"{key!r} is shared by both splits; set {_OWNED[parts[1]]!r} instead")


def _apply(cfg: TrainConfig, flat: Mapping[str, Any]) -> TrainConfig:
    """Apply dotted overrides; ``model.overrides.X`` entries merge into the model's dict."""
    model_over = dict(cfg.model.overrides)
    rest: dict[str, Any] = {}
    for k, v in flat.items():
        if k == "model.overrides":
            if v is None:
                model_over = {}
                continue
            if not isinstance(v, Mapping):
                raise ValueError(f"model.overrides must be a mapping, got {v!r}")
            model_over.update(v)
        elif k.startswith("model.overrides."):
            model_over[k[len("model.overrides."):]] = v
        else:
            rest[k] = v
    _check_owned(list(rest))
    for k in rest:
        head = k.split(".")[0]
        if head not in _SECTIONS and "." in k:
            check_fields(TrainConfig, [head], "config")
    # Sections are replaced before the owned fields are copied down again in __post_init__.
    cfg = apply_overrides(cfg, rest)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, overrides=model_over))
    return cfg


def load_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """Defaults <- YAML recipe at ``path`` (overrides only) <- ``overrides`` (dotted keys, e.g.
    from ``parse_overrides(["optim.lr=5e-4"])``). Unknown keys raise ValueError with a
    suggestion. A run directory's ``config.yaml`` (a full dump) loads the same way."""
    cfg = TrainConfig()
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"config file {p} not found")
        data = load_yaml(p.read_text(encoding="utf-8"), str(p)) or {}
        if not isinstance(data, Mapping):
            raise ValueError(f"{p}: expected a mapping of overrides, got {type(data).__name__}")
        data = dict(data)
        data.setdefault("name", p.stem if p.stem != "config" else p.parent.name)
        try:
            cfg = _apply(cfg, _flatten(data))
        except ValueError as e:
            raise ValueError(f"{p}: {e}") from None
    if overrides:
        try:
            cfg = _apply(cfg, _flatten(dict(overrides)))
        except ValueError as e:
            raise ValueError(f"--set: {e}") from None
    return cfg


def config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """Plain nested dict (tuples as lists) of the resolved config, with the shared per-split
    fields left out (they are derived)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (tuple, list)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    d = plain(cfg)
    for split in ("train", "val"):
        for k in _OWNED:
            d[split].pop(k, None)
    return d


def save_config(cfg: TrainConfig, path: str | Path) -> None:
    write_text(path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


def config_from_plain(d: Mapping[str, Any]) -> TrainConfig:
    """Inverse of :func:`config_to_dict` (used for the copy stored in checkpoints)."""
    return config_from_dict(TrainConfig, d, "config")
