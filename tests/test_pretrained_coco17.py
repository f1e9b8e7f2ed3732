"""The shipped COCO-17 weights (issue 24): integrity, metadata, and that they localise the body
joints and put the face points on the head of real photos.

The crops are tests/fixtures/lsp_val (the first six LSP-Extended val images with all 14 joints
visible, see test_pretrained.py), whose LSP labels give the 12 body joints COCO shares and, for the
face, the neck and head top: the face points must lie near the head, between them.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from stnet import PoseEstimator
from stnet.constants import WEIGHTS_DIR
from stnet.data import get_skeleton
from stnet.model_files import list_pretrained, sha256_file

NAME = "stnet_1s.coco17_128x96"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "lsp_val"
pytestmark = pytest.mark.skipif(NAME not in list_pretrained(), reason=f"{NAME} weights are not in this install")
# Measured on these six crops when the weights were packed (see docs/results_coco17.md): body
# PCK@0.2 0.39 (12 joints x 6 crops); every face point within 0.25 torso of the head centre. The bounds
# leave room for float/platform differences, not for a broken head row mapping or decoder.
MIN_BODY_PCK = 0.2
MAX_FACE_DIST = 0.5  # torso units from the midpoint of neck and head top


def test_metadata_and_sha256():
    meta = json.loads((WEIGHTS_DIR / f"{NAME}.json").read_text())
    assert meta["sha256"] == sha256_file(WEIGHTS_DIR / f"{NAME}.safetensors")
    assert meta["model"] == "stnet_1s" and meta["skeleton"] == "coco17"
    assert meta["input_size"] == [128, 96] and meta["num_joints"] == 17 and meta["dtype"] == "float16"
    assert meta["recipe_command"].startswith("stnet train configs/stnet_1s_coco17-lspet_128x96")
    assert "PCK@0.2" in meta["metrics"]


def test_localises_body_and_face_on_real_crops():
    ann = json.loads((FIXTURES / "annotations.json").read_text())
    est = PoseEstimator.from_pretrained(NAME)
    assert not est.untrained and est.input_size == (128, 96)
    lsp, coco = get_skeleton("lsp14"), get_skeleton("coco17")
    body = [n for n in coco.keypoint_names if n in lsp.keypoint_names]
    assert len(body) == 12
    hits, face = [], []
    for item in ann["items"]:
        (person,) = est(FIXTURES / item["file"], boxes=[item["box"]])
        assert person.keypoints.shape == (17, 2)
        gt = np.asarray(item["keypoints"])
        torso = np.linalg.norm(gt[lsp.index("right_shoulder")] - gt[lsp.index("left_hip")])
        for n in body:
            hits.append(np.linalg.norm(person.keypoints[coco.index(n)] - gt[lsp.index(n)]) <= 0.2 * torso)
        head = 0.5 * (gt[lsp.index("neck")] + gt[lsp.index("head_top")])
        face.extend(np.linalg.norm(person.keypoints[:5] - head, axis=1) / torso)
    assert float(np.mean(hits)) >= MIN_BODY_PCK, f"body PCK@0.2 {np.mean(hits):.2f} on the fixture crops"
    assert max(face) <= MAX_FACE_DIST, f"a face point {max(face):.2f} torso from the head centre"
