"""Training config: recipes, overrides, did-you-mean errors, round trip of config.yaml."""
from __future__ import annotations

from pathlib import Path

import pytest

from stnet.config import parse_overrides
from stnet.engine.config import TrainConfig, load_config, save_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_defaults_are_the_paper_recipe():
    cfg = TrainConfig()
    assert cfg.optim.name == "adam" and cfg.optim.lr == 1e-3 and cfg.optim.weight_decay == 0
    assert cfg.schedule.epochs == 210 and cfg.schedule.milestones == (170, 200) and cfg.schedule.gamma == 0.1
    assert cfg.loss.intermediate_supervision is False
    assert cfg.train.input_size == cfg.val.input_size == cfg.input_size


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_recipe_loads(path):
    cfg = load_config(path)
    assert cfg.name == path.stem
    assert cfg.train.input_size == tuple(cfg.input_size)
    size = "x".join(str(v) for v in cfg.input_size)
    assert size in path.stem and cfg.model.name in path.stem


def test_nested_and_dotted_overrides(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("optim: {lr: 5.0e-4}\nschedule.epochs: 3\ninput_size: [128, 96]\n"
                 "model: {name: stnet_2s, overrides: {mdbs: false}}\n")
    cfg = load_config(p, parse_overrides(["runtime.amp=bf16", "train.augment.flip_prob=0",
                                          "model.overrides.stf=false"]))
    assert cfg.optim.lr == 5e-4 and cfg.schedule.epochs == 3 and cfg.runtime.amp == "bf16"
    assert cfg.train.augment.flip_prob == 0 and cfg.val.input_size == (128, 96)
    assert cfg.model.name == "stnet_2s" and cfg.model.overrides == {"mdbs": False, "stf": False}


@pytest.mark.parametrize("key,hint", [("optim.lrr", "lr"), ("optimizer.lr", "optim"),
                                      ("runtime.batchsize", "batch_size"),
                                      ("train.augment.flip_prb", "flip_prob")])
def test_unknown_key_did_you_mean(key, hint):
    with pytest.raises(ValueError, match=f"did you mean '{hint}'"):
        load_config(None, {key: 1})


def test_unknown_key_in_file_names_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("schedule: {epoch: 3}\n")
    with pytest.raises(ValueError, match=r"bad\.yaml.*'epoch'.*did you mean 'epochs'"):
        load_config(p)


def test_shared_field_must_be_set_once():
    with pytest.raises(ValueError, match="set 'input_size' instead"):
        load_config(None, {"train.input_size": [128, 96]})


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(CONFIGS / "stnet_1s_lspet_128x96_b32x1_e60.yaml", {"optim.lr": 2e-3})
    save_config(cfg, tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert again == cfg


def test_data_paths_resolve_against_data_root(monkeypatch, tmp_path):
    from stnet.engine.config import resolve_data_path

    monkeypatch.setenv("STNET_DATA_ROOT", str(tmp_path))
    (tmp_path / "lspet").mkdir()
    (tmp_path / "lspet" / "joints.mat").write_bytes(b"")
    cfg = load_config(CONFIGS / "stnet_1s_lspet_128x96_b32x1_e60.yaml")
    assert resolve_data_path(cfg, cfg.train.ann_file) == str(tmp_path / "lspet" / "joints.mat")
    absolute = str(tmp_path / "lspet" / "joints.mat")
    assert resolve_data_path(cfg, absolute) == absolute  # an absolute path is used as it is
