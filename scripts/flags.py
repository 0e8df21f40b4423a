"""Flags shared by the subcommands: defaults read from the config dataclasses, and argument types that take names
from the registries (so that ``--help``, the accepted values and the error for a misspelt name all come from one
list). Only light modules are imported here: the parser is built for every command, ``--help`` included.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Callable, Sequence

__all__ = ["default_of", "names_type", "PRESET_NAMES", "add_world_flags", "world_from_args"]


def _preset_names() -> tuple[str, ...]:
    from bundlerl.env import PRESETS

    return (*PRESETS, "instacart")


PRESET_NAMES = _preset_names()
"""The env presets a flag accepts: ``bundlerl.env.PRESETS`` and ``instacart`` (built on demand)."""


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


def add_world_flags(p: argparse.ArgumentParser, default_note: str) -> None:
    """The flags that choose the world (``bundlerl.env.EnvConfig``): ``--preset`` or ``--env-config``, then
    ``--env-set`` overrides and ``--instacart-dir``. ``default_note`` says what happens without any of them."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--preset", choices=PRESET_NAMES, default=None,
                   help=f"env preset ({default_note}); 'instacart' needs --instacart-dir")
    g.add_argument("--env-config", metavar="FILE", default=None,
                   help="the world from a YAML file of EnvConfig fields (as EnvConfig.to_dict writes them); missing "
                        "fields take EnvConfig's defaults")
    p.add_argument("--env-set", metavar="FIELD=VALUE", action="append", default=[],
                   help="override a field of the world's EnvConfig, e.g. --env-set horizon=30 --env-set "
                        "shopper.tau_c=2.5 (repeatable; applied to --preset / --env-config)")
    p.add_argument("--instacart-dir", metavar="DIR", default=None,
                   help="folder of the Instacart CSVs (products.csv, orders.csv, ...) for --preset instacart "
                        "(implies it; default: $BUNDLERL_INSTACART)")


def world_from_args(args, default: str | None = None):
    """The EnvConfig the world flags of :func:`add_world_flags` name; ``default`` (a preset name) when none is
    given, None when there is no default either.

    :raises ConfigError: ``--instacart-dir`` with another preset, ``--env-set`` without a world, a bad file or
        override (``bundlerl.env.ConfigError``).
    """
    import os
    from pathlib import Path

    from bundlerl.env import ConfigError, env_config_overrides, get_config, load_env_config

    if args.env_config is not None:
        if args.instacart_dir is not None:
            raise ConfigError("--instacart-dir goes with --preset instacart; with --env-config set instacart_path "
                              "in the file or with --env-set instacart_path=DIR")
        config = load_env_config(args.env_config)
    else:
        name = args.preset or ("instacart" if args.instacart_dir is not None else default)
        if name is None:
            if args.env_set:
                raise ConfigError("--env-set changes a world: give it one with --preset or --env-config")
            return None
        if args.instacart_dir is not None and name != "instacart":
            raise ConfigError(f"--instacart-dir goes with --preset instacart, not --preset {name}")
        if name == "instacart" and args.instacart_dir is None and not os.environ.get("BUNDLERL_INSTACART"):
            raise ConfigError("--preset instacart reads the Instacart CSVs (products.csv, orders.csv, ...): pass their "
                              "folder with --instacart-dir DIR (or set BUNDLERL_INSTACART)")
        # absolute: the run directory stores the path, and its evaluation may start elsewhere
        folder = {} if args.instacart_dir is None else {"instacart_path": str(Path(args.instacart_dir).resolve())}
        config = get_config(name, **folder)
    return env_config_overrides(config, args.env_set) if args.env_set else config
