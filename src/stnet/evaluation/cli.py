"""`stnet score`: score an existing COCO-format keypoint results file with pycocotools."""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

__all__ = ["register", "cmd_score"]


def cmd_score(args: argparse.Namespace) -> int:
    from .coco import score_results
    from .tables import format_coco_table

    pred = args.pred
    with tempfile.TemporaryDirectory() as tmp:
        if pred == "-":  # `stnet predict DIR --format coco --json-out - | stnet score --pred -`
            pred = Path(tmp) / "stdin.json"
            pred.write_text(sys.stdin.read(), encoding="utf-8")
        score = score_results(args.gt, pred, sigmas=args.sigmas, category_id=args.category_id,
                              unknown_images="skip" if args.skip_unknown_images else "error")
    if args.json:
        # Exactly one object, nothing else on stdout: scripts parse it.
        print(json.dumps(score.metrics))
        return 0
    print(format_coco_table(score.metrics, name=args.name or str(args.pred), sigmas=score.sigmas))
    line = f"scored {score.num_results} results against {args.gt} (category {score.category_id})"
    if score.num_skipped_unknown_image:
        line += f"; skipped {score.num_skipped_unknown_image} with an image_id not in the ground truth"
    print(line)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "score", help="score a COCO keypoint results json against COCO-format annotations",
        description="Score a COCO-format keypoint results file (from stnet or any other tool) with "
                    "pycocotools' COCOeval and print AP/AR like the paper's Table V.")
    p.add_argument("--gt", required=True, metavar="ANNOTATIONS.json", help="COCO-format keypoint annotations")
    p.add_argument("--pred", required=True, metavar="RESULTS.json",
                   help="results: a list of {image_id, category_id, keypoints: [x, y, score, ...], score} "
                        "(- reads it from stdin)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object with AP, AP50, AP75, APM, APL, AR, AR50, AR75, ARM, ARL")
    p.add_argument("--sigmas", default=None, metavar="SKELETON|FILE",
                   help="OKS sigmas: a skeleton name (coco17, crowdpose14, ...) or a file with one "
                        "sigma per keypoint (default: the skeleton matching the annotations' keypoint "
                        "names, or coco17 for 17 keypoints)")
    p.add_argument("--category-id", type=int, default=None,
                   help="keypoint category to score (default: the one category with keypoints)")
    p.add_argument("--skip-unknown-images", action="store_true",
                   help="drop (and count) results whose image_id is not in the annotations instead "
                        "of failing")
    p.add_argument("--name", default=None, help="row label in the printed table (default: the results path)")
    p.set_defaults(func=cmd_score)
