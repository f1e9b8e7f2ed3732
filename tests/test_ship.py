"""Packaging checkpoints as shipped weights and loading them with from_pretrained."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import stnet.model_files as model_files
from stnet import PoseEstimator
from stnet.card import CARD_VERSION, ModelCard
from stnet.cli import main as cli_main
from stnet.engine.checkpoint import save_checkpoint
from stnet.engine.config import config_to_dict, load_config
from stnet.engine.pack import pack_weights
from stnet.model_files import sha256_file
from stnet.models import create_model

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def checkpoint(tmp_path: Path) -> Path:
    cfg = load_config(REPO / "configs" / "stnet_1s_lspet_128x96_b32x1_e60.yaml", {"data_root": str(tmp_path)})
    torch.manual_seed(0)
    model = create_model("stnet_1s", num_joints=14, input_size=(128, 96))
    return save_checkpoint({"model": model.state_dict(), "config": config_to_dict(cfg), "epoch": 3,
                            "best_metric": 0.5}, tmp_path / "best.pt")


def test_pack_writes_fp16_weights_and_metadata(checkpoint: Path, tmp_path: Path):
    out = tmp_path / "weights"
    pt, js = pack_weights(checkpoint, "demo.lsp_128x96", out_dir=out, command="stnet train X",
                          metrics={"PCK@0.2": 0.5})
    meta = json.loads(js.read_text())
    card = ModelCard.from_dict(meta)
    assert meta["card_version"] == CARD_VERSION and card.provenance["sha256"] == sha256_file(pt)
    assert meta["skeleton"] == "lsp14" and meta["input_size"] == [128, 96] and meta["num_joints"] == 14
    assert card.skeleton_name == "lsp14" and card.metrics == {"PCK@0.2": 0.5}
    assert meta["model"] == "stnet_1s" and card.provenance["recipe_command"] == "stnet train X"
    assert meta["normalization"]["mean"] == [0.485, 0.456, 0.406] and card.codec and card.codec["kind"] == "udp"
    assert pt.suffix == ".safetensors"
    sd = model_files.load_state(pt)["model"]
    assert all(v.dtype == torch.float16 for v in sd.values() if v.is_floating_point())
    assert not list(out.glob("*.tmp"))


def test_from_pretrained_loads_and_checks_sha(checkpoint: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(model_files, "WEIGHTS_DIR", tmp_path / "w")  # model_files owns where shipped weights live
    pt, js = pack_weights(checkpoint, "demo.lsp_128x96", out_dir=tmp_path / "w")
    assert "demo.lsp_128x96" in model_files.list_pretrained()
    est = PoseEstimator.from_pretrained("demo.lsp_128x96", detector="whole")
    assert not est.untrained and est.skeleton.name == "lsp14" and est.input_size == (128, 96)
    persons = est(np.zeros((120, 90, 3), np.uint8))
    assert persons[0].keypoints.shape == (14, 2)
    pt.write_bytes(pt.read_bytes()[:-10] + b"0123456789")  # corrupt the file, same size
    with pytest.raises(ValueError, match="corrupted: sha256"):
        PoseEstimator.from_pretrained("demo.lsp_128x96")
    with pytest.raises(FileNotFoundError, match="no pretrained weights named 'nope'"):
        PoseEstimator.from_pretrained("nope")


def test_pack_cli(checkpoint: Path, tmp_path: Path, capsys):
    assert cli_main(["pack", str(checkpoint), "--name", "x", "--out-dir", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "x.json").is_file()
    assert cli_main(["pack", str(tmp_path / "missing.pt"), "--name", "x"]) == 2
    assert "missing.pt" in capsys.readouterr().err


def test_model_weights_warm_start_skips_mismatched_head(tmp_path: Path, capsys):
    from stnet.engine.train import build_model

    torch.manual_seed(1)
    src = create_model("stnet_1s", num_joints=17, input_size=(128, 96))
    ckpt = save_checkpoint({"model": src.state_dict()}, tmp_path / "src.pt")
    cfg = load_config(REPO / "configs" / "stnet_1s_lspet_128x96_b32x1_e60.yaml",
                      {"data_root": str(tmp_path), "model.weights": str(ckpt)})
    model = build_model(cfg, num_joints=14)
    assert torch.equal(model.state_dict()["stem.convs.0.0.weight"], src.state_dict()["stem.convs.0.0.weight"])
    assert model.head.weight.shape[0] == 14  # 17-joint head skipped, new init kept
    assert "kept the new init for 2 (head.bias, head.weight)" in capsys.readouterr().out


def test_pack_file_carries_its_settings(checkpoint: Path, tmp_path: Path):
    """Issue 13: a pack file given by path (--model, or --weights with a model name) is read with
    its .json: 128x96 and lsp14, not the model's defaults; a contradicting option names both."""
    pt, _ = pack_weights(checkpoint, "ft.v1", out_dir=tmp_path / "packed")
    for est in (PoseEstimator(pt), PoseEstimator("stnet_1s", weights=pt)):
        assert est.input_size == (128, 96) and est.skeleton.name == "lsp14" and not est.untrained
    with pytest.raises(ValueError, match=r"--input-size 256x192 contradicts .*ft.v1.safetensors, trained at 128x96"):
        PoseEstimator(pt, input_size=(256, 192))
    with pytest.raises(ValueError, match=r"--skeleton coco17 contradicts .*trained for skeleton .lsp14."):
        PoseEstimator(pt, skeleton="coco17")
    with pytest.raises(ValueError, match=r"--model hrnet_w32 contradicts --weights .*a pack of 'stnet_1s'"):
        PoseEstimator("hrnet_w32", weights=pt)
