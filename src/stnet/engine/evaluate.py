"""Validation: predict heatmaps, decode, map to image pixels, score with the task's evaluator.

    evaluate             one pass over a loader (optional flip test and multi-scale testing),
                         metrics reduced across ranks by the evaluator itself
    build_evaluator      COCO AP / MPII PCKh / PCK, as ``eval.metric`` says
    evaluate_checkpoint  ``stnet eval``: a checkpoint on the recipe's validation split
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from stnet.codecs import flip_test
from stnet.data.build import build_dataloader
from stnet.data.dataset import align_multiscale_heatmaps
from stnet.data.transforms import crop_to_image
from stnet.evaluation import CocoEvaluator, Evaluator, MPIIEvaluator, PCKEvaluator
from stnet.model_files import CheckpointError, load_model_ref, model_state
from stnet.models import last_stage

from .amp import AmpSettings, amp_settings, autocast
from .build import build_datasets, build_model
from .config import TrainConfig, resolve_data_path
from .distributed import all_reduce_sum, cleanup_distributed, setup_distributed
from .logger import Progress

__all__ = ["predict_heatmaps", "metric_key", "build_evaluator", "evaluate", "evaluate_checkpoint"]

NO_AMP: AmpSettings = (False, torch.float32, False)


@torch.no_grad()
def predict_heatmaps(model: nn.Module, images: torch.Tensor, *, flip_index: Any = None,
                     unbiased: bool = True) -> torch.Tensor:
    """Heatmaps of the last stage, averaged with the flipped image's when ``flip_index`` is given."""
    if flip_index is not None:
        return flip_test(model, images, flip_index, unbiased=unbiased)
    return last_stage(model(images))


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
                    print_fn: Callable[[str], None] | None) -> Evaluator:
    kind, _ = metric_key(cfg)
    names = dataset.skeleton.keypoint_names
    if kind == "coco":
        det = cfg.val.det_file
        # OKS with the skeleton's own sigmas: a custom layout has no sigmas the evaluator could infer
        gt = resolve_data_path(cfg, cfg.val.ann_file, "val.ann_file")
        return CocoEvaluator(gt, sigmas=dataset.skeleton.sigmas_array(),
                             box_source=f"detections: {Path(det).name}" if det else "ground-truth boxes",
                             output_dir=output_dir, print_fn=print_fn, name=cfg.name,
                             **cfg.eval.coco_nms_kwargs())
    if kind == "pckh":
        gt_valid = resolve_data_path(cfg, cfg.eval.mpii_gt_valid, "eval.mpii_gt_valid")
        return MPIIEvaluator(gt_valid, output_dir=output_dir, print_fn=print_fn, name=cfg.name)
    return PCKEvaluator(joint_names=names, threshold=cfg.eval.pck_threshold, normalize=cfg.eval.pck_normalize,
                        output_dir=output_dir, print_fn=print_fn, name=cfg.name)


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, evaluator: Evaluator, *, device: torch.device,
             flip: bool = True, amp: AmpSettings = NO_AMP, show: bool = False,
             channels_last: bool = False) -> dict[str, float]:
    """Predict every sample of ``loader``, decode, map to image pixels, feed ``evaluator`` everything
    a batch holds (it reads what its protocol needs); returns its metrics (identical on every rank:
    the evaluators gather and score on rank 0). Persons whose image cannot be read (``valid`` False,
    see ``TopDownDataset(placeholder_bad_images=True)``) are left out with a warning; their count is
    ``unreadable_images`` / ``unscored_persons`` in the metrics, and more than the dataset's
    ``max_bad_images`` unreadable images is an error."""
    dataset: Any = loader.dataset  # a TopDownDataset
    codec = dataset.codec
    flip_index = dataset.skeleton.flip_index if flip else None
    was_training = model.training
    model.eval()
    try:
        return _evaluate(model, loader, evaluator, dataset, codec, flip_index, device=device, amp=amp, show=show,
                         channels_last=channels_last)
    finally:
        model.train(was_training)  # validation inside training hands the model back as it got it


def _evaluate(model: nn.Module, loader: DataLoader, evaluator: Evaluator, dataset: Any, codec: Any, flip_index: Any,
              *, device: torch.device, amp: AmpSettings, show: bool, channels_last: bool) -> dict[str, float]:
    evaluator.reset()
    total = len(loader)
    bad_images: set[str] = set()
    unscored = 0
    for batch in Progress(loader, total, "eval", enabled=show, log_interval=max(total // 4, 1)):
        ok = batch["valid"].numpy().astype(bool) if "valid" in batch else None
        if ok is not None and not ok.all():
            unscored += int((~ok).sum())
            _note_unreadable(dataset, [p for p, v in zip(batch["image_path"], ok) if not v], bad_images)
            if not ok.any():
                continue
            batch = {k: (v[torch.from_numpy(ok)] if isinstance(v, torch.Tensor) else [x for x, g in zip(v, ok) if g])
                     for k, v in batch.items()}
        images = batch["image"].to(device, non_blocking=True)
        scales = None
        if images.dim() == 5:  # multi-scale testing: (B, S, 3, H, W)
            scales = dataset.test_scales
            b, n = images.shape[:2]
            images = images.flatten(0, 1)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp):
            heat = predict_heatmaps(model, images, flip_index=flip_index, unbiased=codec.unbiased)
        if scales is not None:
            heat = align_multiscale_heatmaps(heat.float().unflatten(0, (b, n)), scales)
        kps_crop, scores = codec.decode(heat.float().cpu().numpy())
        center = batch["center"].numpy()
        scale = batch["scale"].numpy()
        kps = crop_to_image(np.asarray(kps_crop), center, scale, dataset.input_size,
                            rotation=batch["rotation"].numpy(), unbiased=codec.unbiased)
        evaluator.process(kps, keypoint_scores=np.asarray(scores), image_ids=np.asarray(batch["image_id"]),
                          indices=batch["index"].numpy(), boxes=batch["box"].numpy(),
                          box_scores=batch["score"].numpy(), areas=scale[:, 0] * scale[:, 1],
                          gt_keypoints=batch["keypoints_image"].numpy(),
                          visible=batch["visibility_image"].numpy() > 0)
    n_bad, unscored = (int(v) for v in all_reduce_sum([float(len(bad_images)), float(unscored)], device)[:2])
    evaluator.skipped = {"unreadable_images": n_bad, "unscored_persons": unscored} if n_bad else {}
    metrics = evaluator.evaluate()
    if n_bad:
        metrics = {**metrics, **evaluator.skipped}
        if evaluator.print_fn is not None:
            evaluator.print_fn(f"WARNING: {unscored} person(s) on {n_bad} unreadable image(s) were not scored")
    return metrics


def _note_unreadable(dataset: Any, paths: list[str], seen: set[str]) -> None:
    """Warn once per unreadable image; more than the dataset's ``max_bad_images`` is an error
    (then the data, not a few files, is broken)."""
    for p in paths:
        if p not in seen:
            seen.add(p)
            warnings.warn(f"{p}: unreadable image, its person(s) are not scored", RuntimeWarning, stacklevel=3)
    limit = int(getattr(dataset, "max_bad_images", 50))
    if len(seen) > limit:
        raise ValueError(f"{len(seen)} unreadable validation images (max_bad_images={limit}), e.g. "
                         f"{sorted(seen)[0]}; check the image folder")


def evaluate_checkpoint(cfg: TrainConfig, checkpoint: str | Path, *, output_dir: str | Path,
                        use_ema: bool = True) -> dict[str, float]:
    """``stnet eval``: load weights (EMA when the checkpoint has them and ``use_ema``), evaluate the
    val split, write metrics.json and raw predictions into ``output_dir``."""
    info = setup_distributed(cfg.runtime.device)
    try:
        try:  # a checkpoint, a run directory, a pack or shipped weights
            state = load_model_ref(checkpoint).weights("--checkpoint")
        except KeyError as e:
            raise FileNotFoundError(f"--checkpoint: {e.args[0] if e.args else e}") from None
        _, val_ds = build_datasets(cfg, train=False)
        loader = build_dataloader(val_ds, batch_size=cfg.runtime.val_batch_size or cfg.runtime.batch_size,
                                  train=False, num_workers=cfg.runtime.workers, persistent_workers=False)
        model = build_model(cfg, val_ds.skeleton.num_keypoints).to(info.device)
        from_ema = bool(use_ema and state.get("ema"))
        try:
            model.load_state_dict(model_state(state, use_ema))
        except RuntimeError as e:
            raise CheckpointError(f"checkpoint {checkpoint} does not fit {cfg.model.name} "
                                  f"({str(e).splitlines()[0]}...)") from None
        info.say(f"evaluating {checkpoint} ({'EMA' if from_ema else 'model'} weights) on {len(val_ds)} persons")
        evaluator = build_evaluator(cfg, val_ds, output_dir=output_dir if info.is_main else None,
                                    print_fn=print if info.is_main else None)
        # "auto" turns on bf16 autocast on CPUs for training speed; a reported score is computed
        # in fp32 there unless runtime.amp asks for bf16 explicitly.
        amp = cfg.runtime.amp if cfg.runtime.amp != "auto" or info.device.type == "cuda" else "off"
        return evaluate(model, loader, evaluator, device=info.device, flip=cfg.eval.flip_test,
                        amp=amp_settings(amp, info.device), show=info.is_main)
    finally:
        cleanup_distributed()
