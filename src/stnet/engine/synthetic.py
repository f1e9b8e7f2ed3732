"""A tiny synthetic COCO-format keypoint dataset (coloured dots on noise) for smoke runs and tests."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["make_synthetic_coco"]


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
