"""Keypoint layouts ("skeletons") as data.

Every piece of code that needs a joint order, flip pairs or OKS sigmas gets it from a
:class:`Skeleton`; nothing else in the library hard-codes them.

Built-in layouts (``list_skeletons()``):

============  ===  ===========================================================================
name          K    source of the numbers
============  ===  ===========================================================================
coco17        17   COCO keypoint order; the official COCO OKS sigmas (cocoapi); joint weights
                   and upper/lower split of the standard top-down recipe (HRNet / mmpose).
mpii16        16   MPII order; OKS sigmas and joint weights as mmpose uses them (MPII has no
                   official OKS; mmpose "adapted from COCO").
lsp14         14   LSP order (R ankle ... head top); sigmas taken joint-by-joint from mmpose's
                   MPII values (neck = upper neck, head top = head top); LSP has no official OKS.
crowdpose14   14   CrowdPose order; the official CrowdPose OKS sigmas (crowdposeapi).
============  ===  ===========================================================================

Custom layouts load from the categories of a COCO-format json plus an optional small YAML/JSON
"meta" file, see :func:`skeleton_from_coco`.
"""
from __future__ import annotations

import difflib
import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..io import read_json

__all__ = [
    "Skeleton",
    "get_skeleton",
    "list_skeletons",
    "register_skeleton",
    "skeleton_from_coco",
    "skeleton_to_dict",
    "skeleton_from_dict",
    "load_skeleton",
    "DEFAULT_SIGMA",
]

#: OKS sigma used for a custom keypoint when the meta file gives none. 0.05 lies between COCO's
#: face points (0.025-0.035) and its limb joints (0.062-0.107); a warning is always emitted
#: because OKS-based AP depends directly on it.
DEFAULT_SIGMA = 0.05


@dataclass(frozen=True)
class Skeleton:
    """One keypoint layout.

    ``flip_pairs`` are unordered ``(left, right)`` index pairs swapped by a horizontal flip;
    ``links`` are index pairs drawn as bones. ``sigmas`` are OKS sigmas (the per-keypoint
    constants of COCO's OKS, *not* heatmap Gaussian sigmas).
    """

    name: str
    keypoint_names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    sigmas: tuple[float, ...]
    joint_weights: tuple[float, ...]
    upper_body_ids: tuple[int, ...]
    lower_body_ids: tuple[int, ...]
    links: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        k = len(self.keypoint_names)
        where = f"skeleton {self.name!r}"
        if k == 0:
            raise ValueError(f"{where}: no keypoints")
        if len(set(self.keypoint_names)) != k:
            dup = sorted({n for n in self.keypoint_names if self.keypoint_names.count(n) > 1})
            raise ValueError(f"{where}: duplicate keypoint names {dup}")
        for field_name in ("sigmas", "joint_weights"):
            values = getattr(self, field_name)
            if len(values) != k:
                raise ValueError(f"{where}: {field_name} has {len(values)} values for {k} keypoints")
        if any(not (s > 0) for s in self.sigmas):
            raise ValueError(f"{where}: OKS sigmas must be > 0, got {self.sigmas}")
        if any(w < 0 for w in self.joint_weights):
            raise ValueError(f"{where}: joint_weights must be >= 0, got {self.joint_weights}")
        seen: set[int] = set()
        for a, b in self.flip_pairs:
            for i in (a, b):
                if not 0 <= i < k:
                    raise ValueError(f"{where}: flip pair {(a, b)} index {i} out of range 0..{k - 1}")
            if a == b:
                raise ValueError(f"{where}: flip pair {(a, b)} pairs a keypoint with itself")
            if a in seen or b in seen:
                raise ValueError(f"{where}: keypoint in more than one flip pair {(a, b)}")
            seen.update((a, b))
        for group in ("upper_body_ids", "lower_body_ids", "links"):
            flat = np.asarray(getattr(self, group), dtype=np.int64).ravel()
            if flat.size and (flat.min() < 0 or flat.max() >= k):
                raise ValueError(f"{where}: {group} has an index outside 0..{k - 1}")

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoint_names)

    @property
    def flip_index(self) -> tuple[int, ...]:
        """Permutation for a horizontal flip: new keypoint ``i`` takes old ``flip_index[i]``,
        i.e. ``flipped = keypoints[..., flip_index, :]``. It is its own inverse."""
        idx = list(range(self.num_keypoints))
        for a, b in self.flip_pairs:
            idx[a], idx[b] = b, a
        return tuple(idx)

    def sigmas_array(self) -> np.ndarray:
        """OKS sigmas as float64 ``(K,)``."""
        return np.asarray(self.sigmas, dtype=np.float64)

    def joint_weights_array(self) -> np.ndarray:
        """Joint (loss) weights as float32 ``(K,)``."""
        return np.asarray(self.joint_weights, dtype=np.float32)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (see :func:`skeleton_to_dict`), for modules that cannot import this one."""
        return skeleton_to_dict(self)

    def index(self, keypoint_name: str) -> int:
        """Index of a keypoint by name; KeyError with a suggestion when unknown."""
        try:
            return self.keypoint_names.index(keypoint_name)
        except ValueError:
            hint = difflib.get_close_matches(keypoint_name, self.keypoint_names, n=1)
            raise KeyError(f"skeleton {self.name!r} has no keypoint {keypoint_name!r}"
                           + (f"; did you mean {hint[0]!r}?" if hint else "")) from None


# ----------------------------------------------------------------------------- built-ins

_COCO_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)
COCO17 = Skeleton(
    name="coco17",
    keypoint_names=_COCO_NAMES,
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    # Official cocoapi values (cocoeval.py: kpt_oks_sigmas = [...] / 10).
    sigmas=(0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062,
            0.107, 0.107, 0.087, 0.087, 0.089, 0.089),
    joint_weights=(1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.2, 1.2, 1.5, 1.5,
                   1.0, 1.0, 1.2, 1.2, 1.5, 1.5),
    upper_body_ids=tuple(range(11)),
    lower_body_ids=tuple(range(11, 17)),
    links=((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6),
           (5, 7), (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6)),
)

_MPII_NAMES = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
    "pelvis", "thorax", "upper_neck", "head_top",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
)
MPII16 = Skeleton(
    name="mpii16",
    keypoint_names=_MPII_NAMES,
    flip_pairs=((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)),
    # mmpose configs/_base_/datasets/mpii.py ("adapted from COCO").
    sigmas=(0.089, 0.083, 0.107, 0.107, 0.083, 0.089, 0.026, 0.026, 0.026, 0.026,
            0.062, 0.072, 0.179, 0.179, 0.072, 0.062),
    joint_weights=(1.5, 1.2, 1.0, 1.0, 1.2, 1.5, 1.0, 1.0, 1.0, 1.0, 1.5, 1.2, 1.0, 1.0, 1.2, 1.5),
    upper_body_ids=(7, 8, 9, 10, 11, 12, 13, 14, 15),
    lower_body_ids=(0, 1, 2, 3, 4, 5, 6),
    links=((0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9),
           (8, 12), (12, 11), (11, 10), (8, 13), (13, 14), (14, 15)),
)

_LSP_NAMES = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
    "neck", "head_top",
)
_mpii_sigma = dict(zip(_MPII_NAMES, MPII16.sigmas))
_mpii_weight = dict(zip(_MPII_NAMES, MPII16.joint_weights))
_LSP_AS_MPII = {**{n: n for n in _LSP_NAMES}, "neck": "upper_neck"}
LSP14 = Skeleton(
    name="lsp14",
    keypoint_names=_LSP_NAMES,
    flip_pairs=((0, 5), (1, 4), (2, 3), (6, 11), (7, 10), (8, 9)),
    # LSP has no official OKS sigmas: same joint, same value as mmpose's MPII table.
    sigmas=tuple(_mpii_sigma[_LSP_AS_MPII[n]] for n in _LSP_NAMES),
    joint_weights=tuple(_mpii_weight[_LSP_AS_MPII[n]] for n in _LSP_NAMES),
    upper_body_ids=(6, 7, 8, 9, 10, 11, 12, 13),
    lower_body_ids=(0, 1, 2, 3, 4, 5),
    links=((0, 1), (1, 2), (2, 8), (3, 9), (3, 4), (4, 5), (2, 3), (8, 9),
           (6, 7), (7, 8), (9, 10), (10, 11), (8, 12), (9, 12), (12, 13)),
)

_CROWDPOSE_NAMES = (
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "top_head", "neck",
)
CROWDPOSE14 = Skeleton(
    name="crowdpose14",
    keypoint_names=_CROWDPOSE_NAMES,
    flip_pairs=((0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11)),
    # Official crowdposeapi values (COCO's limb sigmas; head top and neck 0.079).
    sigmas=(0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087,
            0.089, 0.089, 0.079, 0.079),
    # The same per-joint weights as coco17 (mmpose's crowdpose table is not left/right symmetric,
    # which a flip-augmented loss cannot honour, so it is not used).
    joint_weights=(1.0, 1.0, 1.2, 1.2, 1.5, 1.5, 1.0, 1.0, 1.2, 1.2, 1.5, 1.5, 1.0, 1.0),
    upper_body_ids=(0, 1, 2, 3, 4, 5, 12, 13),
    lower_body_ids=(6, 7, 8, 9, 10, 11),
    links=((10, 8), (8, 6), (11, 9), (9, 7), (6, 7), (0, 6), (1, 7), (0, 1),
           (0, 2), (1, 3), (2, 4), (3, 5), (12, 13), (13, 0), (13, 1)),
)

_SKELETONS: dict[str, Skeleton] = {s.name: s for s in (COCO17, MPII16, LSP14, CROWDPOSE14)}
# Common spellings users type; they resolve to the canonical names above.
_ALIASES = {"coco": "coco17", "mpii": "mpii16", "lsp": "lsp14", "lspet": "lsp14",
            "crowdpose": "crowdpose14"}


def list_skeletons() -> list[str]:
    """Names accepted by :func:`get_skeleton` (aliases such as ``"coco"`` not included)."""
    return sorted(_SKELETONS)


def get_skeleton(name: str | Skeleton) -> Skeleton:
    """Built-in or registered skeleton by name (a Skeleton passes through unchanged).

    Unknown names raise KeyError with a "did you mean" suggestion.
    """
    if isinstance(name, Skeleton):
        return name
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    try:
        return _SKELETONS[key]
    except KeyError:
        pass
    hint = difflib.get_close_matches(key, list(_SKELETONS) + list(_ALIASES), n=1)
    suggestion = f"; did you mean {_ALIASES.get(hint[0], hint[0])!r}?" if hint else ""
    raise KeyError(f"unknown skeleton {name!r}{suggestion} (known: {', '.join(list_skeletons())})")


def skeleton_to_dict(skeleton: Skeleton) -> dict[str, Any]:
    """Plain data (strings, numbers, lists) of a layout: what checkpoints, packs and ONNX metadata
    store so a model carries its skeleton; :func:`skeleton_from_dict` reads it back."""
    return {"name": skeleton.name, "keypoint_names": list(skeleton.keypoint_names),
            "flip_pairs": [list(p) for p in skeleton.flip_pairs], "sigmas": [float(v) for v in skeleton.sigmas],
            "joint_weights": [float(v) for v in skeleton.joint_weights],
            "upper_body_ids": list(skeleton.upper_body_ids), "lower_body_ids": list(skeleton.lower_body_ids),
            "links": [list(p) for p in skeleton.links]}


def skeleton_from_dict(data: Mapping[str, Any], where: str = "skeleton") -> Skeleton:
    """The inverse of :func:`skeleton_to_dict`; ``where`` names the source in errors. Only
    ``keypoint_names`` is required (sigmas default to :data:`DEFAULT_SIGMA`, weights to 1)."""
    if not isinstance(data, Mapping) or not isinstance(data.get("keypoint_names"), (list, tuple)):
        raise ValueError(f"{where}: expected a mapping with a 'keypoint_names' list")
    names = tuple(str(n) for n in data["keypoint_names"])
    k = len(names)
    try:
        return Skeleton(
            name=str(data.get("name") or "custom"), keypoint_names=names,
            flip_pairs=tuple((int(a), int(b)) for a, b in data.get("flip_pairs") or ()),
            sigmas=tuple(float(v) for v in data.get("sigmas") or (DEFAULT_SIGMA,) * k),
            joint_weights=tuple(float(v) for v in data.get("joint_weights") or (1.0,) * k),
            upper_body_ids=tuple(int(v) for v in data.get("upper_body_ids") or ()),
            lower_body_ids=tuple(int(v) for v in data.get("lower_body_ids") or ()),
            links=tuple((int(a), int(b)) for a, b in data.get("links") or ()))
    except (TypeError, ValueError, OverflowError) as e:  # OverflowError: int(inf), an index past C long
        raise ValueError(f"{where}: {e}") from None


def load_skeleton(ref: str | Path | Skeleton) -> Skeleton:
    """A built-in / registered skeleton name, or a YAML/JSON file holding :func:`skeleton_to_dict`'s
    fields (what ``--skeleton`` accepts)."""
    if isinstance(ref, Skeleton):
        return ref
    p = Path(ref)
    if p.suffix.lower() in (".yaml", ".yml", ".json"):
        if not p.is_file():
            raise FileNotFoundError(f"--skeleton {p}: file not found")
        return skeleton_from_dict(_load_meta(p), where=str(p))
    return get_skeleton(str(ref))


def register_skeleton(skeleton: Skeleton, *, overwrite: bool = False) -> Skeleton:
    """Make a custom skeleton available to :func:`get_skeleton` under ``skeleton.name``."""
    if skeleton.name in _SKELETONS and not overwrite and _SKELETONS[skeleton.name] != skeleton:
        raise ValueError(f"a different skeleton named {skeleton.name!r} is already registered "
                         "(pass overwrite=True to replace it)")
    _SKELETONS[skeleton.name] = skeleton
    return skeleton


# ----------------------------------------------------------------------------- custom layouts

_SIDE = re.compile(r"(?<![a-z])(left|right|l|r)(?![a-z])", re.IGNORECASE)
_OTHER_SIDE = {"left": "right", "right": "left", "l": "r", "r": "l"}


def _mirror_name(name: str) -> str | None:
    """``left_wrist`` -> ``right_wrist``, ``L.hip`` -> ``R.hip``; None when no side token."""
    if not _SIDE.search(name):
        return None

    def swap(m: re.Match[str]) -> str:
        word = m.group(1)
        other = _OTHER_SIDE[word.lower()]
        return other.upper() if word.isupper() else (other.capitalize() if word[0].isupper() else other)

    return _SIDE.sub(swap, name)


def infer_flip_pairs(names: Sequence[str]) -> tuple[tuple[int, int], ...]:
    """Pairs of keypoints whose names differ only by a left/right token (``left``/``right``,
    ``l``/``r`` as separate words: ``left_eye``, ``l_hip``, ``hand.L``)."""
    pairs = []
    for i, n in enumerate(names):
        m = _mirror_name(n)
        if m is not None and m != n and m in names:
            j = list(names).index(m)
            if i < j:
                pairs.append((i, j))
    return tuple(pairs)


def _load_meta(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            from stnet.config import load_yaml

            data = load_yaml(text, str(path))
    except ValueError as e:
        if str(e).startswith(str(path)):
            raise
        raise ValueError(f"{path}: cannot parse skeleton meta file: {e}") from None
    except Exception as e:  # json/yaml errors carry line numbers worth showing
        raise ValueError(f"{path}: cannot parse skeleton meta file: {e}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: skeleton meta must be a mapping (keys: flip_pairs, sigmas, ...), "
                         f"got {type(data).__name__}")
    return data


def _as_index(item: Any, names: Sequence[str], where: str) -> int:
    if isinstance(item, str):
        if item not in names:
            hint = difflib.get_close_matches(item, names, n=1)
            raise ValueError(f"{where}: unknown keypoint name {item!r}"
                             + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        return list(names).index(item)
    if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
        return int(item)
    raise ValueError(f"{where}: expected a keypoint index or name, got {item!r}")


def _pairs(value: Any, names: Sequence[str], where: str) -> tuple[tuple[int, int], ...]:
    out = []
    for p in value or ():
        if not isinstance(p, (list, tuple)) or len(p) != 2:
            raise ValueError(f"{where}: expected pairs [a, b], got {p!r}")
        out.append((_as_index(p[0], names, where), _as_index(p[1], names, where)))
    return tuple(out)


def _per_keypoint(value: Any, names: Sequence[str], default: float, where: str,
                  warn_missing: bool) -> tuple[float, ...]:
    """Accept a list (one per keypoint) or a ``{name: value}`` mapping; fill gaps with default."""
    k = len(names)
    if value is None:
        if warn_missing:
            warnings.warn(f"{where}: no OKS sigmas given; using DEFAULT_SIGMA={default} for all "
                          f"{k} keypoints (OKS/AP values depend on this, set 'sigmas' in the meta "
                          "file)", UserWarning, stacklevel=3)
        return (float(default),) * k
    if isinstance(value, Mapping):
        unknown = [n for n in value if n not in names]
        if unknown:
            raise ValueError(f"{where}: unknown keypoint name(s) {unknown}")
        missing = [n for n in names if n not in value]
        if missing and warn_missing:
            warnings.warn(f"{where}: no OKS sigma for {missing}; using DEFAULT_SIGMA={default}",
                          UserWarning, stacklevel=3)
        return tuple(float(value.get(n, default)) for n in names)
    values = [float(v) for v in value]
    if len(values) != k:
        raise ValueError(f"{where}: {len(values)} values for {k} keypoints {list(names)}")
    return tuple(values)


def skeleton_from_coco(ann_json_path: str | Path, meta_path: str | Path | None = None,
                       *, category_id: int | None = None) -> Skeleton:
    """Custom layout from the keypoint category of a COCO-format json plus an optional meta file.

    The json gives keypoint names (``categories[i].keypoints``) and drawing links
    (``categories[i].skeleton``, 1-based as in COCO). The meta YAML/JSON may set::

        name: my_layout                      # default: the category name
        flip_pairs: [[left_eye, right_eye]]  # names or 0-based indices; default: inferred
                                             #   from left/right in the names
        sigmas: [0.025, ...]                 # list, or {keypoint_name: sigma}; default 0.05
        joint_weights: [...]                 # default 1.0
        upper_body_ids: [...]                # names or indices; default: none (no half-body)
        lower_body_ids: [...]
        links: [[a, b], ...]                 # overrides the json's skeleton

    Missing sigmas fall back to :data:`DEFAULT_SIGMA` with a warning, never to zero.
    """
    path = Path(ann_json_path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: annotation file not found")
    data = read_json(path)
    cats = data.get("categories") if isinstance(data, dict) else None
    if not cats:
        raise ValueError(f"{path}: not a COCO keypoints json (no 'categories')")
    kp_cats = [c for c in cats if isinstance(c, dict) and c.get("keypoints")]
    if category_id is not None:
        kp_cats = [c for c in kp_cats if c.get("id") == category_id]
    if not kp_cats:
        what = f"category id {category_id}" if category_id is not None else "any category"
        raise ValueError(f"{path}: not a COCO keypoints json ({what} lacks a 'keypoints' list)")
    if len(kp_cats) > 1:
        raise ValueError(f"{path}: {len(kp_cats)} keypoint categories; pass category_id= one of "
                         f"{[c.get('id') for c in kp_cats]}")
    cat = kp_cats[0]
    names = tuple(str(n) for n in cat["keypoints"])
    k = len(names)

    meta: dict[str, Any] = {}
    if meta_path is not None:
        meta = _load_meta(Path(meta_path))
    where = str(meta_path) if meta_path is not None else str(path)
    known = {"name", "flip_pairs", "sigmas", "joint_weights", "upper_body_ids", "lower_body_ids",
             "links"}
    unknown = sorted(set(meta) - known)
    if unknown:
        raise ValueError(f"{where}: unknown meta key(s) {unknown}; valid: {sorted(known)}")

    if "links" in meta:
        links = _pairs(meta["links"], names, where)
    else:
        raw = cat.get("skeleton") or []
        links = tuple((int(a) - 1, int(b) - 1) for a, b in raw)  # COCO's skeleton is 1-based
    if "flip_pairs" in meta:
        flip_pairs = _pairs(meta["flip_pairs"], names, where)
    else:
        flip_pairs = infer_flip_pairs(names)
    sigmas = _per_keypoint(meta.get("sigmas"), names, DEFAULT_SIGMA, where, warn_missing=True)
    weights = _per_keypoint(meta.get("joint_weights"), names, 1.0, where, warn_missing=False)
    upper = tuple(_as_index(i, names, where) for i in meta.get("upper_body_ids") or ())
    lower = tuple(_as_index(i, names, where) for i in meta.get("lower_body_ids") or ())
    name = str(meta.get("name") or cat.get("name") or path.stem)
    assert len(sigmas) == k
    return Skeleton(name=name, keypoint_names=names, flip_pairs=flip_pairs, sigmas=sigmas,
                    joint_weights=weights, upper_body_ids=upper, lower_body_ids=lower, links=links)
