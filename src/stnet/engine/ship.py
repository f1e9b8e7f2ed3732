"""Package a training checkpoint as shipped weights: ``stnet/weights/<name>.safetensors`` (fp16
``state_dict``; safetensors holds only tensors, so loading it can never run code) plus
``<name>.json`` (model, skeleton, input size, normalisation, codec, recipe command, metrics, sha256).
``PoseEstimator.from_pretrained(name)`` loads them offline and checks the sha256.

    stnet pack runs/lspet_cpu/best.pt --name stnet_1s.lspet_128x96 --command "stnet train ..."
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from stnet.hub import WEIGHTS_DIR, load_state, model_state, sha256_file
from stnet.io import OverwriteError, atomic_write, refuse_overwrite, same_file, write_text

__all__ = ["pack_weights", "check_weights_name", "sha256_file", "WEIGHTS_DIR"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def check_weights_name(name: str) -> None:
    """A weights name is one file name stem: packing ``../../x`` must not write outside ``out_dir``."""
    if not name or name != Path(name).name or name in (".", "..") or name.startswith(".") \
            or "/" in name or "\\" in name or "\0" in name:
        raise ValueError(f"--name {name!r}: a weights name is a plain file name (e.g. stnet_1s.lspet_128x96), "
                         "without folders, '..' or a leading '.'; choose the folder with --out-dir")


def pack_weights(checkpoint: str | os.PathLike, name: str, *, out_dir: str | os.PathLike | None = None,
                 command: str = "", metrics: dict[str, Any] | None = None, use_ema: bool = True,
                 notes: str = "", overwrite: bool = False) -> tuple[Path, Path]:
    """Write ``<out_dir>/<name>.safetensors`` and ``<name>.json`` from a training checkpoint; returns both paths.
    An existing pack of that name is replaced only with ``overwrite`` (never the checkpoint itself)."""
    check_weights_name(name)
    out = Path(out_dir) if out_dir is not None else WEIGHTS_DIR
    pt, js = out / f"{name}.safetensors", out / f"{name}.json"
    refuse_overwrite({"pack": pt, "pack json": js}, {"checkpoint": checkpoint})
    existing = [p for p in (pt, js) if p.exists()]
    if existing and not overwrite:
        shipped = " (weights shipped inside the stnet package)" if same_file(out, WEIGHTS_DIR) else ""
        raise OverwriteError(f"{existing[0]} already exists{shipped}; pass --overwrite to replace it, or choose "
                             "another --name / --out-dir")
    state = load_state(checkpoint)
    cfg = state.get("config")
    if not isinstance(cfg, dict):
        raise ValueError(f"checkpoint {checkpoint} has no training config; pack needs one written by stnet train")
    from_ema = bool(use_ema and state.get("ema"))
    sd = model_state(state, use_ema)
    # safetensors stores each tensor's own contiguous bytes (no shared storage, no views)
    half = {k: (v.half() if v.is_floating_point() else v).contiguous().clone() for k, v in sd.items()}
    model = cfg.get("model", {})
    val = cfg.get("val", {})
    meta = {
        "name": name,
        "model": model.get("name", "stnet_1s"),
        "overrides": {k: v for k, v in model.get("overrides", {}).items()},
        "skeleton": (state["skeleton"] or {}).get("name") if isinstance(state.get("skeleton"), dict)
        else val.get("skeleton") or cfg.get("train", {}).get("skeleton"),
        # the layout itself (names, flip pairs, sigmas, weights, links): custom skeletons travel too
        "skeleton_def": state.get("skeleton") if isinstance(state.get("skeleton"), dict) else None,
        "input_size": list(cfg.get("input_size") or val.get("input_size") or (256, 192)),
        "num_joints": int(half["head.weight"].shape[0]) if "head.weight" in half else None,
        "normalization": {"color": "RGB", "scale": "1/255", "mean": IMAGENET_MEAN, "std": IMAGENET_STD},
        "codec": cfg.get("codec", {}),
        "dtype": "float16",
        "weights": "ema" if from_ema else "model",
        "epoch": state.get("epoch"),
        "metrics": metrics if metrics is not None else {"best_metric": state.get("best_metric")},
        "recipe_command": command,
        "notes": notes,
    }
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(pt) as tmp:
        save_file(half, str(tmp), metadata={"format": "stnet-pack", "name": name})
    meta["sha256"] = sha256_file(pt)
    meta["size_bytes"] = pt.stat().st_size
    write_text(js, json.dumps(meta, indent=2) + "\n")
    return pt, js
