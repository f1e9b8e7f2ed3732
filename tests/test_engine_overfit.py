"""Overfit check on 8 real LSP-Extended persons: targets, loss, decode and the inverse crop
transform are consistent when the model can reach near-perfect PCK on its own training set.
Slow (several CPU minutes): `pytest -m slow tests/test_engine_overfit.py`."""
from __future__ import annotations

from pathlib import Path

import pytest

from stnet.engine.config import load_config
from stnet.engine.train import train

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.slow
@pytest.mark.data
def test_stnet_1s_overfits_8_lspet_persons(tmp_path, data_root):
    if not (data_root / "lspet" / "joints.mat").is_file():
        pytest.skip("lspet not in the data folder")
    cfg = load_config(CONFIGS / "stnet_1s_lspet_128x96_b32x1_e60.yaml", {
        "data_root": str(data_root), "runtime.output_dir": str(tmp_path / "run"),
        "runtime.limit_train": 8, "runtime.limit_val": 8, "val.split": "train",
        "train.augment.enabled": False, "runtime.batch_size": 8, "runtime.workers": 0,
        "schedule.epochs": 300, "schedule.milestones": [1000], "runtime.val_interval": 50,
        "runtime.tensorboard": False})
    summary = train(cfg)
    assert summary["best_metric"] >= 90.0, summary
