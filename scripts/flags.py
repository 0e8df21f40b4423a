"""Flags shared by the subcommands: defaults read from the config dataclasses, and argument types that take names
from the registries (so that ``--help``, the accepted values and the error for a misspelt name all come from one
list). Only light modules are imported here: the parser is built for every command, ``--help`` included.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Callable, Sequence

__all__ = ["default_of", "names_type", "PRESET_NAMES"]


def _preset_names() -> tuple[str, ...]:
    from bundlerl.env.presets import PRESETS

    return (*PRESETS, "instacart")


PRESET_NAMES = _preset_names()
"""The env presets a flag accepts: ``bundlerl.env.presets.PRESETS`` and ``instacart`` (built on demand)."""


def default_of(cls, name: str) -> Any:
    """The default of field ``name`` of the dataclass ``cls`` (the flag's default and its help text)."""
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def names_type(registry: Sequence[str], kind: str, resolve: Callable[[str], str] | None = None):
    """An argparse ``type``: ``all`` (every name of ``registry``), ``none`` (no name) or comma-separated names,
    each checked by ``resolve`` (a registry's checker raising a BundlerlError) or by membership; a bad name is a
    usage error (exit 2) that lists the valid names."""
    from bundlerl.utils.errors import BundlerlError

    def parse(spec: str) -> list[str]:
        spec = spec.strip()
        if spec in ("none", ""):
            return []
        if spec == "all":
            return list(registry)
        names = [s.strip() for s in spec.split(",") if s.strip()]
        try:
            return [resolve(n) if resolve else _member(n, registry, kind) for n in names]
        except BundlerlError as exc:
            raise argparse.ArgumentTypeError(f"{exc}; or 'all' or 'none'") from None

    parse.__name__ = kind  # argparse names the type in its message
    return parse


def _member(name: str, registry: Sequence[str], kind: str) -> str:
    from bundlerl.agents.policy import check_name

    return check_name(name, registry, kind)
