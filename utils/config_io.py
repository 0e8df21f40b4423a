"""Plain data <-> config dataclasses: the field-level checks every config's serialisations share.

DESIGN.md: one config object per concern; YAML files, run directories and ``name=value`` command-line
overrides are only its serialisations. A config turns itself into plain data (``dataclasses.asdict``
suffices for flat ones) and back through :func:`from_mapping`, which rejects unknown keys and values of the
wrong type *naming the field*, before the dataclass validates its ranges. :func:`parse_assignment` and
:func:`value_from_text` read one ``a.b=value`` override, typed by the field it sets.

Types understood (annotations as strings, ``from __future__ import annotations``): ``str``, ``int``,
``float``, ``bool``, ``dict`` and ``X | None`` of these; any other annotation passes the value through
(nested configs are converted by their owner).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping

import numpy as np

__all__ = ["annotations_of", "coerce", "from_mapping", "nested_config", "plain", "parse_assignment", "value_from_text",
           "check_field_types"]

_SCALARS = ("str", "int", "float", "bool", "dict")


def _a(noun: str) -> str:
    return ("an " if noun[:1] in "aeiou" else "a ") + noun


def annotations_of(cls) -> dict[str, str]:
    """``{field name: annotation string}`` of a dataclass, in field order."""
    return {f.name: f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
            for f in dataclasses.fields(cls)}


def _split(annotation: str) -> tuple[str, bool]:
    """(base type, optional) of an annotation such as ``"int | None"``."""
    parts = [p.strip() for p in annotation.split("|")]
    optional = "None" in parts
    rest = [p for p in parts if p != "None"]
    return (rest[0] if len(rest) == 1 else annotation), optional


def coerce(where: str, annotation: str, value: Any, error: Callable[[str], Exception]) -> Any:
    """``value`` checked against ``annotation`` (ints are accepted as floats); raises ``error(message)``
    naming ``where`` (e.g. ``"EnvConfig.horizon"``), the value and the expected type."""
    base, optional = _split(annotation)
    if value is None:
        if optional or base not in _SCALARS:
            return None
        raise error(f"{where}=None; it needs {_a(base)}")
    if base == "bool":
        ok = isinstance(value, bool)
    elif base == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif base == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif base == "str":
        ok = isinstance(value, str)
    elif base == "dict":
        ok = isinstance(value, Mapping)
        value = dict(value) if ok else value
    else:
        return value
    if not ok:
        want = f"{base} or null" if optional else base
        raise error(f"{where}={value!r} ({type(value).__name__}); it needs {_a(want)}")
    return value


def from_mapping(cls, data: Any, owner: str, error: Callable[[str], Exception],
                 convert: Mapping[str, Callable[[Any], Any]] | None = None) -> dict[str, Any]:
    """Keyword arguments of ``cls`` from the mapping ``data``, type-checked (not yet constructed).

    :param owner: how messages name the config (``"EnvConfig"``, ``"EnvConfig.shopper"``).
    :param convert: per-field converters run instead of the type check (nested configs).
    :raises: ``error(message)`` when ``data`` is not a mapping, a key is unknown (the message lists the valid
        keys) or a value has the wrong type (the message names the field).
    """
    if not isinstance(data, Mapping):
        raise error(f"{owner}: expected a mapping of field names to values, got {type(data).__name__}")
    types = annotations_of(cls)
    unknown = sorted(str(k) for k in data if k not in types)
    if unknown:
        raise error(f"{owner}: unknown key(s) {unknown}; valid keys are {sorted(types)}")
    convert = convert or {}
    return {k: convert[k](v) if k in convert else coerce(f"{owner}.{k}", types[k], v, error)
            for k, v in data.items()}


def nested_config(cls, data: Any, owner: str, error: Callable[[str], Exception],
                  defaults: Mapping[str, Any] | None = None):
    """A config of ``cls`` from a (partial) mapping over ``defaults``: :func:`from_mapping`, then construction,
    with the config's own validation errors (any ``ValueError``) re-raised as ``error("owner: message")``."""
    kw = {**(defaults or {}), **from_mapping(cls, data, owner, error)}
    try:
        return cls(**kw)
    except ValueError as err:
        raise error(f"{owner}: {err}") from None


def plain(config) -> dict[str, Any]:
    """A flat config dataclass as a dict of plain Python values (numpy scalars become ``int`` / ``float`` ...)."""
    return {k: v.item() if hasattr(v, "item") and getattr(v, "ndim", None) == 0 else v
            for k, v in dataclasses.asdict(config).items()}


def parse_assignment(text: str, error: Callable[[str], Exception]) -> tuple[list[str], str]:
    """``"a.b=value"`` -> (``["a", "b"]``, ``"value"``); raises ``error`` without ``=`` or with an empty name."""
    if not isinstance(text, str) or "=" not in text:
        raise error(f"override {text!r}: write it as field=value (e.g. horizon=20, shopper.tau_c=2.5)")
    name, value = text.split("=", 1)
    path = [p.strip() for p in name.strip().split(".")]
    if not all(path):
        raise error(f"override {text!r}: the field name is empty; write it as field=value")
    return path, value.strip()


def value_from_text(where: str, annotation: str, text: str, error: Callable[[str], Exception]) -> Any:
    """The value of an override's text for a field of type ``annotation``.

    Strings are taken as written (``name=007`` stays ``"007"``), ``null`` / ``None`` / an empty text give
    None for optional fields, numbers are read by ``int`` / ``float``, booleans and mappings as YAML (``true``,
    ``{2: 0.1, 3: 0.15}``); the result is type-checked by :func:`coerce`.
    """
    import yaml

    base, optional = _split(annotation)
    if optional and text in ("", "null", "None", "~"):
        return None
    if base == "str":
        return text
    if base in ("int", "float"):  # Python's reading: YAML 1.1 takes 1e-3 for a string
        try:
            return coerce(where, annotation, int(text) if base == "int" else float(text), error)
        except ValueError:
            raise error(f"{where}={text!r}; it needs {_a(base)}") from None
    try:
        value = yaml.safe_load(text) if text else None
    except yaml.YAMLError as err:
        raise error(f"{where}: cannot read {text!r} as {_a(base)} ({err.__class__.__name__})") from None
    return coerce(where, annotation, value, error)


def check_field_types(config, error: Callable[[str], Exception], owner: str | None = None) -> None:
    """Each field of the dataclass instance ``config`` annotated ``int`` / ``float`` / ``bool`` / ``str`` (or
    ``X | None``) holds such a value: numpy scalars count, a bool is no number, a float is not NaN. Called first
    in a config's ``__post_init__``, so that None, a wrong type or an array is ``error("Owner.field=...; it
    needs ...")`` naming the field, before range checks that would fail on it with a bare TypeError. Other
    annotations (nested configs, tuples, mappings) are the config's own to check.
    """
    owner = owner or type(config).__name__
    for name, annotation in annotations_of(type(config)).items():
        base, optional = _split(annotation)
        if base not in ("int", "float", "bool", "str"):
            continue
        v = getattr(config, name)
        if v is None:
            if optional:
                continue
            raise error(f"{owner}.{name}=None; it needs {_a(base)}")
        number = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
        if base == "int":
            ok = number and isinstance(v, (int, np.integer))
        elif base == "float":
            ok = number and not math.isnan(v)
        elif base == "bool":
            ok = isinstance(v, (bool, np.bool_))
        else:
            ok = isinstance(v, str)
        if not ok:
            shown = f"an array of shape {v.shape}" if isinstance(v, np.ndarray) else repr(v)
            raise error(f"{owner}.{name}={shown}; it needs {_a(base + (' or None' if optional else ''))}")
