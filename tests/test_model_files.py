"""stnet.model_files: reading weights files, prefix stripping, EMA selection."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stnet.model_files import (CheckpointError, load_state, model_state, resolve_checkpoint, resolve_weights,
                               state_num_joints, strip_prefix)


def test_strip_prefix_ddp_compile_and_both():
    t = torch.zeros(1)
    assert strip_prefix({"module.a.w": t, "module.b": t}) == {"a.w": t, "b": t}
    assert strip_prefix({"_orig_mod.a": t}) == {"a": t}
    assert strip_prefix({"module._orig_mod.a": t, "module._orig_mod.b": t}) == {"a": t, "b": t}
    assert strip_prefix({"_orig_mod.module.a": t}) == {"a": t}
    # a model's own submodule named "module" (not every key has it) is left alone
    assert strip_prefix({"module.a": t, "head.weight": t}) == {"module.a": t, "head.weight": t}
    assert strip_prefix({}) == {}


def test_load_state_forms_and_errors(tmp_path: Path):
    sd = {"head.weight": torch.zeros(14, 32, 1, 1)}
    torch.save(sd, tmp_path / "bare.pt")
    state = load_state(tmp_path / "bare.pt")
    assert set(state) == {"model"} and state_num_joints(state["model"]) == 14
    torch.save({"model": {"module.x": torch.ones(1)}, "ema": {"module.x": torch.full((1,), 2.0)}},
               tmp_path / "ckpt.pt")
    state = load_state(tmp_path / "ckpt.pt")
    assert float(model_state(state)["x"]) == 2.0  # EMA when present
    assert float(model_state(state, use_ema=False)["x"]) == 1.0
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="bad.pt is truncated or corrupted"):
        load_state(tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_state(tmp_path / "missing.pt")
    assert issubclass(CheckpointError, ValueError)


def test_references(tmp_path: Path):
    (tmp_path / "run").mkdir()
    with pytest.raises(FileNotFoundError, match="best.pt or last.pt"):
        resolve_checkpoint(tmp_path / "run")
    (tmp_path / "run" / "last.pt").write_bytes(b"x")
    assert resolve_checkpoint(tmp_path / "run").name == "last.pt"
    assert resolve_weights(tmp_path / "w.pt") == tmp_path / "w.pt"  # a path is taken as given


def test_weights_with_nan_are_refused(tmp_path: Path):
    # issue 12: NaN weights ran and gave confident, meaningless keypoints
    bad = {"conv.weight": torch.ones(2, 2), "head.weight": torch.tensor([1.0, float("nan"), float("inf")])}
    torch.save(bad, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match=r"nan.pt: model tensor 'head.weight' has 2 NaN/inf value\(s\) of 3"):
        load_state(tmp_path / "nan.pt")
    torch.save({"model": {"w": torch.ones(1)}, "ema": {"module": {"w": torch.tensor([float("nan")])}}},
               tmp_path / "ema.pt")
    with pytest.raises(CheckpointError, match=r"ema tensor 'module.w'"):
        load_state(tmp_path / "ema.pt")
    torch.save({"w": torch.ones(1), "n": torch.tensor([3])}, tmp_path / "ok.pt")
    assert load_state(tmp_path / "ok.pt")["model"]["n"].item() == 3
