"""What the pose OKS-NMS (``PoseEstimator(pose_nms=...)``, ``stnet predict --pose-nms``) removes on
real photos: the default model with the BlazePose detector and flip test on every coco_mini image,
then, per threshold, the persons kept, the COCO keypoint AP of all of them against coco_mini's
human labels (pycocotools), and the highest OKS between two persons of one image that are both
kept. Pairs above the threshold are one person seen through two boxes when dropping them leaves
the AP (and recall) unchanged: a duplicate matches no second labelled person.

    python benchmarks/pose_nms.py [--data ../shared/data] [--threads 2] [--model NAME]

Writes benchmarks/results/pose_nms.json and pose_nms.md; names the CPU (stnet.cpuinfo).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from stnet import PoseEstimator
from stnet.constants import DEFAULT_MODEL
from stnet.cpuinfo import cpu_info
from stnet.data.build import default_data_root
from stnet.detectors import BlazePoseDetector
from stnet.evaluation.nms import pairwise_oks

OUT = Path(__file__).resolve().parent / "results"
THRESHOLDS = (1.0, 0.9, 0.7, 0.5, 0.4, 0.3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(default_data_root()))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    root = Path(args.data) / "coco_mini"
    ann = root / "annotations" / "person_keypoints_train2017.json"
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann))
    est = PoseEstimator(args.model, detector=BlazePoseDetector(threads=args.threads), flip_test=True,
                        threads=args.threads, pose_nms=1.0)
    sigmas = np.asarray(est.skeleton.sigmas)
    found = {}
    for iid in gt.getImgIds():
        img = cv2.imread(str(root / "train2017" / gt.loadImgs(iid)[0]["file_name"]))
        found[iid] = list(est(img))
    rows = []
    for thr in THRESHOLDS:
        kept = {iid: est.with_options(pose_nms=thr).suppress_duplicates(ps) for iid, ps in found.items()}
        res, top = [], 0.0
        for iid, ps in kept.items():
            for p in ps:
                kp = np.concatenate([np.asarray(p.keypoints)[:, :2], np.asarray(p.scores)[:, None]], 1)
                res.append({"image_id": iid, "category_id": 1, "keypoints": kp.ravel().tolist(), "score": p.score})
            if len(ps) > 1:
                sim = pairwise_oks(np.stack([np.asarray(p.keypoints)[:, :2] for p in ps]),
                                   np.array([max(p.box[2] * p.box[3], 1.0) for p in ps]), sigmas)
                top = max(top, float(sim[np.triu_indices(len(ps), 1)].max()))
        with contextlib.redirect_stdout(io.StringIO()):
            ev = COCOeval(gt, gt.loadRes(res), "keypoints")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        rows.append({"pose_nms": thr, "persons": len(res), "AP": round(float(ev.stats[0]), 4),
                     "AP50": round(float(ev.stats[1]), 4), "AR": round(float(ev.stats[5]), 4),
                     "max_kept_pair_oks": round(top, 3)})
        print(rows[-1], flush=True)
    info = {"cpu": cpu_info().model, "threads": args.threads, "model": args.model, "detector": repr(est.detector),
            "images": len(found), "command": "python benchmarks/pose_nms.py " + " ".join(sys.argv[1:])}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "pose_nms.json").write_text(json.dumps({"info": info, "runs": rows}, indent=1))
    md = [f"# Pose OKS-NMS on coco_mini ({info['command']})", "",
          f"{info['images']} images, detector {info['detector']}, model {args.model}, flip test, CPU {info['cpu']} "
          f"({args.threads} threads). AP / AP50 / AR: all kept persons against coco_mini's labels (pycocotools); "
          "the last column: the highest OKS between two persons of one image both kept (1 = no NMS).", "",
          "| pose_nms | persons | AP | AP50 | AR | max OKS of a kept pair |", "|---|---|---|---|---|---|"]
    md += [f"| {r['pose_nms']} | {r['persons']} | {r['AP']} | {r['AP50']} | {r['AR']} | {r['max_kept_pair_oks']} |"
           for r in rows]
    (OUT / "pose_nms.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
