"""A network from a model card and its weights: the one place a file's record becomes an ``nn.Module``."""
from __future__ import annotations

from typing import Any, Mapping

import torch.nn as nn

from stnet.card import ModelCard
from stnet.model_files import model_state, state_num_joints

from ._registry import create_model

__all__ = ["build_network"]


def build_network(card: ModelCard, state: Mapping[str, Any] | None = None, *, use_ema: bool = True,
                  num_joints: int | None = None, input_size: tuple[int, int] | None = None,
                  source: str = "weights") -> nn.Module:
    """The registered network ``card.model`` with ``card.overrides``, loaded with the weights of
    ``state`` (a :func:`stnet.model_files.load_state` dict; EMA weights when present and
    ``use_ema``; None: randomly initialised). The number of joints comes from the weights' head,
    else ``num_joints``, else the card; the crop size from ``input_size``, else the card.
    Weights that do not fit raise ValueError naming ``source``."""
    if not card.model:
        raise ValueError(f"{source}: the file does not name its network; name it (--model NAME / model=NAME)")
    overrides = dict(card.overrides)
    sd = model_state(state, use_ema) if state is not None else None
    k = state_num_joints(sd) if sd is not None else None
    k = k or overrides.get("num_joints") or num_joints or card.num_joints
    if k:
        overrides["num_joints"] = int(k)
    size = input_size or card.input_size
    if size is not None:
        overrides["input_size"] = (int(size[0]), int(size[1]))
    net = create_model(card.model, **overrides)
    if sd is not None:
        try:
            net.load_state_dict(sd)
        except RuntimeError as e:
            first = [ln.strip() for ln in str(e).splitlines() if ln.strip()][1:3]
            raise ValueError(f"weights {source} do not fit model {card.model!r} ({'; '.join(first)})") from None
    return net
