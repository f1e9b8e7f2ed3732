"""`stnet models` and `stnet complexity`."""
from __future__ import annotations

import argparse
import json
from typing import Any

from ..config import parse_overrides
from .complexity import CONVENTIONS, count_complexity
from ._registry import create_model, list_models


def parse_size(text: str) -> tuple[int, int]:
    """'256x192' -> (256, 192) as (H, W)."""
    try:
        h, w = (int(v) for v in text.lower().replace("*", "x").split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 256x192, got {text!r}") from None
    return h, w


def _model_kwargs(args: argparse.Namespace) -> dict:
    kw = parse_overrides(args.set)
    if args.num_joints is not None:
        kw["num_joints"] = args.num_joints
    if args.input_size is not None:
        kw["input_size"] = args.input_size
    return kw


def cmd_complexity(args: argparse.Namespace) -> int:
    kw = _model_kwargs(args)
    model = create_model(args.model, **kw)
    size = tuple(getattr(getattr(model, "cfg", None), "input_size", None) or args.input_size or (256, 192))
    c = count_complexity(model, size, convention=args.convention)
    if args.json:
        d = c.as_dict()
        d.update(model=args.model, overrides={k: v for k, v in kw.items()})
        print(json.dumps(d))
    else:
        h, w = size
        print(f"model        {args.model}" + (f"  ({', '.join(f'{k}={v}' for k, v in kw.items())})" if kw else ""))
        print(f"input        {h}x{w} (HxW)")
        print(f"params       {c.params:,} ({c.params / 1e6:.2f}M)")
        print(f"GFLOPs       {c.gflops:.3f}")
        print(f"convention   {c.convention}: {CONVENTIONS[c.convention]}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    rows = []
    for name in list_models():
        model = create_model(name)
        cfg: Any = model.cfg
        size = tuple(getattr(cfg, "input_size", (256, 192)))
        c = count_complexity(model, size)
        rows.append({"model": name, "input": f"{size[0]}x{size[1]}", "joints": cfg.num_joints,
                     "params_M": round(c.params / 1e6, 3), "gflops": round(c.gflops, 3)})
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{'model':<12} {'input':>8} {'joints':>6} {'params':>9} {'GFLOPs':>7}")
    for r in rows:
        print(f"{r['model']:<12} {r['input']:>8} {r['joints']:>6} {r['params_M']:>8.2f}M {r['gflops']:>7.2f}")
    print(f"GFLOPs convention: hrnet ({CONVENTIONS['hrnet']})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list registered models with parameters and GFLOPs")
    p.add_argument("--json", action="store_true", help="print a json list")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("complexity", help="parameters and GFLOPs of a model",
                       description="Count parameters and GFLOPs. Default convention 'hrnet' is the one "
                                   "the STNet/HRNet papers report (conv/linear MACs / 2**30).")
    p.add_argument("model", help="registered model name (stnet models lists them)")
    p.add_argument("--input-size", type=parse_size, default=None, metavar="HxW",
                   help="input size as HxW (default: the model config's, 256x192)")
    p.add_argument("--num-joints", type=int, default=None, metavar="K")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a model config field, e.g. --set mdbs=false (repeatable)")
    p.add_argument("--convention", choices=sorted(CONVENTIONS), default="hrnet")
    p.add_argument("--json", action="store_true", help="print one json object (params, gflops, ...)")
    p.set_defaults(func=cmd_complexity)
