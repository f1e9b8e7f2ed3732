"""The model a :class:`~stnet.inference.estimator.PoseEstimator` runs, from any reference a user
gives: :func:`resolve_model` -> :class:`ModelRef` (a network, or an exported graph's path, with the
:class:`~stnet.card.ModelCard` that describes it). Files are read by
:func:`stnet.model_files.load_model_ref`, networks built by :func:`stnet.models.factory.build_network`;
this module applies the user's options (skeleton, crop size, codec) and checks them against the file."""
from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch.nn as nn

from stnet.card import ModelCard
from stnet.codecs import CodecConfig
from stnet.config import build_dataclass
from stnet.data.skeletons import Skeleton, get_skeleton, load_skeleton, skeleton_from_dict
from stnet.model_files import ModelFile, list_pretrained, load_model_ref
from stnet.models import list_models
from stnet.models.factory import build_network

__all__ = ["ModelRef", "resolve_model", "from_model_file"]


@dataclass(frozen=True)
class ModelRef:
    """What a model reference resolves to: the network to run (None for an exported graph, whose
    path is ``graph``: an ``.onnx`` file, which onnxruntime or OpenVINO runs, or an OpenVINO IR
    ``.xml``), its name, where it came from, its card, and the skeleton and codec to use (None:
    not known, the estimator's defaults apply)."""

    network: nn.Module | None
    name: str
    source: str
    card: ModelCard
    untrained: bool = False
    graph: Path | None = None
    skeleton: str | Skeleton | None = None
    codec: CodecConfig | None = None


def resolve_model(ref: str | os.PathLike | nn.Module | ModelRef, weights: str | os.PathLike | None = None, *,
                  model: str | None = None, use_ema: bool = True, skeleton: str | Skeleton | None = None,
                  input_size: Sequence[int] | None = None, codec: CodecConfig | None = None,
                  model_overrides: dict | None = None) -> ModelRef:
    """The one factory for "a model" as a user names it: an ``nn.Module``; a registered model name
    (untrained unless ``weights``: anything :func:`stnet.model_files.load_model_ref` reads that
    holds weights); or any model reference ``load_model_ref`` reads (a checkpoint file or run
    directory, ``model`` naming the network of a bare ``state_dict``; a pack with its json; shipped
    weights' name; an exported ``.onnx`` or OpenVINO IR ``.xml``). The skeleton, input size and
    codec come from the file's card; ``skeleton``, ``input_size`` and ``codec`` override them, and
    one that contradicts the file raises naming both. EMA weights are used when a checkpoint has
    them and ``use_ema``."""
    size = _tuple(input_size)
    if isinstance(ref, ModelRef):
        given = {"weights": weights, "model": model, "skeleton": skeleton, "input_size": input_size,
                 "codec": codec, "model_overrides": model_overrides}
        if any(v is not None for v in given.values()):
            raise ValueError(f"{', '.join(k for k, v in given.items() if v is not None)} cannot change a resolved "
                             "ModelRef; pass them to resolve_model()")
        return ref
    if isinstance(ref, nn.Module):
        if weights is not None:
            raise ValueError("weights= goes with a registered model name; load them into the module yourself")
        name = type(ref).__name__
        cfg_size = _tuple(getattr(getattr(ref, "cfg", None), "input_size", None))
        return ModelRef(ref, name, name, ModelCard(input_size=size or cfg_size), skeleton=skeleton, codec=codec)
    s = str(ref)
    if weights is not None and s not in list_models():
        raise ValueError(f"--weights goes with a registered model name (--model NAME), not with --model {s}")
    if s in list_models():
        card = ModelCard(model=s, overrides=dict(model_overrides or {}))
        if weights is None:
            return _built(card, None, s, use_ema=use_ema, skeleton=skeleton, input_size=size, codec=codec)
        mf = load_model_ref(weights)
        if mf.kind in ("pack", "shipped"):
            if mf.card.model != s:
                raise ValueError(f"--model {s} contradicts --weights {weights}, a pack of {mf.card.model!r} "
                                 f"(its .json); drop --model or pass --model {weights}")
            return from_model_file(mf, skeleton=skeleton, input_size=size, codec=codec)
        return _built(card, mf.weights("--weights"), str(weights), use_ema=use_ema, skeleton=skeleton,
                      input_size=size, codec=codec)
    try:
        mf = load_model_ref(s)
    except KeyError:
        names = list_models() + list_pretrained()
        hint = difflib.get_close_matches(s, names, n=1)
        raise KeyError(f"unknown model {s!r}: neither a registered model, a checkpoint file / run directory, a pack, "
                       f"an .onnx / .xml file nor shipped weights"
                       f"{'; did you mean ' + repr(hint[0]) + '?' if hint else ''} "
                       f"(models: {', '.join(list_models())}; shipped: {', '.join(list_pretrained()) or 'none yet'})"
                       ) from None
    return from_model_file(mf, model=model, use_ema=use_ema, skeleton=skeleton, input_size=size, codec=codec)


def from_model_file(mf: ModelFile, *, model: str | None = None, use_ema: bool = True,
                    skeleton: str | Skeleton | None = None, input_size: Sequence[int] | None = None,
                    codec: CodecConfig | None = None) -> ModelRef:
    """The :class:`ModelRef` of a read model file: the network built with its weights (an exported
    graph: its path), with the skeleton, crop size and codec its card records unless given. A
    skeleton with other keypoints than the file's is an error naming both; so is an input size
    other than a pack's or a graph's (running at another size silently degrades the keypoints; a
    training checkpoint may be run at another size on purpose)."""
    size = _tuple(input_size)
    card = mf.card
    record = "its .json" if mf.kind in ("pack", "shipped") else "its metadata"
    where = f"checkpoint {mf.path}" if mf.kind == "checkpoint" else f"{mf.path} ({record})"
    if size is not None and card.input_size is not None and size != card.input_size and mf.kind != "checkpoint":
        raise ValueError(f"--input-size {size[0]}x{size[1]} contradicts {mf.path}, trained at "
                         f"{card.input_size[0]}x{card.input_size[1]} ({record}); drop --input-size")
    skel = _agree(skeleton, _card_skeleton(card, where), where)
    if codec is None and card.codec:
        # typed: a file's {"sigma": "x"} or {"kind": 5} is refused here, naming the file and the field
        codec = build_dataclass(CodecConfig, {k: v for k, v in card.codec.items()
                                              if k in CodecConfig.__dataclass_fields__}, f"{where} codec")
    if mf.is_graph:
        return ModelRef(None, mf.path.stem, mf.source, card.replace(input_size=size or card.input_size),
                        graph=mf.path, skeleton=skel, codec=codec)
    name = model or card.model
    if not name:
        raise ValueError(f"checkpoint {mf.path} stores no config (a bare state_dict?); name its network: "
                         f"--model NAME --weights {mf.path} (Python: model=NAME; one of {', '.join(list_models())})")
    return _built(card.replace(model=name), mf.weights("--model"), str(mf.path),
                  use_ema=use_ema if mf.kind == "checkpoint" else True, skeleton=skel,
                  input_size=size or card.input_size, codec=codec)


def _built(card: ModelCard, state: dict | None, source: str, *, use_ema: bool, skeleton: str | Skeleton | None,
           input_size: tuple[int, int] | None, codec: CodecConfig | None) -> ModelRef:
    """The network of ``card`` with the weights of ``state`` (None: untrained)."""
    k = load_skeleton(skeleton).num_keypoints if skeleton is not None else None
    net = build_network(card, state, use_ema=use_ema, num_joints=k, input_size=input_size, source=source)
    cfg = getattr(net, "cfg", None)
    card = card.replace(input_size=_tuple(getattr(cfg, "input_size", None)),
                        num_joints=getattr(cfg, "num_joints", None) or card.num_joints)
    return ModelRef(net, str(card.model), source, card, untrained=state is None, skeleton=skeleton, codec=codec)


def _card_skeleton(card: ModelCard, where: str) -> Skeleton | None:
    """The layout a card records: its full definition (custom layouts included), else a built-in
    name (files written before the definition travelled)."""
    if card.skeleton is not None:
        return skeleton_from_dict(card.skeleton, where=f"{where} skeleton")
    if card.skeleton_name:
        try:
            return get_skeleton(card.skeleton_name)
        except KeyError:  # a custom layout not registered here: the caller passes --skeleton
            return None
    return None


def _agree(given: str | Skeleton | None, stored: Skeleton | None, source: str) -> str | Skeleton | None:
    """The skeleton to use: the file's unless ``--skeleton`` is given; one with other keypoints than
    the file's is an error naming both."""
    if given is None or stored is None:
        return given if given is not None else stored
    sk = load_skeleton(given)
    if sk.keypoint_names != stored.keypoint_names:
        raise ValueError(f"--skeleton {sk.name} contradicts {source}, trained for skeleton {stored.name!r} "
                         f"({stored.num_keypoints} keypoints: {', '.join(stored.keypoint_names[:4])}, ...)")
    return sk


def _tuple(size: Sequence[int] | None) -> tuple[int, int] | None:
    return (int(size[0]), int(size[1])) if size is not None else None
