"""A small model registry: names map to builder functions.

Registering a name twice raises, so two model files can never silently shadow each other. Model
files register themselves on import; ``stnet.models`` (which Python imports before this module)
imports them all, so the registry is complete whenever it can be reached.
"""
from __future__ import annotations

import difflib
from typing import Callable, TypeVar

import torch.nn as nn

__all__ = ["register_model", "create_model", "list_models", "get_model_builder"]

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}
F = TypeVar("F", bound=Callable[..., nn.Module])


def register_model(name: str | None = None) -> Callable[[F], F]:
    """Decorator registering a builder under ``name`` (default: the function's name)."""

    def wrap(fn: F) -> F:
        key = name or fn.__name__
        if key in _BUILDERS:
            raise ValueError(f"model {key!r} is already registered (by {_BUILDERS[key].__module__})")
        _BUILDERS[key] = fn
        return fn

    return wrap


def get_model_builder(name: str) -> Callable[..., nn.Module]:
    try:
        return _BUILDERS[name]
    except KeyError:
        hint = difflib.get_close_matches(name, _BUILDERS, n=1)
        extra = f"; did you mean {hint[0]!r}?" if hint else ""
        raise KeyError(f"unknown model {name!r}{extra} Registered: {', '.join(sorted(_BUILDERS))}") from None


def create_model(name: str, **overrides) -> nn.Module:
    """Build a registered model; ``overrides`` replace fields of its config dataclass."""
    return get_model_builder(name)(**overrides)


def list_models() -> list[str]:
    return sorted(_BUILDERS)
