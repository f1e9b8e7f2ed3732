"""`stnet score`: one JSON object with the ten keys, equal to pycocotools; clear errors."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from helpers.coco_reference import pycocotools_stats
from helpers.synthetic import synthetic_coco_gt, synthetic_predictions
from stnet.cli import main as cli_main
from stnet.data.skeletons import get_skeleton
from stnet.evaluation import COCO_KEYS, make_results, resolve_sigmas


def _files(tmp_path: Path, k: int = 17, seed: int = 0) -> tuple[Path, Path, dict, list]:
    gt = synthetic_coco_gt(15, 25, num_keypoints=k, seed=seed)
    p = synthetic_predictions(gt, 90, seed=seed)
    res = make_results(p["image_ids"], p["keypoints"], p["keypoint_scores"], p["box_scores"])
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(res))
    return tmp_path / "gt.json", tmp_path / "res.json", gt, res


def test_score_json_is_exactly_one_object_equal_to_pycocotools(tmp_path, capsys):
    gt, res, _, _ = _files(tmp_path)
    assert cli_main(["score", "--gt", str(gt), "--pred", str(res), "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1  # one line, nothing else printed
    obj = json.loads(out)
    assert list(obj) == ["AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "AR75", "ARM", "ARL"]
    np.testing.assert_allclose([obj[k] for k in COCO_KEYS], pycocotools_stats(gt, res), rtol=0, atol=1e-9)


def test_score_table_output(tmp_path, capsys):
    gt, res, _, _ = _files(tmp_path)
    assert cli_main(["score", "--gt", str(gt), "--pred", str(res), "--name", "mine"]) == 0
    out = capsys.readouterr().out
    assert "| Method" in out and "AP^50" in out and "AP^M" in out and "| mine" in out
    assert "sigmas: coco17" in out


def test_score_sigmas_file_and_unknown_count(tmp_path, capsys):
    gt, res, _, _ = _files(tmp_path, k=5)
    assert cli_main(["score", "--gt", str(gt), "--pred", str(res), "--json"]) == 2
    err = capsys.readouterr().err
    assert "cannot infer OKS sigmas for 5 keypoints" in err and "--sigmas" in err
    sig = [0.03, 0.05, 0.07, 0.09, 0.11]
    (tmp_path / "sig.json").write_text(json.dumps(sig))
    assert cli_main(["score", "--gt", str(gt), "--pred", str(res), "--json", "--sigmas",
                     str(tmp_path / "sig.json")]) == 0
    obj = json.loads(capsys.readouterr().out)
    np.testing.assert_allclose([obj[k] for k in COCO_KEYS], pycocotools_stats(gt, res, np.array(sig)), atol=1e-9)
    (tmp_path / "sig.txt").write_text("0.03 0.05, 0.07\n0.09")
    assert cli_main(["score", "--gt", str(gt), "--pred", str(res), "--sigmas", str(tmp_path / "sig.txt")]) == 2
    assert "4 sigmas but the annotations have 5 keypoints" in capsys.readouterr().err


def test_score_named_skeleton_sigmas(tmp_path, capsys):
    gt, res, _, _ = _files(tmp_path, k=14)
    assert cli_main(["score", "--gt", str(gt), "--pred", str(res), "--json", "--sigmas", "crowdpose14"]) == 0
    obj = json.loads(capsys.readouterr().out)
    official = pycocotools_stats(gt, res, get_skeleton("crowdpose14").sigmas_array())
    np.testing.assert_allclose([obj[k] for k in COCO_KEYS], official, atol=1e-9)
    assert cli_main(["score", "--gt", str(gt), "--pred", str(res), "--sigmas", "nosuch"]) == 2
    assert "neither a file nor a known skeleton" in capsys.readouterr().err


def test_coco17_sigmas_are_the_official_ones():
    from pycocotools.cocoeval import Params

    sig, _ = resolve_sigmas("coco17")
    np.testing.assert_array_equal(sig, Params("keypoints").kpt_oks_sigmas)


def test_score_bad_inputs_name_file_and_field(tmp_path, capsys):
    gt, res, gtd, results = _files(tmp_path)
    bad = [dict(r) for r in results]
    bad[5] = dict(bad[5], keypoints=bad[5]["keypoints"][:-6])
    (tmp_path / "bad_k.json").write_text(json.dumps(bad))
    assert cli_main(["score", "--gt", str(gt), "--pred", str(tmp_path / "bad_k.json")]) == 2
    err = capsys.readouterr().err
    assert "bad_k.json: entry 5" in err and "'keypoints' has 45 values, expected 3 x 17 = 51" in err

    other = [dict(r, image_id=r["image_id"] + 500000) for r in results]
    (tmp_path / "other.json").write_text(json.dumps(other))
    assert cli_main(["score", "--gt", str(gt), "--pred", str(tmp_path / "other.json"),
                     "--skip-unknown-images"]) == 2
    assert "another dataset" in capsys.readouterr().err

    some = [dict(r) for r in results]
    some[0]["image_id"] = 999999
    (tmp_path / "some.json").write_text(json.dumps(some))
    assert cli_main(["score", "--gt", str(gt), "--pred", str(tmp_path / "some.json")]) == 2
    assert "999999" in capsys.readouterr().err
    assert cli_main(["score", "--gt", str(gt), "--pred", str(tmp_path / "some.json"), "--skip-unknown-images"]) == 0
    assert "skipped 1 with an image_id not in the ground truth" in capsys.readouterr().out

    (tmp_path / "empty.json").write_text("[]")
    assert cli_main(["score", "--gt", str(gt), "--pred", str(tmp_path / "empty.json")]) == 2
    assert "empty.json: no predictions" in capsys.readouterr().err

    (tmp_path / "nan.json").write_text(json.dumps(results).replace(str(results[2]["keypoints"][0]), "NaN", 1))
    assert cli_main(["score", "--gt", str(gt), "--pred", str(tmp_path / "nan.json")]) == 2
    assert "nan.json: entry" in capsys.readouterr().err

    assert cli_main(["score", "--gt", str(tmp_path / "nope.json"), "--pred", str(res)]) == 2
    assert "nope.json" in capsys.readouterr().err
    assert cli_main(["score", "--gt", str(res), "--pred", str(res)]) == 2
    assert "not a COCO annotation file" in capsys.readouterr().err


def test_detection_file_passed_as_results_is_refused(tmp_path, capsys):
    """A detection-box file given as --pred (no keypoints) is refused, not scored as AP 0."""
    gt, _, gtd, _ = _files(tmp_path)
    det = [{"image_id": im["id"], "category_id": 1, "bbox": [1, 2, 30, 40], "score": 0.9} for im in gtd["images"]]
    (tmp_path / "det.json").write_text(json.dumps(det))
    assert cli_main(["score", "--gt", str(gt), "--pred", str(tmp_path / "det.json")]) == 2
    assert "det.json: entry 0: missing field 'keypoints'" in capsys.readouterr().err


@pytest.mark.data
def test_score_crowdpose_fixture_without_area_is_a_clear_error(capsys, data_root):
    """CrowdPose files have no 'area'; pycocotools would KeyError deep inside COCOeval."""
    root = data_root / "fixtures" / "crowdpose"
    if not (root / "test_crowdpose.json").is_file():
        pytest.skip("crowdpose fixtures absent")
    rc = cli_main(["score", "--gt", str(root / "test_crowdpose.json"), "--pred",
                   str(root / "test_crowdpose_det_AP_40.json"), "--sigmas", "crowdpose14"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "test_crowdpose.json" in err and "'area'" in err and "keypoints_crowd" in err
