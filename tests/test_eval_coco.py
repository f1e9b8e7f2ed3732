"""COCO evaluation: AP 1.0 for GT-as-prediction, parity with pycocotools, bad input, DDP, files."""
from __future__ import annotations

import contextlib
import io
import json
import socket
from pathlib import Path

import numpy as np
import pytest

from stnet.evaluation import (COCO_KEYS, CocoEvaluator, load_detections, make_results, oks,
                              score_results, validate_results)
from helpers.coco_reference import pycocotools_stats
from helpers.synthetic import gt_as_predictions, synthetic_coco_gt, synthetic_predictions

COCO_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87,
                        .89, .89]) / 10.0


@pytest.fixture
def coco_mini(data_root: Path) -> Path:
    p = data_root / "coco_mini" / "annotations" / "person_keypoints_train2017.json"
    if not p.is_file():
        pytest.skip(f"COCO subset not found at {p} (set STNET_DATA_ROOT)")
    return p


@pytest.fixture
def coco_fixtures(data_root: Path) -> Path:
    p = data_root / "fixtures" / "coco"
    if not (p / "test_coco_det_AP_H_56.json").is_file():
        pytest.skip(f"COCO fixtures not found at {p} (set STNET_DATA_ROOT)")
    return p


def _feed(ev: CocoEvaluator, p: dict, batch: int = 64) -> None:
    n = p["keypoints"].shape[0]
    for s in range(0, n, batch):
        sl = slice(s, s + batch)
        ev.process(p["keypoints"][sl], keypoint_scores=p["keypoint_scores"][sl], image_ids=p["image_ids"][sl],
                   box_scores=p["box_scores"][sl], areas=p["areas"][sl])


def _real_predictions(gt: dict, seed: int) -> dict:
    """Perturbed GT plus duplicates and background false positives on the real images."""
    return synthetic_predictions(gt, 4 * sum(a["num_keypoints"] > 0 and not a["iscrowd"]
                                             for a in gt["annotations"]), seed=seed, noise=0.03)


# ----------------------------------------------------------------------------- AP 1.0

def test_gt_as_prediction_gives_ap_1_synthetic():
    gt = synthetic_coco_gt(30, 60, num_persons_without_keypoints=5, seed=1)
    ev = CocoEvaluator(gt, box_source="ground-truth boxes", print_fn=None)
    _feed(ev, gt_as_predictions(gt))
    m = ev.evaluate()
    assert m["AP"] == 1.0 and m["AR"] == 1.0 and m["AP50"] == 1.0 and m["AP75"] == 1.0


@pytest.mark.data
def test_gt_as_prediction_gives_ap_1_real(coco_mini, tmp_path):
    gt = json.loads(coco_mini.read_text())
    lines: list[str] = []
    ev = CocoEvaluator(coco_mini, box_source="ground-truth boxes", output_dir=tmp_path, print_fn=lines.append)
    _feed(ev, gt_as_predictions(gt))
    m = ev.evaluate()
    assert m["AP"] == 1.0 and m["AR"] == 1.0
    # The raw results as a plain list scored directly: AP 1.0 too.
    results = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
               for a in gt["annotations"] if a["num_keypoints"] > 0 and not a["iscrowd"]]
    assert score_results(coco_mini, results).metrics["AP"] == 1.0
    assert "boxes: ground-truth boxes" in lines[0]


# ----------------------------------------------------------------------------- parity

@pytest.mark.data
@pytest.mark.parametrize("seed", [0, 1])
def test_parity_with_pycocotools_on_real_subset(coco_mini, tmp_path, seed):
    gt = json.loads(coco_mini.read_text())
    pred = _real_predictions(gt, seed)
    ev = CocoEvaluator(coco_mini, box_source="synthetic detector boxes", output_dir=tmp_path,
                       print_fn=None)
    _feed(ev, pred, batch=37)
    ours = ev.evaluate()
    assert 0.05 < ours["AP"] < 0.98  # a real, non-degenerate operating point
    assert ev.report["num_results"] < pred["keypoints"].shape[0]  # OKS-NMS removed duplicates
    official = pycocotools_stats(coco_mini, tmp_path / "keypoints_results.json", COCO_SIGMAS)
    np.testing.assert_allclose([ours[k] for k in COCO_KEYS], official, rtol=0, atol=1e-9)
    # The same json through `score_results` (what `stnet score` runs).
    s = score_results(coco_mini, tmp_path / "keypoints_results.json")
    np.testing.assert_allclose([s.metrics[k] for k in COCO_KEYS], official, rtol=0, atol=1e-9)


@pytest.mark.data
def test_parity_with_results_from_another_tool(coco_mini, tmp_path):
    """A results file with extra fields (bbox) and unsorted entries scores as pycocotools scores it."""
    gt = json.loads(coco_mini.read_text())
    pred = _real_predictions(gt, 5)
    res = make_results(pred["image_ids"], pred["keypoints"], pred["keypoint_scores"], pred["box_scores"])
    for r, b in zip(res, pred["boxes"].tolist()):
        r["bbox"] = b  # loadRes then takes areas from the boxes: APM/APL change, parity must hold
    path = tmp_path / "other.json"
    path.write_text(json.dumps(res[::-1]))
    s = score_results(coco_mini, path)
    official = pycocotools_stats(coco_mini, path, COCO_SIGMAS)
    np.testing.assert_allclose([s.metrics[k] for k in COCO_KEYS], official, atol=1e-9)


@pytest.mark.data
def test_oks_matches_cocoeval_on_real_subset(coco_mini):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = json.loads(coco_mini.read_text())
    pred = _real_predictions(gt, 3)
    res = make_results(pred["image_ids"], pred["keypoints"], pred["keypoint_scores"], pred["box_scores"])
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(coco_mini))
        ev = COCOeval(coco, coco.loadRes([dict(r) for r in res]), "keypoints")
        ev.evaluate()
    for img in coco.getImgIds()[:30]:
        g = [a for a in coco.imgToAnns[img] if a["category_id"] == 1]
        d = sorted([r for r in res if r["image_id"] == img], key=lambda r: -r["score"])[:20]
        if not g or not d:
            continue
        gk = np.array([a["keypoints"] for a in g], float).reshape(len(g), 17, 3)
        dk = np.array([r["keypoints"] for r in d], float).reshape(len(d), 17, 3)
        ours = oks(dk[..., :2], gk[..., :2], gk[..., 2], np.array([a["area"] for a in g]), COCO_SIGMAS,
                   gt_boxes=np.array([a["bbox"] for a in g]))
        np.testing.assert_allclose(ours, ev.ious[(img, 1)], rtol=0, atol=1e-12)


def test_parity_synthetic_with_custom_sigmas(tmp_path):
    """Any K with its own sigmas: params.kpt_oks_sigmas is what pycocotools uses."""
    gt = synthetic_coco_gt(20, 40, num_keypoints=5, seed=4)
    sig = np.array([0.03, 0.05, 0.07, 0.09, 0.11])
    pred = synthetic_predictions(gt, 150, seed=4)
    ev = CocoEvaluator(gt, box_source="synthetic", sigmas=sig, output_dir=tmp_path, print_fn=None)
    _feed(ev, pred)
    ours = ev.evaluate()
    official = pycocotools_stats(gt, tmp_path / "keypoints_results.json", sigmas=sig)
    np.testing.assert_allclose([ours[k] for k in COCO_KEYS], official, rtol=0, atol=1e-9)
    assert ev.report["sigmas"] == "given"


def test_protocol_steps_are_applied(tmp_path):
    """Results json = rescored scores, OKS-NMS survivors, official fields only."""
    gt = synthetic_coco_gt(10, 15, seed=2)
    pred = synthetic_predictions(gt, 80, seed=2)
    lines: list[str] = []
    ev = CocoEvaluator(gt, box_source="synthetic", output_dir=tmp_path, print_fn=lines.append)
    _feed(ev, pred)
    ev.evaluate()
    assert "boxes: synthetic" in lines[0].splitlines()[0]  # the printout says which boxes were used
    res = json.loads((tmp_path / "keypoints_results.json").read_text())
    assert set(res[0]) == {"image_id", "category_id", "keypoints", "score"}
    from stnet.evaluation import oks_nms, rescore

    s = rescore(pred["box_scores"], pred["keypoint_scores"], 0.2)
    keep = oks_nms(pred["keypoints"], s, pred["areas"], COCO_SIGMAS, pred["image_ids"], 0.9)
    assert len(res) == keep.size
    np.testing.assert_allclose([r["score"] for r in res], s[keep])
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["protocol"]["boxes"] == "synthetic" and metrics["protocol"]["oks_nms"] == 0.9
    raw = np.load(tmp_path / "predictions_raw.npz")
    assert raw["keypoints"].shape == pred["keypoints"].shape


def test_format_only_writes_submission_without_gt(tmp_path):
    gt = synthetic_coco_gt(5, 8, seed=3)
    pred = synthetic_predictions(gt, 20, seed=3)
    lines: list[str] = []
    ev = CocoEvaluator(None, box_source="detections: test-dev file", format_only=True, output_dir=tmp_path,
                       results_name="person_keypoints_test-dev2017_stnet_results.json", print_fn=lines.append)
    _feed(ev, pred)
    assert ev.evaluate() == {}
    res = json.loads((tmp_path / "person_keypoints_test-dev2017_stnet_results.json").read_text())
    assert res and all(len(r["keypoints"]) == 51 for r in res)
    assert "format only" in lines[0] and "test-dev file" in lines[0]
    # With an image-info json (no annotations), image ids are still checked.
    info = {"images": gt["images"], "categories": gt["categories"]}
    ev = CocoEvaluator(info, box_source="x", format_only=True, output_dir=tmp_path, print_fn=None)
    ev.process(pred["keypoints"][:1], keypoint_scores=pred["keypoint_scores"][:1], image_ids=np.array([999]))
    with pytest.raises(ValueError, match="image_id"):
        ev.evaluate()


# ----------------------------------------------------------------------------- bad input

def _small():
    gt = synthetic_coco_gt(6, 10, seed=7)
    return gt, gt_as_predictions(gt)


def test_wrong_number_of_keypoints():
    gt, p = _small()
    ev = CocoEvaluator(gt, box_source="gt", print_fn=None)
    with pytest.raises(ValueError, match=r"'keypoints' has 16 keypoints.*17"):
        ev.process(p["keypoints"][:, :16], keypoint_scores=p["keypoint_scores"][:, :16], image_ids=p["image_ids"])
    res = make_results(p["image_ids"], p["keypoints"], p["keypoint_scores"], np.ones(len(p["image_ids"])))
    res[3]["keypoints"] = res[3]["keypoints"][:-3]
    with pytest.raises(ValueError, match=r"my\.json: entry 3 .*'keypoints' has 48 values, expected 3 x 17 = 51"):
        score_results(gt, res, source="my.json")


def test_image_id_not_in_gt_error_or_counted_skip():
    gt, p = _small()
    ids = p["image_ids"].copy()
    ids[0] = 12345
    ev = CocoEvaluator(gt, box_source="gt", print_fn=None)
    ev.process(p["keypoints"], keypoint_scores=p["keypoint_scores"], image_ids=ids)
    with pytest.raises(ValueError, match=r"1 of \d+ predictions have an image_id not in the ground truth.*12345"):
        ev.evaluate()
    ev = CocoEvaluator(gt, box_source="gt", unknown_images="skip", print_fn=None)
    ev.process(p["keypoints"], keypoint_scores=p["keypoint_scores"], image_ids=ids)
    m = ev.evaluate()
    assert ev.report["num_skipped_unknown_image"] == 1
    assert m["AR"] < 1.0  # the dropped instance's GT is missed, not silently ignored
    res = make_results(ids, p["keypoints"], p["keypoint_scores"], np.ones(len(ids)))
    with pytest.raises(ValueError, match="image_id"):
        score_results(gt, res)
    assert score_results(gt, res, unknown_images="skip").num_skipped_unknown_image == 1


def test_predictions_for_another_dataset_always_fail():
    gt, p = _small()
    ev = CocoEvaluator(gt, box_source="gt", unknown_images="skip", print_fn=None)
    ev.process(p["keypoints"], keypoint_scores=p["keypoint_scores"], image_ids=p["image_ids"] + 10_000)
    with pytest.raises(ValueError, match="another dataset"):
        ev.evaluate()


def test_nan_coordinates():
    gt, p = _small()
    kp = p["keypoints"].copy()
    kp[2, 5, 0] = np.nan
    ev = CocoEvaluator(gt, box_source="gt", print_fn=None)
    with pytest.raises(ValueError, match=r"NaN/inf in 'keypoints' of instance 2"):
        ev.process(kp, keypoint_scores=p["keypoint_scores"], image_ids=p["image_ids"])
    res = make_results(p["image_ids"], p["keypoints"], p["keypoint_scores"], np.ones(len(kp)))
    res[4]["keypoints"][7] = float("nan")
    with pytest.raises(ValueError, match=r"entry 4 .*NaN/inf in 'keypoints'"):
        score_results(gt, res)
    res[4]["keypoints"][7] = 1.0
    res[1]["score"] = float("inf")
    with pytest.raises(ValueError, match=r"entry 1 .*'score'"):
        score_results(gt, res)


def test_empty_prediction_set(tmp_path):
    gt, _ = _small()
    ev = CocoEvaluator(gt, box_source="gt", print_fn=None)
    with pytest.raises(ValueError, match="no predictions"):
        ev.evaluate()
    # an empty batch is fine
    ev.process(np.zeros((0, 17, 2)), keypoint_scores=np.zeros((0, 17)), image_ids=np.zeros(0, int))
    with pytest.raises(ValueError, match="no predictions"):
        ev.evaluate()
    with pytest.raises(ValueError, match="no predictions"):
        score_results(gt, [])
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    with pytest.raises(ValueError, match="empty.json: no predictions"):
        score_results(gt, empty)


def test_malformed_results_entries():
    gt, p = _small()
    res = make_results(p["image_ids"], p["keypoints"], p["keypoint_scores"], np.ones(len(p["image_ids"])))
    bad = [dict(r) for r in res]
    del bad[2]["score"]
    with pytest.raises(ValueError, match="entry 2: missing field 'score'"):
        validate_results(bad, None, num_keypoints=17, category_id=1)
    bad = [dict(r) for r in res]
    bad[1]["category_id"] = 2
    with pytest.raises(ValueError, match="entry 1 .*'category_id' 2"):
        score_results(gt, bad)


def test_detection_file_for_another_dataset_synthetic(tmp_path):
    gt, _ = _small()
    det = tmp_path / "det.json"
    det.write_text(json.dumps([{"image_id": 785, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.9}]))
    with pytest.raises(ValueError, match=r"det.json: 1 of 1 detections .*another dataset"):
        load_detections(det, gt_image_ids=[im["id"] for im in gt["images"]])
    d = load_detections(det)
    assert d["boxes"].shape == (1, 4)


@pytest.mark.data
def test_detection_file_for_another_dataset_real(coco_mini, coco_fixtures):
    gt = json.loads(coco_mini.read_text())
    det = coco_fixtures / "test_coco_det_AP_H_56.json"
    with pytest.raises(ValueError, match="test_coco_det_AP_H_56.json: .*not in the ground truth"):
        load_detections(det, gt_image_ids=[im["id"] for im in gt["images"]])
    own = json.loads((coco_fixtures / "test_coco.json").read_text())
    d = load_detections(det, gt_image_ids=[im["id"] for im in own["images"]])
    assert d["boxes"].shape[0] == 118 and d["boxes"].shape[1] == 4


def test_gt_without_keypoint_category():
    gt, p = _small()
    gt["categories"][0].pop("keypoints")
    with pytest.raises(ValueError, match="keypoint annotation file"):
        CocoEvaluator(gt, box_source="gt")


def test_box_source_is_required():
    gt, _ = _small()
    with pytest.raises(ValueError, match="box_source"):
        CocoEvaluator(gt, box_source="")


def test_unknown_keypoint_count_needs_sigmas():
    gt = synthetic_coco_gt(4, 6, num_keypoints=9, seed=1)
    p = gt_as_predictions(gt)
    ev = CocoEvaluator(gt, box_source="gt", print_fn=None)
    ev.process(p["keypoints"], keypoint_scores=p["keypoint_scores"], image_ids=p["image_ids"])
    with pytest.raises(ValueError, match="cannot infer OKS sigmas for 9 keypoints"):
        ev.evaluate()


# ----------------------------------------------------------------------------- DDP

def _ddp_worker(rank: int, world: int, port: int, gt: dict, pred: dict, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        n = pred["keypoints"].shape[0]
        # DistributedSampler-style interleaving with padding: the last sample repeats.
        idx = np.arange(rank, n + (world - n % world) % world, world) % n
        ev = CocoEvaluator(gt, box_source="gt", print_fn=None)
        ev.process(pred["keypoints"][idx], keypoint_scores=pred["keypoint_scores"][idx],
                   image_ids=pred["image_ids"][idx], box_scores=pred["box_scores"][idx], areas=pred["areas"][idx],
                   indices=idx)
        m = ev.evaluate()
        Path(out, f"rank{rank}.json").write_text(json.dumps({"metrics": m, "report": ev.report}))
    finally:
        dist.destroy_process_group()


def test_ddp_gather_matches_single_process(tmp_path):
    import torch.multiprocessing as mp

    gt = synthetic_coco_gt(12, 20, seed=8)
    pred = synthetic_predictions(gt, 61, seed=8)  # odd count: the sampler pads one duplicate
    single = CocoEvaluator(gt, box_source="gt", print_fn=None)
    _feed(single, pred)
    expected = single.evaluate()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, gt, pred, str(tmp_path)), nprocs=2, join=True)
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    assert r0["metrics"] == r1["metrics"]  # broadcast to every rank
    for k in COCO_KEYS:
        assert r0["metrics"][k] == pytest.approx(expected[k], abs=1e-12)
    assert r0["report"]["num_duplicates_dropped"] == 1


def test_process_accepts_torch_tensors():
    import torch

    gt, p = _small()
    ev = CocoEvaluator(gt, box_source="gt", print_fn=None)
    ev.process(torch.as_tensor(p["keypoints"], dtype=torch.float32),
               keypoint_scores=torch.as_tensor(p["keypoint_scores"]), image_ids=torch.as_tensor(p["image_ids"]),
               box_scores=torch.ones(len(p["image_ids"])))
    assert ev.evaluate()["AP"] > 0.99  # float32 rounding of GT coordinates only


def _small_gt_and_results() -> tuple[dict, list]:
    import copy

    gt = synthetic_coco_gt(num_images=4, num_persons=5)
    p = gt_as_predictions(gt)
    return copy.deepcopy(gt), make_results(p["image_ids"], p["keypoints"], p["keypoint_scores"], p["box_scores"])


def test_score_refuses_ground_truth_it_cannot_score(tmp_path: Path, capsys):
    # issue 12: these gave an obscure numpy error, a KeyError, AP 1.0, or all -1 with exit 0
    from stnet.cli import main as stnet_main
    from stnet.evaluation.coco import score_results

    gt, res = _small_gt_and_results()
    assert score_results(gt, res).metrics["AP"] == pytest.approx(1.0)
    nan_gt = json.loads(json.dumps(gt))
    nan_gt["annotations"][1]["keypoints"][3] = float("nan")
    with pytest.raises(ValueError, match=r"annotations\[1\] \(id 2\): NaN/inf in 'keypoints'"):
        score_results(nan_gt, res)
    no_crowd = json.loads(json.dumps(gt))
    del no_crowd["annotations"][0]["iscrowd"]
    with pytest.raises(ValueError, match=r"annotations\[0\] \(id 1\): missing 'iscrowd'"):
        score_results(no_crowd, res)
    str_gt = json.loads(json.dumps(gt))
    str_gt["annotations"][2]["keypoints"][0] = "12"
    with pytest.raises(ValueError, match=r"annotations\[2\] \(id 3\): 'keypoints' holds str '12'; expected numbers"):
        score_results(str_gt, res)
    empty = json.loads(json.dumps(gt))
    empty["annotations"] = []
    (tmp_path / "gt.json").write_text(json.dumps(empty))
    (tmp_path / "res.json").write_text(json.dumps(res))
    assert stnet_main(["score", "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "res.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("stnet score: error: ") and "no annotations of the keypoint category 1" in err


def test_score_refuses_string_keypoints_in_results():
    from stnet.evaluation.coco import score_results

    gt, res = _small_gt_and_results()
    res[2]["keypoints"] = [str(v) for v in res[2]["keypoints"]]
    with pytest.raises(ValueError, match=r"results: entry 2 \(image_id \S+\): 'keypoints' holds str '[\d.]+'; "
                                         "expected numbers"):
        score_results(gt, res)
    gt, res = _small_gt_and_results()
    res[1]["score"] = "0.9"
    with pytest.raises(ValueError, match=r"entry 1 .*'score' holds str '0.9'"):
        score_results(gt, res)
