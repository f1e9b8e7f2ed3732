"""Issue 13, "fail before epoch 1": a recipe that cannot validate fails before the first training
step (no checkpoint written), and relative data paths resolve from the current folder, else from
the data root, with an error that names the field, both candidates and STNET_DATA_ROOT."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import stnet.engine.train as train_mod
from stnet.cli import main as stnet_main
from stnet.engine.config import load_config, resolve_data_path
from helpers.synthetic import make_synthetic_coco

RECIPE = """\
model: {{name: stnet_1s, overrides: {{width: 8}}}}
input_size: [64, 64]
data_root: {root}
train: {{kind: coco, ann_file: annotations.json, image_dir: images}}
val: {{kind: coco, ann_file: {val_ann}, image_dir: images, split: val}}
schedule: {{epochs: 1, milestones: [1]}}
eval: {{flip_test: false}}
runtime: {{batch_size: 2, workers: 0, tensorboard: false, output_dir: {out}}}
"""


@pytest.fixture(scope="module")
def syn(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("syn")
    ann = make_synthetic_coco(root, num_images=4, image_size=(80, 64))
    data = json.loads(ann.read_text())
    for a in data["annotations"]:  # readable as training data, but COCOeval needs 'iscrowd'
        del a["iscrowd"]
    (root / "no_iscrowd.json").write_text(json.dumps(data))
    return root


@pytest.fixture
def no_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a training step ran before the recipe was checked")

    monkeypatch.setattr(train_mod, "train_one_epoch", refuse)


def _recipe(tmp: Path, root: Path, val_ann: str = "annotations.json") -> Path:
    p = tmp / "recipe.yaml"
    p.write_text(RECIPE.format(root=root, val_ann=val_ann, out=tmp / "run"))
    return p


def _no_checkpoint(run: Path) -> None:
    assert not list(run.glob("*.pt"))


def _fails(args: list[str], capsys) -> str:
    """The one-line error ``stnet`` printed for a failing command."""
    assert stnet_main(args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stnet train: error: "), lines
    return lines[0][len("stnet train: error: "):]


def test_val_annotations_the_evaluator_cannot_read_fail_before_training(tmp_path, syn, no_training, capsys):
    msg = _fails(["train", str(_recipe(tmp_path, syn, "no_iscrowd.json"))], capsys)
    assert re.match(r"checked before training.*no_iscrowd.json.*'iscrowd'", msg), msg
    _no_checkpoint(tmp_path / "run")


def test_a_metric_that_does_not_fit_the_data_fails_before_training(tmp_path, syn, no_training, capsys):
    msg = _fails(["train", str(_recipe(tmp_path, syn)), "--set", "eval.metric=pckh"], capsys)
    assert re.match(r"checked before training \(eval.metric 'pckh' -> pckh\).*must be \(N, 16, 2\)", msg), msg
    _no_checkpoint(tmp_path / "run")


def test_a_missing_val_file_names_the_field_both_paths_and_the_root(tmp_path, syn, no_training, monkeypatch,
                                                                     capsys):
    monkeypatch.chdir(tmp_path)
    msg = _fails(["train", str(_recipe(tmp_path, syn, "missing.json"))], capsys)
    assert msg.startswith("val.ann_file: missing.json not found"), msg
    assert str(tmp_path / "missing.json") in msg and str(syn / "missing.json") in msg
    assert "data_root" in msg and "STNET_DATA_ROOT" in msg
    _no_checkpoint(tmp_path / "run")


def test_the_check_passes_a_good_recipe_and_training_runs(tmp_path, syn):
    assert stnet_main(["train", str(_recipe(tmp_path, syn)), "--set", "runtime.max_iters_per_epoch=1"]) == 0
    assert (tmp_path / "run" / "best.pt").is_file()


def test_relative_paths_prefer_the_current_folder_then_the_data_root(tmp_path, monkeypatch):
    root, here = tmp_path / "root", tmp_path / "here"
    for d in (root, here):
        (d / "sub").mkdir(parents=True)
    (root / "sub" / "both.json").write_text("{}")
    (here / "sub" / "both.json").write_text("{}")
    (root / "sub" / "root_only.json").write_text("{}")
    monkeypatch.chdir(here)
    monkeypatch.delenv("STNET_DATA_ROOT", raising=False)
    cfg = load_config(None, {"data_root": str(root)})
    assert resolve_data_path(cfg, "sub/both.json", "train.ann_file") == str(here / "sub" / "both.json")
    assert resolve_data_path(cfg, "sub/root_only.json", "train.ann_file") == str(root / "sub" / "root_only.json")
    with pytest.raises(FileNotFoundError, match=r"^train\.image_dir: nope not found, neither as .*here/nope "
                                                r"\(current folder\) nor as .*root/nope .*STNET_DATA_ROOT"):
        resolve_data_path(cfg, "nope", "train.image_dir")
    # without data_root in the recipe, STNET_DATA_ROOT is the root
    monkeypatch.setenv("STNET_DATA_ROOT", str(root))
    assert resolve_data_path(load_config(None), "sub/root_only.json") == str(root / "sub" / "root_only.json")
