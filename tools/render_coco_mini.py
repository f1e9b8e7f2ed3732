"""Render a model's predictions on COCO photos with ground-truth person boxes standing in for a
detector: the picture in docs/results_lspet.md ("Real COCO photos").

    python tools/render_coco_mini.py [--model stnet_1s.lspet_128x96] [--images 12]
        [--data ../shared/data/coco_mini] [-o docs/images/coco_predictions.jpg]

Takes the first N images (in the annotation file's order) that hold at least one person with a
box of 48 px height or more; draws every such person; tiles the overlays 4 across at 320 px width.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from stnet.data.build import default_data_root
from stnet import PoseEstimator
from stnet.io import atomic_write


def write_grid(tiles: list[np.ndarray], across: int, out: str, tool: str) -> None:
    """Pad the BGR tiles to one size on white, lay them ``across`` per row and write the grid to
    ``out`` atomically, as JPEG (quality 85) unless the suffix names another format."""
    h, w = max(t.shape[0] for t in tiles), max(t.shape[1] for t in tiles)
    tiles = [np.pad(t, ((0, h - t.shape[0]), (0, w - t.shape[1]), (0, 0)), constant_values=255) for t in tiles]
    tiles += [np.full_like(tiles[0], 255)] * (-len(tiles) % across)
    grid = np.vstack([np.hstack(tiles[i:i + across]) for i in range(0, len(tiles), across)])
    # JPEG: the tiles are photos, which PNG stores at ten times the size.
    suffix = Path(out).suffix.lower() or ".jpg"
    ok, data = cv2.imencode(suffix, grid, [cv2.IMWRITE_JPEG_QUALITY, 85] if suffix in (".jpg", ".jpeg") else [])
    if not ok:
        raise SystemExit(f"{tool}: cannot encode {out} ({suffix})")
    with atomic_write(out) as tmp:
        tmp.write_bytes(data.tobytes())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="stnet_1s.lspet_128x96")
    ap.add_argument("--images", type=int, default=12)
    ap.add_argument("--data", default=str(default_data_root() / "coco_mini"))
    ap.add_argument("-o", "--out", default="docs/images/coco_predictions.jpg")
    args = ap.parse_args()
    root = Path(args.data)
    ann = json.loads((root / "annotations" / "person_keypoints_train2017.json").read_text())
    boxes: dict[int, list[list[float]]] = {}
    for a in ann["annotations"]:
        if a.get("category_id", 1) == 1 and not a.get("iscrowd", 0) and a["bbox"][3] >= 48:
            boxes.setdefault(a["image_id"], []).append(a["bbox"])
    est = PoseEstimator(args.model)
    tiles = []
    for img in ann["images"]:
        if img["id"] not in boxes:
            continue
        image = cv2.imread(str(root / "train2017" / img["file_name"]))
        if image is None:
            raise SystemExit(f"render_coco_mini: cannot read {root / 'train2017' / img['file_name']}")
        overlay = est(image, boxes=boxes[img["id"]]).plot()
        h, w = overlay.shape[:2]
        tile = cv2.resize(overlay, (320, round(h * 320 / w)), interpolation=cv2.INTER_AREA)
        tiles.append(tile)
        if len(tiles) == args.images:
            break
    write_grid(tiles, 4, args.out, "render_coco_mini")
    print(f"render_coco_mini: {len(tiles)} tiles from {args.model} -> {args.out}")


if __name__ == "__main__":
    main()
