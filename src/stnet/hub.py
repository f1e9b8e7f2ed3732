"""Weights: where shipped ones live, their names and integrity check, and reading any weights file.

``stnet/weights/<name>.safetensors`` (fp16 ``state_dict``) + ``<name>.json`` (model, skeleton, input
size, normalisation, codec, metrics, sha256) are the shipped weights (``<name>.pt`` packs written by
earlier versions are still read, safely). Both the inference API and the
training engine (resume, warm start, ``stnet eval``, ``stnet pack``) read weights through this
module, which imports neither of them.

:func:`load_state` is the one place a checkpoint file is deserialised; :func:`strip_prefix` the one
place wrapper prefixes (``module.`` from DDP, ``_orig_mod.`` from ``torch.compile``) are removed.

Trust: a weights file is data, never code. ``.safetensors`` files hold only tensors; ``.pt`` files
are read with ``torch.load(weights_only=True)``, which accepts tensors, numbers, strings, lists,
tuples and dicts and refuses (without running anything) a pickle that would import or call code.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
from pathlib import Path
from typing import Any, Mapping

import torch

__all__ = ["WEIGHTS_DIR", "DEFAULT_PRETRAINED", "CheckpointError", "list_pretrained", "default_model", "sha256_file",
           "shipped_weights", "is_shipped_name", "resolve_checkpoint", "pack_metadata", "resolve_weights",
           "load_state", "check_finite",
           "strip_prefix", "model_state", "state_num_joints"]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

#: Shipped weights ``stnet predict`` and :func:`default_model` use when no model is named.
DEFAULT_PRETRAINED = "stnet_1s.lspet_128x96"

#: Prefixes that wrappers put in front of every ``state_dict`` key: DDP, ``torch.compile``.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")

#: File suffixes of weights packs, the preferred first.
PACK_SUFFIXES = (".safetensors", ".pt")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used (missing, truncated, corrupted, not ours)."""


# ------------------------------------------------------------------------------ shipped weights
def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def list_pretrained(weights_dir: str | os.PathLike | None = None) -> list[str]:
    """Names of weights shipped in ``stnet/weights`` (``<name>.safetensors`` or ``.pt``, + ``<name>.json``)."""
    folder = Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR
    if not folder.is_dir():
        return []
    return sorted({p.name[:-len(p.suffix)] for suf in PACK_SUFFIXES for p in folder.glob("*" + suf)
                   if p.with_suffix(".json").is_file()})


def default_model() -> str:
    """The shipped default weights when present in this install, else the untrained ``stnet_1s``."""
    return DEFAULT_PRETRAINED if DEFAULT_PRETRAINED in list_pretrained() else "stnet_1s"


def is_shipped_name(ref: str | os.PathLike, weights_dir: str | os.PathLike | None = None) -> bool:
    """True when ``ref`` names shipped weights and is not also an existing file or folder."""
    s = str(ref)
    return not Path(s).exists() and s in list_pretrained(weights_dir)


def shipped_weights(name: str, weights_dir: str | os.PathLike | None = None) -> tuple[Path, dict[str, Any]]:
    """``(path of the weights file, metadata)`` of shipped weights ``name``, sha256-checked."""
    folder = Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR
    meta = folder / f"{name}.json"
    pt = next((folder / f"{name}{suf}" for suf in PACK_SUFFIXES if (folder / f"{name}{suf}").is_file()),
              folder / f"{name}{PACK_SUFFIXES[0]}")
    if not (pt.is_file() and meta.is_file()):
        raise FileNotFoundError(
            f"no shipped weights named {name!r}; available: {', '.join(list_pretrained(folder)) or 'none yet'}")
    info = json.loads(meta.read_text(encoding="utf-8"))
    if info.get("sha256"):
        digest = sha256_file(pt)
        if digest != info["sha256"]:
            raise ValueError(f"shipped weights {pt} are corrupted: sha256 {digest} does not match "
                             f"{info['sha256']} in {meta.name}; reinstall stnet")
    return pt, info


# ------------------------------------------------------------------------------ references
def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint file, or a run directory (``best.pt``, else ``last.pt``)."""
    p = Path(path)
    if p.is_dir():
        for name in ("best.pt", "last.pt"):
            if (p / name).is_file():
                return p / name
        raise FileNotFoundError(f"run directory {p} has no best.pt or last.pt")
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint {p} not found")
    return p


def pack_metadata(path: str | os.PathLike) -> dict[str, Any] | None:
    """The ``.json`` sidecar of a weights pack (``x.safetensors`` / ``x.pt`` + ``x.json`` naming the
    model), or None when ``path`` has none (a training checkpoint, a bare ``state_dict``)."""
    p = Path(path)
    side = p.with_suffix(".json")
    if p.suffix not in PACK_SUFFIXES or not side.is_file():
        return None
    try:
        info = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{side}: the sidecar of {p.name} is not valid JSON ({e})") from None
    if not isinstance(info, dict) or not isinstance(info.get("model"), str):
        return None
    return info


def resolve_weights(ref: str | os.PathLike) -> Path:
    """The file behind a weights reference: a shipped name (sha256-checked) or a path as given."""
    return shipped_weights(str(ref))[0] if is_shipped_name(ref) else Path(ref)


# ------------------------------------------------------------------------------ reading
def load_state(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint (``stnet train``'s ``best.pt`` / ``last.pt``, a ``.safetensors`` or ``.pt``
    weights pack, or any ``torch.save``-d ``state_dict``) into a dict with a ``model`` entry; a bare
    ``state_dict`` comes back as ``{"model": state_dict}``. Only data is read (see the module
    docstring). Raises :class:`CheckpointError` naming the file when it is missing, empty,
    truncated, corrupted, holds something else, or would need code to load."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes); it was not written completely")
    state = _read_safetensors(path, map_location) if path.suffix == ".safetensors" else _read_pickle(path, map_location)
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a dict")
    if "model" not in state:
        if state and all(isinstance(v, torch.Tensor) for v in state.values()):
            state = {"model": state}
        else:
            raise CheckpointError(f"checkpoint {path} has no 'model' entry (keys: {sorted(state)[:8]})")
    check_finite(state, path)
    return state


def check_finite(state: Mapping[str, Any], source: str | os.PathLike) -> None:
    """Refuse weights with NaN/inf values (a diverged run saved by other tools, a damaged file):
    they run without error and give confident, meaningless keypoints. Checks the floating-point
    tensors of ``model`` and ``ema``; raises :class:`CheckpointError` naming the first bad one."""
    for part in ("model", "ema"):
        weights = state.get(part)
        if not isinstance(weights, Mapping):
            continue
        for name, t in _tensors(weights):
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                n = int((~torch.isfinite(t)).sum())
                raise CheckpointError(f"checkpoint {source}: {part} tensor {name!r} has {n} NaN/inf value(s) "
                                      f"of {t.numel()}; the weights are unusable (a diverged training?)")


def _tensors(d: Mapping[str, Any], prefix: str = "") -> list[tuple[str, torch.Tensor]]:
    out: list[tuple[str, torch.Tensor]] = []
    for k, v in d.items():
        if isinstance(v, torch.Tensor):
            out.append((f"{prefix}{k}", v))
        elif isinstance(v, Mapping):  # EMA state: {"module": state_dict, "updates": ...}
            out.extend(_tensors(v, f"{prefix}{k}."))
    return out


def _read_safetensors(path: Path, map_location: Any) -> dict[str, Any]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device=str(map_location))
    except Exception as e:  # noqa: BLE001 - any header/length failure means the file is damaged
        raise CheckpointError(f"checkpoint {path} is truncated or corrupted and cannot be read "
                              f"({type(e).__name__}: {_first_line(e)})") from None


def _numpy_globals() -> list[Any]:
    """What a numpy array in a pickle needs: checkpoints before stnet 0.2 kept numpy's RNG state
    as an array. Array reconstruction builds only ``ndarray`` (no other class is allowed), so it
    runs no code of the file's choosing."""
    import numpy as np

    core = getattr(np, "_core", None) or np.core
    return [core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def _read_pickle(path: Path, map_location: Any) -> Any:
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        # torch names the import a pickle asked for ("GLOBAL posix.system"); anything else is damage
        needs = re.search(r"GLOBAL ([\w.]+)", str(e))
        if needs:
            raise CheckpointError(
                f"checkpoint {path} refused: it would import {needs.group(1)} to load; stnet reads only tensors, "
                "numbers, strings, lists and dicts from a file (torch.load weights_only=True), never code") from None
        raise CheckpointError(f"checkpoint {path} is truncated or corrupted and cannot be read "
                              "(not a readable torch file); use an earlier checkpoint (last.pt / best.pt)") from None
    except Exception as e:  # noqa: BLE001 - any unpickling/zip failure means the file is damaged
        raise CheckpointError(f"checkpoint {path} is truncated or corrupted and cannot be read "
                              f"({type(e).__name__}: {_first_line(e)}); "
                              "use an earlier checkpoint (last.pt / best.pt)") from None


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else ""


def strip_prefix(state_dict: Mapping[str, Any], prefixes: tuple[str, ...] = WRAPPER_PREFIXES) -> dict[str, Any]:
    """``state_dict`` without wrapper prefixes: a prefix is removed when *every* key carries it
    (a model's own submodule named ``module`` is left alone), repeatedly, so ``module._orig_mod.``
    (DDP around a compiled model) goes too."""
    sd = dict(state_dict)
    stripped = True
    while sd and stripped:
        stripped = False
        for pre in prefixes:
            if all(k.startswith(pre) for k in sd):
                sd = {k[len(pre):]: v for k, v in sd.items()}
                stripped = True
    return sd


def model_state(state: Mapping[str, Any], use_ema: bool = True) -> dict[str, Any]:
    """The weights to run from a :func:`load_state` dict: the EMA weights when present and
    ``use_ema``, else ``model``; wrapper prefixes stripped."""
    weights = state["model"]
    if use_ema and state.get("ema"):
        weights = state["ema"]
        if not all(isinstance(v, torch.Tensor) for v in weights.values()):  # {"module": state_dict, ...}
            weights = weights.get("module", weights.get("model", weights))
    return strip_prefix(weights)


def state_num_joints(state_dict: Mapping[str, Any]) -> int | None:
    """Output channels of the heatmap head (``head.weight``), when the weights have one."""
    w = state_dict.get("head.weight")
    return int(w.shape[0]) if isinstance(w, torch.Tensor) and w.ndim == 4 else None
