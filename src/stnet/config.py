"""Configuration helpers shared by the CLI and the Python API.

Defaults live in typed dataclasses next to the code they configure; YAML files and
``--set key=value`` only override them. Values are parsed as YAML scalars/lists, so
``--set mdbs=false``, ``--set input_size=[384,288]`` and ``--set lr=1e-3`` do what they say.
"""
from __future__ import annotations

import dataclasses
import difflib
from typing import Any, Iterable

import yaml

__all__ = ["parse_overrides", "check_fields"]


def parse_overrides(items: Iterable[str] | None) -> dict[str, Any]:
    """``["a=1", "b.c=true"]`` -> ``{"a": 1, "b.c": True}``; a malformed item raises ValueError."""
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {item!r}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as e:
            raise ValueError(f"--set {key}: cannot parse value {raw!r}: {e}") from None
        out[key] = value
    return out


def check_fields(cls: type, keys: Iterable[str], where: str = "") -> None:
    """Raise ValueError naming each key that is not a field of dataclass ``cls``, with a suggestion."""
    valid = [f.name for f in dataclasses.fields(cls)]
    problems = []
    for key in keys:
        if key not in valid:
            hint = difflib.get_close_matches(key, valid, n=1)
            problems.append(f"{key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
    if problems:
        prefix = f"{where}: " if where else ""
        raise ValueError(f"{prefix}unknown {cls.__name__} field(s) {', '.join(problems)}; "
                         f"valid fields: {', '.join(valid)}")
