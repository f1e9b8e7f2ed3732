import json
import warnings

import numpy as np
import pytest

from stnet.data.skeletons import (DEFAULT_SIGMA, Skeleton, get_skeleton, infer_flip_pairs,
                                  list_skeletons, skeleton_from_coco)


def test_builtins_listed():
    assert list_skeletons() == ["coco17", "crowdpose14", "lsp14", "mpii16"]
    assert {n: get_skeleton(n).num_keypoints for n in list_skeletons()} == {
        "coco17": 17, "crowdpose14": 14, "lsp14": 14, "mpii16": 16}


@pytest.mark.parametrize("name", ["coco17", "crowdpose14", "lsp14", "mpii16"])
def test_flip_index_is_an_involution_and_swaps_sides(name):
    s = get_skeleton(name)
    idx = s.flip_index
    assert sorted(idx) == list(range(s.num_keypoints))
    assert all(idx[idx[i]] == i for i in range(s.num_keypoints))
    for a, b in s.flip_pairs:
        na, nb = s.keypoint_names[a], s.keypoint_names[b]
        assert na.replace("left", "X").replace("right", "X") == nb.replace("left", "X").replace("right", "X")
        assert {"left" in na, "left" in nb} == {True, False}
    # Every left/right-named joint has its partner.
    sided = [i for i, n in enumerate(s.keypoint_names) if "left" in n or "right" in n]
    assert sorted(i for p in s.flip_pairs for i in p) == sided
    assert set(infer_flip_pairs(s.keypoint_names)) == {tuple(sorted(p)) for p in s.flip_pairs}


@pytest.mark.parametrize("name", ["coco17", "crowdpose14", "lsp14", "mpii16"])
def test_fields_consistent(name):
    s = get_skeleton(name)
    k = s.num_keypoints
    assert len(s.sigmas) == len(s.joint_weights) == k
    arr = s.sigmas_array()
    assert arr.dtype == np.float64 and arr.shape == (k,) and (arr > 0).all()
    assert not set(s.upper_body_ids) & set(s.lower_body_ids)
    assert all(0 <= i < k for link in s.links for i in link)
    # Symmetric joints share sigma and weight.
    for a, b in s.flip_pairs:
        assert s.sigmas[a] == s.sigmas[b] and s.joint_weights[a] == s.joint_weights[b]


def test_official_sigmas():
    coco = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87,
                     .89, .89]) / 10.0
    np.testing.assert_allclose(get_skeleton("coco17").sigmas_array(), coco)
    crowd = np.array([.79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89, .79, .79]) / 10.0
    np.testing.assert_allclose(get_skeleton("crowdpose14").sigmas_array(), crowd)
    mpii = [0.089, 0.083, 0.107, 0.107, 0.083, 0.089, 0.026, 0.026, 0.026, 0.026, 0.062, 0.072,
            0.179, 0.179, 0.072, 0.062]
    np.testing.assert_allclose(get_skeleton("mpii16").sigmas_array(), mpii)


def test_lsp_order():
    assert get_skeleton("lsp14").keypoint_names == (
        "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
        "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
        "neck", "head_top")


def test_unknown_name_suggests():
    with pytest.raises(KeyError, match="did you mean 'coco17'"):
        get_skeleton("coco_17")
    with pytest.raises(KeyError, match="did you mean 'mpii16'"):
        get_skeleton("mpi16")
    assert get_skeleton("COCO") is get_skeleton("coco17")
    s = get_skeleton("lsp14")
    assert get_skeleton(s) is s
    with pytest.raises(KeyError, match="did you mean 'left_hip'"):
        s.index("left_hips")


def test_validation():
    base = dict(name="t", keypoint_names=("a", "b"), flip_pairs=(), sigmas=(0.1, 0.1),
                joint_weights=(1.0, 1.0), upper_body_ids=(), lower_body_ids=(), links=())
    Skeleton(**base)
    with pytest.raises(ValueError, match="sigmas"):
        Skeleton(**{**base, "sigmas": (0.1, 0.0)})
    with pytest.raises(ValueError, match="out of range"):
        Skeleton(**{**base, "flip_pairs": ((0, 2),)})
    with pytest.raises(ValueError, match="duplicate"):
        Skeleton(**{**base, "keypoint_names": ("a", "a")})
    with pytest.raises(ValueError, match="joint_weights"):
        Skeleton(**{**base, "joint_weights": (1.0,)})


def _coco_json(tmp_path, names, skeleton=None):
    p = tmp_path / "ann.json"
    p.write_text(json.dumps({"images": [], "annotations": [], "categories": [
        {"id": 1, "name": "hand", "keypoints": names, "skeleton": skeleton or []}]}))
    return p


def test_skeleton_from_coco_with_yaml_meta(tmp_path):
    names = ["wrist", "thumb_tip", "index_tip", "left_x", "right_x"]
    ann = _coco_json(tmp_path, names, skeleton=[[1, 2], [1, 3]])
    meta = tmp_path / "meta.yaml"
    meta.write_text("name: hand5\nflip_pairs: [[left_x, right_x]]\n"
                    "sigmas: {wrist: 0.03, thumb_tip: 0.02, index_tip: 0.02, left_x: 0.04, right_x: 0.04}\n"
                    "upper_body_ids: [wrist, 1]\n")
    s = skeleton_from_coco(ann, meta)
    assert s.name == "hand5" and s.num_keypoints == 5
    assert s.flip_pairs == ((3, 4),) and s.flip_index == (0, 1, 2, 4, 3)
    assert s.sigmas == (0.03, 0.02, 0.02, 0.04, 0.04)
    assert s.links == ((0, 1), (0, 2))  # 1-based in the json
    assert s.upper_body_ids == (0, 1)


def test_skeleton_from_coco_missing_sigmas_warn_and_default(tmp_path):
    ann = _coco_json(tmp_path, ["nose", "left_eye", "right_eye"])
    with pytest.warns(UserWarning, match="DEFAULT_SIGMA"):
        s = skeleton_from_coco(ann)
    assert s.sigmas == (DEFAULT_SIGMA,) * 3 and DEFAULT_SIGMA > 0
    assert s.flip_pairs == ((1, 2),)  # inferred from the names
    meta = tmp_path / "m.json"
    meta.write_text(json.dumps({"sigmas": {"nose": 0.026}}))
    with pytest.warns(UserWarning, match="left_eye"):
        s = skeleton_from_coco(ann, meta)
    assert s.sigmas == (0.026, DEFAULT_SIGMA, DEFAULT_SIGMA)


def test_skeleton_from_coco_errors(tmp_path):
    ann = _coco_json(tmp_path, ["a", "b"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("flip_pairs: [[a, c]]\nsigmas: [0.1, 0.1]\n")
    with pytest.raises(ValueError, match="unknown keypoint name 'c'"):
        skeleton_from_coco(ann, bad)
    bad.write_text("sigmas: [0.1]\n")
    with pytest.raises(ValueError, match="1 values for 2 keypoints"):
        skeleton_from_coco(ann, bad)
    bad.write_text("sigma: [0.1, 0.1]\n")
    with pytest.raises(ValueError, match="unknown meta key"):
        skeleton_from_coco(ann, bad)
    bad.write_text("sigmas: [0.1, 0]\n")
    with pytest.raises(ValueError, match="> 0"):
        skeleton_from_coco(ann, bad)
    notcoco = tmp_path / "x.json"
    notcoco.write_text(json.dumps({"categories": [{"id": 1, "name": "cat"}]}))
    with pytest.raises(ValueError, match="not a COCO keypoints json"):
        skeleton_from_coco(notcoco)
    with pytest.raises(FileNotFoundError):
        skeleton_from_coco(tmp_path / "nope.json")


def test_builtins_not_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for n in list_skeletons():
            get_skeleton(n).sigmas_array()
