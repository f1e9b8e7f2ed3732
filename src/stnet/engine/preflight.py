"""Checks run before the first training step: a recipe that cannot validate (annotations the
evaluator cannot read, a metric that does not fit the skeleton, targets that do not fit the model)
fails in seconds with the reason, not after an epoch of training."""
from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import default_collate

from stnet.models import all_stages

from .config import TrainConfig
from .distributed import DistInfo, unwrap
from .evaluate import build_evaluator, evaluate, metric_key
from .state import RunState

__all__ = ["check_before_training", "PREFLIGHT_PERSONS"]

#: Persons in the validation batch scored before training (the first ones of the val split).
PREFLIGHT_PERSONS = 16


class _OneBatch:
    """Just enough of a DataLoader for :func:`~.evaluate.evaluate`: the dataset and one batch."""

    def __init__(self, dataset: Any, batch: dict[str, Any]) -> None:
        self.dataset = dataset
        self._batch = batch

    def __iter__(self) -> Iterator[dict[str, Any]]:
        yield self._batch

    def __len__(self) -> int:
        return 1


def _first_batch(dataset: Any, n: int) -> dict[str, Any]:
    # Loaded in this process, by plain index: the loaders' workers and samplers are not touched,
    # so the run sees exactly the batches it would without this check.
    return default_collate([dataset[i] for i in range(min(n, len(dataset)))])


def check_before_training(cfg: TrainConfig, info: DistInfo, run: RunState, train_ds: Any, val_ds: Any) -> None:
    """One training batch through the model (its heatmaps must fit the targets), one validation batch through the model,
    the decoder and the evaluator (scored), with nothing written; raises ValueError naming what
    does not fit. The RNG states are restored, so a run is the same with or without it."""
    py_state, np_state = random.getstate(), np.random.get_state()
    devices = [info.device] if info.device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            _check(cfg, info, run, train_ds, val_ds)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def _check(cfg: TrainConfig, info: DistInfo, run: RunState, train_ds: Any, val_ds: Any) -> None:
    model = unwrap(run.model)
    kind, metric = metric_key(cfg)
    where = f"checked before training (eval.metric {cfg.eval.metric!r} -> {kind})"
    batch = _first_batch(train_ds, 2)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = all_stages(model(batch["image"].to(info.device)))[-1].float()
            target = batch["heatmaps"]
            # shapes only: the loss itself is computed by the first step, and a loss call here would
            # count as one (hooks, NaN checks) without being one
            if tuple(out.shape) != tuple(target.shape):
                raise ValueError(f"{where}: the model predicts heatmaps {tuple(out.shape[1:])}, the training "
                                 f"targets are {tuple(target.shape[1:])}; check input_size, codec and the skeleton")
        try:
            evaluator = build_evaluator(cfg, val_ds, output_dir=None, print_fn=None)
        except (ValueError, FileNotFoundError, KeyError) as e:
            raise type(e)(f"{where}: cannot build the evaluator: {e}") from None
        if hasattr(evaluator, "allow_partial"):
            evaluator.allow_partial = True  # one batch of a split that is normally scored whole
        n_val = min(PREFLIGHT_PERSONS, len(val_ds))
        one = _OneBatch(val_ds, _first_batch(val_ds, n_val))
        try:
            metrics = evaluate(model, one, evaluator, device=info.device,  # type: ignore[arg-type]
                               flip=cfg.eval.flip_test)
        except (ValueError, KeyError, IndexError) as e:
            raise ValueError(f"{where}: validating the first {n_val} val person(s) failed: {e}") from None
    finally:
        model.train(was_training)
    if metric not in metrics:
        raise ValueError(f"{where}: the evaluator reports {sorted(metrics)[:6]}, not {metric!r}, the metric that "
                         "picks best.pt")
