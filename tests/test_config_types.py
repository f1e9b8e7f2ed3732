"""Config values are converted to their fields' types (issue 12, item 4): YAML 1.1 reads `5e-4`
as a string and `yes`/`off` as booleans; recipes and --set must still mean what they say, and
bad values fail at config time with one line naming field, value and expected type."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Literal

import pytest
import yaml

from stnet.cli import main
from stnet.config import coerce, parse_overrides
from stnet.data.config import DataConfig, apply_overrides
from stnet.engine.config import TrainConfig, config_from_plain, config_to_dict, load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
RECIPE = CONFIGS / "stnet_1s_lspet_128x96_b32x1_e60.yaml"


def test_help_example_lr_5e_4_works():
    # The example in `stnet train --help`; YAML 1.1 reads 5e-4 as the string '5e-4'.
    cfg = load_config(None, parse_overrides(["optim.lr=5e-4", "optim.weight_decay=1e-4",
                                             "schedule.epochs=1e2"]))
    assert cfg.optim.lr == 5e-4 and isinstance(cfg.optim.lr, float)
    assert cfg.optim.weight_decay == 1e-4 and cfg.schedule.epochs == 100 and isinstance(cfg.schedule.epochs, int)


def test_recipe_values_are_typed(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("optim: {lr: 5e-4, betas: ['0.9', 0.99]}\nschedule: {milestones: [1e1, 20]}\n"
                 "runtime: {amp: off, channels_last: 'no', grad_clip: '1e1', limit_val: ~, log_interval: '10'}\n"
                 "eval: {test_scales: 1, flip_test: 'On'}\ncodec: {refine: none, sigma: 2}\n"
                 "train.augment.flip_prob: '0'\n")
    cfg = load_config(p)
    assert cfg.optim.lr == 5e-4 and cfg.optim.betas == (0.9, 0.99)
    assert cfg.schedule.milestones == (10, 20)
    rt = cfg.runtime
    assert (rt.amp, rt.channels_last, rt.grad_clip, rt.limit_val, rt.log_interval) == ("off", False, 10.0, None, 10)
    assert cfg.eval.test_scales == (1.0,) and cfg.eval.flip_test is True
    assert cfg.codec.refine == "none" and isinstance(cfg.codec.sigma, float)
    assert cfg.train.augment.flip_prob == 0.0 and isinstance(cfg.train.augment.flip_prob, float)
    # the resolved config round-trips through config.yaml and the checkpoint's plain dict
    assert config_from_plain(config_to_dict(cfg)) == cfg


@pytest.mark.parametrize("item,message", [
    ("optim.lr=abc", "optim.lr: expected a float, got 'abc'"),
    ("optim.lr=nan", "optim.lr: expected a finite float, got 'nan'"),
    ("schedule.epochs=2.5", "schedule.epochs: expected an integer, got 2.5"),
    ("schedule.epochs=true", "schedule.epochs: expected an integer, got True"),
    ("runtime.channels_last=maybe", "runtime.channels_last: expected a boolean (true/false, yes/no, on/off, 1/0), "
                                    "got 'maybe'"),
    ("runtime.channels_last=2", "runtime.channels_last: expected a boolean"),
    ("runtime.amp=fp8", "runtime.amp: expected one of 'auto', 'bf16', 'fp16', 'off', got 'fp8'"),
    ("input_size=[256,192,3]", "input_size: expected 2 values, got [256, 192, 3]"),
    ("schedule.milestones=[10,x]", "schedule.milestones[1]: expected an integer, got 'x'"),
    ("runtime.limit_train=abc", "runtime.limit_train: expected an integer or None, got 'abc'"),
    ("name=yes", "name: expected a string, got True"),
    ("model.overrides=3", "model.overrides must be a mapping"),
    ("eval.nms=soft", "eval.nms: expected one of 'oks', 'soft_oks', 'none', got 'soft'"),
    ("train.augment.rotation_factor=x", "train.augment.rotation_factor: expected a float, got 'x'"),
])
def test_bad_value_names_field_value_and_type(item, message):
    with pytest.raises(ValueError, match=re.escape(message)) as e:
        load_config(None, parse_overrides([item]))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("item,message", [
    ("runtime.limit_train=-5", "runtime.limit_train must be >= 1"),
    ("runtime.limit_train=0", "runtime.limit_train must be >= 1"),
    ("runtime.limit_val=0", "runtime.limit_val must be >= 1"),
    ("runtime.val_interval=0", "runtime.val_interval must be >= 1"),
    ("runtime.workers=-1", "runtime.workers must be >= 0"),
    ("runtime.log_interval=0", "runtime.log_interval must be >= 1"),
    ("runtime.max_iters_per_epoch=0", "runtime.max_iters_per_epoch must be >= 1"),
    ("runtime.val_batch_size=0", "runtime.val_batch_size must be >= 1"),
    ("runtime.batch_size=0", "runtime.batch_size must be >= 1"),
    ("runtime.grad_clip=0", "runtime.grad_clip must be > 0"),
    ("runtime.ema_decay=1", r"runtime.ema_decay must be in \(0, 1\)"),
    ("optim.lr=0", "optim.lr must be > 0"),
    ("optim.lr=-1e-3", "optim.lr must be > 0"),
    ("optim.weight_decay=-1", "optim.weight_decay must be >= 0"),
    ("optim.betas=[0.9,1.5]", "optim.betas must be two values"),
    ("schedule.epochs=0", "schedule.epochs must be >= 1"),
    ("schedule.milestones=[200,170]", "schedule.milestones must be increasing"),
    ("schedule.milestones=[170,170]", "schedule.milestones must be increasing"),
    ("schedule.gamma=0", "schedule.gamma must be > 0"),
    ("eval.nms_thr=0", "eval.nms_thr must be in"),
])
def test_out_of_range_rejected_at_config_time(item, message):
    with pytest.raises(ValueError, match=message):
        load_config(None, parse_overrides([item]))


def test_null_and_bool_spellings():
    cfg = load_config(None, parse_overrides(["runtime.grad_clip=1", "runtime.limit_train=none",
                                             "runtime.max_iters_per_epoch=null", "runtime.tensorboard=OFF",
                                             "eval.flip_test=0", "model.weights=", "runtime.amp=BF16"]))
    rt = cfg.runtime
    assert rt.grad_clip == 1.0 and rt.limit_train is None and rt.max_iters_per_epoch is None
    assert rt.tensorboard is False and cfg.eval.flip_test is False and cfg.model.weights is None
    assert rt.amp == "bf16"
    for spelling, want in [("yes", True), ("No", False), ("on", True), ("off", False), ("1", True),
                           ("0", False), ("TRUE", True), ("false", False)]:
        assert coerce(spelling, bool, "x") is want  # the raw strings too, not only YAML's reading
    with pytest.raises(ValueError, match="x: expected a boolean"):
        coerce("maybe", bool, "x")
    assert coerce("OFF", Literal["on", "off"], "x") == "off"


def test_data_config_overrides_are_typed():
    cfg = apply_overrides(DataConfig(), parse_overrides(["augment.flip_prob=5e-1", "input_size=[128, 96]",
                                                         "codec.sigma=3", "pin_memory=no"]))
    assert cfg.augment.flip_prob == 0.5 and cfg.input_size == (128, 96) and cfg.codec.sigma == 3.0
    assert cfg.pin_memory is False
    with pytest.raises(ValueError, match="augment.flip_prob: expected a float, got 'half'"):
        apply_overrides(DataConfig(), {"augment.flip_prob": "half"})


def test_complexity_set_maybe_fails(capsys):
    assert main(["complexity", "stnet_1s", "--set", "mdbs=maybe"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("stnet complexity: error: stnet_1s: mdbs: expected a boolean "
                   "(true/false, yes/no, on/off, 1/0), got 'maybe'")
    from stnet.models import create_model

    assert create_model("stnet_1s", mdbs="off").cfg.mdbs is False  # a spelling that means false
    with pytest.raises(ValueError, match="stnet_1s: width: expected an integer, got 'wide'"):
        create_model("stnet_1s", width="wide")


def test_train_print_config_prints_yaml_and_exits(tmp_path, capsys):
    out_dir = tmp_path / "run"
    assert main(["train", str(RECIPE), "--set", "optim.lr=5e-4", "--set", "runtime.amp=off",
                 "--output-dir", str(out_dir), "--print-config"]) == 0
    text = capsys.readouterr().out
    d = yaml.safe_load(text)
    assert d["optim"]["lr"] == 5e-4 and d["runtime"]["amp"] == "off" and d["name"] == RECIPE.stem
    assert d["runtime"]["output_dir"] == str(out_dir)
    assert not out_dir.exists()  # no run was started
    # what it prints loads back to the same config
    p = tmp_path / "printed.yaml"
    p.write_text(text)
    assert load_config(p) == load_config(RECIPE, {"optim.lr": 5e-4, "runtime.amp": "off",
                                                  "runtime.output_dir": str(out_dir)})
    assert main(["train", str(RECIPE), "--set", "runtime.limit_train=-5", "--print-config"]) == 2
    assert "runtime.limit_train must be >= 1" in capsys.readouterr().err


def test_train_help_example_runs_from_the_shell():
    r = subprocess.run([sys.executable, "-m", "stnet.cli", "train", str(RECIPE), "--set", "optim.lr=5e-4",
                        "--print-config"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert yaml.safe_load(r.stdout)["optim"]["lr"] == 5e-4
    helptext = subprocess.run([sys.executable, "-m", "stnet.cli", "train", "--help"], capture_output=True,
                              text=True, timeout=120).stdout
    assert "optim.lr=5e-4" in helptext and "--print-config" in helptext


def test_python_api_direct_construction_still_validated():
    with pytest.raises(ValueError, match="runtime.val_interval must be >= 1"):
        TrainConfig(runtime=load_config(None, {}).runtime.__class__(val_interval=0))
