"""Decoding graphs (``stnet export --decode`` / ``--with-affine``) on every backend that loads them give
the keypoints of the torch path, on the shipped model; backends say what they return through their card."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stnet import PoseEstimator
from stnet.constants import DEFAULT_MODEL
from stnet.data.transforms import box_to_center_scale
from stnet.model_files import list_pretrained

pytestmark = pytest.mark.skipif(DEFAULT_MODEL not in list_pretrained(), reason="shipped weights not in this install")
DEMO = Path(__file__).resolve().parents[1] / "src" / "stnet" / "assets" / "demo.jpg"
HAS_OV = importlib.util.find_spec("openvino") is not None
BOXES = [[150, 60, 260, 520], [10, 10, 200, 300]]


# Exporting with torch and loading the graphs in onnxruntime and OpenVINO inside the suite's process
# made a later in-process training run of the suite die with SIGSEGV (rc 139, no Python stack),
# while each file passed alone; the checks therefore run in a child process of their own.
if os.environ.get("STNET_DEPLOY_CHILD") != "1":
    def test_deploy_checks_in_a_separate_process():
        env = {**os.environ, "STNET_DEPLOY_CHILD": "1"}
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__],
                           env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
        assert "2 passed" in r.stdout, r.stdout[-2000:]
else:
    def _kp(persons):
        return np.stack([p.keypoints for p in persons]), np.stack([p.scores for p in persons])


    @pytest.fixture(scope="module")
    def torch_est():
        return PoseEstimator()


    @pytest.fixture(scope="module")
    def graphs(torch_est, tmp_path_factory):
        root = tmp_path_factory.mktemp("graphs")
        out = {}
        for kind, kw in (("decode", {"decode": True}), ("affine", {"with_affine": True})):
            out[f"{kind}.onnx"] = torch_est.export(root / f"{kind}.onnx", **kw)
            if HAS_OV:
                out[f"{kind}.xml"] = torch_est.export(root / f"{kind}.xml", format="openvino", **kw)
        return out


    def test_decoding_graphs_match_the_torch_path_on_every_backend(torch_est, graphs):
        ref_kp, ref_sc = _kp(torch_est(DEMO, boxes=BOXES))
        h, w = torch_est.input_size
        _, scale = box_to_center_scale(np.asarray(BOXES, np.float64), w / h, torch_est.bbox_padding)
        heatmap_px = (np.asarray(scale)[:, 0] / w * 4)[:, None]  # image pixels per heatmap pixel, per box
        runs = [(name, "onnxruntime") for name in graphs if name.endswith(".onnx")]
        if HAS_OV:
            runs += [(name, "openvino") for name in graphs]
        assert runs
        for name, backend in runs:
            est = PoseEstimator(graphs[name], backend=backend, precision="f32")
            assert est.backend.card.decode and est.backend.card.with_affine == name.startswith("affine"), name
            assert est.skeleton.name == torch_est.skeleton.name and est.input_size == torch_est.input_size, name
            kp, sc = _kp(est(DEMO, boxes=BOXES))
            np.testing.assert_allclose(sc, ref_sc, atol=1e-3, err_msg=f"{name} on {backend}")
            # The graph's DARK step has no border lookup table (see stnet.codecs.decode_head): keypoints
            # within ~2 heatmap pixels of the crop border may move by up to that much; the rest match.
            err = np.linalg.norm(kp - ref_kp, axis=-1) / heatmap_px
            assert np.median(err) < 0.01 and err.max() < 2.0, (name, backend, float(np.median(err)), float(err.max()))
            assert err[0].max() < 0.01, (name, backend)  # the person filling its box: all joints inside the crop
            with pytest.raises(ValueError, match="--flip needs heatmaps"):
                est.with_options(flip_test=True)(DEMO, boxes=BOXES)


    def test_heatmap_backends_report_heatmaps(torch_est):
        assert not torch_est.backend.card.decode
        out = torch_est.backend.run(np.zeros((2, 3, *torch_est.input_size), np.float32))
        assert out.heatmaps is not None and out.heatmaps.shape[:2] == (2, torch_est.skeleton.num_keypoints)
        assert out.keypoints is None and not out.decoded
