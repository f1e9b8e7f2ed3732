"""Model files: where shipped weights live, their names and integrity check, and reading any model file.

:func:`load_model_ref` is the one loader of a model reference as a user names it (a shipped name,
a pack ``x.safetensors`` / ``x.pt`` + ``x.json``, a training checkpoint or run directory, an
exported ``.onnx`` graph, plain or with decoding, an OpenVINO IR ``.xml``): it says which kind it is
and reads what the file knows about itself, its :class:`~stnet.card.ModelCard`, into a
:class:`ModelFile`. Networks are built from it by :func:`stnet.models.factory.build_network`.

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
import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

import torch

from .card import ModelCard, card_from_checkpoint
from .constants import GRAPH_METADATA_KEY, WEIGHTS_DIR
from .io import parse_json, read_json

__all__ = ["CheckpointError", "list_pretrained", "sha256_file", "shipped_weights", "is_shipped_name",
           "resolve_checkpoint", "pack_metadata", "resolve_weights", "load_state", "check_finite", "strip_prefix",
           "model_state", "state_num_joints", "ModelFile", "ModelKind", "load_model_ref", "read_graph_metadata",
           "openvino_model_metadata", "GRAPH_SUFFIXES", "PACK_SUFFIXES"]

#: Prefixes that wrappers put in front of every ``state_dict`` key: DDP, ``torch.compile``.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")

#: File suffixes of weights packs, the preferred first.
PACK_SUFFIXES = (".safetensors", ".pt")

#: File suffixes of exported graphs: ONNX, OpenVINO IR.
GRAPH_SUFFIXES = (".onnx", ".xml")



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
    info = read_json(meta, f"the card of shipped weights {name}")
    want = ModelCard.from_dict(info, where=str(meta)).provenance.get("sha256")
    if want:
        digest = sha256_file(pt)
        if digest != want:
            raise ValueError(f"shipped weights {pt} are corrupted: sha256 {digest} does not match "
                             f"{want} in {meta.name}; reinstall stnet")
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
        info = read_json(side, f"the sidecar of {p.name}")
    except ValueError as e:
        raise CheckpointError(str(e)) from None
    if not isinstance(info, dict) or not isinstance(info.get("model"), str):
        return None
    return info


def resolve_weights(ref: str | os.PathLike) -> Path:
    """The file behind a weights reference: a shipped name (sha256-checked) or a path as given."""
    return shipped_weights(str(ref))[0] if is_shipped_name(ref) else Path(ref)


# ------------------------------------------------------------------------------ any model reference
ModelKind = Literal["shipped", "pack", "checkpoint", "onnx", "openvino"]


@dataclass(frozen=True)
class ModelFile:
    """What a model reference is and what its file says about itself (see :func:`load_model_ref`).

    ``kind``: ``"shipped"`` (weights shipped with stnet, sha256-checked), ``"pack"`` (``stnet pack``
    output with its json), ``"checkpoint"`` (a training checkpoint or bare ``state_dict``; a run
    directory resolves to its ``best.pt``, else ``last.pt``), ``"onnx"`` or ``"openvino"`` (an
    exported graph). ``path``: the weights file or the graph. ``state``: the :func:`load_state`
    dict for weights (None for a graph). ``card``: the :class:`~stnet.card.ModelCard` the file
    holds (an empty card for a bare ``state_dict`` or a graph without metadata)."""

    kind: ModelKind
    path: Path
    source: str
    card: ModelCard
    state: dict[str, Any] | None = None

    @property
    def is_graph(self) -> bool:
        """An exported graph (no weights to load into a network)."""
        return self.kind in ("onnx", "openvino")

    def weights(self, what: str) -> dict[str, Any]:
        """The weights (:func:`load_state` dict); ``what`` names the option in the error a graph gives."""
        if self.state is None:
            raise ValueError(f"{what} {self.source}: an exported {self.kind} graph holds no weights to load; "
                             "give a checkpoint, run directory, pack file or shipped weights name")
        return self.state


def load_model_ref(ref: str | os.PathLike, *, weights_dir: str | os.PathLike | None = None) -> ModelFile:
    """Identify and read any model reference (see the module docstring): an existing file or folder
    first, then a shipped weights name. Only data is read (:func:`load_state`'s rules; graphs are
    parsed, never run). Raises FileNotFoundError for a path that does not exist and KeyError for a
    name that is neither a file nor shipped weights, each naming the reference."""
    s = str(ref)
    p = Path(os.path.expanduser(s))
    if s.endswith(GRAPH_SUFFIXES):
        if not p.is_file():
            raise FileNotFoundError(f"{'ONNX model' if s.endswith('.onnx') else 'OpenVINO IR'} {s} not found")
        card = ModelCard.from_dict(read_graph_metadata(p), where=f"{p} metadata")
        return ModelFile("onnx" if p.suffix == ".onnx" else "openvino", p, s, card)
    if p.is_dir():
        p = resolve_checkpoint(p)
        state = load_state(p)
        return ModelFile("checkpoint", p, str(p), card_from_checkpoint(state, where=f"checkpoint {p}"), state)
    if p.is_file():
        info = pack_metadata(p)
        if info is None:
            state = load_state(p)
            return ModelFile("checkpoint", p, str(p), card_from_checkpoint(state, where=f"checkpoint {p}"), state)
        card = ModelCard.from_dict(info, where=str(p.with_suffix(".json")))
        want = card.provenance.get("sha256")
        if isinstance(want, str):  # shipped ones: checked by shipped_weights
            digest = sha256_file(p)
            if digest != want:
                raise ValueError(f"weights pack {p} does not match its json: sha256 {digest}, the json records "
                                 f"{want} (damaged or replaced; pack it again with stnet pack)")
        return ModelFile("pack", p, s, card, load_state(p))
    if s in list_pretrained(weights_dir):
        pt, info = shipped_weights(s, weights_dir)
        return ModelFile("shipped", pt, s, ModelCard.from_dict(info, where=str(pt.with_suffix(".json"))),
                         load_state(pt))
    if any(c in s for c in "/\\") or s.endswith((".pt", ".pth", ".ckpt", ".safetensors")):
        raise FileNotFoundError(f"checkpoint {s} not found")
    raise KeyError(f"{s!r} is neither a file, a run directory nor shipped weights "
                   f"(shipped: {', '.join(list_pretrained(weights_dir)) or 'none yet'})")


def read_graph_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``stnet`` card json of an exported graph: ONNX ``metadata_props`` (needs the ``onnx``
    package) or OpenVINO IR rt_info (needs ``openvino``); ``{}`` when there is none or the package
    to read it is missing (the graph still runs; the caller then needs the options it would give).
    ValueError naming the file and the key when the entry is there but not a JSON object."""
    p = Path(path)
    try:
        if p.suffix == ".xml":
            import openvino as ov

            model = ov.Core().read_model(str(p))
        else:
            import onnx

            props = onnx.load(str(p), load_external_data=False).metadata_props
    except Exception:  # noqa: BLE001 - metadata is optional; a broken graph fails where it is run
        return {}
    if p.suffix == ".xml":
        return openvino_model_metadata(model, where=str(p))
    for prop in props:
        if prop.key == GRAPH_METADATA_KEY:
            return _card_json(prop.value, f"{p} metadata {GRAPH_METADATA_KEY!r}")
    return {}


def openvino_model_metadata(model: Any, where: str = "OpenVINO model") -> dict[str, Any]:
    """The ``stnet`` card json of a loaded ``openvino.Model``: rt_info ``stnet`` (an IR ``stnet
    export`` wrote) or ``framework/stnet`` (an ONNX file's metadata_props, as OpenVINO reads them).
    ``where`` (the file) names it in the error for an entry that is not a JSON object."""
    for key in ([GRAPH_METADATA_KEY], ["framework", GRAPH_METADATA_KEY]):
        try:
            if not model.has_rt_info(key):
                continue
            text = model.get_rt_info(key).astype(str)
        except Exception:  # noqa: BLE001 - metadata is optional
            continue
        return _card_json(text, f"{where} metadata {'/'.join(key)!r}")
    return {}


def _card_json(text: str, where: str) -> dict[str, Any]:
    """The card a graph's metadata entry holds. One that is there but is not a JSON object is an
    error rather than "no card": running with the default skeleton, crop size and codec instead of
    the file's gives wrong keypoints without a word."""
    value = parse_json(text, f"{where} (export the model again)")
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected a JSON object (the model card), got {type(value).__name__}")
    return value


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
