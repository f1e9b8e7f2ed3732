"""MPII PCKh evaluator (gt_valid.mat layout) and the PCK evaluator (LSP PCK@0.2)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from stnet.evaluation import MPIIEvaluator, PCKEvaluator, load_gt_valid

MPII_OFFICIAL = ("rank", "rkne", "rhip", "lhip", "lkne", "lank", "pelv", "thor", "neck", "head",
                 "rwri", "relb", "rsho", "lsho", "lelb", "lwri")
LSP_NAMES = ("right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
             "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
             "neck", "head_top")


def _write_gt_valid(path: Path, joints0: np.ndarray, visible: np.ndarray, headboxes0: np.ndarray) -> None:
    """Write a file in the official gt_valid.mat layout (1-based MATLAB pixels)."""
    names = np.empty((1, 16), dtype=object)
    for i, n in enumerate(MPII_OFFICIAL):
        names[0, i] = np.array([n])
    savemat(str(path), {
        "dataset_joints": names,
        "jnt_missing": (1 - visible.astype(int)).T,
        "pos_gt_src": (joints0 + 1.0).transpose(1, 2, 0),
        "headboxes_src": (headboxes0 + 1.0).transpose(1, 2, 0),
    })


def _mpii_case(n: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    joints = rng.uniform(50, 400, (n, 16, 2))
    vis = rng.uniform(size=(n, 16)) > 0.15
    tl = rng.uniform(0, 300, (n, 2))
    hb = np.stack([tl, tl + np.array([30.0, 40.0])], 1)  # head size 30 px for everyone
    return joints, vis, hb


def test_load_gt_valid_converts_to_zero_based(tmp_path):
    joints, vis, hb = _mpii_case()
    _write_gt_valid(tmp_path / "gt_valid.mat", joints, vis, hb)
    g = load_gt_valid(tmp_path / "gt_valid.mat")
    assert g.joint_names == MPII_OFFICIAL
    np.testing.assert_allclose(g.joints, joints)
    np.testing.assert_allclose(g.headboxes, hb)
    np.testing.assert_array_equal(g.visible, vis)
    (tmp_path / "bad.mat").write_bytes(b"not a mat file")
    with pytest.raises(ValueError, match="bad.mat"):
        load_gt_valid(tmp_path / "bad.mat")
    with pytest.raises(FileNotFoundError, match="missing.mat"):
        load_gt_valid(tmp_path / "missing.mat")


def test_mpii_evaluator_with_gt_valid_hand_case(tmp_path):
    joints, vis, hb = _mpii_case(n=4)
    vis[:] = True
    vis[0, 9] = False  # an invisible head never counts
    _write_gt_valid(tmp_path / "gt_valid.mat", joints, vis, hb)
    pred = joints.copy()
    head, rsho, _lsho, pelv = 9, 12, 13, 6
    pred[1, head, 0] += 15.0        # exactly 0.5 head size: correct at 0.5, wrong at 0.1
    pred[2, head, 1] += 3.0         # exactly 0.1 head size: correct at both
    pred[3, head, 0] += 3.15        # 0.105: correct at 0.5, wrong at 0.1 (it would pass at 0.11)
    pred[0, rsho] += 100.0          # wrong
    pred[:, pelv] += 100.0          # pelvis wrong everywhere: must not affect Mean
    lines: list[str] = []
    ev = MPIIEvaluator(tmp_path / "gt_valid.mat", output_dir=tmp_path / "out", print_fn=lines.append)
    ev.process(pred[[2, 0]], indices=[2, 0])
    ev.process(pred[[1, 3, 3]], indices=[1, 3, 3])  # a padded duplicate is dropped
    m = ev.evaluate()
    assert m["Head"] == pytest.approx(100.0)  # 3 visible heads, all within 0.5
    assert m["Shoulder"] == pytest.approx(0.5 * (75.0 + 100.0))
    # 14 joints x 4 persons minus the invisible head = 55 counted; one wrong (rsho of person 0).
    assert m["Mean"] == pytest.approx(100.0 * 54 / 55)
    assert m["Mean@0.5"] == m["Mean"]
    # @0.1: heads of persons 1 and 3 and the shoulder are wrong.
    assert m["Mean@0.1"] == pytest.approx(100.0 * 52 / 55)
    assert ev.report["num_duplicates_dropped"] == 1
    header = [c.strip() for c in lines[0].splitlines()[1].strip("|").split("|")]
    assert header == ["Method", "Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean"]
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["metrics"]["Mean@0.1"] == pytest.approx(m["Mean@0.1"])
    assert (tmp_path / "out" / "predictions_raw.npz").is_file()


def test_mpii_evaluator_refuses_partial_cover(tmp_path):
    joints, vis, hb = _mpii_case(n=5)
    _write_gt_valid(tmp_path / "gt_valid.mat", joints, vis, hb)
    ev = MPIIEvaluator(tmp_path / "gt_valid.mat", print_fn=None)
    ev.process(joints[:3], indices=[0, 1, 2])
    with pytest.raises(ValueError, match="cover 3 of the 5 persons"):
        ev.evaluate()
    ev = MPIIEvaluator(tmp_path / "gt_valid.mat", allow_partial=True, print_fn=None)
    ev.process(joints[:3], indices=[0, 1, 2])
    assert ev.evaluate()["Mean"] == 100.0
    with pytest.raises(ValueError, match="indices"):
        ev.process(joints[:1], indices=[7])
    with pytest.raises(ValueError, match="indices="):
        ev.process(joints[:1])
    with pytest.raises(ValueError, match=r"\(N, 16, 2\)"):
        ev.process(joints[:1, :14], indices=[0])
    bad = joints[:1].copy()
    bad[0, 3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ev.process(bad, indices=[0])


def test_mpii_evaluator_with_per_batch_gt():
    joints, vis, hb = _mpii_case(n=3)
    ev = MPIIEvaluator(joint_names=MPII_OFFICIAL, print_fn=None)
    ev.process(joints, gt_keypoints=joints, visible=vis, headboxes=hb)
    m = ev.evaluate()
    assert all(m[c] == 100.0 for c in ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean"))
    with pytest.raises(ValueError, match="no predictions"):
        MPIIEvaluator(joint_names=MPII_OFFICIAL, print_fn=None).evaluate()


def test_mpii_default_names_come_from_skeleton():
    ev = MPIIEvaluator(print_fn=None)
    assert len(ev.joint_names) == 16


# ----------------------------------------------------------------------------- PCK (LSP)

def test_pck_evaluator_torso_hand_case(tmp_path):
    k = len(LSP_NAMES)
    gt = np.zeros((2, k, 2))
    rs, lh = LSP_NAMES.index("right_shoulder"), LSP_NAMES.index("left_hip")
    gt[:, :, 0] = np.arange(k) * 10.0
    gt[:, rs] = [0.0, 0.0]
    gt[:, lh] = [30.0, 40.0]  # torso 50 -> PCK@0.2 radius 10 px
    pred = gt.copy()
    vis = np.ones((2, k), bool)
    pred[0, 0, 0] += 10.0            # exactly at the threshold: correct
    pred[0, 1, 0] += 10.5            # beyond: wrong
    pred[1, 2] += 1000.0             # invisible: not counted
    vis[1, 2] = False
    lines: list[str] = []
    ev = PCKEvaluator(joint_names=LSP_NAMES, output_dir=tmp_path, print_fn=lines.append)
    ev.process(pred, gt_keypoints=gt, visible=vis)
    m = ev.evaluate()
    assert m["PCK@0.2"] == pytest.approx(100.0 * 26 / 27)
    assert m["PCK@0.2/right_ankle"] == 100.0 and m["PCK@0.2/right_knee"] == 50.0
    assert m["EPE"] == pytest.approx((10 + 10.5) / 27)
    assert ev.report["torso_joints"] == ["right_shoulder", "left_hip"]
    assert "right_knee" in lines[0] and "Head" in lines[0]
    assert json.loads((tmp_path / "metrics.json").read_text())["metrics"]["PCK@0.2"] == pytest.approx(m["PCK@0.2"])


def test_pck_evaluator_skips_and_counts_instances_without_torso():
    k = len(LSP_NAMES)
    rng = np.random.default_rng(0)
    gt = rng.uniform(0, 100, (3, k, 2))
    vis = np.ones((3, k), bool)
    vis[1, LSP_NAMES.index("left_hip")] = False
    ev = PCKEvaluator(joint_names=LSP_NAMES, print_fn=None)
    ev.process(gt + 1000.0 * np.eye(1, 3, 1)[0][:, None, None], gt_keypoints=gt, visible=vis)  # instance 1 is way off
    m = ev.evaluate()
    assert ev.report["num_skipped_no_torso"] == 1
    assert m["PCK@0.2"] == 100.0  # the bad instance could not be scored, and is reported as skipped


def test_pck_evaluator_bbox_normalisation():
    gt = np.zeros((1, 2, 2))
    pred = np.array([[[20.0, 0.0], [21.0, 0.0]]])  # box max side 100 -> 0.2 = 20 px
    ev = PCKEvaluator(joint_names=("a", "b"), normalize="bbox", print_fn=None)
    with pytest.raises(ValueError, match="boxes"):
        ev.process(pred, gt_keypoints=gt, visible=np.ones((1, 2)))
    ev.process(pred, gt_keypoints=gt, visible=np.ones((1, 2)), boxes=np.array([[0, 0, 50, 100]]))
    assert ev.evaluate()["PCK@0.2"] == 50.0


@pytest.mark.data
def test_pck_on_real_lsp_gt_as_prediction(data_root):
    p = data_root / "lspet" / "joints.mat"
    if not p.is_file():
        pytest.skip(f"LSP-Extended not found at {p}")
    from scipy.io import loadmat

    j = np.asarray(loadmat(str(p))["joints"], dtype=np.float64)[..., :200]  # (14, 3, N)
    gt = j[:, :2].transpose(2, 0, 1)
    vis = j[:, 2].T > 0
    rng = np.random.default_rng(0)
    ev = PCKEvaluator(joint_names=LSP_NAMES, print_fn=None)
    ev.process(gt, gt_keypoints=gt, visible=vis)
    assert ev.evaluate()["PCK@0.2"] == 100.0
    ev.reset()
    ev.process(gt + rng.normal(0, 8, gt.shape), gt_keypoints=gt, visible=vis)
    m = ev.evaluate()
    assert 20.0 < m["PCK@0.2"] < 100.0 and 0 < m["AUC"] < 100
