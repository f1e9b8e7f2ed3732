"""``stnet browse``: render augmented training samples with their targets to a PNG."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

__all__ = ["register", "browse"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "browse", help="render N (augmented) training samples with target heatmaps to a PNG",
        description="Render dataset samples as the model sees them: each panel shows the crop with "
                    "its target skeleton (left) and the target heatmaps with the keypoints decoded "
                    "from them (white crosses, right). Use it to check that labels line up.")
    p.add_argument("--dataset", choices=["lsp", "coco", "crowdpose", "mpii"], default="lsp",
                   help="folder layout / defaults preset (default: lsp)")
    p.add_argument("--root", type=Path, default=None,
                   help="dataset folder (default: $STNET_DATA_ROOT or ../shared/data/<dataset>)")
    p.add_argument("--ann-file", default=None, help="annotation file (overrides the preset)")
    p.add_argument("--image-dir", default=None, help="image folder (overrides the preset)")
    p.add_argument("--split", choices=["train", "val", "all"], default="train")
    p.add_argument("-n", "--num", type=int, default=8, help="number of samples (default 8)")
    p.add_argument("--cols", type=int, default=4, help="panels per row (default 4)")
    p.add_argument("--seed", type=int, default=0, help="sampling/augmentation seed (default 0)")
    p.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"), default=None)
    p.add_argument("--no-augment", action="store_true", help="show the plain crops")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a DataConfig field, e.g. --set augment.rotation_factor=30 "
                        "--set codec.kind=msra (repeatable)")
    p.add_argument("--scale", type=float, default=1.0, help="resize the final image by this factor")
    p.add_argument("--colors", type=int, default=256,
                   help="palette size for a compact PNG (0 = full colour; default 256)")
    p.add_argument("-o", "--output", type=Path, default=Path("browse.png"), help="PNG to write")
    p.set_defaults(func=browse)


def browse(args: argparse.Namespace) -> int:
    import cv2

    from stnet.config import parse_overrides
    from stnet.io import refuse_overwrite

    from .build import build_dataset, preset_config
    from .config import apply_overrides
    from .visualize import render_sample, save_png, tile_images

    if args.num < 1 or args.cols < 1:
        raise ValueError("--num and --cols must be >= 1")
    if not 0 < args.scale <= 16:  # NaN fails too
        raise ValueError(f"--scale {args.scale}: expected a factor in (0, 16]")
    extra = {}
    if args.ann_file:
        extra["ann_file"] = args.ann_file
    if args.image_dir:
        extra["image_dir"] = args.image_dir
    if args.input_size:
        extra["input_size"] = tuple(args.input_size)
    cfg = preset_config(args.dataset, args.root, args.split, **extra)
    cfg = apply_overrides(cfg, {**parse_overrides(args.overrides), "seed": args.seed})
    refuse_overwrite({"-o": args.output}, {"--ann-file": cfg.ann_file or None})
    ds = build_dataset(cfg, train=not args.no_augment)
    refuse_overwrite({"-o": args.output}, {"image": [r.image_path for r in ds.records]})
    rng = np.random.default_rng(args.seed)
    picks = rng.choice(len(ds), size=min(args.num, len(ds)), replace=False)
    panels = []
    for i in picks:
        s = ds[int(i)]
        tags = [f"#{s['image_id']}"]
        if float(s["rotation"]):
            tags.append(f"rot {float(s['rotation']):+.0f}")
        if s["flipped"]:
            tags.append("flip")
        panels.append(render_sample(s, ds.skeleton, ds.codec, label=" ".join(tags)))
    grid = tile_images(panels, cols=min(args.cols, len(panels)))
    if args.scale != 1.0:
        grid = cv2.resize(grid, None, fx=args.scale, fy=args.scale, interpolation=cv2.INTER_AREA)
    out = save_png(grid, args.output, colors=args.colors)
    size_kb = out.stat().st_size / 1024
    print(f"wrote {out} ({len(panels)} samples from {cfg.ann_file} [{cfg.split}], "
          f"{grid.shape[1]}x{grid.shape[0]} px, {size_kb:.0f} KB)")
    return 0
