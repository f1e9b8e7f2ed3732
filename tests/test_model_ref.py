"""One loader: ``stnet.model_files.load_model_ref`` reads every kind of model reference (shipped
name, pack + json, checkpoint, run directory, plain / ``--decode`` / ``--with-affine`` ONNX, OpenVINO
IR) into one typed result with the file's ``ModelCard``, and the engine's ``model.weights`` and
``stnet eval --checkpoint`` take the same references as ``stnet predict --model``."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

import stnet.model_files as model_files
from stnet.data.skeletons import get_skeleton, skeleton_from_dict
from stnet.engine.config import load_config
from stnet.engine.pack import pack_weights
from stnet.card import ModelCard
from stnet.export.onnx import export_onnx
from stnet.model_files import ModelFile, load_model_ref, read_graph_metadata
from stnet.models import create_model

SIZE = (64, 32)
UPPER4 = {"name": "upper4", "keypoint_names": ["sh_l", "sh_r", "hip_l", "hip_r"], "flip_pairs": [[0, 1], [2, 3]],
          "sigmas": [0.079, 0.079, 0.107, 0.107], "joint_weights": [1.0, 1.0, 1.2, 1.2], "links": [[0, 2], [1, 3]]}
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """One tiny 4-keypoint network written as every kind of model file."""
    root = tmp_path_factory.mktemp("refs")
    torch.manual_seed(0)
    net = create_model("stnet_1s", num_joints=4, input_size=SIZE, width=8).eval()
    run = root / "run"
    run.mkdir()
    cfg = {"model": {"name": "stnet_1s", "overrides": {"width": 8}}, "input_size": list(SIZE),
           "codec": {"kind": "udp", "sigma": 1.5}, "train": {"skeleton_meta": "m.yaml"}, "val": {}}
    torch.save({"model": net.state_dict(), "config": cfg, "epoch": 1, "skeleton": UPPER4}, run / "best.pt")
    pt, _ = pack_weights(run / "best.pt", "upper4.v1", out_dir=root / "packed")
    card = ModelCard(model="stnet_1s", skeleton=skeleton_from_dict(UPPER4).to_dict(), input_size=SIZE,
                     codec={"kind": "udp"})
    out = {"run": run, "ckpt": run / "best.pt", "pack": pt}
    for name, kw in (("plain", {}), ("decode", {"decode": True}), ("affine", {"with_affine": True})):
        m = card.replace(decode=bool(kw), with_affine="with_affine" in kw).to_dict()
        out[name] = export_onnx(net, root / f"{name}.onnx", SIZE, metadata=m, **kw)
    return out


def test_every_weights_reference_reads_to_one_result(files, tmp_path, monkeypatch):
    for key, kind in (("run", "checkpoint"), ("ckpt", "checkpoint"), ("pack", "pack")):
        mf = load_model_ref(files[key])
        assert isinstance(mf, ModelFile) and mf.kind == kind and not mf.is_graph, key
        c = mf.card
        assert c.model == "stnet_1s" and c.overrides.get("width") == 8 and c.input_size == SIZE, key
        assert c.skeleton is not None and skeleton_from_dict(c.skeleton) == skeleton_from_dict(UPPER4), key
        assert c.codec is not None and c.codec["sigma"] == 1.5, key
        assert mf.weights("--model")["model"]["head.weight"].shape[0] == 4, key
    assert load_model_ref(files["run"]).path == files["ckpt"]  # a run directory: its best.pt
    # shipped weights: the same pack, found by name in the weights folder (sha256-checked)
    shipped = tmp_path / "weights"
    pack_weights(files["ckpt"], "upper4.lsp_64x32", out_dir=shipped)
    monkeypatch.setattr(model_files, "WEIGHTS_DIR", shipped)
    mf = load_model_ref("upper4.lsp_64x32")
    assert mf.kind == "shipped" and mf.card.input_size == SIZE
    assert mf.card.skeleton is not None and mf.card.skeleton["keypoint_names"] == UPPER4["keypoint_names"]


def test_every_graph_reference_reads_to_one_result(files, tmp_path):
    for key, decode, affine in (("plain", False, False), ("decode", True, False), ("affine", True, True)):
        mf = load_model_ref(files[key])
        assert mf.kind == "onnx" and mf.is_graph and mf.state is None, key
        c = mf.card
        assert (c.decode, c.with_affine) == (decode, affine), key
        assert c.input_size == SIZE and c.skeleton is not None and skeleton_from_dict(c.skeleton).name == "upper4", key
        assert c.normalization["std"] == [0.229, 0.224, 0.225], key
        assert c.codec is not None and c.codec["kind"] == "udp", key
        with pytest.raises(ValueError, match=r"^model.weights .*: an exported onnx graph holds no weights"):
            mf.weights("model.weights")
    if importlib.util.find_spec("openvino") is None:
        return
    import openvino as ov

    xml = tmp_path / "m.xml"
    ov_model = ov.Core().read_model(str(files["decode"]))
    ov_model.set_rt_info(json.dumps(read_graph_metadata(files["decode"])), ["stnet"])
    ov.save_model(ov_model, str(xml))
    mf = load_model_ref(xml)
    assert mf.kind == "openvino" and mf.card.decode and mf.card.skeleton is not None
    assert skeleton_from_dict(mf.card.skeleton).name == "upper4"


def test_unknown_and_missing_references_name_themselves(tmp_path):
    with pytest.raises(FileNotFoundError, match="ONNX model .*nope.onnx not found"):
        load_model_ref(tmp_path / "nope.onnx")
    with pytest.raises(FileNotFoundError, match="checkpoint .*nope.pt not found"):
        load_model_ref(tmp_path / "nope.pt")
    with pytest.raises(KeyError, match="'nope' is neither a file, a run directory nor shipped weights"):
        load_model_ref("nope")


def test_model_weights_takes_a_run_directory_and_a_pack(files, capsys):
    from stnet.engine.build import build_model

    for ref in (files["run"], files["pack"]):
        cfg = load_config(None, {"model.name": "stnet_1s", "model.overrides": {"width": 8}, "input_size": list(SIZE),
                                 "model.weights": str(ref)})
        model = build_model(cfg, num_joints=4)
        assert "kept the new init" not in capsys.readouterr().out  # every tensor came from the weights
        assert model.head.weight.shape[0] == 4
    for ref, match in ((files["decode"], r"model.weights .*decode.onnx: an exported onnx graph holds no weights"),
                       ("nope", r"model.weights: 'nope' is neither a file")):
        cfg = load_config(None, {"model.weights": str(ref)})
        with pytest.raises((ValueError, FileNotFoundError), match=match):
            build_model(cfg, num_joints=4)


def test_eval_checkpoint_takes_a_run_directory(files, tmp_path, capsys):
    from helpers.synthetic import make_synthetic_coco
    from stnet.cli import main

    root = tmp_path / "data"
    ann = json.loads(make_synthetic_coco(root, num_images=2, image_size=(80, 64)).read_text())
    keep = [5, 6, 11, 12]  # coco17 shoulders and hips, as upper4
    for a in ann["annotations"]:
        kp = [a["keypoints"][3 * j + c] for j in keep for c in range(3)]
        a["keypoints"], a["num_keypoints"] = kp, len(keep)
    ann["categories"][0]["keypoints"] = [get_skeleton("coco17").keypoint_names[j] for j in keep]
    (root / "upper4.json").write_text(json.dumps(ann))
    (root / "meta.yaml").write_text("name: upper4\nsigmas: [0.079, 0.079, 0.107, 0.107]\n"
                                    "flip_pairs: [[left_shoulder, right_shoulder], [left_hip, right_hip]]\n")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"model: {{name: stnet_1s, overrides: {{width: 8}}}}\ninput_size: [{SIZE[0]}, {SIZE[1]}]\n"
                      f"data_root: {root}\nval: {{kind: coco, ann_file: upper4.json, image_dir: images, "
                      "skeleton_meta: meta.yaml}\neval: {flip_test: false}\nruntime: {workers: 0, batch_size: 2}\n")
    assert main(["eval", str(recipe), "--checkpoint", str(files["run"]), "--output-dir", str(tmp_path / "ev")]) == 0
    assert "AP" in json.loads((tmp_path / "ev" / "metrics.json").read_text())["metrics"]
    capsys.readouterr()
    assert main(["eval", str(recipe), "--checkpoint", "nope", "--output-dir", str(tmp_path / "ev2")]) == 2
    assert "--checkpoint: 'nope' is neither a file" in capsys.readouterr().err


def test_model_weights_copies_the_head_rows_of_keypoints_shared_by_name(files, capsys):
    """Issue 24: warm-starting another layout keeps what the weights know about the keypoints both
    layouts name (the LSP-14 -> COCO-17 fine-tune copies the 12 body joints' head rows)."""
    from stnet.engine.build import build_model

    six = skeleton_from_dict({"name": "six", "keypoint_names": ["nose", "hip_r", "x", "sh_l", "hip_l", "y"],
                              "flip_pairs": [[1, 4]], "sigmas": [0.05] * 6, "joint_weights": [1.0] * 6,
                              "links": []})
    src = load_model_ref(files["pack"]).weights("w")["model"]
    cfg = load_config(None, {"model.name": "stnet_1s", "model.overrides": {"width": 8}, "input_size": list(SIZE),
                             "model.weights": str(files["pack"])})
    torch.manual_seed(1)
    fresh = build_model(cfg, num_joints=6)  # no skeleton: the head keeps its init
    torch.manual_seed(1)
    model = build_model(cfg, num_joints=6, skeleton=six)
    out = capsys.readouterr().out
    assert "copied the rows of 3 shared keypoints (hip_r, sh_l, hip_l) into head.bias, head.weight" in out
    for name in ("head.weight", "head.bias"):
        got, init, want = model.state_dict()[name], fresh.state_dict()[name], src[name].float()
        for dst, s in ((1, 3), (3, 0), (4, 2)):  # six's index <- upper4's index
            assert torch.equal(got[dst], want[s].to(got.dtype)), (name, dst)
        for dst in (0, 2, 5):  # not in upper4: the new init
            assert torch.equal(got[dst], init[dst]), (name, dst)
