"""Configuration helpers shared by the CLI and the Python API.

Defaults live in typed dataclasses next to the code they configure; YAML files and
``--set key=value`` only override them. Values are parsed as YAML scalars/lists, so
``--set mdbs=false``, ``--set input_size=[384,288]`` and ``--set lr=1e-3`` do what they say.

YAML 1.1 (PyYAML) reads ``5e-4``, ``1e4`` or ``nan`` as strings and ``yes``/``on`` as booleans,
so every value is then converted to its dataclass field's type (:func:`coerce`): ``int``,
``float``, ``bool``, ``str``, ``tuple[...]``, ``Literal[...]``, ``X | None``, nested dataclasses
and ``dict``. A value that does not convert raises a one-line ValueError naming the field, the
value and the type expected (``optim.lr: expected a float, got 'abc'``).
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import reprlib
import types
import typing
from typing import Any, Iterable, Literal, Mapping, Union

import yaml

__all__ = ["load_yaml", "YAML_MAX_NODES", "parse_overrides", "check_fields", "coerce", "field_types", "coerce_fields",
           "build_dataclass", "replace_typed"]

#: The most values (scalars, lists, mappings) a YAML document may expand to once aliases are
#: followed: recipes and skeleton files hold hundreds; an "alias bomb" of a few hundred bytes holds
#: billions, which would take minutes and gigabytes to build, print or walk.
YAML_MAX_NODES = 100_000


def _expanded_size(node: yaml.Node, sizes: dict[int, int], limit: int) -> int:
    """How many nodes ``node`` stands for with every alias expanded (shared nodes counted once per
    use, computed once each); stops counting past ``limit``."""
    key = id(node)
    if key in sizes:
        if sizes[key] < 0:
            raise ValueError("a recursive alias (an anchor used inside itself)")
        return sizes[key]
    sizes[key] = -1
    total = 1
    if isinstance(node, yaml.SequenceNode):
        for child in node.value:
            total += _expanded_size(child, sizes, limit)
            if total > limit:
                break
    elif isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            total += _expanded_size(k, sizes, limit) + _expanded_size(v, sizes, limit)
            if total > limit:
                break
    sizes[key] = min(total, limit + 1)
    return sizes[key]


def load_yaml(text: str, where: str, *, max_nodes: int = YAML_MAX_NODES) -> Any:
    """``yaml.safe_load(text)`` with a bound on what aliases expand to (:data:`YAML_MAX_NODES`):
    an alias bomb fails at once with a short ValueError naming ``where``, and no error message
    ever holds an expanded value. Syntax errors raise ValueError ``"WHERE: invalid YAML: ..."``."""
    loader = None
    try:
        loader = yaml.SafeLoader(text)  # inside: it already rejects control characters (ReaderError)
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}, max_nodes) > max_nodes:
            raise ValueError(f"{where}: YAML expands to more than {max_nodes} values once its aliases (*name) "
                             "are followed; refused (an alias bomb?)")
        return loader.construct_document(node)
    except yaml.YAMLError as e:
        raise ValueError(f"{where}: invalid YAML: {' '.join(str(e).split())[:300]}") from None
    except RecursionError:
        raise ValueError(f"{where}: YAML nested too deeply") from None
    except ValueError as e:
        if str(e).startswith(where):
            raise
        raise ValueError(f"{where}: {e}") from None
    finally:
        if loader is not None:
            loader.dispose()


_TRUE = frozenset({"true", "yes", "on", "1", "y"})
_FALSE = frozenset({"false", "no", "off", "0", "n"})
_NULL = frozenset({"none", "null", "~", ""})
_BOOL_HELP = "a boolean (true/false, yes/no, on/off, 1/0)"


def parse_overrides(items: Iterable[str] | None) -> dict[str, Any]:
    """``["a=1", "b.c=true"]`` -> ``{"a": 1, "b.c": True}``; a malformed item raises ValueError.

    Values are only parsed as YAML here; the config they override converts them to the field's
    type (:func:`coerce`)."""
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {item!r}")
        value = load_yaml(raw, f"--set {key}") if raw.strip() else ""
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


# ----------------------------------------------------------------------------- type conversion

_FIELD_TYPES: dict[type, dict[str, Any]] = {}


def field_types(cls: type) -> dict[str, Any]:
    """``{field name: resolved type}`` of dataclass ``cls`` (string annotations evaluated)."""
    if cls not in _FIELD_TYPES:
        try:
            hints = typing.get_type_hints(cls)
        except Exception:  # an annotation that cannot be evaluated: leave such values unconverted
            hints = {}
        _FIELD_TYPES[cls] = {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls)}
    return _FIELD_TYPES[cls]


_SHOW = reprlib.Repr()
_SHOW.maxlevel, _SHOW.maxlist, _SHOW.maxdict, _SHOW.maxstring, _SHOW.maxother = 2, 6, 6, 80, 80


def _show(value: Any) -> str:
    # Bounded: a value echoed in an error must never be the size of what an alias expands to.
    if isinstance(value, (list, tuple, dict, set)):
        return _SHOW.repr(value)
    return _SHOW.repr(value) if isinstance(value, str) else reprlib.Repr.repr(_SHOW, str(value)).strip("'")


def _fail(where: str, expected: str, value: Any) -> ValueError:
    return ValueError(f"{where or 'value'}: expected {expected}, got {_show(value)}")


def _describe(tp: Any) -> str:
    """A short human name of a type for error messages."""
    origin = typing.get_origin(tp)
    if tp is bool:
        return "a boolean"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a float"
    if tp is str:
        return "a string"
    if origin is Literal:
        return "one of " + ", ".join(_show(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join("None" if a is type(None) else _describe(a) for a in typing.get_args(tp))
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_describe(args[0]).split(' ', 1)[-1]}s"
        return f"a list of {len(args)} values"
    if origin in (dict, Mapping) or tp is dict:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return f"a mapping of {getattr(tp, '__name__', tp)} fields"
    return getattr(tp, "__name__", str(tp))


def _coerce_union(value: Any, tp: Any, where: str) -> Any:
    args = typing.get_args(tp)
    nullable = type(None) in args
    rest = [a for a in args if a is not type(None)]
    if value is None:
        if nullable:
            return None
        raise _fail(where, _describe(tp), value)
    literal_members = [m for a in rest if typing.get_origin(a) is Literal for m in typing.get_args(a)]
    if nullable and isinstance(value, str) and value.strip().lower() in _NULL and value not in literal_members:
        return None
    for a in rest:
        try:
            return coerce(value, a, where)
        except ValueError:
            continue
    raise _fail(where, _describe(tp), value)


def _coerce_literal(value: Any, tp: Any, where: str) -> Any:
    members = typing.get_args(tp)
    for m in members:
        if value == m and type(value) is type(m):
            return m
    if isinstance(value, str):
        for m in members:
            if isinstance(m, str) and m.lower() == value.strip().lower():
                return m
    if isinstance(value, bool):  # YAML 1.1 read `off` / `on` / `no` / `yes` as a boolean
        for m in members:
            if isinstance(m, str) and m.lower() in (_TRUE if value else _FALSE):
                return m
    raise _fail(where, _describe(tp), value)


def _coerce_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        s = value.strip().lower()
        if s in _TRUE:
            return True
        if s in _FALSE:
            return False
    raise _fail(where, _BOOL_HELP, value)


def _coerce_int(value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise _fail(where, "an integer", value)
    if isinstance(value, int):
        return value
    number = value
    if isinstance(value, str):
        try:
            return int(value.strip(), 10)
        except ValueError:
            try:
                number = float(value.strip())
            except ValueError:
                raise _fail(where, "an integer", value) from None
    if isinstance(number, float) and math.isfinite(number) and number.is_integer():
        return int(number)
    raise _fail(where, "an integer", value)


def _coerce_float(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _fail(where, "a float", value)
    try:
        out = float(value.strip() if isinstance(value, str) else value)
    except ValueError:
        raise _fail(where, "a float", value) from None
    if not math.isfinite(out):
        raise _fail(where, "a finite float", value)
    return out


def _coerce_str(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    hint = " (quote it: YAML reads yes/no/on/off as booleans)" if isinstance(value, bool) else ""
    raise ValueError(f"{where or 'value'}: expected a string, got {_show(value)}{hint}")


_SCALARS: dict[Any, Any] = {bool: _coerce_bool, int: _coerce_int, float: _coerce_float, str: _coerce_str}


def _coerce_tuple(value: Any, tp: Any, where: str) -> tuple:
    args = typing.get_args(tp)
    variadic = len(args) == 2 and args[1] is Ellipsis
    if isinstance(value, Mapping) or (isinstance(value, str) and not variadic):
        raise _fail(where, _describe(tp), value)
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not args:
        return tuple(items)
    if variadic:
        return tuple(coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(items))
    if len(items) != len(args):
        raise ValueError(f"{where or 'value'}: expected {len(args)} values, got {_show(value)}")
    return tuple(coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(items, args)))


def _coerce_list(value: Any, tp: Any, where: str) -> list:
    args = typing.get_args(tp)
    if not isinstance(value, (list, tuple)):
        raise _fail(where, "a list", value)
    return [coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)] if args else list(value)


def coerce(value: Any, tp: Any, where: str = "") -> Any:
    """``value`` converted to type ``tp``; ValueError ``"WHERE: expected TYPE, got VALUE"``.

    Strings from YAML 1.1 such as ``"5e-4"``, ``"1e4"`` convert to numbers; booleans accept
    true/false, yes/no, on/off, 1/0 (any case) and nothing else; floats must be finite; ``X | None``
    accepts ``null``/``none``/``~``/empty as None; tuples accept a list (a single value for
    ``tuple[X, ...]``); nested dataclasses accept a mapping of their fields."""
    if tp is Any or tp is object:
        return value
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return _coerce_union(value, tp, where)
    if origin is Literal:
        return _coerce_literal(value, tp, where)
    if tp in _SCALARS:
        return _SCALARS[tp](value, where)
    if origin is tuple or tp is tuple:
        return _coerce_tuple(value, tp, where)
    if origin is list or tp is list:
        return _coerce_list(value, tp, where)
    if origin in (dict, Mapping) or tp is dict:
        if value is not None and not isinstance(value, Mapping):
            raise _fail(where, "a mapping", value)
        return dict(value or {})
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if isinstance(value, Mapping):
            return build_dataclass(tp, value, where)
        raise _fail(where, _describe(tp), value)
    return value


def coerce_fields(cls: type, values: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    """Each value converted to the type of the field of dataclass ``cls`` it sets (unknown keys
    raise ValueError with a suggestion). ``where`` prefixes the dotted field names in errors."""
    check_fields(cls, values.keys(), where or cls.__name__)
    hints = field_types(cls)
    return {k: coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in values.items()}


def build_dataclass(cls: type, values: Mapping[str, Any], where: str = "") -> Any:
    """Dataclass ``cls`` from a mapping of (some of) its fields, converted to their types; nested
    dataclasses from nested mappings."""
    return cls(**coerce_fields(cls, values, where))


def replace_typed(obj: Any, overrides: Mapping[str, Any], where: str = "") -> Any:
    """``dataclasses.replace(obj, **overrides)`` with each value converted to its field's type
    first; unknown fields and values that do not convert raise ValueError prefixed ``where``
    (``stnet_1s: mdbs: expected a boolean ...``)."""
    cls = type(obj)
    check_fields(cls, overrides.keys(), where or cls.__name__)
    hints = field_types(cls)
    try:
        kw = {k: coerce(v, hints[k], k) for k, v in overrides.items()}
    except ValueError as e:
        raise ValueError(f"{where}: {e}" if where else str(e)) from None
    return dataclasses.replace(obj, **kw)
