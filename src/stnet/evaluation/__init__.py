"""Evaluation: COCO OKS AP (pycocotools), MPII PCKh, PCK/AUC/EPE, OKS-NMS, paper-shaped tables.

Metrics are pure functions over numpy arrays (:mod:`.metrics`, :mod:`.nms`); evaluators derive
from :class:`.base.Evaluator`: ``reset() / process(keypoints, **fields) / evaluate()`` with one
``process`` signature, gathering across torch.distributed ranks and scoring on rank 0. See
docs/evaluation.md for the protocols and what each bad input does.
"""
from .base import Evaluator, Predictions
from .coco import (COCO_KEYS, CocoEvaluator, CocoScore, keypoint_category, load_coco_gt, load_detections,
                   load_results, make_results, score_results, validate_results)
from .metrics import (PART_COLUMNS, RESCORE_THRESHOLD, SC_BIAS, PCKResult, auc, bbox_size, epe, find_joint,
                      head_sizes, joint_part, keypoint_distances, keypoint_similarity, normalized_distances, oks, pck,
                      pck_from_normalized, pckh, rescore, summarize_by_part, torso_size)
from .mpii import MPIIEvaluator, MPIIGroundTruth, load_gt_valid
from .nms import oks_nms, pairwise_oks, soft_oks_nms
from .pck_evaluator import PCKEvaluator
from .sigmas import load_sigmas_file, resolve_sigmas
from .tables import TABLE_V_KEYS, format_coco_table, format_pck_table, format_pckh_table, format_table

__all__ = [
    "COCO_KEYS", "TABLE_V_KEYS", "PART_COLUMNS", "SC_BIAS", "RESCORE_THRESHOLD",
    # evaluator base
    "Evaluator", "Predictions",
    # metrics
    "keypoint_similarity", "oks", "pck", "pckh", "pck_from_normalized", "PCKResult", "auc", "epe", "head_sizes",
    "torso_size",
    "bbox_size", "keypoint_distances", "normalized_distances", "summarize_by_part", "joint_part",
    "find_joint",
    # nms / rescoring
    "rescore", "oks_nms", "soft_oks_nms", "pairwise_oks",
    # COCO
    "CocoEvaluator", "CocoScore", "score_results", "validate_results", "make_results", "load_results",
    "load_coco_gt", "keypoint_category", "load_detections", "resolve_sigmas", "load_sigmas_file",
    # MPII / PCK
    "MPIIEvaluator", "MPIIGroundTruth", "load_gt_valid", "PCKEvaluator",
    # tables
    "format_table", "format_coco_table", "format_pckh_table", "format_pck_table",
]
