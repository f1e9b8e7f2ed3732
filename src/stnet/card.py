"""What a model file is: :class:`ModelCard`, the one record every model file carries.

A card says which registered network the weights belong to (name and config overrides), the crop
size, the keypoint layout, the heatmap codec, the input normalisation, whether an exported graph
decodes keypoints itself (and takes crop->image matrices), where the weights came from and what
they scored. Training checkpoints (``card`` entry), packs (``x.json`` beside ``x.safetensors``),
ONNX graphs (``metadata_props["stnet"]``) and OpenVINO IRs (rt_info ``stnet``) all hold
:meth:`ModelCard.to_dict`, and :meth:`ModelCard.from_dict` reads each of them, including the files
earlier versions wrote (a pack json with top-level provenance, a graph's flattened codec, a
checkpoint holding only its training config: :func:`card_from_checkpoint`).

A card is plain data: it imports nothing of stnet beyond the constants, so every layer can read it.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, Mapping

from .constants import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["ModelCard", "CARD_VERSION", "card_from_checkpoint", "DEFAULT_NORMALIZATION"]

#: Version of :meth:`ModelCard.to_dict`'s layout (files without ``card_version`` are version 0).
CARD_VERSION = 1

DEFAULT_NORMALIZATION: dict[str, Any] = {"color": "RGB", "scale": "1/255", "mean": list(IMAGENET_MEAN),
                                         "std": list(IMAGENET_STD), "layout": "NCHW float32"}

#: Top-level keys of version-0 files that are provenance (who made the weights, how).
_PROVENANCE_KEYS = ("name", "dtype", "weights", "epoch", "recipe_command", "notes", "sha256", "size_bytes",
                    "untrained", "source", "bbox_padding")
#: Codec fields a version-0 graph stored flat beside ``"codec": kind``.
_FLAT_CODEC_KEYS = ("sigma", "heatmap_stride", "blur_kernel_size", "refine")


@dataclass(frozen=True)
class ModelCard:
    """What a model file is (see the module docstring). ``None`` / empty means "not known".

    ``model``/``overrides``: the registered network and its config overrides; ``input_size``:
    crop (H, W); ``num_joints``: heatmap channels; ``skeleton``: the layout's fields
    (``Skeleton.to_dict``), ``skeleton_name`` a built-in name when only that is known;
    ``codec``: ``CodecConfig`` fields; ``normalization``: how crops are normalised;
    ``decode``/``with_affine``: an exported graph outputs keypoints + scores (and takes
    ``affine`` crop->image matrices); ``provenance``: name, source, weights (ema/model), epoch,
    dtype, recipe command, notes, sha256, untrained...; ``metrics``: validation scores."""

    model: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    input_size: tuple[int, int] | None = None
    num_joints: int | None = None
    skeleton: dict[str, Any] | None = None
    skeleton_name: str | None = None
    codec: dict[str, Any] | None = None
    normalization: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_NORMALIZATION))
    decode: bool = False
    with_affine: bool = False
    provenance: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    version: int = CARD_VERSION

    @property
    def unbiased(self) -> bool:
        """The crop and heatmap geometry is UDP's (the default) rather than the classic one."""
        return (self.codec or {}).get("kind", "udp") != "msra"

    def replace(self, **changes: Any) -> ModelCard:
        return replace(self, **changes)

    # ------------------------------------------------------------------ writing
    def to_dict(self) -> dict[str, Any]:
        """Plain json-able data; :meth:`from_dict` reads it back. ``crop`` spells out how a person
        box becomes a crop, for users of an exported graph without stnet."""
        skel_name = (self.skeleton or {}).get("name") or self.skeleton_name
        out: dict[str, Any] = {
            "card_version": CARD_VERSION, "model": self.model, "overrides": dict(self.overrides),
            "input_size": list(self.input_size) if self.input_size else None, "num_joints": self.num_joints,
            "skeleton": skel_name, "skeleton_def": self.skeleton,
            "keypoint_names": list((self.skeleton or {}).get("keypoint_names") or []) or None,
            "codec": dict(self.codec) if self.codec else None, "normalization": dict(self.normalization),
            "decode": bool(self.decode or self.with_affine), "with_affine": bool(self.with_affine),
            "provenance": dict(self.provenance), "metrics": dict(self.metrics),
        }
        if self.input_size:
            out["crop"] = _crop_conventions(self.input_size, self.unbiased,
                                            float(self.provenance.get("bbox_padding", 1.25)), self.normalization)
        return out

    # ------------------------------------------------------------------ reading
    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "model card") -> ModelCard:
        """A card from :meth:`to_dict` output or any earlier file layout (see the module
        docstring). Raises ValueError naming ``where`` and the field for a wrong type."""
        if not isinstance(d, Mapping):
            raise ValueError(f"{where}: expected a json object, got {type(d).__name__}")
        version = d.get("card_version", 0)
        if isinstance(version, bool) or not isinstance(version, int):  # int("x") / int(None) would escape
            raise ValueError(f"{where}: card_version must be an integer, got {version!r}"[:200])
        if version > CARD_VERSION:
            raise ValueError(f"{where}: card_version {version} is newer than this stnet reads ({CARD_VERSION}); "
                             "upgrade stnet")
        skel = d.get("skeleton_def") if isinstance(d.get("skeleton_def"), Mapping) else None
        name = d.get("skeleton")
        if isinstance(name, Mapping):  # a layout stored under "skeleton"
            skel, name = name, name.get("name")
        provenance = dict(d.get("provenance") or {}) if isinstance(d.get("provenance"), Mapping) else {}
        for k in _PROVENANCE_KEYS:
            if k in d and k not in provenance:
                provenance[k] = d[k]
        metrics = d.get("metrics")
        return cls(model=_opt_str(d.get("model"), "model", where),
                   overrides=dict(_mapping(d.get("overrides"), "overrides", where)),
                   input_size=_size(d.get("input_size"), "input_size", where),
                   num_joints=int(d["num_joints"]) if isinstance(d.get("num_joints"), int) else None,
                   skeleton=dict(skel) if skel else None,
                   skeleton_name=None if skel else (str(name) if name else None),
                   codec=_codec(d, where),
                   normalization=dict(d["normalization"]) if isinstance(d.get("normalization"), Mapping)
                   else dict(DEFAULT_NORMALIZATION),
                   decode=bool(d.get("decode") or d.get("with_affine")), with_affine=bool(d.get("with_affine")),
                   provenance=provenance, metrics=dict(metrics) if isinstance(metrics, Mapping) else {})

    @classmethod
    def known_fields(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


def card_from_checkpoint(state: Mapping[str, Any], *, where: str = "checkpoint") -> ModelCard:
    """The card of a :func:`stnet.model_files.load_state` dict: its ``card`` entry (written by
    ``stnet train``), else what its training ``config`` and ``skeleton`` entries say (checkpoints
    written before cards), else an empty card (a bare ``state_dict``)."""
    if isinstance(state.get("card"), Mapping):
        return ModelCard.from_dict(state["card"], where=f"{where} card")
    cfg: Mapping[str, Any] = state["config"] if isinstance(state.get("config"), Mapping) else {}
    model: Mapping[str, Any] = cfg["model"] if isinstance(cfg.get("model"), Mapping) else {}
    split = cfg.get("val") or cfg.get("train") or {}
    data: Mapping[str, Any] = split if isinstance(split, Mapping) else {}
    skel = dict(state["skeleton"]) if isinstance(state.get("skeleton"), Mapping) else None
    # a built-in layout's name (a custom one, from skeleton_meta, is not known by name)
    name = data.get("skeleton") if skel is None and not data.get("skeleton_meta") else None
    return ModelCard(model=model.get("name") or None, overrides=dict(model.get("overrides") or {}),
                     input_size=_size(cfg.get("input_size"), "config.input_size", where), skeleton=skel,
                     skeleton_name=str(name) if name else None,
                     codec=dict(cfg["codec"]) if isinstance(cfg.get("codec"), Mapping) else None,
                     provenance={"epoch": state.get("epoch")} if state.get("epoch") is not None else {},
                     metrics={"best_metric": state["best_metric"]} if state.get("best_metric") is not None else {})


def _crop_conventions(input_size: tuple[int, int], unbiased: bool, bbox_padding: float,
                      normalization: Mapping[str, Any]) -> dict[str, Any]:
    """What a plain onnxruntime / OpenVINO user must reproduce to crop as training did (the
    normalisation repeated here, where scripts written for earlier files read it)."""
    h, w = input_size
    return {"box": "[x, y, w, h] image pixels", "bbox_padding": bbox_padding, "aspect_ratio": round(w / h, 6),
            **{k: normalization[k] for k in ("mean", "std", "color", "scale") if k in normalization},
            "pixel_mapping": "udp" if unbiased else "msra", "unbiased": bool(unbiased),
            "rule": "centre kept, the shorter side grown to W/H, then both sides x bbox_padding",
            "warp": "affine (stnet.data.transforms.get_warp_matrix), bilinear, zero border; " + (
                "unbiased (UDP): region centre -> ((W-1)/2, (H-1)/2), x scale (W-1)/region_w, "
                "y scale (H-1)/region_h; pixel centres at integers" if unbiased else
                "classic: region centre -> (W/2, H/2), scale W/region_w on both axes")}


def _codec(d: Mapping[str, Any], where: str) -> dict[str, Any] | None:
    c = d.get("codec")
    if isinstance(c, Mapping):
        return dict(c) or None
    if isinstance(c, str):  # version-0 graphs: "codec": kind, its fields beside it
        return {"kind": c, **{k: d[k] for k in _FLAT_CODEC_KEYS if d.get(k) is not None}}
    if c is not None:
        raise ValueError(f"{where}: codec must be an object, got {type(c).__name__}")
    return None


#: Crop sides a model file may declare: a forged ``input_size`` of 100000 would allocate gigabytes.
MIN_SIDE, MAX_SIDE = 8, 4096


def _size(v: Any, name: str, where: str) -> tuple[int, int] | None:
    if v is None:
        return None
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        raise ValueError(f"{where}: {name} must be [H, W], got {repr(v)[:60]}")
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and float(x).is_integer()
               and MIN_SIDE <= x <= MAX_SIDE for x in v):
        raise ValueError(f"{where}: {name} {str(list(v))[:60]}: expected [H, W], integers from {MIN_SIDE} "
                         f"to {MAX_SIDE}")
    return int(v[0]), int(v[1])


def _mapping(v: Any, name: str, where: str) -> Mapping[str, Any]:
    if v is None:
        return {}
    if not isinstance(v, Mapping):
        raise ValueError(f"{where}: {name} must be an object, got {type(v).__name__}")
    return v


def _opt_str(v: Any, name: str, where: str) -> str | None:
    if v is None or v == "":
        return None
    if not isinstance(v, str):
        raise ValueError(f"{where}: {name} must be a string, got {type(v).__name__}")
    return v
