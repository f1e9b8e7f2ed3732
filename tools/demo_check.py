"""How far the shipped model's joints land from hand labels on the bundled demo photo: the check
behind "make demo draws a skeleton whose arms follow the person".

    python tools/demo_check.py [--model NAME (default: the default model)] [--detector auto] [--no-flip]
                               [--box X Y W H]

Runs the model as ``make demo`` does (``--detector auto``: BlazePose when OpenVINO is installed,
else HOG; ``--refine``: a second pass on the box around the first pass's keypoints; flip test; ``--box``: this
box instead of the detector's, to see how much the box costs) and prints, for
each labelled joint of tools/demo_keypoints.json, the error in pixels and whether it lies within
half the labelled upper-arm length (shoulder to elbow, 123 px), a PCKh@0.5-like tolerance; "arms
follow" when every labelled arm joint does.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from stnet import PoseEstimator
from stnet.constants import DEFAULT_MODEL

ROOT = Path(__file__).resolve().parent.parent
ARM = ("right_shoulder", "right_elbow", "right_wrist", "left_wrist")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--detector", default="auto")
    ap.add_argument("--no-flip", action="store_true")
    ap.add_argument("--refine", action="store_true", help="a second pose pass on the box around the first's keypoints")
    ap.add_argument("--box", nargs=4, type=float, metavar=("X", "Y", "W", "H"), help="person box (pixels)")
    args = ap.parse_args()
    labels = json.loads((ROOT / "tools" / "demo_keypoints.json").read_text())
    image = cv2.imread(str(ROOT / labels["image"]))
    if image is None:
        raise SystemExit(f"cannot read {labels['image']}")
    est = PoseEstimator(args.model).with_options(detector=args.detector, flip_test=not args.no_flip,
                                                 refine_boxes=args.refine)
    result = est(image, boxes=[args.box]) if args.box else est(image)
    if len(result) == 0:
        raise SystemExit("no person found on the demo photo")
    names = list(est.skeleton.keypoint_names)
    # The labels name LSP-14 joints; a COCO-17 model has no neck or head top, so those are skipped.
    gt = {j: xy for j, xy in labels["joints"].items() if j in names}
    tol = 0.5 * float(np.hypot(*np.subtract(gt["right_shoulder"], gt["right_elbow"])))
    # The person whose labelled joints it matches best: the detector may add background boxes.
    kpts = min((p for p in result.keypoints), key=lambda k: sum(
        float(np.hypot(*np.subtract(k[names.index(j)][:2], xy))) for j, xy in gt.items()))
    boxes = f"box {args.box}" if args.box else f"detector {args.detector}"
    print(f"{args.model} | {boxes} | flip {not args.no_flip} | refine {args.refine} | "
          f"tolerance {tol:.0f} px | box {np.round(result.boxes[0][:4]).tolist()}")
    follows = True
    for joint, xy in gt.items():
        err = float(np.hypot(*np.subtract(kpts[names.index(joint)][:2], xy)))
        ok = err <= tol
        follows &= ok or joint not in ARM
        print(f"  {joint:15s} label ({xy[0]:.0f}, {xy[1]:.0f})  predicted ({kpts[names.index(joint)][0]:.0f}, "
              f"{kpts[names.index(joint)][1]:.0f})  error {err:5.1f} px  {'ok' if ok else 'off'}")
    print(f"arms follow the person: {'yes' if follows else 'no'}")


if __name__ == "__main__":
    main()
