"""Issue 24: the COCO-17 training set of ``stnet_1s.coco17_128x96`` (LSP-Extended's 12 human body
joints + the teacher's face points + coco_mini's non-held-out persons), written as plain COCO files by
``tools/make_coco17_sets.py``, and the committed teacher labels ``data/lspet_face_points.npz``."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from stnet.codecs import CodecConfig, build_codec
from stnet.data import get_skeleton, load_coco_records, load_lsp_records
from stnet.data.dataset import TopDownDataset

REPO = Path(__file__).resolve().parents[1]
FACES = REPO / "data" / "lspet_face_points.npz"
FACE_NAMES = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")


def _tool():
    spec = importlib.util.spec_from_file_location("make_coco17_sets", REPO / "tools" / "make_coco17_sets.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def test_face_labels_file_is_small_plain_data_in_coco_order():
    assert FACES.stat().st_size < 400_000
    d = np.load(FACES, allow_pickle=False)  # plain arrays: no pickle needed
    n = len(d["image"])
    assert n == 9000 and tuple(d["names"].tolist()) == FACE_NAMES
    assert d["xy"].shape == (n, 5, 2) and d["keep"].shape == (n, 5) and d["conf"].dtype == np.uint8
    keep = d["keep"]
    # the rule the file states: confident and the teacher's shoulders/hips agree with the humans'
    rule = (d["conf"] >= round(float(d["min_conf"]) * 255)) & (d["body_err"] <= d["max_body_err"])[:, None]
    np.testing.assert_array_equal(keep, rule)
    assert 4000 < keep.any(1).sum() < 6000  # about half the persons carry face points


@pytest.mark.data
def test_sets_keep_lsp_crops_and_split_coco_mini(data_root, tmp_path):
    tool = _tool()
    tool.main(["-o", str(tmp_path), "--data-root", str(data_root)])
    ann, img = tmp_path / "annotations", tmp_path / "images"
    coco = get_skeleton("coco17")

    # LSP val: the LSP reader's persons and boxes, only the 12 human body joints labelled
    val = load_coco_records(ann / "val_lspet.json", img, "coco17")
    lsp = load_lsp_records(data_root / "lspet" / "joints.mat", split="val")
    assert len(val) == len(lsp) == 900
    for a, b in zip(val, lsp):
        np.testing.assert_allclose(a.box, b.box, atol=0.01)
        assert a.image_path.resolve() == b.image_path.resolve()
        for j, name in enumerate(coco.keypoint_names):
            want = b.visibility[get_skeleton("lsp14").index(name)] if j >= 5 else 0
            assert (a.visibility[j] > 0) == (want > 0), (a.source, name)

    # train: the teacher's kept face points on LSP persons, and the coco_mini training images
    train = load_coco_records(ann / "train.json", img, "coco17")
    d = np.load(FACES)
    kept = dict(zip(d["image"].tolist(), d["keep"]))
    lsp_train = [r for r in train if "lspet" in str(r.image_path)]
    assert len(lsp_train) == len(load_lsp_records(data_root / "lspet" / "joints.mat", split="train"))
    for r in lsp_train[:500]:
        np.testing.assert_array_equal(r.visibility[:5] > 0, kept[r.image_id - tool.LSP_IMAGE_ID])
    split = json.loads((ann / "coco_mini_split.json").read_text())
    assert not set(split["train"]) & set(split["val"]) and len(split["val"]) >= 10
    assert {r.image_id for r in train if "coco_mini" in str(r.image_path)} == set(split["train"])
    # the bundled demo photo is a coco_mini image: make demo must show a photo the model never saw
    assert tool.DEMO_IMAGE_ID not in set(split["train"]) | set(split["val"])
    held = load_coco_records(ann / "val_coco_mini.json", img, "coco17")
    assert {r.image_id for r in held} == set(split["val"]) and all(r.image_path.is_file() for r in held)

    # a partially labelled person trains only on its labels: target weight 0 elsewhere
    part = next(r for r in lsp_train if r.visibility[:5].sum() == 0 and r.visibility[5:].sum() >= 10)
    ds = TopDownDataset([part], coco, input_size=(128, 96), codec=build_codec(CodecConfig(), (128, 96)))
    s = ds[0]
    assert (s["target_weight"][:5] == 0).all() and (s["heatmaps"][:5] == 0).all()
    assert s["target_weight"][part.visibility > 0].sum() > 0


def test_coco_repeat_lists_coco_persons_n_times_with_unique_ids(data_root, tmp_path):
    tool = _tool()
    tool.main(["-o", str(tmp_path / "x1"), "--data-root", str(data_root), "--no-faces"])
    tool.main(["-o", str(tmp_path / "x3"), "--data-root", str(data_root), "--no-faces", "--coco-repeat", "3"])
    one, three = (json.loads((tmp_path / d / "annotations" / "train.json").read_text())["annotations"]
                  for d in ("x1", "x3"))
    coco1 = [a for a in one if a["image_id"] < tool.LSP_IMAGE_ID]
    coco3 = [a for a in three if a["image_id"] < tool.LSP_IMAGE_ID]
    assert len(coco3) == 3 * len(coco1) > 0 and len(three) - len(coco3) == len(one) - len(coco1)
    assert len({a["id"] for a in three}) == len(three)
    strip = lambda a: {k: v for k, v in a.items() if k != "id"}  # noqa: E731
    assert sorted(map(json.dumps, map(strip, coco3))) == sorted(map(json.dumps, map(strip, coco1 * 3)))
    with pytest.raises(SystemExit, match="--coco-repeat 0"):
        tool.main(["-o", str(tmp_path / "x0"), "--data-root", str(data_root), "--coco-repeat", "0"])
