"""The model and the datasets of a :class:`~stnet.engine.config.TrainConfig`."""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import torch.nn as nn

from stnet.data.build import build_dataset, build_skeleton, load_records
from stnet.data.config import DataConfig
from stnet.data.skeletons import Skeleton, get_skeleton
from stnet.model_files import ModelFile, load_model_ref, model_state
from stnet.models import create_model

from .config import TrainConfig, resolve_data_path

__all__ = ["build_model", "build_datasets", "resolve_data_config"]


def build_model(cfg: TrainConfig, num_joints: int, skeleton: Skeleton | None = None) -> nn.Module:
    """``create_model(cfg.model.name, **overrides)`` with num_joints / input_size from the data;
    with ``model.weights`` (a checkpoint or a shipped name) every tensor of matching shape is
    initialised from those weights (their EMA when present); the others keep their init.

    When the weights name their keypoints (shipped weights, packs and checkpoints do) and
    ``skeleton`` (the data's layout) differs, the per-keypoint rows of the heatmap head are copied
    for the keypoints both layouts share by name (e.g. the 12 body joints from lsp14 to coco17);
    the other rows keep their init."""
    over = {"num_joints": num_joints, "input_size": tuple(cfg.input_size), **cfg.model.overrides}
    model = create_model(cfg.model.name, **over)
    if cfg.model.weights:
        ref = _warm_start_ref(cfg.model.weights)
        src = model_state(ref.weights("model.weights"))
        own = model.state_dict()
        fit = {k: v for k, v in src.items() if k in own and own[k].shape == v.shape}
        skipped = sorted(set(own) - set(fit))
        model.load_state_dict(fit, strict=False)
        kept = ""
        if skipped:
            kept = (f"; kept the new init for {len(skipped)} ({', '.join(skipped[:4])}"
                    f"{', ...' if len(skipped) > 4 else ''})")
        print(f"model.weights: initialised {len(fit)}/{len(own)} tensors from {cfg.model.weights}{kept}", flush=True)
        names = _ref_keypoint_names(ref)
        if skipped and names and skeleton is not None:
            _copy_shared_rows(model, {k: src[k] for k in skipped if k in src}, names, skeleton.keypoint_names)
    return model


def _warm_start_ref(ref: str) -> ModelFile:
    """The model reference ``model.weights`` names: shipped weights, a pack, a checkpoint or run directory."""
    try:
        return load_model_ref(ref)
    except (FileNotFoundError, KeyError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        raise FileNotFoundError(f"model.weights: {msg}") from None


def _ref_keypoint_names(ref: ModelFile) -> tuple[str, ...] | None:
    card = ref.card
    if card.skeleton and isinstance(card.skeleton.get("keypoint_names"), (list, tuple)):
        return tuple(str(n) for n in card.skeleton["keypoint_names"])
    if card.skeleton_name:
        try:
            return get_skeleton(card.skeleton_name).keypoint_names
        except KeyError:
            return None
    return None


def _copy_shared_rows(model: nn.Module, src: dict[str, Any], src_names: Sequence[str],
                      dst_names: Sequence[str]) -> None:
    """Copy per-keypoint rows (dim 0 = the keypoint count, the rest of the shape equal) of the
    keypoints both layouts name."""
    pairs = [(src_names.index(n), i) for i, n in enumerate(dst_names) if n in src_names]
    if not pairs or tuple(src_names) == tuple(dst_names):
        return
    own = model.state_dict()
    done = []
    for k, v in src.items():
        o = own.get(k)
        if (o is None or v.dim() == 0 or o.dim() != v.dim() or v.shape[0] != len(src_names)
                or o.shape[0] != len(dst_names) or v.shape[1:] != o.shape[1:]):
            continue
        rows = o.clone()
        for s, d in pairs:
            rows[d] = v[s].to(rows.dtype)
        own[k] = rows
        done.append(k)
    if done:
        model.load_state_dict(own)
        shared = [dst_names[d] for _, d in pairs]
        print(f"model.weights: copied the rows of {len(pairs)} shared keypoints ({', '.join(shared)}) "
              f"into {', '.join(done)}", flush=True)


def resolve_data_config(cfg: TrainConfig, dc: DataConfig, split: str | None = None) -> DataConfig:
    """``dc`` with its file paths resolved (current folder, else the data root; see
    :func:`~stnet.engine.config.resolve_data_path`); ``split`` names the fields in errors."""
    split = split or dc.split

    def res(name: str) -> str | None:
        return resolve_data_path(cfg, getattr(dc, name), f"{split}.{name}")

    # A crop cache holds its pixels: the image folder a recipe still names (the GPU hosts that get
    # only the .npz lack it) is neither needed nor checked.
    image_dir = "" if dc.kind == "cache" else res("image_dir") or ""
    return dataclasses.replace(dc, ann_file=res("ann_file") or "", image_dir=image_dir,
                               det_file=res("det_file"), skeleton_meta=res("skeleton_meta"))


def build_datasets(cfg: TrainConfig, *, train: bool = True, val: bool = True) -> tuple[Any, Any]:
    """(train_dataset, val_dataset) with paths resolved against the data root and the
    ``runtime.limit_*`` subsets applied (first N records, deterministic)."""
    out: list[Any] = []
    val_cfg = cfg.val
    if cfg.train.skeleton_meta and not cfg.val.skeleton_meta and cfg.val.kind == cfg.train.kind:
        # a custom layout is declared once, under train:, for both splits
        val_cfg = dataclasses.replace(cfg.val, skeleton_meta=cfg.train.skeleton_meta)
    for want, dc, limit, is_train in ((train, cfg.train, cfg.runtime.limit_train, True),
                                      (val, val_cfg, cfg.runtime.limit_val, False)):
        if not want:
            out.append(None)
            continue
        dc = resolve_data_config(cfg, dc, "train" if is_train else "val")
        records = load_records(dc, build_skeleton(dc))
        if limit is not None:
            records = records[: int(limit)]
        ds = build_dataset(dc, train=is_train, records=records)
        if not is_train and cfg.eval.test_scales != (1.0,):
            ds.test_scales = cfg.eval.test_scales
        out.append(ds)
    return out[0], out[1]
