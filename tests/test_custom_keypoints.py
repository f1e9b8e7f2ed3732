"""Issue 13: your own keypoints, end to end through the CLI, on a tiny synthetic 8-keypoint layout:
train (1 tiny epoch) -> eval -> predict --model RUN_DIR -> export (plain and --decode) -> predict
--model the.onnx -> pack -> predict --model the_pack; the keypoints agree across the formats."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from stnet.cli import main as cli_main
from stnet.data.skeletons import load_skeleton, skeleton_from_dict, skeleton_to_dict
from stnet.model_files import load_state
from helpers.synthetic import make_synthetic_coco

# coco17 indices of the 8 kept joints, renamed as a user's own layout would be
KEEP = (5, 6, 7, 8, 9, 10, 11, 12)
NAMES = ["sh_l", "sh_r", "elbow_l", "elbow_r", "hand_l", "hand_r", "hip_l", "hip_r"]
META = """\
name: upper8
flip_pairs: [[sh_l, sh_r], [elbow_l, elbow_r], [hand_l, hand_r], [hip_l, hip_r]]
sigmas: [0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107]
"""
RECIPE = """\
model: {{name: stnet_1s, overrides: {{width: 8}}}}
input_size: [64, 64]
data_root: {root}
train: {{kind: coco, ann_file: upper8.json, image_dir: images, skeleton_meta: upper8_meta.yaml}}
val: {{kind: coco, ann_file: upper8.json, image_dir: images}}
schedule: {{epochs: 1, milestones: [1]}}
eval: {{flip_test: false}}
runtime: {{batch_size: 2, workers: 0, deterministic: true, tensorboard: false, output_dir: {out}}}
"""


def make_upper8(root: Path) -> Path:
    """A COCO-format set with its own 8 keypoints (cut from the synthetic coco17 set)."""
    data = json.loads(make_synthetic_coco(root, num_images=4, image_size=(80, 64)).read_text())
    for a in data["annotations"]:
        kp = np.asarray(a["keypoints"]).reshape(-1, 3)[list(KEEP)]
        a["keypoints"], a["num_keypoints"] = kp.reshape(-1).tolist(), len(KEEP)
    data["categories"] = [{"id": 1, "name": "person", "keypoints": NAMES, "skeleton": [[1, 3], [3, 5], [2, 4], [4, 6]]}]
    (root / "upper8.json").write_text(json.dumps(data))
    (root / "upper8_meta.yaml").write_text(META)
    return root


def _predict(args: list[str], image: Path, out: Path) -> np.ndarray:
    assert cli_main(["predict", str(image), "--detector", "whole", "--no-render", "--output-dir", str(out),
                     *args]) == 0
    data = json.loads((out / "predictions.json").read_text())
    assert data["skeleton"]["name"] == "upper8"
    return np.asarray(data["images"][0]["persons"][0]["keypoints"], np.float64)


def test_custom_skeleton_whole_path_through_the_cli(tmp_path: Path, capsys):
    root = make_upper8(tmp_path / "data")
    run = tmp_path / "runs" / "upper8"
    recipe = tmp_path / "upper8.yaml"
    recipe.write_text(RECIPE.format(root=root, out=run))
    assert cli_main(["train", str(recipe)]) == 0
    stored = load_state(run / "best.pt")["skeleton"]
    assert stored["name"] == "upper8" and stored["keypoint_names"] == NAMES
    assert stored["sigmas"][4] == pytest.approx(0.062)  # the meta's sigmas, declared once under train:
    assert cli_main(["eval", str(recipe), "--checkpoint", str(run / "best.pt"), "--output-dir",
                     str(tmp_path / "eval")]) == 0
    assert "AP" in json.loads((tmp_path / "eval" / "metrics.json").read_text())["metrics"]

    image = root / "images" / "000000.png"
    ref = _predict(["--model", str(run)], image, tmp_path / "p_run")
    assert ref.shape == (8, 2)
    assert cli_main(["export", str(run), "-o", str(tmp_path / "plain.onnx"), "--no-check"]) == 0
    assert cli_main(["export", str(run), "--decode", "-o", str(tmp_path / "dec.onnx"), "--no-check"]) == 0
    assert cli_main(["pack", str(run / "best.pt"), "--name", "upper8.v1", "--out-dir", str(tmp_path / "packed")]) == 0
    pack = tmp_path / "packed" / "upper8.v1.safetensors"
    assert skeleton_from_dict(json.loads(pack.with_suffix(".json").read_text())["skeleton_def"]).name == "upper8"
    for name, args, tol in (("plain", ["--model", str(tmp_path / "plain.onnx")], 1e-2),
                            # fp16 weights: heatmaps of a 1-epoch model are nearly flat, so allow a pixel
                            ("pack", ["--model", str(pack)], 1.5)):
        kp = _predict(args, image, tmp_path / f"p_{name}")
        assert np.abs(kp - ref).max() <= tol, (name, kp, ref)
    # the in-graph decoder (argmax + DARK on blurred maps) matches the codec on peaked heatmaps (0.0 px on
    # the coco_mini journey) but may pick another cell of a 1-epoch model's flat maps: check it runs
    kp = _predict(["--model", str(tmp_path / "dec.onnx")], image, tmp_path / "p_decode")
    assert kp.shape == (8, 2) and np.isfinite(kp).all()
    capsys.readouterr()


def test_skeleton_option_takes_a_file_and_contradictions_name_both(tmp_path: Path):
    from stnet import PoseEstimator
    from stnet.models import create_model

    sk = load_skeleton("lsp14")
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({**skeleton_to_dict(sk), "name": "mine"}))
    assert load_skeleton(path).keypoint_names == sk.keypoint_names and load_skeleton(path).name == "mine"
    net = create_model("stnet_1s", num_joints=14, input_size=(64, 64), width=8)
    assert PoseEstimator(net, skeleton=str(path), input_size=(64, 64)).skeleton.name == "mine"
    with pytest.raises(FileNotFoundError, match="--skeleton .*nope.yaml: file not found"):
        load_skeleton(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("name: x\n")
    with pytest.raises(ValueError, match="bad.yaml: expected a mapping with a 'keypoint_names' list"):
        load_skeleton(tmp_path / "bad.yaml")
