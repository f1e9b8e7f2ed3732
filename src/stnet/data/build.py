"""From a :class:`DataConfig` to records, a dataset and a DataLoader."""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Literal

import torch
from torch.utils.data import (DataLoader, Dataset, DistributedSampler, RandomSampler, Sampler,
                              SequentialSampler)

from stnet.codecs import build_codec

from .coco import load_coco_records
from .config import AugmentConfig, DataConfig
from .dataset import TopDownDataset
from .lsp import load_lsp_records
from .mpii import load_mpii_records
from .records import PersonRecord
from .skeletons import Skeleton, get_skeleton, skeleton_from_coco

__all__ = ["build_skeleton", "load_records", "build_dataset", "build_dataloader", "build_loader",
           "preset_config", "default_data_root", "worker_init_fn", "EpochTaggedSampler",
           "EpochTaggedDistributedSampler"]


def default_data_root() -> Path:
    """``$STNET_DATA_ROOT`` or ``../shared/data`` next to the repository (a development layout)."""
    env = os.environ.get("STNET_DATA_ROOT")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


def build_skeleton(cfg: DataConfig) -> Skeleton:
    if cfg.skeleton_meta:
        return skeleton_from_coco(cfg.ann_file, cfg.skeleton_meta)
    return get_skeleton(cfg.skeleton)


def load_records(cfg: DataConfig, skeleton: Skeleton | None = None) -> list[PersonRecord]:
    """Records of the split described by ``cfg``."""
    skel = skeleton or build_skeleton(cfg)
    if not cfg.ann_file:
        raise ValueError("DataConfig.ann_file is empty; set the annotation file")
    if cfg.kind == "coco":
        return load_coco_records(cfg.ann_file, cfg.image_dir, skel, det_file=cfg.det_file,
                                 det_score_threshold=cfg.det_score_threshold)
    if cfg.kind == "mpii":
        return load_mpii_records(cfg.ann_file, cfg.image_dir, skel)
    if cfg.kind == "cache":
        from .crop_cache import load_cache_records

        return load_cache_records(cfg.ann_file, skel, split=cfg.split)
    if cfg.kind == "lsp":
        return load_lsp_records(cfg.ann_file, cfg.image_dir or None, skel, split=cfg.split,
                                val_fraction=cfg.lsp_val_fraction)
    raise ValueError(f"unknown DataConfig.kind {cfg.kind!r}; expected 'coco', 'mpii', 'lsp' or 'cache'")


def _check_files(records: list[PersonRecord], train: bool, where: str) -> list[PersonRecord]:
    exists: dict[Path, bool] = {}
    for r in records:
        if r.image_path not in exists:
            exists[r.image_path] = r.image_path.is_file()
    missing = sorted(str(p) for p, ok in exists.items() if not ok)
    if not missing:
        return records
    shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
    if not train or len(missing) == len(exists):
        raise FileNotFoundError(f"{where}: {len(missing)} of {len(exists)} image file(s) not found: {shown}")
    warnings.warn(f"{where}: {len(missing)} of {len(exists)} image file(s) not found, their persons "
                  f"are left out: {shown}", UserWarning, stacklevel=3)
    gone = set(missing)
    return [r for r in records if str(r.image_path) not in gone]


def build_dataset(cfg: DataConfig, train: bool | None = None, *, check_files: bool = True,
                  records: list[PersonRecord] | None = None) -> TopDownDataset:
    """Dataset for ``cfg``; ``train`` (default: ``cfg.split == "train"``) turns on augmentation
    and skipping of unreadable images. ``check_files`` stats every image once up front: missing
    files are an error for evaluation and a warning (persons dropped) for training."""
    train = cfg.split == "train" if train is None else train
    skel = build_skeleton(cfg)
    recs = load_records(cfg, skel) if records is None else records
    if not recs:
        raise ValueError(f"{cfg.ann_file}: no usable person records for split {cfg.split!r}")
    if check_files and cfg.kind != "cache":
        recs = _check_files(recs, train, cfg.ann_file)
    codec = build_codec(cfg.codec, cfg.input_size)
    kwargs: dict[str, Any] = dict(input_size=cfg.input_size, codec=codec, augment=cfg.augment if train else None,
                                  bbox_padding=cfg.bbox_padding, normalize=cfg.normalize,
                                  use_joint_weights=cfg.use_joint_weights, skip_bad_images=train,
                                  placeholder_bad_images=not train,
                                  max_bad_images=cfg.max_bad_images, seed=cfg.seed)
    if cfg.kind == "cache":
        from .crop_cache import CropCacheDataset

        return CropCacheDataset(cfg.ann_file, recs, skel, **kwargs)
    return TopDownDataset(recs, skel, **kwargs)


def worker_init_fn(worker_id: int) -> None:
    """Keep OpenCV single-threaded inside DataLoader workers (the workers are the parallelism;
    nested thread pools only oversubscribe the CPU)."""
    import cv2

    cv2.setNumThreads(0)
    torch.set_num_threads(1)


class EpochTaggedSampler(Sampler):
    """Yields ``(epoch, index)`` keys for a :class:`TopDownDataset`.

    Persistent DataLoader workers hold their own copy of the dataset, which a ``set_epoch`` call
    in the main process never reaches; carrying the epoch in each key keeps seeded augmentation a
    function of (seed, epoch, index), so a resumed run sees exactly the batches an uninterrupted
    one would, without re-forking workers every epoch."""

    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler
        self.epoch = 0

    @property
    def generator(self) -> Any:
        return getattr(self.sampler, "generator", None)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if isinstance(self.sampler, DistributedSampler):
            self.sampler.set_epoch(epoch)

    def __iter__(self):
        return ((self.epoch, int(i)) for i in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)  # type: ignore[arg-type]


class EpochTaggedDistributedSampler(DistributedSampler):
    """A ``DistributedSampler`` yielding ``(epoch, index)`` keys (see :class:`EpochTaggedSampler`)."""

    def __iter__(self):
        return ((self.epoch, int(i)) for i in super().__iter__())


def build_dataloader(dataset: Dataset, *, batch_size: int = 32, train: bool = True,
                     num_workers: int = 4, pin_memory: bool | None = None, seed: int = 0,
                     drop_last: bool | None = None, persistent_workers: bool | None = None,
                     prefetch_factor: int | None = None, collate_fn: Any = None) -> DataLoader:
    """DataLoader with the usual top-down settings.

    Uses a ``DistributedSampler`` (shuffled for training, seeded with ``seed``) when
    ``torch.distributed`` is initialised; call ``loader.sampler.set_epoch(epoch)`` each epoch
    then. Pinned memory defaults to "a CUDA device is present"; the last incomplete batch is
    dropped for training only. ``collate_fn``: None for the default (``collate_deferred`` for a
    dataset with ``defer_warp``).
    """
    import torch.distributed as dist

    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    drop_last = train if drop_last is None else drop_last
    tagged = train and isinstance(dataset, TopDownDataset)  # evaluation has no epoch-dependent augmentation
    if dist.is_available() and dist.is_initialized():
        cls = EpochTaggedDistributedSampler if tagged else DistributedSampler
        sampler: Any = cls(dataset, shuffle=train, seed=seed, drop_last=train)
        tagged = False  # already tagged
    elif train:
        g = torch.Generator()
        g.manual_seed(seed)
        sampler = RandomSampler(dataset, generator=g)  # type: ignore[arg-type]  # a sized dataset
    else:
        sampler = SequentialSampler(dataset)  # type: ignore[arg-type]
    if tagged:
        sampler = EpochTaggedSampler(sampler)
    kwargs: dict[str, Any] = {}
    if num_workers > 0:
        kwargs["persistent_workers"] = True if persistent_workers is None else persistent_workers
        kwargs["worker_init_fn"] = worker_init_fn
        if prefetch_factor is not None:
            kwargs["prefetch_factor"] = prefetch_factor
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      pin_memory=pin_memory, drop_last=drop_last, collate_fn=collate_fn, **kwargs)


def build_loader(cfg: DataConfig, train: bool | None = None, *, seed: int = 0) -> DataLoader:
    """``build_dataset(cfg, train)`` wrapped by ``build_dataloader`` with the config's
    ``batch_size``, ``num_workers`` and ``pin_memory``; the dataset is ``loader.dataset``."""
    train = cfg.split == "train" if train is None else train
    ds = build_dataset(cfg, train)
    return build_dataloader(ds, batch_size=cfg.batch_size, train=train, num_workers=cfg.num_workers,
                            pin_memory=cfg.pin_memory and torch.cuda.is_available(), seed=seed)


def preset_config(name: Literal["lsp", "coco", "mpii", "crowdpose"], root: str | Path | None = None,
                  split: Literal["train", "val", "all"] = "train", **overrides: Any) -> DataConfig:
    """DataConfig for a dataset in its usual folder layout under ``root``.

    ========== ==================================================== ===========================
    name       files under root                                      augmentation defaults
    ========== ==================================================== ===========================
    lsp        joints.mat, images/im%05d.jpg                         MPII recipe (0.25, 30 deg)
    coco       annotations/person_keypoints_{split}2017.json,        COCO recipe (0.35, 45 deg)
               {split}2017/
    crowdpose  annotations/crowdpose_{split}.json, images/           COCO recipe
    mpii       annotations/mpii_{split}.json, images/                MPII recipe
    ========== ==================================================== ===========================

    ``overrides`` are DataConfig fields (e.g. ``input_size=(256, 256)``).
    """
    root = Path(root) if root is not None else None
    if name == "lsp":
        r = root or default_data_root() / "lspet"
        base = dict(kind="lsp", ann_file=str(r / "joints.mat"), image_dir=str(r / "images"),
                    skeleton="lsp14", augment=AugmentConfig.mpii())
    elif name == "coco":
        r = root or default_data_root() / "coco"
        base = dict(kind="coco", ann_file=str(r / "annotations" / f"person_keypoints_{split}2017.json"),
                    image_dir=str(r / f"{split}2017"), skeleton="coco17", augment=AugmentConfig.coco())
    elif name == "crowdpose":
        r = root or default_data_root() / "crowdpose"
        base = dict(kind="coco", ann_file=str(r / "annotations" / f"crowdpose_{split}.json"),
                    image_dir=str(r / "images"), skeleton="crowdpose14", augment=AugmentConfig.coco())
    elif name == "mpii":
        r = root or default_data_root() / "mpii"
        base = dict(kind="mpii", ann_file=str(r / "annotations" / f"mpii_{split}.json"),
                    image_dir=str(r / "images"), skeleton="mpii16", augment=AugmentConfig.mpii(),
                    input_size=(256, 256))
    else:
        raise KeyError(f"unknown dataset preset {name!r}; expected lsp, coco, crowdpose or mpii")
    base.update(split=split)
    base.update(overrides)
    return DataConfig(**base)  # type: ignore[arg-type]
