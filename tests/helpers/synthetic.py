"""Synthetic COCO-format data for tests and benchmarks (no dataset needed).

* :func:`make_synthetic_coco` writes a tiny keypoint dataset to disk (coloured dots on noise,
  images + annotations.json) for training smoke runs (tests, ``benchmarks/train_speed.py``).
* :func:`synthetic_coco_gt` / :func:`synthetic_predictions` / :func:`gt_as_predictions` build COCO
  keypoint ground truth and top-down predictions in memory, of any size;
  ``benchmarks/eval_speed.py`` sizes them like the COCO val2017 detector-box protocol (5,000
  images, 6,352 persons with keypoints, ~104k boxes). The poses are a crude upright template,
  enough for OKS matching to behave as on real data: true positives near their GT, duplicates
  that OKS-NMS removes, and background false positives.

Benchmarks import this file by putting ``tests/`` on ``sys.path``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["make_synthetic_coco", "synthetic_coco_gt", "synthetic_predictions", "gt_as_predictions"]

# Upright person in box-normalised (x, y), COCO-17 order (nose, eyes, ears, shoulders, elbows,
# wrists, hips, knees, ankles; left before right).
_COCO_TEMPLATE = np.array([
    [0.50, 0.08], [0.55, 0.06], [0.45, 0.06], [0.60, 0.08], [0.40, 0.08],
    [0.70, 0.22], [0.30, 0.22], [0.80, 0.38], [0.20, 0.38], [0.85, 0.52], [0.15, 0.52],
    [0.62, 0.55], [0.38, 0.55], [0.62, 0.75], [0.38, 0.75], [0.62, 0.95], [0.38, 0.95],
])


def _template(k: int, rng: np.random.Generator) -> np.ndarray:
    if k == 17:
        return _COCO_TEMPLATE
    return np.random.default_rng(1234).uniform(0.1, 0.9, (k, 2))


def synthetic_coco_gt(num_images: int = 20, num_persons: int = 30, *, num_keypoints: int = 17,
                      num_persons_without_keypoints: int = 0, images_with_persons: int | None = None,
                      seed: int = 0) -> dict[str, Any]:
    """A COCO keypoint annotation dict: images 640x480 with ids ``1..num_images``; persons placed
    on ``images_with_persons`` images (default: all), ~20% of keypoints unlabelled (v=0)."""
    rng = np.random.default_rng(seed)
    k = num_keypoints
    tmpl = _template(k, rng)
    images = [{"id": i, "file_name": f"{i:012d}.jpg", "width": 640, "height": 480}
              for i in range(1, num_images + 1)]
    hosts = images_with_persons or num_images
    host_ids = rng.choice(np.arange(1, num_images + 1), size=min(hosts, num_images), replace=False)
    anns = []
    total = num_persons + num_persons_without_keypoints
    img_of = np.concatenate([host_ids, rng.choice(host_ids, size=max(total - host_ids.size, 0))])[:total]
    rng.shuffle(img_of)
    for j in range(total):
        with_kps = j < num_persons
        w = rng.uniform(40, 260) if with_kps else rng.uniform(8, 40)
        h = min(w * rng.uniform(1.6, 2.6), 470.0)
        x = rng.uniform(0, max(640 - w, 1))
        y = rng.uniform(0, max(480 - h, 1))
        kp = np.zeros((k, 3))
        if with_kps:
            xy = np.array([x, y]) + tmpl * np.array([w, h]) + rng.normal(0, 0.03, (k, 2)) * np.array([w, h])
            vis = rng.choice([0, 1, 2], size=k, p=[0.2, 0.2, 0.6])
            if not (vis > 0).any():
                vis[rng.integers(k)] = 2
            kp[:, :2] = np.where(vis[:, None] > 0, np.round(xy, 2), 0.0)
            kp[:, 2] = vis
        anns.append({
            "id": j + 1, "image_id": int(img_of[j]), "category_id": 1, "iscrowd": 0,
            "bbox": [round(float(x), 2), round(float(y), 2), round(float(w), 2), round(float(h), 2)],
            "area": round(float(w * h * rng.uniform(0.45, 0.7)), 2),
            "num_keypoints": int((kp[:, 2] > 0).sum()),
            "keypoints": kp.ravel().tolist(),
        })
    names = [f"kp{i}" for i in range(k)]
    if k == 17:
        names = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
                 "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
                 "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle"]
    return {"images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "person", "supercategory": "person", "keypoints": names,
                            "skeleton": []}]}


def gt_as_predictions(gt: dict[str, Any]) -> dict[str, np.ndarray]:
    """Every non-crowd GT person with keypoints as a perfect prediction (unlabelled joints are
    placed at the box centre so OKS-NMS sees distinct instances)."""
    rows = [a for a in gt["annotations"] if a.get("num_keypoints", 0) > 0 and not a.get("iscrowd")]
    k = len(rows[0]["keypoints"]) // 3
    kp = np.array([a["keypoints"] for a in rows], dtype=np.float64).reshape(-1, k, 3)
    box = np.array([a["bbox"] for a in rows], dtype=np.float64)
    centre = box[:, :2] + box[:, 2:] / 2
    xy = np.where(kp[..., 2:3] > 0, kp[..., :2], centre[:, None, :])
    return {"image_ids": np.array([a["image_id"] for a in rows]), "keypoints": xy,
            "keypoint_scores": np.ones((len(rows), k)), "box_scores": np.ones(len(rows)),
            "areas": box[:, 2] * box[:, 3], "boxes": box}


def synthetic_predictions(gt: dict[str, Any], num_boxes: int, *, seed: int = 0,
                          noise: float = 0.04, dup_noise: float = 0.01) -> dict[str, np.ndarray]:
    """Top-down predictions for ``num_boxes`` detector boxes: for each GT person with keypoints
    1-4 jittered detections (keypoints = GT + ``noise`` x box size, duplicates differing by
    ``dup_noise`` x box size), the rest background false
    positives on random images. Arrays: ``image_ids, keypoints (N, K, 2), keypoint_scores (N, K),
    box_scores, areas, boxes``."""
    rng = np.random.default_rng(seed)
    base = gt_as_predictions(gt)
    n_gt, k = base["keypoints"].shape[:2]
    reps = np.minimum(rng.integers(1, 5, size=n_gt), 4)
    src = np.repeat(np.arange(n_gt), reps)[:num_boxes]
    m = src.size
    box = base["boxes"][src] * (1 + rng.normal(0, 0.05, (m, 4)) * np.array([0.2, 0.2, 1, 1]))
    size = np.sqrt(box[:, 2] * box[:, 3])[:, None, None]
    # One network estimate per person, and duplicates (from overlapping boxes) close to it, as
    # real top-down duplicates are: that is what OKS-NMS at 0.9 is for.
    person_err = rng.normal(0, noise, (n_gt, k, 2))[src]
    kp = base["keypoints"][src] + (person_err + rng.normal(0, dup_noise, (m, k, 2))) * size
    ks = rng.uniform(0.1, 1.0, (m, k))
    bs = rng.uniform(0.5, 1.0, m)
    n_fp = num_boxes - m
    img_ids = np.array([im["id"] for im in gt["images"]])
    fp_img = rng.choice(img_ids, size=n_fp)
    fw = rng.uniform(20, 200, n_fp)
    fh = fw * rng.uniform(1.2, 2.8, n_fp)
    fx = rng.uniform(0, 600, n_fp)
    fy = rng.uniform(0, 440, n_fp)
    fbox = np.stack([fx, fy, fw, fh], 1)
    fkp = (fbox[:, None, :2] + _template(k, rng)[None] * fbox[:, None, 2:]
           + rng.normal(0, 0.1, (n_fp, k, 2)) * fbox[:, None, 2:])
    out = {
        "image_ids": np.concatenate([base["image_ids"][src], fp_img]),
        "keypoints": np.concatenate([kp, fkp]),
        "keypoint_scores": np.concatenate([ks, rng.uniform(0.0, 0.6, (n_fp, k))]),
        "box_scores": np.concatenate([bs, rng.uniform(0.0, 0.7, n_fp)]),
        "boxes": np.concatenate([box, fbox]),
    }
    out["areas"] = out["boxes"][:, 2] * out["boxes"][:, 3]
    perm = rng.permutation(num_boxes)
    return {key: v[perm] for key, v in out.items()}


def make_synthetic_coco(root: str | Path, num_images: int = 8, image_size: tuple[int, int] = (96, 96),
                        seed: int = 0) -> Path:
    """Write ``root/images/*.png`` and ``root/annotations.json`` (one person per image, coco17
    skeleton, every joint labelled and drawn as a dot of its own colour); returns the json path."""
    import cv2

    from stnet.data.skeletons import get_skeleton

    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    skel = get_skeleton("coco17")
    k = skel.num_keypoints
    rng = np.random.default_rng(seed)
    colors = (np.stack(np.meshgrid([40, 140, 240], [40, 140, 240], [40, 240]), -1).reshape(-1, 3))[:k]
    h, w = image_size
    images, anns = [], []
    for i in range(num_images):
        img = rng.integers(0, 60, size=(h, w, 3), dtype=np.uint8)
        bw, bh = rng.uniform(0.4, 0.7) * w, rng.uniform(0.6, 0.85) * h
        x0, y0 = rng.uniform(2, w - bw - 2), rng.uniform(2, h - bh - 2)
        kps = np.stack([x0 + rng.uniform(0.1, 0.9, k) * bw, y0 + rng.uniform(0.05, 0.95, k) * bh], -1)
        for j, (x, y) in enumerate(kps):
            cv2.circle(img, (int(round(x)), int(round(y))), 2, tuple(int(c) for c in colors[j]), -1)
        name = f"{i:06d}.png"
        cv2.imwrite(str(root / "images" / name), img[:, :, ::-1])
        images.append({"id": i + 1, "file_name": name, "height": h, "width": w})
        flat = np.concatenate([kps, np.full((k, 1), 2.0)], 1).reshape(-1)
        anns.append({"id": i + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0,
                     "bbox": [float(x0), float(y0), float(bw), float(bh)], "area": float(bw * bh),
                     "num_keypoints": k, "keypoints": [round(float(v), 2) for v in flat]})
    cats = [{"id": 1, "name": "person", "supercategory": "person",
             "keypoints": list(skel.keypoint_names), "skeleton": []}]
    path = root / "annotations.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path
