"""PoseEstimator: inputs, boxes, geometry, checkpoints, backends; detectors; tracking."""
from __future__ import annotations

import dataclasses
import json
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn

from stnet.detectors import (CallableDetector, StaticBoxes, WholeImage, as_boxes, build_detector, hog_available,
                             load_boxes_file, sanitize_boxes)
from stnet import PoseEstimator, PoseResult
from stnet.inference.estimator import UntrainedWeightsWarning
from stnet.inference.images import load_image
from stnet.models import create_model
from stnet.tracking import OneEuroFilter, Tracker

SIZE = (128, 96)


@pytest.fixture(scope="module")
def net(random_stnet):
    return random_stnet


@pytest.fixture(scope="module")
def est(net):
    return PoseEstimator(net, skeleton="coco17")


@pytest.fixture(scope="module")
def image(test_image):
    return test_image


def checkpoint(net, path, skeleton="coco17", name="stnet_1s", codec=None):
    cfg = {"name": "t", "model": {"name": name, "overrides": {}}, "input_size": list(SIZE),
           "codec": codec or {"kind": "udp", "sigma": 2.0, "heatmap_stride": 4, "refine": None, "blur_kernel_size": 11},
           "train": {"kind": "coco", "skeleton": skeleton}, "val": {"kind": "coco", "skeleton": skeleton}}
    torch.save({"format": 1, "model": net.state_dict(), "epoch": 1, "iteration": 5, "config": cfg, "ema": None}, path)
    return path


class PeakModel(nn.Module):
    """Heatmaps with one Gaussian per joint at a fixed heatmap position (the crop centre)."""

    def __init__(self, k: int = 17, hw=(32, 24)) -> None:
        super().__init__()
        self.cfg = type("C", (), {"input_size": SIZE, "num_joints": k})()
        h, w = hw
        yy, xx = np.mgrid[0:h, 0:w]
        g = np.exp(-((xx - (w - 1) / 2) ** 2 + (yy - (h - 1) / 2) ** 2) / (2 * 2.0 ** 2))
        self.register_buffer("hm", torch.tensor(g, dtype=torch.float32).expand(k, h, w).clone())

    def forward(self, x):
        return self.hm.expand(x.shape[0], -1, -1, -1) + 0 * x.mean()


def test_geometry_box_centre_maps_to_image(image):
    est = PoseEstimator(PeakModel(), skeleton="coco17")
    assert not est.untrained
    res = est(image, boxes=[[100, 50, 60, 120], [10, 20, 40, 40, 0.5]])
    assert len(res) == 2
    np.testing.assert_allclose(res[0].keypoints, np.tile([130.0, 110.0], (17, 1)), atol=0.05)
    np.testing.assert_allclose(res[1].keypoints, np.tile([30.0, 40.0], (17, 1)), atol=0.05)
    assert res[1].box == (10.0, 20.0, 40.0, 40.0)
    assert 0.45 < res[1].score <= 0.5 and res[0].skeleton == "coco17"


def test_result_fields_and_batching(est, image):
    boxes = [[20, 10, 80, 150], [120, 30, 60, 120, 0.8], [0, 0, 240, 180]]
    res = est(image, boxes=boxes)
    assert [type(r) for r in res] == [PoseResult] * 3
    r = res[0]
    assert r.keypoints.shape == (17, 2) and r.keypoints.dtype == np.float32 and r.scores.shape == (17,)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.score = 1.0  # frozen
    # one batch == one box at a time
    for i, b in enumerate(boxes):
        single = est(image, boxes=[b])[0]
        np.testing.assert_allclose(single.keypoints, res[i].keypoints, atol=1e-3)
        np.testing.assert_allclose(single.scores, res[i].scores, atol=1e-4)
    d = r.to_dict()
    assert set(d) == {"keypoints", "scores", "box", "score"} and len(d["keypoints"]) == 17
    json.dumps(d)


def test_input_kinds(est, image, tmp_path):
    import cv2
    from PIL import Image

    ref = est(image, boxes=[[20, 10, 80, 150]], color="rgb")[0].keypoints
    bgr = np.ascontiguousarray(image[..., ::-1])
    np.testing.assert_allclose(est(bgr, boxes=[[20, 10, 80, 150]])[0].keypoints, ref, atol=1e-4)  # BGR default
    np.testing.assert_allclose(est(bgr, boxes=[[20, 10, 80, 150]], color="bgr")[0].keypoints, ref, atol=1e-4)
    np.testing.assert_allclose(est(Image.fromarray(image), boxes=[[20, 10, 80, 150]])[0].keypoints, ref, atol=1e-4)
    p = tmp_path / "a.png"
    cv2.imwrite(str(p), bgr)
    np.testing.assert_allclose(est(p, boxes=[[20, 10, 80, 150]])[0].keypoints, ref, atol=1e-4)
    assert load_image(image[..., 0]).shape == (180, 240, 3)
    assert load_image(np.dstack([image, image[..., :1]])).shape == (180, 240, 3)
    with pytest.raises(TypeError):
        load_image(image.astype(np.float32))
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="not a readable image"):
        est(tmp_path / "bad.jpg")
    with pytest.raises(FileNotFoundError):
        est(tmp_path / "missing.jpg")


def test_boxes_outside_or_empty_are_skipped(est, image):
    with pytest.warns(UserWarning, match="skipped"):
        res = est(image, boxes=[[500, 500, 50, 50], [20, 10, 80, 150], [10, 10, 0, 5]])
    assert len(res) == 1 and res[0].box == (20.0, 10.0, 80.0, 150.0)
    clipped = est(image, boxes=[[-20, -10, 100, 100]])[0]
    assert clipped.box == (0.0, 0.0, 80.0, 90.0)
    assert est(image, boxes=[]) == []
    assert len(est(image)) == 1  # default detector: the whole image


def test_flip_test_runs(est, image):
    f = est.with_options(flip_test=True)
    a = f(image, boxes=[[20, 10, 80, 150]])[0]
    assert a.keypoints.shape == (17, 2) and np.isfinite(a.keypoints).all()


def test_untrained_warning():
    with pytest.warns(UntrainedWeightsWarning):
        e = PoseEstimator("stnet_1s", input_size=SIZE)
    assert e.untrained and e.skeleton.name == "coco17"


def test_checkpoint_roundtrip(net, est, image, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    checkpoint(net, run / "best.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UntrainedWeightsWarning)
        e = PoseEstimator(run)
    assert not e.untrained and e.input_size == SIZE and e.skeleton.name == "coco17"
    a = e(image, boxes=[[20, 10, 80, 150]])[0]
    b = est(image, boxes=[[20, 10, 80, 150]])[0]
    np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-3)
    # bare state_dict + explicit model name
    torch.save(net.state_dict(), tmp_path / "w.pt")
    e2 = PoseEstimator("stnet_1s", weights=tmp_path / "w.pt", input_size=SIZE)
    assert not e2.untrained
    np.testing.assert_allclose(e2(image, boxes=[[20, 10, 80, 150]])[0].keypoints, b.keypoints, atol=1e-3)
    with pytest.raises(ValueError, match="model=NAME"):
        PoseEstimator(tmp_path / "w.pt")


def test_bad_checkpoints(tmp_path):
    with pytest.raises(FileNotFoundError):
        PoseEstimator(tmp_path / "nope.pt")
    with pytest.raises(FileNotFoundError, match="best.pt or last.pt"):
        PoseEstimator(tmp_path)
    with pytest.raises(FileNotFoundError, match="not found"):
        PoseEstimator("runs/missing/best.pt")
    with pytest.raises(KeyError, match="unknown model"):
        PoseEstimator("stnet_9s")
    with pytest.raises(FileNotFoundError, match="available"):
        PoseEstimator.from_pretrained("stnet_1s_coco")
    lsp = create_model("stnet_1s", input_size=SIZE, num_joints=14)
    checkpoint(lsp, tmp_path / "lsp.pt", skeleton="lsp14")
    with pytest.raises(ValueError, match="lsp14"):
        PoseEstimator(tmp_path / "lsp.pt", skeleton="coco17")
    e = PoseEstimator(tmp_path / "lsp.pt")
    assert e.skeleton.name == "lsp14"
    torch.save(lsp.state_dict(), tmp_path / "lsp_sd.pt")
    with pytest.raises(ValueError, match="another skeleton|keypoints"):
        PoseEstimator("stnet_1s", weights=tmp_path / "lsp_sd.pt", skeleton="coco17", input_size=SIZE)
    (tmp_path / "broken.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="corrupted|cannot be read"):
        PoseEstimator(tmp_path / "broken.pt")


def test_onnxruntime_backend_matches_torch(net, est, image):
    pytest.importorskip("onnxruntime")
    e = PoseEstimator(net, skeleton="coco17", backend="onnxruntime")
    boxes = [[20, 10, 80, 150], [120, 30, 60, 120]]
    for a, b in zip(e(image, boxes=boxes), est(image, boxes=boxes)):
        assert np.abs(a.keypoints - b.keypoints).max() < 1e-2
        assert np.abs(a.scores - b.scores).max() < 1e-4


# ------------------------------------------------------------------------------------ detectors
def test_box_helpers(tmp_path):
    np.testing.assert_allclose(as_boxes([1, 2, 3, 4]), [[1, 2, 3, 4, 1]])
    np.testing.assert_allclose(as_boxes([[0, 0, 10, 20, 0.5]], "xyxy"), [[0, 0, 10, 20, 0.5]])
    np.testing.assert_allclose(as_boxes([[1, 2, 3, 4], [1, 2, 3, 4, 0.2]])[:, 4], [1, 0.2])
    np.testing.assert_allclose(as_boxes(torch.tensor([[5.0, 5, 15, 25, 0.9, 0]]), "xyxy"), [[5, 5, 10, 20, 0.9]])
    with pytest.raises(ValueError):
        as_boxes([[1, 2, 3]])
    with pytest.warns(UserWarning):
        kept, idx = sanitize_boxes(as_boxes([[0, 0, 10, 10], [np.nan, 0, 1, 1], [-50, -50, 10, 10]]), (20, 20))
    assert idx.tolist() == [0] and len(kept) == 1
    det = CallableDetector(lambda img: torch.tensor([[0.0, 0, 10, 10, 0.9], [0, 0, 5, 5, 0.1]]), fmt="xyxy",
                           min_score=0.5)
    assert det(np.zeros((20, 20, 3), np.uint8)).shape == (1, 5)
    assert isinstance(build_detector(None), WholeImage)
    assert isinstance(build_detector(lambda im: [[0, 0, 1, 1]]), CallableDetector)
    with pytest.raises(ValueError):
        build_detector("yolo")
    # boxes files: name mapping and COCO detection results + annotations
    (tmp_path / "m.json").write_text(json.dumps({"a.jpg": [[1, 2, 3, 4], [1, 2, 3, 4, 0.1]]}))
    sb = load_boxes_file(tmp_path / "m.json", min_score=0.5)
    assert isinstance(sb, StaticBoxes) and sb.lookup("sub/a.jpg").shape == (1, 5) and sb.lookup("b.jpg") is None
    dets = [{"image_id": 7, "bbox": [1, 2, 3, 4], "score": 0.9, "category_id": c} for c in (1, 2)]
    (tmp_path / "det.json").write_text(json.dumps(dets))
    (tmp_path / "ann.json").write_text(json.dumps({"images": [{"id": 7, "file_name": "x.jpg"}]}))
    with pytest.raises(ValueError, match="--ann"):
        load_boxes_file(tmp_path / "det.json")
    assert load_boxes_file(tmp_path / "det.json", tmp_path / "ann.json").lookup("x.jpg").shape == (1, 5)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="not valid json"):
        load_boxes_file(tmp_path / "bad.json")


@pytest.mark.skipif(not hog_available(), reason="this OpenCV build has no HOG people detector (OpenCV 5)")
def test_hog_detector_runs():
    from stnet.detectors import HOGDetector

    out = HOGDetector()(np.zeros((200, 150, 3), np.uint8))
    assert out.ndim == 2 and out.shape[1] == 5


def test_auto_detector_falls_back():
    from stnet.detectors import blazepose_available

    if blazepose_available():
        assert type(build_detector("auto")).__name__ == "BlazePoseDetector"
    elif hog_available():
        with pytest.warns(UserWarning, match="BlazePose"):
            assert type(build_detector("auto")).__name__ == "HOGDetector"
    else:
        with pytest.warns(UserWarning, match="HOG"):
            assert isinstance(build_detector("auto"), WholeImage)


# ------------------------------------------------------------------------------------ tracking
def _person(box, kp=None):
    kp = np.tile([box[0] + box[2] / 2, box[1] + box[3] / 2], (17, 1)).astype(np.float32) if kp is None else kp
    return PoseResult(kp, np.ones(17, np.float32), tuple(map(float, box)), 1.0, "coco17")


@pytest.mark.parametrize("metric", ["iou", "oks"])
def test_tracker_keeps_ids(metric):
    t = Tracker(metric=metric, threshold=0.3)
    f0 = t.update([_person([0, 0, 50, 100]), _person([200, 0, 50, 100])])
    f1 = t.update([_person([203, 2, 50, 100]), _person([2, 1, 50, 100]), _person([400, 0, 50, 100])])
    assert [p.track_id for p in f0] == [0, 1]
    assert [p.track_id for p in f1] == [1, 0, 2]


def test_one_euro_smooths():
    rng = np.random.default_rng(0)
    f = OneEuroFilter(min_cutoff=0.5, beta=0.0)
    noisy = 100 + rng.normal(0, 2, (60, 17, 2))
    out = np.stack([f(x, i / 30) for i, x in enumerate(noisy)])
    assert out[20:].std() < 0.5 * noisy[20:].std()
    t = Tracker(smooth=True)
    res = [t.update([_person([0, 0, 50, 100], kp=x.astype(np.float32))])[0] for x in noisy]
    assert np.std([r.keypoints for r in res[20:]]) < 0.5 * noisy[20:].std()


# ------------------------------------------------------------------------------------ backends
class ConstantBackend:
    """A backend object as another runtime would provide it: heatmaps with one peak per joint."""

    name = "constant"
    input_size = SIZE

    def __init__(self, peak: float) -> None:
        self.peak, self.calls = peak, 0

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        assert batch.dtype == np.float32 and batch.shape[1:] == (3, *SIZE)
        self.calls += 1
        hm = np.zeros((len(batch), 17, SIZE[0] // 4, SIZE[1] // 4), np.float32)
        hm[:, :, 16, 12] = self.peak
        return hm


def test_custom_backend_object_and_the_person_score_rule(net, image):
    from stnet.backends import Backend, as_backend, build_backend

    backend = ConstantBackend(peak=0.9)  # a plain callable: wrapped into the protocol
    assert isinstance(as_backend(backend), Backend) and isinstance(build_backend("torch", net, SIZE), Backend)
    est = PoseEstimator(net, backend=backend, skeleton="coco17", max_batch=1)
    res = est(image, boxes=[[20, 10, 80, 150, 0.5], [100, 20, 60, 120]])
    assert backend.calls == 2 and est.backend.fn is backend and "constant" in repr(est)
    np.testing.assert_allclose([r.score for r in res], [0.45, 0.9], atol=1e-3)  # box score x mean kept score
    low = PoseEstimator(net, backend=ConstantBackend(peak=0.1), skeleton="coco17")
    assert low(image, boxes=[[20, 10, 80, 150, 0.5]])[0].score == 0.0  # no joint above 0.2: 0 (HRNet / mmpose)
    with pytest.raises(ValueError, match="backend must be one of"):
        PoseEstimator(net, backend="tensorrt", skeleton="coco17")
    with pytest.raises(TypeError, match="backend must be a name"):
        PoseEstimator(net, backend=object(), skeleton="coco17")


def test_resolve_model_is_the_one_factory(net, tmp_path):
    from stnet.inference.model import ModelRef, resolve_model

    ref = resolve_model("stnet_1s", input_size=SIZE)
    assert isinstance(ref, ModelRef) and ref.untrained and ref.card.input_size == SIZE and ref.name == "stnet_1s"
    assert resolve_model(ref) is ref
    with pytest.raises(ValueError, match="cannot change a resolved"):
        resolve_model(ref, skeleton="coco17")
    ck = checkpoint(net, tmp_path / "best.pt")
    assert resolve_model(tmp_path).source == str(ck) and not resolve_model(ck).untrained
    with pytest.raises(ValueError, match="registered model name"):
        resolve_model(ck, weights=ck)
