"""Where OKS sigmas come from: a skeleton name, a file, explicit values, or inferred from the GT.

OKS AP depends directly on the sigmas, so nothing here guesses: an unknown keypoint count with no
sigmas given is an error that says how to pass them.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence, Union

import numpy as np

__all__ = ["SigmaSpec", "resolve_sigmas", "load_sigmas_file"]

SigmaSpec = Union[str, Path, Sequence[float], np.ndarray, None]


def _check(values: np.ndarray, source: str, num_keypoints: int | None) -> np.ndarray:
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"{source}: expected a flat list of OKS sigmas, got shape {values.shape}")
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(f"{source}: OKS sigmas must be positive finite numbers, got {values.tolist()}")
    if num_keypoints is not None and values.size != num_keypoints:
        raise ValueError(f"{source}: {values.size} sigmas but the annotations have "
                         f"{num_keypoints} keypoints")
    return values


def load_sigmas_file(path: str | Path) -> np.ndarray:
    """Sigmas from ``.npy``, JSON (a list, or an object with ``"sigmas"``), or text (numbers
    separated by commas/whitespace)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: sigmas file not found")
    if p.suffix.lower() == ".npy":
        return np.asarray(np.load(p), dtype=np.float64).reshape(-1)
    text = p.read_text(encoding="utf-8")
    if p.suffix.lower() == ".json" or text.lstrip()[:1] in ("[", "{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{p}: not valid JSON: {e}") from None
        if isinstance(data, dict):
            if "sigmas" not in data:
                raise ValueError(f"{p}: JSON object without a 'sigmas' key")
            data = data["sigmas"]
        try:
            return np.asarray(data, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise ValueError(f"{p}: 'sigmas' must be a list of numbers") from None
    try:
        return np.asarray([float(t) for t in text.replace(",", " ").split()], dtype=np.float64)
    except ValueError:
        raise ValueError(f"{p}: expected numbers separated by commas or whitespace") from None


def _skeleton_sigmas(name: str) -> np.ndarray:
    from stnet.data.skeletons import get_skeleton

    return get_skeleton(name).sigmas_array()


def _known_skeletons() -> list[str]:
    try:
        from stnet.data.skeletons import list_skeletons
    except ImportError:  # pragma: no cover - data area absent from this build
        return []
    return list(list_skeletons())


def resolve_sigmas(spec: SigmaSpec = None, *, num_keypoints: int | None = None,
                   keypoint_names: Sequence[str] | None = None) -> tuple[np.ndarray, str]:
    """``(sigmas float64 (K,), description)``.

    ``spec`` may be explicit values, a skeleton name (``"coco17"``), or a file path. With
    ``spec=None`` the skeleton whose keypoint names equal ``keypoint_names`` is used, else
    coco17 when there are 17 keypoints; anything else is a ValueError.
    """
    if spec is not None and not isinstance(spec, (str, Path)):
        return _check(np.asarray(spec, dtype=np.float64).reshape(-1), "sigmas", num_keypoints), "given"
    if isinstance(spec, Path) or (isinstance(spec, str) and Path(spec).is_file()):
        return _check(load_sigmas_file(spec), str(spec), num_keypoints), f"file {spec}"
    if isinstance(spec, str):
        if spec.lower() in ("coco", "coco17") and num_keypoints in (None, 17):
            # pycocotools' own array ([.26, ...] / 10): the skeleton's literals (0.026, ...) differ
            # from it in the last bit, and parity with the official scorer should be bit-exact.
            from pycocotools.cocoeval import Params

            official = np.asarray(Params("keypoints").kpt_oks_sigmas, dtype=np.float64)
            try:
                mine = _skeleton_sigmas("coco17")
            except ImportError:  # pragma: no cover - data area absent from this build
                mine = official
            if not np.allclose(mine, official, rtol=0, atol=1e-12):
                raise ValueError(f"skeleton coco17 sigmas {mine.tolist()} differ from pycocotools' "
                                 f"{official.tolist()}")
            return _check(official.copy(), "coco17", num_keypoints), "coco17"
        try:
            sig = _skeleton_sigmas(spec)
        except KeyError as e:
            raise ValueError(f"--sigmas {spec!r}: neither a file nor a known skeleton ({e.args[0]})") from None
        return _check(sig, f"skeleton {spec!r}", num_keypoints), spec
    # Inference from the annotations.
    if keypoint_names is not None:
        from stnet.data.skeletons import get_skeleton

        for name in _known_skeletons():
            sk = get_skeleton(name)
            if tuple(sk.keypoint_names) == tuple(keypoint_names):
                return sk.sigmas_array(), f"{name} (matched keypoint names)"
    if num_keypoints == 17:
        return resolve_sigmas("coco17", num_keypoints=17)
    raise ValueError(f"cannot infer OKS sigmas for {num_keypoints} keypoints "
                     f"{list(keypoint_names) if keypoint_names is not None else ''}: pass sigmas "
                     f"explicitly (--sigmas one of {_known_skeletons()} or a file with one sigma "
                     "per keypoint)")
