"""Typed configuration of the data pipeline. Training configs compose these dataclasses; YAML
and ``--set key=value`` only override them (``augment.rotation_factor=30``)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

from stnet.codecs.build import CodecConfig
from stnet.config import build_dataclass, check_fields, coerce, field_types

__all__ = ["AugmentConfig", "DataConfig", "CodecConfig", "apply_overrides", "config_from_dict"]


@dataclass
class AugmentConfig:
    """Training augmentation; the defaults are the standard COCO recipe (SimpleBaseline/HRNet).

    ``scale`` is multiplied by ``clip(1 + N(0, 1) * scale_factor, 1 - scale_factor, 1 + scale_factor)``;
    rotation is ``clip(N(0, 1) * rotation_factor, -2 r, 2 r)`` degrees, applied with probability
    ``rotation_prob``; the half-body transform replaces the box by one around the upper or lower
    body joints when more than ``half_body_min_joints`` joints are labelled.
    """

    enabled: bool = True
    flip_prob: float = 0.5
    scale_factor: float = 0.35
    rotation_factor: float = 45.0
    rotation_prob: float = 0.6
    half_body_prob: float = 0.3
    half_body_min_joints: int = 8
    half_body_padding: float = 1.5
    # Random translation of the centre by up to shift_factor * region size (0 = off, as HRNet).
    shift_factor: float = 0.0
    color_jitter_prob: float = 0.0
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.02

    @classmethod
    def coco(cls, **kw: Any) -> "AugmentConfig":
        return cls(**kw)

    @classmethod
    def mpii(cls, **kw: Any) -> "AugmentConfig":
        return cls(**{"scale_factor": 0.25, "rotation_factor": 30.0, **kw})

    @classmethod
    def off(cls) -> "AugmentConfig":
        return cls(enabled=False)

    def __post_init__(self) -> None:
        for name in ("flip_prob", "rotation_prob", "half_body_prob", "color_jitter_prob"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"AugmentConfig.{name} must be in [0, 1], got {v}")
        if not 0.0 <= self.scale_factor < 1.0:
            raise ValueError(f"AugmentConfig.scale_factor must be in [0, 1), got {self.scale_factor}")
        for name in ("rotation_factor", "shift_factor", "brightness", "contrast", "saturation", "hue"):
            if getattr(self, name) < 0:
                raise ValueError(f"AugmentConfig.{name} must be >= 0, got {getattr(self, name)}")


@dataclass
class DataConfig:
    """One dataset split as the pipeline sees it.

    ``kind`` selects the annotation reader: ``"coco"`` (any COCO-format keypoints json, incl.
    CrowdPose; ``det_file`` switches validation to detector boxes), ``"mpii"`` (MPII json),
    ``"lsp"`` (``joints.mat``; ``split`` picks the deterministic train/val part).
    """

    kind: Literal["coco", "mpii", "lsp", "cache"] = "coco"
    ann_file: str = ""
    image_dir: str = ""
    skeleton: str = "coco17"
    # Custom skeleton from a COCO json's categories: path of a meta YAML/JSON (flip pairs, sigmas).
    skeleton_meta: str | None = None
    split: Literal["train", "val", "all"] = "train"
    det_file: str | None = None
    det_score_threshold: float = 0.0
    lsp_val_fraction: float = 0.1
    input_size: tuple[int, int] = (256, 192)
    bbox_padding: float = 1.25
    codec: CodecConfig = field(default_factory=CodecConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    use_joint_weights: bool = False
    normalize: bool = True
    # Unreadable images during training: warn, count and skip up to this many per process.
    max_bad_images: int = 50
    batch_size: int = 32
    num_workers: int = 4
    pin_memory: bool = True
    seed: int | None = None

    def __post_init__(self) -> None:
        self.input_size = tuple(int(v) for v in self.input_size)  # type: ignore[assignment]
        if len(self.input_size) != 2 or min(self.input_size) < 8:
            raise ValueError(f"DataConfig.input_size must be (H, W), got {self.input_size}")
        if not self.bbox_padding >= 1.0:
            raise ValueError(f"DataConfig.bbox_padding must be >= 1, got {self.bbox_padding}")
        if not 0.0 < self.lsp_val_fraction < 1.0:
            raise ValueError(f"DataConfig.lsp_val_fraction must be in (0, 1), got {self.lsp_val_fraction}")
        if isinstance(self.codec, Mapping):
            self.codec = config_from_dict(CodecConfig, self.codec, "codec")
        if isinstance(self.augment, Mapping):
            self.augment = config_from_dict(AugmentConfig, self.augment, "augment")

    @property
    def aspect_ratio(self) -> float:
        """Width / height of the model input."""
        return self.input_size[1] / self.input_size[0]


def config_from_dict(cls: type, values: Mapping[str, Any], where: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping, nested dataclasses from nested mappings; each value
    is converted to its field's type (``"5e-4"`` -> 5e-4). Unknown keys raise ValueError with a
    suggestion; a value that does not convert names the field, the value and the type."""
    return build_dataclass(cls, values, where)


def apply_overrides(cfg: Any, overrides: Mapping[str, Any], where: str = "") -> Any:
    """Copy of dataclass ``cfg`` with dotted-key overrides (``{"augment.flip_prob": 0}``), each
    value converted to its field's type; a mapping given for a section merges into it.
    ``where`` prefixes the dotted field names in error messages."""
    nested: dict[str, dict[str, Any]] = {}
    flat: dict[str, Any] = {}
    for key, value in overrides.items():
        head, _, rest = key.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            flat[head] = value
    check_fields(type(cfg), list(flat) + list(nested), where or type(cfg).__name__)
    for head, value in list(flat.items()):
        if isinstance(value, Mapping) and dataclasses.is_dataclass(getattr(cfg, head)):
            nested.setdefault(head, {}).update(flat.pop(head))
    for head, sub in nested.items():
        child = getattr(cfg, head)
        if not dataclasses.is_dataclass(child):
            raise ValueError(f"{where + '.' if where else ''}{head} is not a section; cannot set {list(sub)}")
        flat[head] = apply_overrides(child, sub, f"{where}.{head}" if where else head)
    types_ = field_types(type(cfg))
    for head in list(flat):
        if head not in nested:
            flat[head] = coerce(flat[head], types_[head], f"{where}.{head}" if where else head)
    return dataclasses.replace(cfg, **flat)
