"""Shipped weights: where they live, their names, and their integrity check.

``stnet/weights/<name>.pt`` (fp16 ``state_dict``) + ``<name>.json`` (model, skeleton, input size,
normalisation, codec, metrics, sha256). Both the inference API and the training engine (warm
start from a shipped name) read them through this module, which imports neither.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["WEIGHTS_DIR", "list_pretrained", "sha256_file", "shipped_weights", "is_shipped_name"]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def list_pretrained() -> list[str]:
    """Names of weights shipped in ``stnet/weights`` (``<name>.pt`` + ``<name>.json``)."""
    if not WEIGHTS_DIR.is_dir():
        return []
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.pt") if p.with_suffix(".json").is_file())


def is_shipped_name(ref: str | os.PathLike) -> bool:
    """True when ``ref`` names shipped weights and is not also an existing file or folder."""
    s = str(ref)
    return not Path(s).exists() and s in list_pretrained()


def shipped_weights(name: str) -> tuple[Path, dict[str, Any]]:
    """``(path of the .pt, metadata)`` of shipped weights ``name``, sha256-checked."""
    pt, meta = WEIGHTS_DIR / f"{name}.pt", WEIGHTS_DIR / f"{name}.json"
    if not (pt.is_file() and meta.is_file()):
        raise FileNotFoundError(
            f"no shipped weights named {name!r}; available: {', '.join(list_pretrained()) or 'none yet'}")
    info = json.loads(meta.read_text(encoding="utf-8"))
    if info.get("sha256"):
        digest = sha256_file(pt)
        if digest != info["sha256"]:
            raise ValueError(f"shipped weights {pt} are corrupted: sha256 {digest} does not match "
                             f"{info['sha256']} in {meta.name}; reinstall stnet")
    return pt, info
