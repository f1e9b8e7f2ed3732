"""Issue 12 item 1: a weights file is data. A pickle that would run code on load is refused, with a
one-line error, through every entry point that reads a model file, and its code never runs."""
from __future__ import annotations

import random
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

import stnet.model_files as model_files
from stnet.cli import main as cli_main
from stnet.engine.checkpoint import rng_state, save_checkpoint, set_rng_state
from stnet.engine.config import config_to_dict, load_config
from stnet.model_files import CheckpointError, load_state
from stnet import PoseEstimator
from stnet.models import create_model
from helpers.synthetic import make_synthetic_coco

REPO = Path(__file__).resolve().parents[1]


def _touch(path: str) -> None:  # what the malicious pickle calls; pickled by reference
    Path(path).write_text("ran")


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (_touch, (self.marker,))


@pytest.fixture()
def evil(tmp_path: Path) -> tuple[Path, Path]:
    """``(run dir holding a malicious best.pt, marker file its pickle would create)``; the rest of
    the checkpoint is valid, so only the payload can be why it is refused."""
    marker = tmp_path / "PWNED"
    cfg = load_config(REPO / "configs" / "stnet_1s_lspet_128x96_b32x1_e60.yaml", {"data_root": str(tmp_path)})
    model = create_model("stnet_1s", num_joints=14, input_size=(128, 96), width=8)
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"model": model.state_dict(), "config": config_to_dict(cfg), "epoch": 1, "iteration": 1,
                "optimizer": {}, "scheduler": {}, "x": _Payload(marker)}, run / "best.pt")
    # the payload really runs under an unrestricted unpickler (the test would prove nothing otherwise)
    torch.load(run / "best.pt", weights_only=False)
    assert marker.is_file()
    marker.unlink()
    return run, marker


def _refused(call: Callable[[], object], marker: Path) -> None:
    with pytest.raises(CheckpointError, match=r"refused: it would import .*_touch to load"):
        call()
    assert not marker.exists()


def _cli_refused(args: list[str], marker: Path, capsys) -> None:
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert "refused: it would import" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not marker.exists()


def test_model_files_and_python_api_refuse(evil, monkeypatch):
    run, marker = evil
    _refused(lambda: load_state(run / "best.pt"), marker)
    _refused(lambda: PoseEstimator(run), marker)
    _refused(lambda: PoseEstimator(run / "best.pt"), marker)
    _refused(lambda: PoseEstimator("stnet_1s", weights=run / "best.pt"), marker)
    # a legacy .pt pack in the weights folder (from_pretrained and shipped names)
    (run / "old.json").write_text('{"model": "stnet_1s", "input_size": [128, 96]}')
    (run / "old.pt").write_bytes((run / "best.pt").read_bytes())
    monkeypatch.setattr(model_files, "WEIGHTS_DIR", run)
    _refused(lambda: PoseEstimator.from_pretrained("old"), marker)


@pytest.mark.parametrize("entry", ["predict_model", "predict_run_dir", "predict_weights", "export", "pack"])
def test_cli_entry_points_refuse(evil, entry, tmp_path, capsys, test_image):
    run, marker = evil
    img = tmp_path / "p.png"
    import cv2
    cv2.imwrite(str(img), test_image)
    args = {"predict_model": ["predict", str(img), "--model", str(run / "best.pt"), "--output-dir", str(tmp_path)],
            "predict_run_dir": ["predict", str(img), "--model", str(run), "--output-dir", str(tmp_path)],
            "predict_weights": ["predict", str(img), "--model", "stnet_1s", "--weights", str(run / "best.pt"),
                                "--output-dir", str(tmp_path)],
            "export": ["export", str(run), "-o", str(tmp_path / "m.onnx")],
            "pack": ["pack", str(run / "best.pt"), "--name", "x", "--out-dir", str(tmp_path / "o")]}[entry]
    _cli_refused(args, marker, capsys)


def test_training_entry_points_refuse(evil, tmp_path, capsys):
    run, marker = evil
    syn = tmp_path / "syn"
    make_synthetic_coco(syn, num_images=4, image_size=(80, 64))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"model: {{name: stnet_1s, overrides: {{width: 8}}}}\ninput_size: [64, 64]\ndata_root: {syn}\n"
                      "train: {kind: coco, ann_file: annotations.json, image_dir: images}\n"
                      "val: {kind: coco, ann_file: annotations.json, image_dir: images}\n"
                      f"runtime: {{batch_size: 2, workers: 0, output_dir: {tmp_path / 'out'}}}\n")
    _cli_refused(["train", str(recipe), "--resume", str(run / "best.pt")], marker, capsys)
    _cli_refused(["train", str(recipe), "--set", f"model.weights={run / 'best.pt'}"], marker, capsys)
    _cli_refused(["eval", str(recipe), "--checkpoint", str(run / "best.pt")], marker, capsys)


def test_corrupted_is_not_called_malicious(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"\x80\x02garbage")
    with pytest.raises(CheckpointError, match="bad.pt is truncated or corrupted"):
        load_state(tmp_path / "bad.pt")
    (tmp_path / "bad.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(CheckpointError, match="bad.safetensors is truncated or corrupted"):
        load_state(tmp_path / "bad.safetensors")


def test_rng_state_is_plain_data_and_round_trips(tmp_path):
    random.seed(3)
    np.random.seed(4)
    np.random.randn()  # leaves a cached gaussian in numpy's state
    torch.manual_seed(5)
    save_checkpoint({"model": {}, "rng": rng_state()}, tmp_path / "c.pt")
    expected = (random.random(), np.random.randn(), torch.rand(1).item())
    state = torch.load(tmp_path / "c.pt", weights_only=True)  # no allowlist needed
    set_rng_state(state["rng"])
    assert (random.random(), np.random.randn(), torch.rand(1).item()) == expected


def test_legacy_numpy_rng_checkpoint_still_resumes(tmp_path):
    """Checkpoints written before this change hold numpy's state as an array: still readable."""
    np.random.seed(7)
    legacy = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    torch.save({"model": {}, "rng": legacy}, tmp_path / "old.pt")
    expected = np.random.randn()
    set_rng_state(load_state(tmp_path / "old.pt")["rng"])
    assert np.random.randn() == expected
