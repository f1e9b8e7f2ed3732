"""The pipeline on the real data in ../shared/data (skipped when the folder is absent)."""
import numpy as np
import pytest

from stnet.data import (DataConfig, build_dataset, crop_to_image, load_coco_records,
                        load_lsp_records, load_mpii_records, preset_config)

pytestmark = pytest.mark.data


def _check_samples(ds, n=4):
    for i in np.linspace(0, len(ds) - 1, n).astype(int):
        s = ds[int(i)]
        k = ds.skeleton.num_keypoints
        assert s["image"].shape == (3, *ds.input_size)
        assert s["heatmaps"].shape == (k, ds.input_size[0] // 4, ds.input_size[1] // 4)
        assert np.isfinite(s["heatmaps"]).all() and s["target_weight"].shape == (k,)
        if ds.augment is None:  # un-augmented: the inverse maps targets back onto the labels
            back = crop_to_image(s["keypoints"], s["center"], s["scale"], ds.input_size,
                                 unbiased=ds.unbiased)
            ok = s["visibility"] > 0
            np.testing.assert_allclose(back[ok], s["keypoints_image"][ok], atol=1e-3)


def test_lspet_split(data_root):
    mat = data_root / "lspet" / "joints.mat"
    train = load_lsp_records(mat, split="train")
    val = load_lsp_records(mat, split="val")
    assert len(train) + len(val) <= 9000 and len(val) <= 900 and len(train) >= 8000
    assert min(r.image_id for r in val) >= 8101 and max(r.image_id for r in val) <= 9000
    assert max(r.image_id for r in train) <= 8100
    assert not {r.image_id for r in train} & {r.image_id for r in val}


def test_lspet_pipeline(data_root):
    _check_samples(build_dataset(preset_config("lsp", data_root / "lspet", "train", seed=0)))
    _check_samples(build_dataset(preset_config("lsp", data_root / "lspet", "val")))


def test_coco_mini(data_root):
    root = data_root / "coco_mini"
    ann = root / "annotations" / "person_keypoints_train2017.json"
    recs = load_coco_records(ann, root / "train2017", "coco17")
    assert len(recs) == 86  # persons with keypoints, crowd excluded
    cfg = preset_config("coco", root, "train", seed=0)
    _check_samples(build_dataset(cfg))
    _check_samples(build_dataset(cfg, train=False))


def test_coco_fixture_with_detections(data_root):
    root = data_root / "fixtures" / "coco"
    gt = load_coco_records(root / "test_coco.json", root, "coco17")
    dets = load_coco_records(root / "test_coco.json", root, "coco17",
                             det_file=root / "test_coco_det_AP_H_56.json", det_score_threshold=0.5)
    assert gt and dets and all(r.score >= 0.5 for r in dets)
    cfg = DataConfig(kind="coco", ann_file=str(root / "test_coco.json"), image_dir=str(root),
                     det_file=str(root / "test_coco_det_AP_H_56.json"), split="val")
    ds = build_dataset(cfg)
    s = ds[0]
    assert s["target_weight"].sum() == 0 and s["score"] > 0  # detections carry no labels


def test_mpii_fixture(data_root):
    root = data_root / "fixtures" / "mpii"
    recs = load_mpii_records(root / "test_mpii.json", root)
    assert len(recs) == 5
    cfg = DataConfig(kind="mpii", ann_file=str(root / "test_mpii.json"), image_dir=str(root),
                     skeleton="mpii16", input_size=(256, 256), seed=0)
    _check_samples(build_dataset(cfg), n=5)
    _check_samples(build_dataset(cfg, train=False), n=5)


def test_crowdpose_fixture(data_root):
    root = data_root / "fixtures" / "crowdpose"
    cfg = DataConfig(kind="coco", ann_file=str(root / "test_crowdpose.json"), image_dir=str(root),
                     skeleton="crowdpose14", seed=0)
    _check_samples(build_dataset(cfg), n=3)
    cfg_det = DataConfig(kind="coco", ann_file=str(root / "test_crowdpose.json"), image_dir=str(root),
                         skeleton="crowdpose14", det_file=str(root / "test_crowdpose_det_AP_40.json"),
                         split="val")
    assert len(build_dataset(cfg_det)) > 0
    with pytest.raises(ValueError, match="has 14 keypoints but skeleton 'coco17' has 17"):
        load_coco_records(root / "test_crowdpose.json", root, "coco17")


def test_browse_real_lsp(data_root, tmp_path):
    from stnet.cli import main

    out = tmp_path / "lsp.png"
    assert main(["browse", "--dataset", "lsp", "--root", str(data_root / "lspet"), "-n", "4",
                 "-o", str(out)]) == 0
    assert out.stat().st_size > 10_000
