"""Flags shared by the subcommands: defaults read from the config dataclasses, argument types that take names
from the registries (so that ``--help``, the accepted values and the error for a misspelt name all come from one
list), and the argument types that check every other value at parse time (:class:`FlagType`: integers with their
minimum, numbers in a range, files and folders that must exist, output folders, ``NAME=VALUE`` overrides), so that
a bad value is one line and exit status 2 before any work starts. Only light modules are imported here: the parser
is built for every command, ``--help`` included.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
from pathlib import Path
from typing import Any, Callable, Sequence

__all__ = ["default_of", "names_type", "PRESET_NAMES", "add_world_flags", "world_from_args", "FlagType", "Integer",
           "Number", "ExistingFile", "ExistingFolder", "OutputFolder", "Assignment", "PolicySpec", "SEED", "RUN_DIR", "about"]


def _preset_names() -> tuple[str, ...]:
    from bundlerl.env import PRESETS

    return (*PRESETS, "instacart")


PRESET_NAMES = _preset_names()
"""The env presets a flag accepts: ``bundlerl.env.PRESETS`` and ``instacart`` (built on demand)."""


class FlagType:
    """An argparse ``type`` that checks a flag's value at parse time: a bad value is a usage error (exit 2, one
    line naming the flag, ``bundlerl.scripts.cli``), before any work starts. ``__name__`` is what argparse calls the
    type; :attr:`accepts` says in words what a value must be (the message of a bad one)."""

    __name__ = "value"
    accepts = "a value"

    def __call__(self, text: str) -> Any:
        raise NotImplementedError

    def bad(self, text: str, why: str = "") -> argparse.ArgumentTypeError:
        return argparse.ArgumentTypeError(f"{text!r}: {why or 'use ' + self.accepts}")


class Host(FlagType):
    """An address to listen on: an IPv4 / IPv6 address or a host name (letters, digits, '-', '.')."""

    __name__ = "host"
    accepts = "an IP address (127.0.0.1, ::1, 0.0.0.0) or a host name (localhost)"
    bad_examples = ("", "local host", "127.0.0.1:8000", "-bad", "a..b")

    def __call__(self, text: str) -> str:
        import ipaddress
        import re

        t = str(text)
        try:
            ipaddress.ip_address(t)
            return t
        except ValueError:
            pass
        label = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
        if not re.fullmatch(rf"{label}(?:\.{label})*", t):
            raise self.bad(text)
        return t


class Integer(FlagType):
    """An integer >= ``minimum`` (and <= ``maximum`` when given)."""

    __name__ = "integer"

    def __init__(self, minimum: int, maximum: int | None = None):
        self.minimum = int(minimum)
        self.maximum = None if maximum is None else int(maximum)
        self.accepts = (f"an integer >= {self.minimum:,}" if maximum is None
                        else f"an integer in [{self.minimum:,}, {self.maximum:,}]")

    def __call__(self, text: str) -> int:
        try:
            value = int(str(text).replace("_", ""), 10)
        except ValueError:
            raise self.bad(text, f"not an integer; use {self.accepts}") from None
        if value < self.minimum or (self.maximum is not None and value > self.maximum):
            raise self.bad(text, f"use {self.accepts}")
        return value


class Number(FlagType):
    """A finite number in [``low``, ``high``]."""

    __name__ = "number"

    def __init__(self, low: float, high: float):
        self.low, self.high = float(low), float(high)
        self.accepts = f"a number in [{self.low:g}, {self.high:g}]"

    def __call__(self, text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise self.bad(text, f"not a number; use {self.accepts}") from None
        if not (self.low <= value <= self.high):  # NaN fails too
            raise self.bad(text, f"use {self.accepts}")
        return value


class ExistingFile(FlagType):
    """The path of an existing file; ``what`` says what it holds (the message of a missing one)."""

    __name__ = "file"

    def __init__(self, what: str = "file"):
        self.what = what
        self.accepts = f"the path of an existing {what}"

    def __call__(self, text: str) -> str:
        p = Path(text)
        if not p.is_file():
            raise self.bad(text, f"{'is a folder, not a file' if p.is_dir() else 'no such file'}; expected a {self.what}")
        return text


class SearchBudget(FlagType):
    """A cross-entropy search budget ``ROUNDSxCANDIDATESxEPISODES`` (``bundlerl.evaluation.tuning.CEMBudget.parse``)."""

    __name__ = "budget"
    accepts = "ROUNDSxCANDIDATESxEPISODES with each >= 1, e.g. 12x24x200"
    bad_examples = ("12x24", "0x24x200", "axbxc", "")
    """Values a test expects refused (tests/test_cli_flags.py)."""

    def __call__(self, text: str):
        from bundlerl.evaluation.stats import EvaluationError
        from bundlerl.evaluation.tuning import CEMBudget

        try:
            return CEMBudget.parse(text)
        except EvaluationError:
            raise self.bad(text, f"use {self.accepts}") from None


class ExistingFolder(FlagType):
    """The path of an existing folder holding the files ``needs``; ``holding`` says in words what such a folder
    holds (default: the ``needs``), for the message of a path that is missing, a file, or lacks them."""

    __name__ = "folder"

    def __init__(self, needs: Sequence[str] = (), what: str = "folder", holding: str = ""):
        self.needs, self.what = tuple(needs), what
        self.holding = holding or ", ".join(self.needs)
        self.accepts = f"the path of an existing {what}" + (f" (with {self.holding})" if self.holding else "")

    def __call__(self, text: str) -> str:
        p = Path(text)
        expected = f"expected a {self.what}" + (f" with {self.holding}" if self.holding else "")
        if not p.is_dir():
            raise self.bad(text, f"{'is a file, not a folder' if p.exists() else 'no such folder'}; {expected}")
        missing = [n for n in self.needs if not (p / n).is_file()]
        if missing:
            raise self.bad(text, f"no {', '.join(missing)} in this folder; {expected}")
        return text


class OutputFolder(FlagType):
    """A folder to write into: an existing writable folder, or one that can be made there (no file in the way, the
    first existing parent writable: :func:`bundlerl.utils.paths.check_output_folder`)."""

    __name__ = "folder"
    accepts = "a folder to write into"

    def __call__(self, text: str) -> str:
        from bundlerl.utils.paths import OutputPathError, check_output_folder

        try:
            check_output_folder(text, "the folder")
        except OutputPathError as exc:
            raise self.bad(text, str(exc).replace(f"the folder {text!r}: ", "").replace("the folder: ", "")) from None
        return text


class Text(FlagType):
    """A non-blank text value (an id, a name), stripped."""

    __name__ = "text"

    def __init__(self, what: str = "text"):
        self.accepts = f"a non-empty {what}"

    def __call__(self, text: str) -> str:
        if not str(text).strip():
            raise self.bad(text, "empty; use " + self.accepts)
        return str(text).strip()


class Assignment(FlagType):
    """``NAME=VALUE`` where NAME (before any dot) is one of ``names()``; VALUE is read later, by the config."""

    __name__ = "assignment"

    def __init__(self, what: str, names: Callable[[], set[str]], example: str):
        self.what, self.names, self.example = what, names, example
        self.accepts = f"{what}=VALUE, e.g. {example}"

    def __call__(self, text: str) -> str:
        name, eq, _ = str(text).partition("=")
        head = name.strip().split(".")[0]
        if not eq or not head:
            raise self.bad(text, f"use {self.accepts}")
        known = self.names()
        if head not in known:
            raise self.bad(text, f"no {self.what} {head!r}; use one of {', '.join(sorted(known))}")
        return text


class PolicySpec(FlagType):
    """A policy of ``bundlerl.experiment.policy_spec`` (its :func:`check_spec`): an observable baseline or
    ``tuned-linear`` by name, a tuned-linear weights ``.json`` file or a run directory, and ``RUN_DIR:greedy``."""

    __name__ = "policy"
    accepts = "a baseline name, tuned-linear, a tuned-linear weights .json, a run directory or RUN_DIR:greedy"
    bad_examples = ("psychic", "", "no/such/run:greedy", "random:greedy", "popularity:greedy", "random:stochastic")
    """Values a test expects refused (tests/test_cli_flags.py)."""

    def __call__(self, text: str) -> str:
        from bundlerl.agents.policy import PolicyError
        from bundlerl.experiment.policy_spec import check_spec

        try:
            name, kind, _ = check_spec(text)
        except PolicyError as exc:
            raise self.bad(text, str(exc).removeprefix(f"policy {text!r}: ")) from None
        if kind == "run" and not (Path(name) / "config.yaml").is_file():
            raise self.bad(text, f"{name} holds no config.yaml: not a run directory made by 'bundlerl train'")
        return str(text).strip()


SEED = Integer(0)
"""Seeds are integers >= 0 (numpy's SeedSequence takes no negative entropy)."""

INSTACART_FILES = ("products.csv, aisles.csv, departments.csv, orders.csv and order_products.csv (or Kaggle's "
                   "order_products__prior.csv / order_products__train.csv)")
"""What an Instacart folder holds, in words (bundlerl.sim_data.loaders.load_instacart)."""

RUN_DIR = ExistingFolder(("config.yaml",), "run directory made by 'bundlerl train'")
"""A run directory: an existing folder with a config.yaml."""


@contextlib.contextmanager
def about(flag: str):
    """A BundlerlError raised inside names ``flag`` as argparse's own errors do (``argument --set: ...``): the value
    checks that need several flags together (a command's ``check(args)``) read like the per-flag ones."""
    from bundlerl.utils.errors import BundlerlError

    try:
        yield
    except BundlerlError as exc:
        if str(exc).startswith("argument "):
            raise
        try:
            named = type(exc)(f"argument {flag}: {exc}")
        except TypeError:  # a subclass with another constructor
            named = BundlerlError(f"argument {flag}: {exc}")
        raise named from None


def _env_fields() -> set[str]:
    from bundlerl.env import EnvConfig

    return {f.name for f in dataclasses.fields(EnvConfig)}


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
    g.add_argument("--env-config", metavar="FILE", default=None, type=ExistingFile("YAML file of EnvConfig fields"),
                   help="the world from a YAML file of EnvConfig fields (as EnvConfig.to_dict writes them); missing "
                        "fields take EnvConfig's defaults")
    p.add_argument("--env-set", metavar="FIELD=VALUE", action="append", default=[],
                   type=Assignment("EnvConfig field", _env_fields, "horizon=30"),
                   help="override a field of the world's EnvConfig, e.g. --env-set horizon=30 --env-set "
                        "shopper.tau_c=2.5 (repeatable; applied to --preset / --env-config)")
    p.add_argument("--instacart-dir", metavar="DIR", default=None,
                   type=ExistingFolder(("products.csv",), "folder of the Instacart CSVs", INSTACART_FILES),
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
            raise ConfigError("argument --instacart-dir: goes with --preset instacart; with --env-config set "
                              "instacart_path in the file or with --env-set instacart_path=DIR")
        with about("--env-config"):
            config = load_env_config(args.env_config)
    else:
        name = args.preset or ("instacart" if args.instacart_dir is not None else default)
        if name is None:
            if args.env_set:
                raise ConfigError("argument --env-set: it changes a world: give it one with --preset or --env-config")
            return None
        if args.instacart_dir is not None and name != "instacart":
            raise ConfigError(f"argument --instacart-dir: goes with --preset instacart, not --preset {name}")
        if name == "instacart" and args.instacart_dir is None and not os.environ.get("BUNDLERL_INSTACART"):
            raise ConfigError(f"argument --preset: instacart reads the Instacart CSVs ({INSTACART_FILES}): pass their "
                              "folder with --instacart-dir DIR (or set BUNDLERL_INSTACART)")
        # absolute: the run directory stores the path, and its evaluation may start elsewhere
        folder = {} if args.instacart_dir is None else {"instacart_path": str(Path(args.instacart_dir).resolve())}
        config = get_config(name, **folder)
    if not args.env_set:
        return config
    with about("--env-set"):
        return env_config_overrides(config, args.env_set)
