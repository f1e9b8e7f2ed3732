"""Evaluation numerics against the reference (mmpose 1.3.2), issue 12 item 10: soft-OKS-NMS as an
option of the COCO protocol, and what ``auc(num_thresholds=n)`` computes."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from stnet.evaluation import CocoEvaluator, auc, oks_nms, rescore, soft_oks_nms
from helpers.synthetic import synthetic_coco_gt, synthetic_predictions

COCO_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87,
                        .89, .89]) / 10.0


def _three_on_a_line():
    # One joint, sigma 0.5 (variance (2 sigma)^2 = 1), unit areas: OKS = exp(-d^2 / 2).
    # A(0) 0.9, B(1) 0.8, C(3) 0.7: OKS(A,B) = e^-0.5 = 0.6065, OKS(A,C) = e^-4.5 = 0.0111,
    # OKS(B,C) = e^-2 = 0.1353.
    kp = np.array([[[0.0, 0.0]], [[1.0, 0.0]], [[3.0, 0.0]]])
    return kp, np.array([0.9, 0.8, 0.7]), np.ones(3), np.array([0.5])


def test_soft_oks_nms_gaussian_hand_computed():
    kp, sc, ar, sg = _three_on_a_line()
    keep, s = soft_oks_nms(kp, sc, ar, sg, thr=0.5, method="gaussian", return_scores=True)
    # pick A; B: 0.8 exp(-0.6065^2 / 0.5) = 0.3833, C: 0.7 exp(-0.0111^2 / 0.5) = 0.69983
    # pick C; B: 0.3833 exp(-0.1353^2 / 0.5) = 0.3695; pick B
    assert keep.tolist() == [0, 1, 2]
    np.testing.assert_allclose(s, [0.9, 0.36949, 0.69983], atol=5e-5)
    # max_dets=2: B has decayed below C and is the one dropped (greedy OKS-NMS at 0.5 drops B too,
    # at 0.9 it keeps all three)
    assert soft_oks_nms(kp, sc, ar, sg, thr=0.5, max_dets=2).tolist() == [0, 2]
    assert oks_nms(kp, sc, ar, sg, thr=0.9).tolist() == [0, 1, 2]


def test_soft_oks_nms_linear_hand_computed():
    kp, sc, ar, sg = _three_on_a_line()
    keep, s = soft_oks_nms(kp, sc, ar, sg, thr=0.5, method="linear", return_scores=True)
    # pick A; B (OKS 0.6065 >= 0.5): 0.8 (1 - 0.6065) = 0.3148; C (0.0111 < 0.5) unchanged
    # pick C; B (0.1353 < 0.5) unchanged; pick B
    assert keep.tolist() == [0, 1, 2]
    np.testing.assert_allclose(s, [0.9, 0.8 * (1 - np.exp(-0.5)), 0.7], atol=1e-9)
    assert soft_oks_nms(kp, sc, ar, sg, thr=0.5, method="linear", max_dets=1).tolist() == [0]


def test_soft_oks_nms_per_image_and_errors():
    kp, sc, ar, sg = _three_on_a_line()
    kp2, sc2 = np.concatenate([kp, kp]), np.concatenate([sc, sc])
    ids = np.array([1, 1, 1, 2, 2, 2])
    # max_dets applies per image; ties (none here) would go to the earlier input
    assert soft_oks_nms(kp2, sc2, np.ones(6), sg, ids, thr=0.5, max_dets=2).tolist() == [0, 2, 3, 5]
    with pytest.raises(ValueError, match="method must be 'gaussian' or 'linear'"):
        soft_oks_nms(kp, sc, ar, sg, method="hard")
    with pytest.raises(ValueError, match="max_dets must be >= 1"):
        soft_oks_nms(kp, sc, ar, sg, max_dets=0)


def test_coco_evaluator_soft_oks_option(tmp_path):
    gt = synthetic_coco_gt(10, 15, seed=2)
    pred = synthetic_predictions(gt, 80, seed=2)
    s = rescore(pred["box_scores"], pred["keypoint_scores"], 0.2)
    counts = {}
    for mode in ("oks", "soft_oks"):
        out = tmp_path / mode
        ev = CocoEvaluator(gt, box_source="synthetic", output_dir=out, print_fn=None, nms=mode,
                           soft_nms_max_dets=3)
        ev.process(pred["keypoints"], keypoint_scores=pred["keypoint_scores"], image_ids=pred["image_ids"],
                   box_scores=pred["box_scores"], areas=pred["areas"])
        ev.evaluate()
        res = json.loads((out / "keypoints_results.json").read_text())
        counts[mode] = len(res)
        if mode == "soft_oks":
            keep = soft_oks_nms(pred["keypoints"], s, pred["areas"], COCO_SIGMAS, pred["image_ids"], 0.9,
                                max_dets=3)
            assert len(res) == keep.size
            # as mmpose's CocoMetric: the kept results keep their (rescored) scores
            np.testing.assert_allclose([r["score"] for r in res], s[keep])
            assert json.loads((out / "metrics.json").read_text())["protocol"]["nms"].startswith("soft_oks (gaussian")
    assert counts["soft_oks"] != counts["oks"]
    with pytest.raises(ValueError, match="nms must be 'oks' or 'soft_oks'"):
        CocoEvaluator(gt, box_source="synthetic", nms="hard")


def test_eval_config_nms_reaches_the_evaluator(tmp_path):
    from stnet.engine.config import load_config
    from stnet.data.skeletons import get_skeleton
    from stnet.engine.evaluate import build_evaluator

    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(synthetic_coco_gt(2, 3, seed=0)))
    ds = SimpleNamespace(skeleton=get_skeleton("coco17"))
    default = build_evaluator(load_config(None, {"val.ann_file": str(gt_path)}), ds, output_dir=None,
                              print_fn=None)
    assert (default.nms, default.nms_thr) == ("oks", 0.9)  # unchanged default
    cfg = load_config(None, {"val.ann_file": str(gt_path), "eval.nms": "soft_oks",
                             "eval.soft_nms_method": "linear", "eval.nms_thr": "0.5"})
    ev = build_evaluator(cfg, ds, output_dir=None, print_fn=None)
    assert (ev.nms, ev.soft_nms_method, ev.nms_thr) == ("soft_oks", "linear", 0.5)
    off = build_evaluator(load_config(None, {"val.ann_file": str(gt_path), "eval.nms": "none"}), ds,
                          output_dir=None, print_fn=None)
    assert off.nms_thr is None


def _mmpose_style_auc(pred, gt, visible, norm, n):
    """mmpose's keypoint_auc as documented: per-joint accuracy with a strict `<`, averaged over the
    joints that have a labelled instance, one scalar normaliser, thresholds i / n on [0, 1)."""
    d = np.linalg.norm(pred - gt, axis=-1) / norm
    accs = []
    for t in np.arange(n) / n:
        per_joint = [(d[visible[:, j], j] < t).mean() for j in range(d.shape[1]) if visible[:, j].any()]
        accs.append(np.mean(per_joint))
    return float(np.mean(accs))


def test_auc_pools_joints_and_uses_le_not_mmpose_keypoint_auc():
    # Joint 0 is labelled in 3 persons, joint 1 in one; errors (normalised) 0, 0.25, 0.75 and 0.5.
    gt = np.zeros((3, 2, 2))
    pred = gt.copy()
    pred[:, 0, 0] = [0.0, 0.25, 0.75]
    pred[0, 1, 0] = 0.5
    visible = np.array([[True, True], [True, False], [True, False]])
    ours = auc(pred, gt, visible, np.ones(3), max_threshold=1.0, num_thresholds=4)
    # pooled over 4 joints, e <= t at t = 0, .25, .5, .75: 1/4, 2/4, 3/4, 4/4 -> 0.625
    assert ours == pytest.approx(0.625)
    # per joint with e < t: joint 0: 0, 1/3, 2/3, 2/3; joint 1: 0, 0, 0, 1; joint means
    # 0, 1/6, 1/3, 5/6 -> 1/3
    assert _mmpose_style_auc(pred, gt, visible, 1.0, 4) == pytest.approx(1 / 3)
    doc = " ".join(auc.__doc__.split())
    assert "NOT mmpose's ``keypoint_auc``" in doc and "(mmpose's ``keypoint_auc``)" not in doc
