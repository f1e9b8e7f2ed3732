"""Render a model's predictions on the first LSP-Extended val persons, with the boxes the val split
derives from their joints: the picture in docs/results_lspet.md ("LSP-Extended val images").

    python tools/render_lspet_val.py [--model stnet_1s.lspet_128x96] [--persons 12]
        [--data ../shared/data/lspet] [-o docs/images/lspet_val_predictions.jpg]

Uses the val split of ``stnet.data.lsp`` (the one ``stnet eval`` scores), in its order; each overlay
is scaled to 200 px height and the tiles are laid 6 across.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2

from stnet.data.build import default_data_root
from stnet.data.lsp import load_lsp_records
from stnet import PoseEstimator
from render_coco_mini import write_grid  # tools/ is on sys.path when run as a script

TILE_H, ACROSS = 200, 6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="stnet_1s.lspet_128x96")
    ap.add_argument("--persons", type=int, default=12)
    ap.add_argument("--data", default=str(default_data_root() / "lspet"))
    ap.add_argument("-o", "--out", default="docs/images/lspet_val_predictions.jpg")
    args = ap.parse_args()
    root = Path(args.data)
    if not (root / "joints.mat").is_file():
        raise SystemExit(f"render_lspet_val: {root / 'joints.mat'} not found (give --data the lspet folder)")
    records = load_lsp_records(root / "joints.mat", root / "images", split="val")[:args.persons]
    est = PoseEstimator(args.model)
    tiles = []
    for rec in records:
        image = cv2.imread(str(rec.image_path))
        if image is None:
            raise SystemExit(f"render_lspet_val: cannot read {rec.image_path}")
        overlay = est(image, boxes=[rec.box.tolist()]).plot()
        h, w = overlay.shape[:2]
        tiles.append(cv2.resize(overlay, (round(w * TILE_H / h), TILE_H), interpolation=cv2.INTER_AREA))
    write_grid(tiles, ACROSS, args.out, "render_lspet_val")
    print(f"render_lspet_val: {len(records)} persons from {args.model} -> {args.out}")


if __name__ == "__main__":
    main()
