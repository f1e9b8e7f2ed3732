"""Person boxes without a download: detector recall on real COCO photos, and what the pose-refined
box (a second pose pass on the box around the first pass's keypoints) changes.

1. Recall: over coco_mini's annotated people with >= 5 labelled keypoints (not crowd), the
   fraction that some box overlaps at IoU >= 0.5, for each detector: HOG (OpenCV), BlazePose on
   the whole image only, BlazePose with its default tiling (whole image + 2x2 + 3x3 squares),
   and the boxes ``PoseEstimator`` ends with when the pose refines BlazePose's boxes (what
   ``stnet predict --detector auto --refine`` draws). Also boxes per image and seconds per image.
2. Pose accuracy with and without refinement on single-person crops: PCK@0.2 (torso) of the
   shipped model on the first ``--lsp`` LSP-Extended validation images, the whole image as the
   box, with and without the refining pass.

    python benchmarks/person_boxes.py [--data ../shared/data] [--lsp 200] [--threads 2]

Writes benchmarks/results/person_boxes.json and person_boxes.md; names the CPU (stnet.cpuinfo).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch

from stnet.cpuinfo import cpu_info
from stnet.data.build import default_data_root
from stnet.data.lsp import load_lsp_joints, lsp_split_indices
from stnet.detectors import BlazePoseDetector, HOGDetector, box_iou, filter_detections, hog_available
from stnet.evaluation.metrics import pck
from stnet import PoseEstimator

OUT = Path(__file__).resolve().parent / "results"
MODEL = "stnet_1s.lspet_128x96"


def coco_people(root: Path, min_keypoints: int = 5) -> tuple[list[tuple[int, np.ndarray]], dict[int, list]]:
    """(image id, RGB image) of every coco_mini image, and image id -> ground-truth person boxes."""
    ann = json.loads((root / "annotations" / "person_keypoints_train2017.json").read_text())
    gt: dict[int, list] = {}
    for a in ann["annotations"]:
        if a["num_keypoints"] >= min_keypoints and not a["iscrowd"]:
            gt.setdefault(a["image_id"], []).append(a["bbox"])
    images = [(im["id"], np.ascontiguousarray(cv2.imread(str(root / "train2017" / im["file_name"]))[..., ::-1]))
              for im in ann["images"]]
    return images, gt


def recall(name: str, boxes_of, images, gt) -> dict:
    found = total = n_boxes = 0
    t0 = time.perf_counter()
    for iid, img in images:
        b = np.asarray(boxes_of(img)).reshape(-1, 5)
        n_boxes += len(b)
        for g in gt.get(iid, []):
            total += 1
            found += any(box_iou(g, x) >= 0.5 for x in b)
    sec = (time.perf_counter() - t0) / len(images)
    row = {"boxes": name, "found": found, "people": total, "recall": round(found / total, 3),
           "boxes_per_image": round(n_boxes / len(images), 2), "s_per_image": round(sec, 3)}
    print(row, flush=True)
    return row


def lsp_pck(est: PoseEstimator, root: Path, n: int) -> float:
    kps, vis = load_lsp_joints(root / "joints.mat")
    idx = lsp_split_indices(min(len(kps), len(list((root / "images").glob("im*.jpg")))), "val")[:n]
    preds = []
    for i in idx:
        img = cv2.imread(str(root / "images" / f"im{i + 1:05d}.jpg"))
        res = est(img)
        if len(res) == 0:
            preds.append(np.full((kps.shape[1], 2), -1e6))  # no person: every joint missed
            continue
        # the person nearest the labelled joints' centre (a detector may add others)
        c = kps[i][vis[i] > 0].mean(0)
        preds.append(min(res.keypoints, key=lambda k: float(np.hypot(*(k.mean(0) - c)))))
    gt, v = kps[idx], vis[idx]
    torso = np.linalg.norm(gt[:, 8] - gt[:, 3], axis=1)  # right shoulder - left hip, the LSP convention
    ok = np.isfinite(torso) & (torso > 0)  # a zero torso (both joints unlabelled at 0, 0) cannot be scored
    return round(float(pck(np.stack(preds)[ok], gt[ok], v[ok], torso[ok], 0.2).mean) * 100, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(default_data_root()))
    ap.add_argument("--lsp", type=int, default=200, help="LSP-Extended validation images for PCK (0: skip)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-hog", action="store_true", help="leave HOG out (6 s an image on a loaded 2-core CPU)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    data = Path(args.data)
    images, gt = coco_people(data / "coco_mini")
    base = PoseEstimator(MODEL, threads=args.threads)
    blaze = BlazePoseDetector(threads=args.threads)
    rows = []
    if hog_available() and not args.skip_hog:
        hog = HOGDetector()
        rows.append(recall("hog", lambda im: filter_detections(hog(im)), images, gt))
    whole_only = BlazePoseDetector(grids=(), threads=args.threads)
    rows.append(recall("blazepose, whole image only", lambda im: filter_detections(whole_only(im)), images, gt))
    cache: dict[bytes, np.ndarray] = {}  # the tiled detector runs once per image; the pose rows reuse its boxes

    def key(im: np.ndarray) -> bytes:
        return im[::37, ::37].tobytes() + bytes(str(im.shape), "ascii")

    def tiled(im: np.ndarray) -> np.ndarray:
        cache[key(im)] = filter_detections(blaze(im))
        return cache[key(im)]

    rows.append(recall("blazepose (default tiling)", tiled, images, gt))
    for refine in (False, True):
        est = base.with_options(detector=lambda im: cache[key(im)], refine_boxes=refine)
        rows.append(recall(f"blazepose -> the pose estimator's boxes, refine {refine}",
                           lambda im, e=est: np.pad(e(im, color="rgb").boxes, ((0, 0), (0, 1))), images, gt))
    pcks = []
    for refine in (False, True) if args.lsp else ():  # single-person crops: the whole image as the box
        v = lsp_pck(base.with_options(detector="whole", refine_boxes=refine), data / "lspet", args.lsp)
        pcks.append({"boxes": "whole", "refine": refine, "pck@0.2": v})
        print(pcks[-1], flush=True)
    info = {"cpu": cpu_info().model or platform.processor(), "threads": args.threads, "model": MODEL,
            "python": sys.version.split()[0], "torch": torch.__version__,
            "command": "python benchmarks/person_boxes.py " + " ".join(sys.argv[1:])}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "person_boxes.json").write_text(json.dumps({"info": info, "recall": rows, "lsp_pck": pcks}, indent=1))
    md = [f"# Person boxes ({info['command']})", "", f"CPU: {info['cpu']}, {args.threads} threads (shared, loaded).",
          "", f"## Recall at IoU >= 0.5, coco_mini people with >= 5 keypoints ({rows[0]['people']})", "",
          "| boxes | found | recall | boxes / image | s / image |", "|---|---|---|---|---|"]
    md += [f"| {r['boxes']} | {r['found']} | {r['recall']:.3f} | {r['boxes_per_image']} | {r['s_per_image']} |"
           for r in rows]
    if pcks:
        md += ["", f"## PCK@0.2 of {MODEL} on the first {args.lsp} LSP-Extended validation images", "",
               "| boxes | refine | PCK@0.2 |", "|---|---|---|"]
        md += [f"| {p['boxes']} | {p['refine']} | {p['pck@0.2']} |" for p in pcks]
    (OUT / "person_boxes.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
