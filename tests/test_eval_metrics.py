"""Pure metrics: OKS vs pycocotools, PCKh/PCK on hand-computed cases, AUC, EPE, part summary, tables."""
from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from stnet.evaluation import (PART_COLUMNS, auc, bbox_size, epe, find_joint, format_coco_table,
                              format_pck_table, format_pckh_table, head_sizes, joint_part, oks, pck,
                              pckh, rescore, summarize_by_part, torso_size)
from helpers.synthetic import synthetic_coco_gt
from stnet.data.skeletons import get_skeleton

MPII_OFFICIAL = ("rank", "rkne", "rhip", "lhip", "lkne", "lank", "pelv", "thor", "neck", "head",
                 "rwri", "relb", "rsho", "lsho", "lelb", "lwri")


# ----------------------------------------------------------------------------- OKS

def _cocoeval_ious(gt: dict, dets: list[dict], sigmas: np.ndarray) -> dict:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(dets), "keypoints")
        ev.params.kpt_oks_sigmas = sigmas
        ev.evaluate()
    return ev.ious


def test_oks_equals_cocoeval_compute_oks_including_unlabelled_gt():
    gt = synthetic_coco_gt(6, 14, seed=3)
    # One GT with no labelled keypoint: COCOeval scores it by distance to its enlarged box.
    gt["annotations"][0]["keypoints"] = [0.0] * 51
    gt["annotations"][0]["num_keypoints"] = 0
    rng = np.random.default_rng(0)
    sigmas = np.linspace(0.025, 0.107, 17)
    dets = []
    for a in gt["annotations"]:
        x, y, w, h = a["bbox"]
        for _ in range(2):
            kp = np.c_[rng.uniform(x - w, x + 2 * w, 17), rng.uniform(y - h, y + 2 * h, 17), np.ones(17)]
            dets.append({"image_id": a["image_id"], "category_id": 1, "keypoints": kp.ravel().tolist(),
                         "score": float(rng.uniform())})
    ious = _cocoeval_ious(gt, [dict(d) for d in dets], sigmas)
    checked = 0
    for img in {a["image_id"] for a in gt["annotations"]}:
        g = [a for a in gt["annotations"] if a["image_id"] == img]
        d = sorted([x for x in dets if x["image_id"] == img], key=lambda r: -r["score"])
        gk = np.array([a["keypoints"] for a in g]).reshape(len(g), 17, 3)
        dk = np.array([x["keypoints"] for x in d]).reshape(len(d), 17, 3)
        ours = oks(dk[..., :2], gk[..., :2], gk[..., 2], np.array([a["area"] for a in g]), sigmas,
                   gt_boxes=np.array([a["bbox"] for a in g]))
        np.testing.assert_allclose(ours, ious[(img, 1)], rtol=0, atol=1e-12)
        checked += 1
    assert checked >= 3


def test_oks_identity_and_errors():
    gt = np.array([[[10.0, 10.0], [20.0, 30.0]]])
    s = np.array([0.05, 0.05])
    assert oks(gt, gt, np.array([[2, 2]]), np.array([100.0]), s)[0, 0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="gt_boxes"):
        oks(gt, gt, np.array([[0, 0]]), np.array([100.0]), s)
    with pytest.raises(ValueError, match="sigmas"):
        oks(gt, gt, np.array([[2, 2]]), np.array([100.0]), np.array([0.05]))


# ----------------------------------------------------------------------------- PCKh

def _one_person(offsets: list[tuple[float, float]], visible: list[int]):
    """Head box (0,0)-(30,40): diagonal 50, head size 0.6 * 50 = 30 px."""
    k = len(offsets)
    gt = np.full((1, k, 2), 100.0)
    pred = gt + np.array(offsets, dtype=np.float64)[None]
    return pred, gt, np.array([visible]), np.array([[[0.0, 0.0], [30.0, 40.0]]])


def test_head_size_is_sc_bias_times_diagonal():
    assert head_sizes(np.array([[[0.0, 0.0], [30.0, 40.0]]]))[0] == pytest.approx(30.0)
    assert head_sizes(np.array([[[5.0, 5.0], [35.0, 45.0]]]), sc_bias=1.0)[0] == pytest.approx(50.0)


def test_pckh_joint_exactly_at_threshold_counts_and_just_beyond_does_not():
    # 15 px = 0.5 * 30 exactly; 3 px = 0.1 * 30 exactly (both exact in binary floating point).
    pred, gt, vis, hb = _one_person([(15.0, 0.0), (15.001, 0.0), (3.0, 0.0), (0.0, -3.0), (3.01, 0)],
                                    [1, 1, 1, 1, 1])
    r = pckh(pred, gt, vis, hb, thresholds=(0.5, 0.1))
    assert r[0.5].correct.tolist() == [1, 0, 1, 1, 1]
    assert r[0.1].correct.tolist() == [0, 0, 1, 1, 0]


def test_pckh_mean_at_0_1_is_really_0_1_not_0_11():
    # normalised error 0.105: correct at 0.11 (the popular port's pckAll[11]) but not at 0.1.
    pred, gt, vis, hb = _one_person([(3.15, 0.0)] * 4, [1, 1, 1, 1])
    r = pckh(pred, gt, vis, hb, thresholds=(0.1, 0.11))
    assert r[0.1].mean == 0.0
    assert r[0.11].mean == 1.0
    assert 0.1 in r and r[0.1].threshold == 0.1


def test_pckh_invisible_joints_are_not_counted():
    pred, gt, vis, hb = _one_person([(0.0, 0.0), (500.0, 500.0), (1.0, 0.0)], [1, 0, 1])
    r = pckh(pred, gt, vis, hb, thresholds=(0.5,))[0.5]
    assert r.counts.tolist() == [1, 0, 1]
    assert r.correct.tolist() == [1, 0, 1]
    assert np.isnan(r.per_joint[1])
    assert r.mean == 1.0
    # NaN coordinates of an invisible joint are irrelevant, of a visible joint an error.
    gt2 = gt.copy()
    gt2[0, 1] = np.nan
    assert pckh(pred, gt2, vis, hb, thresholds=(0.5,))[0.5].mean == 1.0
    pred2 = pred.copy()
    pred2[0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        pckh(pred2, gt, vis, hb)


def test_table_vi_summary_by_hand():
    names = MPII_OFFICIAL
    k = len(names)
    # Two persons. correct/visible per joint chosen by hand.
    correct = np.zeros(k, int)
    counts = np.full(k, 2)
    idx = {n: i for i, n in enumerate(names)}
    correct[idx["head"]] = 2          # Head 100
    correct[idx["rsho"]] = 2          # Shoulder = (100 + 50) / 2 = 75
    correct[idx["lsho"]] = 1
    counts[idx["lelb"]] = 1           # Elbow = (0/2 + 1/1) / 2 = 50 (unweighted side mean)
    correct[idx["lelb"]] = 1
    correct[idx["pelv"]] = 2          # pelvis/thorax never enter Mean
    correct[idx["thor"]] = 2
    correct[idx["neck"]] = 2          # neck has no column but enters Mean
    s = summarize_by_part(correct, counts, names)
    assert list(s) == list(PART_COLUMNS)
    assert s["Head"] == 1.0 and s["Shoulder"] == 0.75 and s["Elbow"] == 0.5
    assert s["Wrist"] == 0.0
    keep = [i for i, n in enumerate(names) if n not in ("pelv", "thor")]
    assert s["Mean"] == pytest.approx(correct[keep].sum() / counts[keep].sum())
    assert s["Mean"] == pytest.approx((2 + 2 + 1 + 1 + 2) / (2 * 14 - 1))


@pytest.mark.parametrize("names", [
    MPII_OFFICIAL,
    ("right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "pelvis",
     "thorax", "upper_neck", "head_top", "right_wrist", "right_elbow", "right_shoulder",
     "left_shoulder", "left_elbow", "left_wrist"),
])
def test_joint_parts_of_mpii_names(names):
    parts = [joint_part(n) for n in names]
    assert parts == ["Ankle", "Knee", "Hip", "Hip", "Knee", "Ankle", "pelvis", "thorax", "neck",
                     "Head", "Wrist", "Elbow", "Shoulder", "Shoulder", "Elbow", "Wrist"]


def test_skeleton_names_map_to_parts():
    for name in ("mpii16", "lsp14", "crowdpose14"):
        parts = {joint_part(n) for n in get_skeleton(name).keypoint_names}
        assert set(PART_COLUMNS[:-1]) <= parts, name
    lsp = get_skeleton("lsp14").keypoint_names
    assert lsp[find_joint(lsp, "right", "Shoulder")] == "right_shoulder"
    assert lsp[find_joint(lsp, "left", "Hip")] == "left_hip"
    assert find_joint(MPII_OFFICIAL, "right", "Shoulder") == 12


# ----------------------------------------------------------------------------- PCK / AUC / EPE

def test_pck_torso_by_hand():
    # Joints: 0 = right shoulder at (0, 0), 1 = left hip at (30, 40) -> torso 50; PCK@0.2 -> 10 px.
    gt = np.array([[[0.0, 0.0], [30.0, 40.0], [100.0, 100.0], [200.0, 200.0]]])
    pred = gt + np.array([[[10.0, 0.0], [0.0, 10.0001], [6.0, 8.0], [0.0, 50.0]]])
    vis = np.array([[1, 1, 1, 0]])
    norm = torso_size(gt, 0, 1)
    assert norm[0] == pytest.approx(50.0)
    r = pck(pred, gt, vis, norm, 0.2)
    assert r.correct.tolist() == [1, 0, 1, 0]
    assert r.counts.tolist() == [1, 1, 1, 0]
    assert r.mean == pytest.approx(2 / 3)


def test_bbox_size_is_max_side():
    assert bbox_size(np.array([[0, 0, 30, 80], [5, 5, 50, 10]])).tolist() == [80, 50]


def test_auc_exact_and_discrete():
    gt = np.zeros((1, 4, 2))
    # normalised errors 0, 0.25, 0.5, 1.0 with normaliser 1 and T = 0.5
    pred = np.array([[[0.0, 0.0], [0.25, 0.0], [0.5, 0.0], [1.0, 0.0]]])
    vis = np.ones((1, 4))
    assert auc(pred, gt, vis, np.ones(1), 0.5) == pytest.approx((1 + 0.5 + 0 + 0) / 4)
    # discrete: thresholds 0, 0.25 -> PCK 1/4, 2/4 -> mean 3/8
    assert auc(pred, gt, vis, np.ones(1), 0.5, num_thresholds=2) == pytest.approx(3 / 8)


def test_epe_visible_only():
    gt = np.zeros((2, 2, 2))
    pred = np.array([[[3.0, 4.0], [100.0, 0.0]], [[0.0, 1.0], [0.0, 0.0]]])
    vis = np.array([[1, 0], [1, 1]])
    assert epe(pred, gt, vis) == pytest.approx((5 + 1 + 0) / 3)


def test_rescore_by_hand():
    ks = np.array([[0.9, 0.1, 0.5, 0.2], [0.1, 0.2, 0.0, 0.05]])
    s = rescore(np.array([0.8, 0.9]), ks, 0.2)
    assert s[0] == pytest.approx(0.8 * (0.9 + 0.5) / 2)  # 0.2 itself is not "above 0.2"
    assert s[1] == 0.0


# ----------------------------------------------------------------------------- tables

def test_coco_table_layout_like_table_v():
    m = dict(AP=0.721, AP50=0.891, AP75=0.792, APM=0.687, APL=-1.0, AR=0.776, AR50=0.9, AR75=0.8,
             ARM=0.7, ARL=0.8)
    t = format_coco_table(m, name="1-stage", boxes="ground-truth boxes", sigmas="coco17")
    header = t.splitlines()[1]
    assert [c.strip() for c in header.strip("|").split("|")][:7] == ["Method", "AP", "AP^50", "AP^75",
                                                                     "AP^M", "AP^L", "AR"]
    row = [c.strip() for c in t.splitlines()[3].strip("|").split("|")]
    assert row[:7] == ["1-stage", "72.1", "89.1", "79.2", "68.7", "-", "77.6"]
    assert "ground-truth boxes" in t.splitlines()[0]


def test_pckh_and_pck_tables():
    row = {"Head": 97.0, "Shoulder": 95.9, "Elbow": 90.2, "Wrist": 85.2, "Hip": 89.6, "Knee": 86.4,
           "Ankle": 83.1, "Mean": 90.1}
    t = format_pckh_table({"3-stage": row})
    assert [c.strip() for c in t.splitlines()[0].strip("|").split("|")] == ["Method", *PART_COLUMNS]
    assert "| 3-stage | 97.0 |" in t.replace("  ", " ")
    p = format_pck_table([90.0, float("nan")], ["a", "b"], mean=90.0, counts=[3, 0])
    assert "| b" in p and "-" in p.splitlines()[3]
    with pytest.raises(ValueError):
        format_pck_table([1.0], ["a", "b"], mean=1.0)
