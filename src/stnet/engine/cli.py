"""``stnet train``, ``stnet eval`` and ``stnet plot``."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from stnet.config import parse_overrides

__all__ = ["register"]


def _cfg(args: argparse.Namespace):
    from .config import load_config

    over = parse_overrides(args.set)
    if getattr(args, "output_dir", None):
        over["runtime.output_dir"] = args.output_dir
    return load_config(args.config, over)


def _train(args: argparse.Namespace) -> int:
    from .train import train

    cfg = _cfg(args)
    if args.print_config:
        import yaml

        from .config import config_to_dict

        print(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), end="")
        return 0
    summary = train(cfg, resume=args.resume)
    if summary.get("best_metric") is not None:
        print(f"done: best {summary['metric_name']} {summary['best_metric']:.4f}; run dir {summary['run_dir']}")
    return 0


#: Files ``stnet eval`` writes into its output folder.
EVAL_FILES = ("metrics.json", "predictions_raw.npz", "keypoints_results.json")


def _refuse_eval_overwrite(cfg: Any, args: argparse.Namespace, out: Path) -> None:
    """The eval outputs are never the checkpoint, the recipe or the validation files it reads."""
    from stnet.io import refuse_overwrite

    from .config import resolve_data_path

    inputs: dict[str, Any] = {"--checkpoint": args.checkpoint, "recipe": args.config}
    for field in ("ann_file", "det_file"):
        try:
            inputs[f"val.{field}"] = resolve_data_path(cfg, getattr(cfg.val, field, None), f"val.{field}")
        except FileNotFoundError:
            pass  # the evaluation reports it where it reads the file
    refuse_overwrite({f"--output-dir ({n})": out / n for n in EVAL_FILES}, inputs)


def _eval(args: argparse.Namespace) -> int:
    from .train import evaluate_checkpoint

    cfg = _cfg(args)
    ck = Path(args.checkpoint)
    # default: next to the checkpoint (inside a run directory); a shipped name: ./eval
    out = Path(args.output_dir) if args.output_dir else (ck if ck.is_dir() else ck.resolve().parent) / "eval"
    _refuse_eval_overwrite(cfg, args, out)
    metrics = evaluate_checkpoint(cfg, args.checkpoint, output_dir=out, use_ema=not args.no_ema)
    if args.json:
        print(json.dumps({k: v for k, v in metrics.items() if isinstance(v, (int, float))}))
    print(f"metrics.json and raw predictions written to {out}")
    return 0


def _plot(args: argparse.Namespace) -> int:
    from .plot import plot_run

    print(plot_run(args.run_dir, args.out))
    return 0


def _read_metrics_json(path: str) -> dict[str, Any]:
    """``pack --metrics``: a json object of finite numbers (or nested objects / strings)."""
    def refuse(const: str) -> Any:
        raise ValueError(f"--metrics {path}: {const} is not a metric value (expected finite numbers)")

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"), parse_constant=refuse)
    except json.JSONDecodeError as e:
        raise ValueError(f"--metrics {path}: not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"--metrics {path}: expected a json object of metrics, got {type(data).__name__}")
    return data


def _pack(args: argparse.Namespace) -> int:
    from .pack import pack_weights

    metrics = _read_metrics_json(args.metrics) if args.metrics else None
    pt, js = pack_weights(args.checkpoint, args.name, out_dir=args.out_dir, command=args.recipe_command,
                          metrics=metrics, use_ema=not args.no_ema, notes=args.notes, overwrite=args.overwrite)
    print(f"wrote {pt} ({pt.stat().st_size / 1e6:.1f} MB) and {js}")
    return 0


def _cache(args: argparse.Namespace) -> int:
    from stnet.data.build import build_skeleton, load_records
    from stnet.data.crop_cache import build_crop_cache, check_cache_resolution
    from stnet.io import refuse_overwrite

    from .build import resolve_data_config

    cfg = _cfg(args)
    check_cache_resolution(args.resolution)
    splits: dict[str, Any] = {}
    for name in args.splits:
        dc = resolve_data_config(cfg, getattr(cfg, name), name)
        refuse_overwrite({"-o": args.output}, {"recipe": args.config, f"{name} ann_file": dc.ann_file or None})
        if dc.kind == "cache":
            raise ValueError(f"{name}: the recipe already reads a crop cache ({dc.ann_file})")
        splits[name] = load_records(dc, build_skeleton(dc))
        if name == "train" and cfg.runtime.limit_train:
            splits[name] = splits[name][: cfg.runtime.limit_train]
        if name == "val" and cfg.runtime.limit_val:
            splits[name] = splits[name][: cfg.runtime.limit_val]
    refuse_overwrite({"-o": args.output}, {f"{n} image": [r.image_path for r in recs] for n, recs in splits.items()})
    dc = resolve_data_config(cfg, cfg.train, "train")
    summary = build_crop_cache(splits, build_skeleton(dc), args.output, input_size=cfg.input_size,
                               resolution=args.resolution, margin=args.margin, quality=args.quality,
                               bbox_padding=dc.bbox_padding, source=str(args.config))
    print(f"wrote {summary['path']}: {summary['persons']} persons, {summary['bytes'] / 2**20:.1f} MiB, crops "
          f"{summary['crop_size'][0]}x{summary['crop_size'][1]}"
          + (f"; {summary['skipped_images']} unreadable images left out" if summary["skipped_images"] else ""))
    print(f"train from it: stnet train {args.config} --set train.kind=cache --set train.ann_file={args.output} "
          f"--set val.kind=cache --set val.ann_file={args.output}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train a model from a recipe (CPU, GPU, or torchrun DDP)",
                              description="Train from a recipe YAML (overrides of the defaults in "
                                          "stnet.engine.config). Run under `torchrun --nproc_per_node N` "
                                          "for DDP.")
    p.add_argument("config", help="recipe YAML (configs/*.yaml) or a run's config.yaml")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", default=[],
                   help="override a config field, dotted (optim.lr=5e-4, runtime.amp=bf16); repeatable")
    p.add_argument("--resume", metavar="PATH|auto", default=None,
                   help="continue from a checkpoint, or 'auto': RUN_DIR/last.pt if it exists")
    p.add_argument("--output-dir", metavar="DIR", default=None, help="run directory (runtime.output_dir)")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved config (recipe + --set, every value typed) as YAML and exit "
                        "without training")
    p.set_defaults(func=_train)

    e = subparsers.add_parser("eval", help="evaluate a checkpoint on the recipe's validation split",
                              description="Evaluate with the task's protocol (COCO AP / PCKh / PCK); "
                                          "writes metrics.json and raw predictions.")
    e.add_argument("config")
    e.add_argument("--checkpoint", required=True, metavar="REF",
                   help="checkpoint file, run directory, weights pack (+ .json) or shipped weights name")
    e.add_argument("--set", action="append", metavar="KEY=VALUE", default=[])
    e.add_argument("--output-dir", metavar="DIR", default=None,
                   help="where to write metrics.json and predictions (default: CHECKPOINT_DIR/eval)")
    e.add_argument("--no-ema", action="store_true", help="use the raw weights even if EMA weights exist")
    e.add_argument("--json", action="store_true", help="also print the metrics as one JSON object")
    e.set_defaults(func=_eval)

    q = subparsers.add_parser("plot", help="plot loss and validation metric of a run (curves.png)")
    q.add_argument("run_dir")
    q.add_argument("--out", default=None, help="output PNG (default RUN_DIR/curves.png)")
    q.set_defaults(func=_plot)

    c = subparsers.add_parser(
        "cache", help="pack a recipe's person crops (JPEG + keypoints) into one file for fast training",
        description="Cut every person of the recipe's train/val splits once, with room for augmentation, "
                    "and store the crops as JPEG bytes with keypoints, boxes and splits in one .npz. Train "
                    "from it with train.kind=cache / val.kind=cache (see docs/training.md). Useful when images "
                    "must travel (a rented GPU) or the image folder is large.")
    c.add_argument("config", help="recipe YAML whose train/val splits are cached")
    c.add_argument("-o", "--output", required=True, help="cache file to write (.npz)")
    c.add_argument("--set", action="append", metavar="KEY=VALUE", default=[])
    c.add_argument("--splits", nargs="+", choices=["train", "val"], default=["train", "val"])
    c.add_argument("--resolution", type=float, default=1.5,
                   help="crop size as a multiple of the model input (default 1.5)")
    c.add_argument("--margin", type=float, default=1.4,
                   help="crop region as a multiple of the padded person region, room for scale/rotation "
                        "augmentation (default 1.4)")
    c.add_argument("--quality", type=int, default=85, help="JPEG quality 1-100 (default 85)")
    c.set_defaults(func=_cache)

    k = subparsers.add_parser("pack", help="package a checkpoint as shipped fp16 weights + metadata json")
    k.add_argument("checkpoint", help="training checkpoint (best.pt / last.pt)")
    k.add_argument("--name", required=True, help="weights name, e.g. stnet_1s.lspet_128x96")
    k.add_argument("--out-dir", default=None, help="default: the package's stnet/weights folder")
    k.add_argument("--command", dest="recipe_command", default="",
                   help="the command that trained it (stored in the metadata)")
    k.add_argument("--metrics", default=None, help="json file of metrics to store (default: best metric)")
    k.add_argument("--notes", default="")
    k.add_argument("--overwrite", action="store_true", help="replace an existing pack of that name")
    k.add_argument("--no-ema", action="store_true", help="pack the raw weights even if EMA weights exist")
    k.set_defaults(func=_pack)
