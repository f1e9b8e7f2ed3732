"""The evaluators share one process() signature: a loop can feed any of them everything it has."""
from __future__ import annotations

import inspect

import numpy as np
import pytest

from helpers.synthetic import gt_as_predictions, synthetic_coco_gt
from stnet.evaluation import CocoEvaluator, Evaluator, MPIIEvaluator, PCKEvaluator


def test_one_signature():
    ref = inspect.signature(Evaluator.process)
    for cls in (CocoEvaluator, MPIIEvaluator, PCKEvaluator):
        assert issubclass(cls, Evaluator) and inspect.signature(cls.process) == ref


def _everything(n: int, k: int, rng: np.random.Generator, image_ids: np.ndarray) -> dict:
    gt = rng.uniform(0, 100, (n, k, 2))
    return {"keypoint_scores": np.ones((n, k)), "image_ids": image_ids, "indices": np.arange(n),
            "boxes": np.tile([0.0, 0.0, 100.0, 100.0], (n, 1)), "box_scores": np.ones(n),
            "areas": np.full(n, 1e4), "gt_keypoints": gt, "visible": np.ones((n, k), bool),
            "headboxes": np.tile([[0.0, 0.0], [10.0, 10.0]], (n, 1, 1))}, gt


def test_every_evaluator_takes_the_full_keyword_set():
    rng = np.random.default_rng(0)
    coco = synthetic_coco_gt(4, 6, seed=1)
    p = gt_as_predictions(coco)
    fields, _ = _everything(len(p["image_ids"]), 17, rng, p["image_ids"])
    fields.update({k: p[k] for k in ("keypoint_scores", "box_scores", "areas", "boxes")})
    ev = CocoEvaluator(coco, box_source="gt", print_fn=None)
    ev.process(p["keypoints"], **fields)
    assert ev.evaluate()["AP"] > 0.99
    for ev2, k in ((PCKEvaluator(skeleton="lsp14", print_fn=None), 14), (MPIIEvaluator(print_fn=None), 16)):
        fields, gt = _everything(5, k, rng, np.arange(5))
        ev2.process(gt, **fields)
        ev2.process(gt[:1], **{**fields_slice(fields, 1), "indices": np.array([0])})  # a padded duplicate
        m = ev2.evaluate()
        assert ev2.report["num_duplicates_dropped"] == 1
        assert m.get("PCK@0.2", m.get("Mean")) == 100.0


def fields_slice(fields: dict, n: int) -> dict:
    return {k: v[:n] for k, v in fields.items()}


def test_indices_for_every_batch_or_none():
    ev = PCKEvaluator(skeleton="lsp14", print_fn=None)
    gt = np.zeros((2, 14, 2))
    ev.process(gt, gt_keypoints=gt, visible=np.ones((2, 14)), indices=[0, 1])
    with pytest.raises(ValueError, match="indices for every batch or for none"):
        ev.process(gt, gt_keypoints=gt, visible=np.ones((2, 14)))
