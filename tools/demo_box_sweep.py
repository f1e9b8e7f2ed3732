"""Whether any person box brings the demo photo's arm joints within tolerance: the shipped model
runs on a grid of 300 boxes (x0 60-140, y0 100-180, x1 300-390, y1 560-660 px) and the ten with
the smallest worst arm-joint error are printed (tolerance as in tools/demo_check.py: 62 px).

    python tools/demo_box_sweep.py [--no-flip]
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
    ap.add_argument("--no-flip", action="store_true")
    args = ap.parse_args()
    labels = json.loads((ROOT / "tools" / "demo_keypoints.json").read_text())
    img = np.ascontiguousarray(cv2.imread(str(ROOT / labels["image"]))[..., ::-1])
    est = PoseEstimator(DEFAULT_MODEL).with_options(flip_test=not args.no_flip)
    names, gt = list(est.skeleton.keypoint_names), labels["joints"]
    tol = 0.5 * float(np.hypot(*np.subtract(gt["right_shoulder"], gt["right_elbow"])))
    boxes = [[x0, y0, x1 - x0, y1 - y0] for x0 in range(60, 160, 20) for y0 in range(100, 200, 20)
             for x1 in range(300, 420, 30) for y1 in range(560, 661, 50)]
    res = est(img, boxes=boxes, color="rgb")
    rows = []
    for b, k in zip(res.boxes, res.keypoints):
        err = {j: float(np.hypot(*np.subtract(k[names.index(j)][:2], xy))) for j, xy in gt.items()}
        rows.append((max(err[j] for j in ARM), np.round(b[:4]).tolist(), {j: round(v) for j, v in err.items()}))
    rows.sort(key=lambda r: r[0])
    for r in rows[:10]:
        print(f"worst arm error {r[0]:5.1f} px  box {r[1]}  {r[2]}")
    print(f"{sum(r[0] <= tol for r in rows)} of {len(rows)} boxes bring every arm joint within {tol:.0f} px")


if __name__ == "__main__":
    main()
