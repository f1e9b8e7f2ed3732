"""Annotation readers on tiny synthetic data, and their error messages."""
import json
import warnings

import cv2
import numpy as np
import pytest
from scipy.io import savemat

from stnet.data import (DataConfig, ImageReadError, build_dataset, load_coco_records,
                        load_lsp_records, load_mpii_records, lsp_split_indices, read_image)
from stnet.data.lsp import load_lsp_joints

K = 17


def _image(path, h=120, w=160, value=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), value, np.uint8))
    return path


def _kps(n_visible, k=K, offset=10.0):
    out = []
    for j in range(k):
        v = 2 if j < n_visible else 0
        out += [offset + 3 * j, offset + 2 * j, v] if v else [0, 0, 0]
    return out


def _coco(tmp_path, anns=None, k=K, extra_images=()):
    for name in ("a.jpg", "b.jpg", *extra_images):
        _image(tmp_path / "img" / name)
    images = [{"id": 1, "file_name": "a.jpg", "width": 160, "height": 120},
              {"id": 2, "file_name": "b.jpg", "width": 160, "height": 120}]
    if anns is None:
        anns = [
            {"id": 10, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [5, 5, 60, 80],
             "keypoints": _kps(12), "num_keypoints": 12, "area": 4800},
            {"id": 11, "image_id": 1, "category_id": 1, "iscrowd": 1, "bbox": [5, 5, 60, 80],
             "keypoints": _kps(0), "num_keypoints": 0},
            {"id": 12, "image_id": 2, "category_id": 1, "iscrowd": 0, "bbox": [50, 20, 40, 90],
             "keypoints": _kps(0), "num_keypoints": 0},
            {"id": 13, "image_id": 2, "category_id": 1, "iscrowd": 0, "bbox": [150, 100, 40, 90],
             "keypoints": _kps(3, offset=151), "num_keypoints": 3},
        ]
    cats = [{"id": 1, "name": "person", "keypoints": [f"kp{j}" for j in range(k)], "skeleton": []}]
    p = tmp_path / "ann.json"
    p.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return p


def test_coco_gt_records(tmp_path):
    ann = _coco(tmp_path)
    recs = load_coco_records(ann, tmp_path / "img", "coco17")
    assert [r.instance_id for r in recs] == [10, 13]  # crowd and keypoint-less persons skipped
    r = recs[0]
    assert r.keypoints.shape == (17, 2) and r.visibility.tolist() == [1] * 12 + [0] * 5
    assert r.box.tolist() == [5, 5, 60, 80] and r.image_path == tmp_path / "img" / "a.jpg"
    assert r.keypoints[1].tolist() == [13.0, 12.0]
    assert recs[1].box.tolist() == [150, 100, 9, 19]  # clipped to pixel centres 0..159 x 0..119
    assert "annotation id 10" in r.source


def test_coco_detections(tmp_path):
    ann = _coco(tmp_path)
    det = tmp_path / "det.json"
    det.write_text(json.dumps([
        {"image_id": 1, "category_id": 1, "bbox": [1, 2, 50, 60], "score": 0.9},
        {"image_id": 2, "category_id": 1, "bbox": [1, 2, 50, 60], "score": 0.1},
        {"image_id": 2, "category_id": 1, "bbox": [1, 2, 0, 60], "score": 0.95},
        {"image_id": 2, "category_id": 3, "bbox": [1, 2, 50, 60], "score": 0.99},
    ]))
    with pytest.warns(UserWarning, match="1 detection"):
        recs = load_coco_records(ann, tmp_path / "img", "coco17", det_file=det, det_score_threshold=0.05)
    assert [(r.image_id, r.score) for r in recs] == [(1, 0.9), (2, 0.1)]
    assert (recs[0].visibility == 0).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert len(load_coco_records(ann, tmp_path / "img", "coco17", det_file=det,
                                     det_score_threshold=0.5)) == 1
    det.write_text(json.dumps([{"image_id": 99, "bbox": [1, 2, 3, 4], "score": 1.0}]))
    with pytest.raises(ValueError, match=r"det.json: detection \[0\]: image_id 99"):
        load_coco_records(ann, tmp_path / "img", "coco17", det_file=det)
    det.write_text(json.dumps({"not": "a list"}))
    with pytest.raises(ValueError, match="list of detections"):
        load_coco_records(ann, tmp_path / "img", "coco17", det_file=det)


def test_coco_boxes_gt_clipped_detections_raw(tmp_path):
    # HRNet / mmpose protocol: GT boxes clipped to [0, W-1] x [0, H-1]; detector boxes cropped as
    # given, even where they hang off the image.
    from stnet.data.transforms import box_to_center_scale

    ann = _coco(tmp_path)
    data = json.loads(ann.read_text())
    data["images"][0].update(width=640, height=480)
    data["annotations"][0]["bbox"] = [600, 400, 80, 120]
    data["annotations"][0]["keypoints"] = _kps(2, offset=610)
    ann.write_text(json.dumps(data))
    gt = load_coco_records(ann, tmp_path / "img", "coco17")[0]
    assert gt.box.tolist() == [600, 400, 39, 79]
    det = tmp_path / "det.json"
    det.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [600, 400, 80, 120], "score": 0.9}]))
    rec = load_coco_records(ann, tmp_path / "img", "coco17", det_file=det)[0]
    assert rec.box.tolist() == [600, 400, 80, 120]
    center, scale = box_to_center_scale(rec.box, 192 / 256, 1.25)
    assert center.tolist() == [640, 460] and scale.tolist() == [112.5, 150]
    det.write_text(json.dumps([{"image_id": 1, "bbox": [600, "x", 80, 120], "score": 0.9}]))
    with pytest.raises(ValueError, match=r"detection \[0\]: 'bbox' must be four numbers"):
        load_coco_records(ann, tmp_path / "img", "coco17", det_file=det)


def test_coco_errors_name_file_and_record(tmp_path):
    ann = _coco(tmp_path)
    with pytest.raises(ValueError,
                       match=r"ann.json: category 'person' has 17 keypoints but skeleton 'lsp14' has 14"):
        load_coco_records(ann, tmp_path / "img", "lsp14")
    bad = _coco(tmp_path, anns=[{"id": 7, "image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5],
                                 "keypoints": [1, 2, 2] * 16}])
    with pytest.raises(ValueError, match=r"annotation id 7: 48 keypoint values, expected 51"):
        load_coco_records(bad, tmp_path / "img", "coco17")
    zero = _coco(tmp_path, anns=[{"id": 8, "image_id": 1, "category_id": 1, "bbox": [3, 3, 0, 9],
                                  "keypoints": _kps(4)}])
    with pytest.raises(ValueError, match=r"annotation id 8: box \[3, 3, 0, 9\] has zero area"):
        load_coco_records(zero, tmp_path / "img", "coco17")
    with pytest.warns(UserWarning, match="1 person"):
        assert load_coco_records(zero, tmp_path / "img", "coco17", on_bad_box="skip") == []
    notcoco = tmp_path / "list.json"
    notcoco.write_text(json.dumps([{"image": "a.jpg"}]))
    with pytest.raises(ValueError, match=r"list.json: not a COCO keypoints json"):
        load_coco_records(notcoco, tmp_path / "img")
    nokp = tmp_path / "det_cats.json"
    nokp.write_text(json.dumps({"images": [], "annotations": [],
                                "categories": [{"id": 1, "name": "person"}]}))
    with pytest.raises(ValueError, match="no category has a 'keypoints' list"):
        load_coco_records(nokp, tmp_path / "img")
    garbage = tmp_path / "g.json"
    garbage.write_text("{not json")
    with pytest.raises(ValueError, match="g.json: not valid JSON"):
        load_coco_records(garbage, tmp_path / "img")
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_coco_records(tmp_path / "nope.json", tmp_path / "img")


def test_read_image_errors(tmp_path):
    with pytest.raises(ImageReadError, match="missing.jpg: image file not found"):
        read_image(tmp_path / "missing.jpg")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"this is not a jpeg")
    with pytest.raises(ImageReadError, match="bad.jpg: cannot decode"):
        read_image(bad)
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty"):
        read_image(tmp_path / "empty.jpg")
    img = np.zeros((4, 5, 3), np.uint8)
    img[..., 2] = 200  # red in RGB
    cv2.imwrite(str(tmp_path / "ok.png"), img[..., ::-1])
    out = read_image(tmp_path / "ok.png")
    assert out.shape == (4, 5, 3) and out.dtype == np.uint8 and out[0, 0].tolist() == [0, 0, 200]


def test_missing_images_val_error_train_warning(tmp_path):
    ann = _coco(tmp_path)
    (tmp_path / "img" / "b.jpg").unlink()
    cfg = DataConfig(kind="coco", ann_file=str(ann), image_dir=str(tmp_path / "img"), split="val")
    with pytest.raises(FileNotFoundError, match="b.jpg"):
        build_dataset(cfg)
    with pytest.warns(UserWarning, match="1 of 2 image file"):
        ds = build_dataset(DataConfig(kind="coco", ann_file=str(ann), image_dir=str(tmp_path / "img")))
    assert len(ds) == 1


def test_unreadable_image_during_training_is_counted_and_skipped(tmp_path):
    ann = _coco(tmp_path)
    cfg = DataConfig(kind="coco", ann_file=str(ann), image_dir=str(tmp_path / "img"), seed=0)
    ds = build_dataset(cfg, train=True)
    (tmp_path / "img" / "b.jpg").write_bytes(b"corrupt")  # breaks after the dataset was built
    with pytest.warns(RuntimeWarning, match=r"b.jpg: cannot decode.*1 unreadable image"):
        sample = ds[1]
    assert sample["image_path"].endswith("a.jpg") and ds.num_bad_images == 1
    # Evaluation must not silently drop persons: the item is marked invalid (the evaluation loop
    # warns, counts and bounds them: tests/test_engine_train.py); a bare dataset still raises.
    val = build_dataset(cfg, train=False, check_files=False)
    item = val[1]
    assert item["valid"] is False and item["image_path"].endswith("b.jpg") and val[0]["valid"] is True
    val.placeholder_bad_images = False
    with pytest.raises(ImageReadError, match="b.jpg"):
        val[1]
    ds.max_bad_images = 1
    with pytest.raises(RuntimeError, match="max_bad_images=1"):
        ds[1]


def test_mpii_records(tmp_path):
    _image(tmp_path / "images" / "x.jpg")
    joints = [[10.0 + j, 20.0 + 2 * j] for j in range(16)]
    vis = [1] * 15 + [0]
    p = tmp_path / "mpii.json"
    p.write_text(json.dumps([{"image": "x.jpg", "center": [80.0, 60.0], "scale": 0.5,
                              "joints": joints, "joints_vis": vis}]))
    (r,) = load_mpii_records(p, tmp_path / "images")
    np.testing.assert_allclose(r.keypoints[0], [9.0, 19.0])  # 1-based -> 0-based
    np.testing.assert_allclose(r.center, [79.0, 60.0 + 15 * 0.5 - 1])  # +15*s down, then -1
    np.testing.assert_allclose(r.scale, [125.0, 125.0])  # 0.5 * 200 * 1.25
    assert r.visibility.tolist() == vis
    p.write_text(json.dumps([{"image": "x.jpg", "center": [80, 60], "scale": 0.5,
                              "joints": joints[:14], "joints_vis": vis[:14]}]))
    with pytest.raises(ValueError, match=r"mpii.json: record \[0\]: 14 joints but skeleton 'mpii16' has 16"):
        load_mpii_records(p, tmp_path / "images")
    p.write_text(json.dumps([{"image": "x.jpg", "center": [80, 60], "scale": 0.0, "joints": joints}]))
    with pytest.raises(ValueError, match=r"mpii.json: record \[0\]: invalid center \[80, 60\] / scale 0.0 "
                                         r"\(expected \[x, y\] and a number > 0"):
        load_mpii_records(p, tmp_path / "images")
    p.write_text(json.dumps({"images": []}))
    with pytest.raises(ValueError, match="not an MPII json"):
        load_mpii_records(p, tmp_path / "images")


def _lsp(tmp_path, n_ann=12, n_img=10, layout="ext"):
    rng = np.random.default_rng(0)
    joints = np.zeros((14, 3, n_ann))
    joints[:, 0, :] = rng.uniform(20, 140, (14, n_ann)) + 1  # stored 1-based
    joints[:, 1, :] = rng.uniform(20, 100, (14, n_ann)) + 1
    joints[:, 2, :] = 1
    joints[:12, 2, 3] = 0  # image 4: only 2 visible joints
    joints[1:, 2, 5] = 0  # image 6: a single visible joint -> left out
    for i in range(n_img):
        _image(tmp_path / "images" / f"im{i + 1:05d}.jpg")
    data = joints if layout == "ext" else np.stack([joints[:, 0], joints[:, 1], 1 - joints[:, 2]])
    savemat(tmp_path / "joints.mat", {"joints": data})
    return tmp_path / "joints.mat", joints


def test_lsp_split_is_deterministic():
    assert lsp_split_indices(9000, "train") == range(0, 8100)
    assert lsp_split_indices(9000, "val") == range(8100, 9000)
    assert lsp_split_indices(9000, "all") == range(9000)
    assert lsp_split_indices(10, "val", 0.25) == range(7, 10)


def test_lsp_records(tmp_path):
    mat, joints = _lsp(tmp_path)
    train = load_lsp_records(mat, split="train")  # images 1..9 of the 10 present (12 annotated)
    val = load_lsp_records(mat, split="val")
    assert [r.image_id for r in val] == [10]
    assert [r.image_id for r in train] == [1, 2, 3, 4, 5, 7, 8, 9]  # 6 has one visible joint
    r = train[0]
    np.testing.assert_allclose(r.keypoints, joints[:, :2, 0] - 1, rtol=1e-6)
    assert r.image_path.name == "im00001.jpg"
    vis_pts = r.keypoints[r.visibility > 0]
    x0, y0 = vis_pts.min(0)
    x1, y1 = vis_pts.max(0)
    assert r.box[0] < x0 and r.box[1] < y0 and r.box[0] + r.box[2] > x1 and r.box[1] + r.box[3] > y1


def test_lsp_original_layout_and_bad_shape(tmp_path):
    mat, joints = _lsp(tmp_path, layout="orig")
    kps, vis = load_lsp_joints(mat)
    assert kps.shape == (12, 14, 2) and vis.shape == (12, 14)
    np.testing.assert_allclose(vis.T, joints[:, 2, :])  # occlusion flag inverted
    savemat(tmp_path / "bad.mat", {"joints": np.zeros((16, 3, 4))})
    with pytest.raises(ValueError, match=r"bad.mat: 'joints' has shape \(16, 3, 4\)"):
        load_lsp_joints(tmp_path / "bad.mat")
    savemat(tmp_path / "nojoints.mat", {"pose": np.zeros((14, 3, 4))})
    with pytest.raises(ValueError, match=r"no 'joints' array \(found \['pose'\]\)"):
        load_lsp_joints(tmp_path / "nojoints.mat")
    (tmp_path / "text.mat").write_text("hello")
    with pytest.raises(ValueError, match="text.mat: cannot read MATLAB file"):
        load_lsp_joints(tmp_path / "text.mat")
