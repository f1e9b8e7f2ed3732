"""Issue 14: colour order, batches and streams, results objects, output formats, person boxes
(score / NMS defaults, ONNX detectors), video (H.264, detect-every, Hungarian tracking); issue 12
items 2, 5 and 9 for `stnet predict`."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn

from stnet.apps.predict import carried_boxes, output_names, run_predict
from stnet.cli import main
from stnet.detectors import (DEFAULT_DET_SCORE, ONNXDetector, build_detector, filter_detections, letterbox,
                             load_boxes_file)
from stnet import PoseEstimator, Results
from stnet.inference.estimator import NonFiniteWarning
from stnet.tracking import Tracker

from helpers.onnx_detectors import constant_onnx

SIZE = (128, 96)


@pytest.fixture(scope="module")
def est(random_stnet):
    return PoseEstimator(random_stnet, skeleton="coco17")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, random_stnet):
    d = tmp_path_factory.mktemp("ckpt")
    cfg = {"model": {"name": "stnet_1s", "overrides": {}}, "input_size": list(SIZE),
           "train": {"skeleton": "coco17"}, "val": {"skeleton": "coco17"}}
    torch.save({"model": random_stnet.state_dict(), "config": cfg, "epoch": 1}, d / "best.pt")
    return d / "best.pt"


def _img(h=160, w=200, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


class CountingBackend:
    """Wraps a backend and counts its forward passes."""

    def __init__(self, inner) -> None:
        self.inner, self.calls, self.sizes = inner, 0, []
        self.name, self.input_size, self.card = inner.name, inner.input_size, inner.card

    def run(self, crops, affine=None):
        self.calls += 1
        self.sizes.append(len(crops))
        return self.inner.run(crops, affine)


# ------------------------------------------------------------------ colour order
def test_imread_array_and_its_path_give_the_same_keypoints(est, tmp_path):
    p = tmp_path / "a.png"
    cv2.imwrite(str(p), _img())
    arr = cv2.imread(str(p))
    box = [[20, 10, 80, 120]]
    np.testing.assert_array_equal(est(arr, boxes=box).keypoints, est(p, boxes=box).keypoints)
    # the same array read as RGB is another image: the default really is BGR
    assert not np.allclose(est(arr, boxes=box, color="rgb").keypoints, est(p, boxes=box).keypoints)


# ------------------------------------------------------------------ batches and streams
def test_eight_images_run_as_batched_forward_passes(random_stnet):
    e = PoseEstimator(random_stnet, skeleton="coco17", max_batch=8)
    counting = CountingBackend(e.backend)
    e.backend = counting
    images = [_img(seed=i) for i in range(8)]
    batch = e(images)
    assert counting.calls == 1 and counting.sizes == [8]
    assert isinstance(batch, list) and all(isinstance(r, Results) and len(r) == 1 for r in batch)
    counting.calls, counting.sizes = 0, []
    e.max_batch = 3
    stacked = e(np.stack(images))  # a (B, H, W, 3) array is a batch too
    assert counting.sizes == [3, 3, 2]
    # Batch sizes change the convolutions' float32 rounding (~1e-6 in the heatmaps); DARK's Newton
    # step on these random-weight maps (often several pixels) scales that to ~1e-4 px.
    for a, b in zip(batch, stacked):
        np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-3)
    counting.calls = 0
    streamed = list(e.stream(iter(images), chunk=4))
    assert counting.calls == 4  # 2 chunks of 4 images, each split into max_batch=3 crops
    for a, b in zip(batch, streamed):
        np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-3)
    with pytest.raises(ValueError, match="2 entries for 8 images"):
        e(images, boxes=[None, None])


# ------------------------------------------------------------------ results objects
def test_results_object(est, tmp_path):
    img = _img()
    res = est(img, boxes=[[20, 10, 80, 120, 0.9], [100, 20, 60, 100]])
    assert isinstance(res, Results) and len(res) == 2
    assert res.keypoints.shape == (2, 17, 2) and res.scores.shape == (2, 17)
    np.testing.assert_allclose(res.boxes[0], [20, 10, 80, 120])
    np.testing.assert_allclose(res.boxes_xyxy[0], [20, 10, 100, 130])
    assert res.names[9] == "left_wrist" and res[0].box_xyxy == (20.0, 10.0, 100.0, 130.0)
    x, y, s = res[0]["left_wrist"]
    assert (x, y, s) == (float(res.keypoints[0, 9, 0]), float(res.keypoints[0, 9, 1]), float(res.scores[0, 9]))
    with pytest.raises(KeyError):
        res[0]["tail"]
    over = res.plot()
    assert over.shape == img.shape and over.dtype == np.uint8 and not np.array_equal(over, img)
    np.testing.assert_array_equal(res.plot(color="rgb"), over[..., ::-1])
    out = res.save(tmp_path / "o.jpg")
    assert cv2.imread(str(out)).shape == img.shape
    coco = res.to_coco(image_id=7)
    assert len(coco) == 2 and coco[0]["image_id"] == 7 and coco[0]["category_id"] == 1
    assert len(coco[0]["keypoints"]) == 51 and coco[0]["bbox"] == [20.0, 10.0, 80.0, 120.0]
    j = res.to_json()
    assert (j["height"], j["width"]) == (160, 200) and len(j["persons"]) == 2
    json.dumps(j, allow_nan=False)
    assert est(img, boxes=[]).keypoints.shape == (0, 17, 2)


class NaNModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.cfg = type("C", (), {"input_size": SIZE, "num_joints": 17})()

    def forward(self, x):
        return torch.full((x.shape[0], 17, SIZE[0] // 4, SIZE[1] // 4), float("nan"))


def test_non_finite_heatmaps_warn_instead_of_nan_coordinates(tmp_path, capsys):
    e = PoseEstimator(NaNModel(), skeleton="coco17")
    with pytest.warns(NonFiniteWarning, match="not finite"):
        res = e(_img(), boxes=[[20, 10, 80, 120]])
    assert len(res) == 0
    cv2.imwrite(str(tmp_path / "a.png"), _img())
    s = run_predict(e, str(tmp_path / "a.png"), output_dir=tmp_path / "o", progress=False,
                    print_fn=lambda m: print(m))
    assert s["persons"] == 0 and "not finite" in capsys.readouterr().out
    json.loads((tmp_path / "o" / "predictions.json").read_text())  # strict json, no NaN


# ------------------------------------------------------------------ output formats
def test_json_header_and_coco_format_scored(ckpt, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    names = ["000000000001.jpg", "000000000002.jpg"]
    for i, n in enumerate(names):
        cv2.imwrite(str(src / n), _img(seed=i))
    rc = main(["predict", str(src), "--model", str(ckpt), "--output-dir", str(tmp_path / "o"), "--no-progress",
               "--no-render"])
    assert rc == 0
    doc = json.loads((tmp_path / "o" / "predictions.json").read_text())
    assert doc["stnet"] and doc["model"] == str(ckpt) and doc["input_size"] == list(SIZE)
    assert doc["skeleton"]["name"] == "coco17" and len(doc["skeleton"]["keypoints"]) == 17
    assert [0, 1] in doc["skeleton"]["links"] or [1, 0] in doc["skeleton"]["links"] or doc["skeleton"]["links"]
    assert [im["file"] for im in doc["images"]] == names
    assert (doc["images"][0]["height"], doc["images"][0]["width"]) == (160, 200)
    # --format coco: image ids from --ann, and stnet score accepts it
    kp = np.zeros((17, 3))
    kp[:, :2] = [[60 + 3 * k, 40 + 5 * k] for k in range(17)]
    kp[:, 2] = 2
    ann = {"images": [{"id": 1, "file_name": names[0], "height": 160, "width": 200},
                      {"id": 2, "file_name": names[1], "height": 160, "width": 200}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "keypoints": kp.reshape(-1).tolist(),
                            "num_keypoints": 17, "bbox": [60, 40, 48, 80], "area": 3840, "iscrowd": 0}],
           "categories": [{"id": 1, "name": "person", "keypoints": [f"k{i}" for i in range(17)], "skeleton": []}]}
    (tmp_path / "ann.json").write_text(json.dumps(ann))
    capsys.readouterr()
    rc = main(["predict", str(src), "--model", str(ckpt), "--format", "coco", "--ann", str(tmp_path / "ann.json"),
               "--json-out", str(tmp_path / "coco.json"), "--output-dir", str(tmp_path / "o2"), "--no-progress",
               "--no-render"])
    assert rc == 0
    coco = json.loads((tmp_path / "coco.json").read_text())
    assert sorted({r["image_id"] for r in coco}) == [1, 2] and len(coco[0]["keypoints"]) == 51
    capsys.readouterr()
    rc = main(["score", "--gt", str(tmp_path / "ann.json"), "--pred", str(tmp_path / "coco.json"), "--json"])
    assert rc == 0 and "AP" in json.loads(capsys.readouterr().out)
    # annotations of another dataset: an error, not 0 persons
    other = {**ann, "images": [{"id": 5, "file_name": "zzz.jpg", "height": 1, "width": 1}]}
    (tmp_path / "other.json").write_text(json.dumps(other))
    rc = main(["predict", str(src), "--model", str(ckpt), "--format", "coco", "--ann", str(tmp_path / "other.json"),
               "--output-dir", str(tmp_path / "o3"), "--no-progress", "--no-render"])
    assert rc == 2 and "another dataset" in capsys.readouterr().err


@pytest.mark.data
def test_coco_mini_predict_then_score(data_root, ckpt, tmp_path, capsys):
    ann = data_root / "coco_mini" / "annotations" / "person_keypoints_train2017.json"
    src = tmp_path / "imgs"
    src.mkdir()
    for p in sorted((data_root / "coco_mini" / "train2017").glob("*.jpg"))[:3]:
        (src / p.name).write_bytes(p.read_bytes())
    rc = main(["predict", str(src), "--model", str(ckpt), "--format", "coco", "--ann", str(ann),
               "--json-out", str(tmp_path / "r.json"), "--no-render", "--no-progress"])
    assert rc == 0
    capsys.readouterr()
    rc = main(["score", "--gt", str(ann), "--pred", str(tmp_path / "r.json"), "--skip-unknown-images", "--json"])
    assert rc == 0 and 0.0 <= json.loads(capsys.readouterr().out)["AP"] <= 1.0


# ------------------------------------------------------------------ person boxes
def test_same_default_boxes_and_detector_filtering(est):
    from stnet.apps.cli import register  # noqa: F401  (the CLI reads the same default)
    import argparse

    sub = argparse.ArgumentParser().add_subparsers(dest="command")
    register(sub)
    args = sub.choices["predict"].parse_args(["x.jpg"])
    assert args.detector is None and type(build_detector(args.detector)) is type(est.detector)
    assert args.det_score == est.det_score == DEFAULT_DET_SCORE
    dets = np.array([[10, 10, 50, 100, 0.9], [12, 10, 50, 100, 0.8], [120, 20, 40, 80, 0.0]])
    kept = filter_detections(dets)
    assert kept.tolist() == [dets[0].tolist()]  # the duplicate is merged, the 0.00 box dropped
    e = est.with_options(detector=lambda img: dets)
    assert len(e(_img())) == 1


def test_coco_detections_with_foreign_annotations_is_an_error(tmp_path):
    (tmp_path / "dets.json").write_text(json.dumps([{"image_id": 9, "bbox": [0, 0, 5, 5], "score": 1,
                                                      "category_id": 1}]))
    (tmp_path / "ann.json").write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg"}]}))
    with pytest.raises(ValueError, match="different datasets"):
        load_boxes_file(tmp_path / "dets.json", tmp_path / "ann.json")


def test_letterbox():
    img = np.full((480, 1280, 3), 7, np.uint8)
    out, r, (dx, dy) = letterbox(img, (640, 640), centre=True)
    assert r == 0.5 and (dx, dy) == (0, 200) and out[199, 0, 0] == 114 and out[200, 0, 0] == 7
    assert out[440, 0, 0] == 114 and out[439, 0, 0] == 7
    out, r, (dx, dy) = letterbox(img, (640, 640), centre=False)
    assert (dx, dy) == (0, 0) and out[239, 0, 0] == 7 and out[240, 0, 0] == 114


def test_onnx_detector_rtmdet_layout(tmp_path):
    pytest.importorskip("onnxruntime")
    dets = np.array([[[100, 50, 300, 250, 0.9], [102, 50, 300, 250, 0.8], [400, 50, 500, 150, 0.95],
                      [10, 10, 60, 60, 0.1]]], np.float32)
    labels = np.array([[0, 0, 2, 0]], np.int64)  # the 0.95 box is not a person
    det = ONNXDetector(constant_onnx(tmp_path / "rtm.onnx", {"dets": dets, "labels": labels}))
    assert det.layout == "rtmdet" and repr(build_detector(str(tmp_path / "rtm.onnx"))).startswith("ONNXDetector")
    boxes = det(np.zeros((480, 1280, 3), np.uint8))  # scale 0.5, padded at the bottom
    np.testing.assert_allclose(boxes, [[200, 100, 400, 400, 0.9]], atol=1e-4)


def test_onnx_detector_yolov8_layout(tmp_path):
    pytest.importorskip("onnxruntime")
    # (1, 4 + 2 classes, 4 candidates): cx, cy, w, h, person score, other score
    pred = np.array([[[200, 202, 500, 50], [300, 300, 300, 300], [100, 100, 40, 20], [80, 80, 40, 20],
                      [0.9, 0.7, 0.1, 0.8], [0.0, 0.0, 0.9, 0.0]]], np.float32)
    det = ONNXDetector(constant_onnx(tmp_path / "y8.onnx", {"output0": pred}))
    assert det.layout == "yolov8"
    boxes = det(np.zeros((480, 1280, 3), np.uint8))  # scale 0.5, 200 px of grey above and below
    # box 0: x1 = (200 - 50) / 0.5, y1 = (300 - 40 - 200) / 0.5; box 1 is its duplicate; box 2 is not a person
    np.testing.assert_allclose(boxes, [[300, 120, 200, 160, 0.9], [80, 180, 40, 40, 0.8]], atol=1e-4)
    with pytest.raises(ValueError, match="not a loadable ONNX model"):
        (tmp_path / "bad.onnx").write_bytes(b"junk")
        ONNXDetector(tmp_path / "bad.onnx")


# ------------------------------------------------------------------ predict never overwrites, clear errors
def test_predict_never_overwrites_inputs_and_keeps_names_unique(ckpt, tmp_path, capsys):
    src = tmp_path / "d"
    src.mkdir()
    cv2.imwrite(str(src / "x.jpg"), _img())
    cv2.imwrite(str(src / "x.png"), _img(seed=1))
    cv2.imwrite(str(src / "p.png"), _img(seed=2))
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    rc = main(["predict", str(src), "--model", str(ckpt), "--output-dir", str(src), "--no-progress"])
    assert rc == 2 and "would be overwritten" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before
    assert output_names(["x.jpg", "x.png", "p.png", "s/x.jpg"]) == {
        "x.jpg": "x_jpg.png", "x.png": "x_png.png", "p.png": "p.png", "s/x.jpg": "s/x.png"}
    rc = main(["predict", str(src), "--model", str(ckpt), "--output-dir", str(tmp_path / "o"), "--no-progress"])
    assert rc == 0
    assert sorted(p.name for p in (tmp_path / "o").glob("*.png")) == ["p.png", "x_jpg.png", "x_png.png"]


def test_predict_one_line_errors(ckpt, tmp_path, capsys):
    img = tmp_path / "a.jpg"
    cv2.imwrite(str(img), _img())
    (tmp_path / "file").write_text("x")
    cases = [(["--output-dir", str(tmp_path / "file")], "is a file"),
             (["--json-out", str(tmp_path)], "is a folder"),
             (["--device", "banana"], "not a device"),
             (["--device", "cuda:7"], "CUDA device"),
             (["--detector", "banana"], "unknown detector")]
    if torch.cuda.device_count() > 7:
        cases = [c for c in cases if "cuda:7" not in c[0]]
    for extra, msg in cases:
        rc = main(["predict", str(img), "--model", str(ckpt), "--output-dir", str(tmp_path / "o"), *extra])
        err = capsys.readouterr().err
        assert rc == 2 and msg in err and "Traceback" not in err, (extra, err)


def test_boxes_for_names_not_in_the_folder_are_named(ckpt, tmp_path, capsys):
    src = tmp_path / "d"
    src.mkdir()
    cv2.imwrite(str(src / "a.jpg"), _img())
    (tmp_path / "b.json").write_text(json.dumps({"a.jpg": [[0, 0, 50, 50]], "typo.jpg": [[0, 0, 5, 5]]}))
    rc = main(["predict", str(src), "--model", str(ckpt), "--boxes", str(tmp_path / "b.json"), "--no-render",
               "--output-dir", str(tmp_path / "o"), "--no-progress"])
    assert rc == 0 and "name no file" in (err := capsys.readouterr().err) and "typo.jpg" in err


def test_ctrl_c_in_predict_says_what_was_saved(ckpt, tmp_path, capsys, monkeypatch):
    import stnet.apps.predict as predict

    src = tmp_path / "d"
    src.mkdir()
    for i in range(3):
        cv2.imwrite(str(src / f"{i}.jpg"), _img(seed=i))
    real, calls = predict.load_image, []

    def interrupting(path, *a, **k):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(path, *a, **k)

    monkeypatch.setattr(predict, "load_image", interrupting)
    rc = main(["predict", str(src), "--model", str(ckpt), "--output-dir", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 130 and "interrupted; saved the results of 1 image(s)" in err and "Traceback" not in err
    doc = json.loads((tmp_path / "o" / "predictions.json").read_text())
    assert [im["file"] for im in doc["images"]] == ["0.jpg"]


# ------------------------------------------------------------------ video
def _video(path, n=6, fps=10):
    wr = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (160, 128))
    if not wr.isOpened():
        pytest.skip("no video writer in this OpenCV build")
    for i in range(n):
        wr.write(_img(128, 160, seed=i))
    wr.release()
    return path


def test_video_frames_list_detect_every_and_truncation(ckpt, tmp_path, capsys):
    path = _video(tmp_path / "clip.avi")
    calls = []

    def det(img):
        calls.append(1)
        return [[10, 10, 100, 100, 0.9]]

    e = PoseEstimator(ckpt, detector=det)
    s = run_predict(e, str(path), output_dir=tmp_path / "o", progress=False, detect_every=3, render_images=False)
    assert s["inputs"] == 6 and len(calls) == 2  # frames 0 and 3
    doc = json.loads((tmp_path / "o" / "predictions.json").read_text())
    assert [f["frame"] for f in doc["frames"]] == list(range(6))
    assert all(f["persons"][0]["track_id"] == 0 for f in doc["frames"])
    assert doc["video"]["width"] == 160 and doc["skeleton"]["name"] == "coco17"
    # a truncated file: the header announces 6 frames, fewer are readable
    data = path.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    lines: list[str] = []
    s = run_predict(e, str(cut), output_dir=tmp_path / "o2", progress=False, render_images=False,
                    print_fn=lines.append)
    assert s["frames_lost"] > 0 and any("frame(s) lost" in m for m in lines), lines


def test_video_carried_boxes_on_one_person_stay_one_person(ckpt, tmp_path, monkeypatch):
    # benchmarks/tracking_ids.py: a pose run on a stray carried box landed on a tracked person,
    # and both were carried on as two people with two track ids
    import stnet.apps.predict as predict_mod

    path = _video(tmp_path / "clip.avi", n=4)
    e = PoseEstimator(ckpt, detector=lambda im: [[10, 10, 100, 100, 0.9]], det_nms=1.0)
    monkeypatch.setattr(predict_mod, "carried_boxes", lambda prev, shape, threshold=0.3: np.array(
        [[10, 10, 100, 100, 0.9], [10, 10, 100, 100, 0.8]]))
    run_predict(e, str(path), output_dir=tmp_path / "o", progress=False, detect_every=2, render_images=False)
    doc = json.loads((tmp_path / "o" / "predictions.json").read_text())
    assert [len(f["persons"]) for f in doc["frames"]] == [1, 1, 1, 1]
    assert {p["track_id"] for f in doc["frames"] for p in f["persons"]} == {0}
    run_predict(e.with_options(pose_nms=1.0), str(path), output_dir=tmp_path / "o2", progress=False, detect_every=2,
                render_images=False)
    doc = json.loads((tmp_path / "o2" / "predictions.json").read_text())
    assert [len(f["persons"]) for f in doc["frames"]] == [1, 2, 1, 2]  # without it: two people


def test_h264_video_output(ckpt, tmp_path):
    av = pytest.importorskip("av")
    path = _video(tmp_path / "clip.avi", n=3)
    e = PoseEstimator(ckpt)
    s = run_predict(e, str(path), output_dir=tmp_path / "o", progress=False)
    assert s["outputs"] == [str(tmp_path / "o" / "clip.mp4")]
    with av.open(str(tmp_path / "o" / "clip.mp4")) as c:
        assert c.streams.video[0].codec_context.name == "h264" and c.streams.video[0].frames == 3


def test_carried_boxes_follow_keypoints():
    from stnet.results import PoseResult

    kp = np.array([[10, 20], [50, 20], [30, 80]], np.float32)
    p = PoseResult(kp, np.array([0.9, 0.7, 0.8], np.float32), (0.0, 0.0, 200.0, 200.0), 0.2, "coco17")
    # The score is the keypoints' mean, not the person's 0.2 (which already holds the previous box
    # score: carrying it would compound frame after frame).
    np.testing.assert_allclose(carried_boxes([p], (300, 300)), [[8, 17, 44, 66, 0.8]], atol=1e-4)
    weak = PoseResult(kp, np.array([0.1, 0.2, 0.1], np.float32), (1.0, 2.0, 30.0, 40.0), 0.5, "coco17")
    np.testing.assert_allclose(carried_boxes([weak], (300, 300)), [[1, 2, 30, 40, 0.0]])
    assert carried_boxes([], (300, 300)).shape == (0, 5)


def test_tracker_assignment_is_hungarian():
    from stnet.results import PoseResult

    def person(box):
        return PoseResult(np.zeros((17, 2), np.float32), np.ones(17, np.float32), box, 1.0, "coco17")

    t = Tracker(metric="iou", threshold=0.3, buffer=0.0)
    t.update([person((0.0, 0.0, 10.0, 10.0)), person((5.0, 0.0, 10.0, 10.0))], 0)  # tracks 0 and 1
    # IoU: track 0 - P 0.67, track 0 - Q 0.54, track 1 - P 0.54, track 1 - Q 0.11. Greedy takes
    # 0 - P and leaves Q below the threshold (a new track 2); Hungarian maximises the total.
    out = t.update([person((2.0, 0.0, 10.0, 10.0)), person((-3.0, 0.0, 10.0, 10.0))], 1)
    assert [p.track_id for p in out] == [1, 0]
    with pytest.raises(ValueError, match="one-euro"):
        Tracker(min_cutoff=0)
