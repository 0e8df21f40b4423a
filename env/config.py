"""Environment configuration: :class:`EnvConfig`, the named presets, and its plain-data forms.

An :class:`EnvConfig` says everything an environment needs: where the catalogue comes from, how many
personas and historical baskets to generate, the action geometry (``K`` candidate bundles of at most
``K_max`` items), the horizon, the reward, the shopper and builder parameters, the observation size and
the candidate refresh policy. It is the one config object of the environment (DESIGN.md); YAML files
(:func:`load_env_config`), run directories (:meth:`EnvConfig.to_dict` / :meth:`EnvConfig.from_dict`) and
``field=value`` command-line overrides (:func:`env_config_overrides`) are its serialisations. What a config
builds, the heavy :class:`~bundlerl.env.world.World`, lives in :mod:`bundlerl.env.world`.

Presets (:data:`PRESETS`): ``default`` (synthetic ~5k items, K=16, K_max=3, horizon 20, purchase reward),
``small`` (300 items, few personas; for tests), ``revenue`` and ``clicks`` (default with that reward mode),
``instacart`` (the default on a real Instacart-format folder; :func:`instacart_config`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from bundlerl.env.reward import REWARD_MODES, RewardWeights, reward_weights
from bundlerl.sim_data.versions import GENERATOR_VERSION, LOADER_VERSION
from bundlerl.utils.args import need_path, shown
from bundlerl.utils.config_io import (
    annotations_of,
    check_field_types,
    from_mapping,
    nested_config,
    parse_assignment,
    plain,
    value_from_text,
)
from bundlerl.utils.errors import BundlerlError

__all__ = [
    "ConfigError",
    "EnvConfig",
    "PRESETS",
    "get_config",
    "instacart_config",
    "load_env_config",
    "env_config_overrides",
]

WORLD_FORMAT = 1
"""Layout version of the world cached on disk (:mod:`bundlerl.env.world_cache`), part of :meth:`EnvConfig.world_key`:
bump it when the pickled layout changes so that stale caches are ignored."""
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}")
_DERIVED_BUILDER = {"n_candidates": "K", "max_bundle_size": "K_max"}
"""BuilderConfig fields derived from EnvConfig fields (the env's K and K_max are the source of truth)."""


class ConfigError(BundlerlError):
    """An environment config is invalid; the message names the field and the fix."""


@dataclass(frozen=True)
class EnvConfig:
    """Everything that defines a bundle-recommendation environment. Validated on construction."""

    name: str = "default"
    """Short name (the preset's, or a custom config's own) used in run-directory names and render output:
    1-40 letters, digits, ``.``, ``-``, ``_``, starting with a letter or digit, no ``__`` (the run-directory
    separator)."""
    source: str = "synthetic"
    """Catalogue source: ``"synthetic"`` (generated from ``n_items`` and ``catalog_seed``) or ``"instacart"``."""
    n_items: int = 5000
    """Synthetic catalogue size (ignored for instacart)."""
    catalog_seed: int = 0
    """Seed of the synthetic catalogue generator."""
    instacart_path: str | None = None
    """Folder with Instacart-format CSVs (products.csv, aisles.csv, departments.csv, order_products.csv, orders.csv);
    required when ``source == "instacart"``."""
    n_personas: int = 2000
    """Size of the persona pool; each episode's shopper is drawn from it."""
    n_baskets: int = 20000
    """Number of historical baskets simulated to estimate complementarity (synthetic source only)."""
    world_seed: int = 0
    """Seed of the world's random parts (personas, baskets, complementarity fitting, observation projection)."""
    interests_per_persona: int = 3
    """Interest categories per persona (``bundlerl.sim_data.personas_gen.PersonaConfig``), >= 1 and at most the
    number of categories the catalogue sells in: a tiny catalogue (an Instacart folder with two aisles) needs a
    smaller value, e.g. ``--env-set interests_per_persona=1``; the world build says the range when it is too large."""
    K: int = 16
    """Number of candidate bundles offered per step (the action space is Discrete(K))."""
    K_max: int = 3
    """Maximum number of items per bundle."""
    horizon: int = 20
    """Episode length in shopper-facing steps; reaching it truncates (never terminates) the episode."""
    reward: "str | RewardWeights" = "purchases"
    """The reward: a mode name of ``bundlerl.env.reward.REWARD_MODES`` (``clicks``, ``purchases``, ``revenue``) or
    custom ``RewardWeights``; see :mod:`bundlerl.env.reward`."""
    shopper: Any = None
    """``bundlerl.env.shopper_params.ShopperParams`` or None for its defaults."""
    builder: Any = None
    """``bundlerl.candidates.builder.BuilderConfig`` or None for its defaults. Its ``n_candidates`` and
    ``max_bundle_size`` are derived: they must equal ``K`` and ``K_max`` (checked here; :meth:`replace` keeps
    them in step)."""
    profile_dim: int = 32
    """P: the 384-d profile and history vectors are projected on the top-P principal directions of the item
    embeddings (orthonormal, so every component stays in [-1, 1])."""
    refresh_every: int = 5
    """Rebuild a user's candidate pool at least every this many shown bundles (>= 1). Between rebuilds the
    cached pool's novelty / rel_history features are updated in place and bundles with bought items masked.
    A session that has just terminated is never rebuilt (by any rule here): its terminal observation shows
    the cached pool, updated in place."""
    refresh_on_click: bool = False
    """Also rebuild after a click (the retrieval query moves with the history vector). Off by default: the
    rel_history feature is updated in place instead, and the next periodic rebuild re-queries."""
    refresh_on_purchase: bool = True
    """Rebuild after a purchase (cross-sell bundles completing the bought item enter the pool)."""
    min_valid_candidates: int = 1
    """Rebuild when fewer valid candidates than this remain in the cached pool (after masking bought items)."""
    compose_items: int = 32
    """M: items offered per step in compose mode (the distinct items of the candidate pool, in rank order)."""
    invalid_action_penalty: float = 1.0
    """Penalty subtracted from the reward when a masked (in-range but invalid) candidate is chosen; nothing is
    shown then and the step counts as a miss for the shopper."""

    def __post_init__(self) -> None:
        def bad(field_: str, msg: str) -> ConfigError:
            return ConfigError(f"EnvConfig.{field_}: {msg}")

        if isinstance(self.instacart_path, os.PathLike):  # a Path is welcome; stored as text (plain data)
            object.__setattr__(self, "instacart_path", os.fspath(self.instacart_path))
        check_field_types(self, ConfigError)  # None / a wrong type named, before the range checks

        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name) or "__" in self.name:
            raise bad("name", f"{self.name!r}; use a short filesystem-safe name (1-40 letters, digits, '.', '-', '_', "
                              "starting with a letter or digit, no '__'): it names run directories")
        if self.source not in ("synthetic", "instacart"):
            raise bad("source", f"{self.source!r}; use 'synthetic' or 'instacart'")
        if self.source == "instacart" and not self.instacart_path:
            raise bad("instacart_path", "source='instacart' needs the folder with the Instacart CSVs")
        for name, lo in (("n_items", 10), ("n_personas", 1), ("n_baskets", 1), ("interests_per_persona", 1), ("K", 1),
                         ("K_max", 1),
                         ("horizon", 1), ("profile_dim", 1), ("refresh_every", 1), ("compose_items", 1),
                         ("min_valid_candidates", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise bad(name, f"{v!r}; it must be an integer >= {lo}")
        if not isinstance(self.reward, RewardWeights) and (not isinstance(self.reward, str) or self.reward not in REWARD_MODES):
            raise bad("reward", f"{self.reward!r}; use one of {sorted(REWARD_MODES)} or a RewardWeights")
        if self.profile_dim > 384:
            raise bad("profile_dim", f"{self.profile_dim} > 384, the embedding dimension")
        if self.min_valid_candidates > self.K:
            raise bad("min_valid_candidates", f"{self.min_valid_candidates} > K={self.K}")
        if not np.isfinite(self.invalid_action_penalty) or self.invalid_action_penalty < 0:
            raise bad("invalid_action_penalty", f"{self.invalid_action_penalty}; it must be finite and >= 0")
        if self.shopper is not None:
            from bundlerl.env.shopper_params import ShopperParams

            if not isinstance(self.shopper, ShopperParams):
                raise bad("shopper", f"{type(self.shopper).__name__}; use a ShopperParams or None")
        if self.builder is not None:
            from bundlerl.candidates.builder_config import BuilderConfig

            if not isinstance(self.builder, BuilderConfig):
                raise bad("builder", f"{type(self.builder).__name__}; use a BuilderConfig or None")
            b = self.builder
            if (b.n_candidates, b.max_bundle_size) != (self.K, self.K_max):
                raise bad("builder", f"n_candidates={b.n_candidates}, max_bundle_size={b.max_bundle_size} but K={self.K}, "
                                     f"K_max={self.K_max}; K and K_max are the source of truth: derive the builder "
                                     "config from them (dataclasses.replace(config.builder_config(), ...))")

    # ------------------------------------------------------------------ derived
    def shopper_params(self):
        """The ShopperParams in force: ``shopper`` or the defaults."""
        if self.shopper is not None:
            return self.shopper
        from bundlerl.env.shopper_params import ShopperParams

        return ShopperParams()

    def reward_weights(self) -> RewardWeights:
        """The RewardWeights in force: those of the ``reward`` mode, or ``reward`` itself."""
        return reward_weights(self.reward)

    def builder_config(self):
        """The BuilderConfig in force: ``builder`` or the defaults, with this K and K_max."""
        if self.builder is not None:
            return self.builder
        from bundlerl.candidates.builder_config import BuilderConfig

        return BuilderConfig(**{theirs: getattr(self, ours) for theirs, ours in _DERIVED_BUILDER.items()})

    def world_key(self) -> str:
        """Hash of the config fields and code versions the World depends on (not K, horizon, reward, ...); no I/O.
        The World's cache key adds the content of its data files: :func:`bundlerl.env.world_cache.world_cache_key`."""
        src = {
            "format": WORLD_FORMAT,
            "source": self.source,
            "n_items": self.n_items if self.source == "synthetic" else None,
            "catalog_seed": self.catalog_seed,
            "instacart_path": str(Path(self.instacart_path).resolve()) if self.instacart_path else None,
            "n_personas": self.n_personas,
            "n_baskets": self.n_baskets,
            "world_seed": self.world_seed,
            "builder": repr(self.builder_config()),
            "profile_dim": self.profile_dim,
            "generators": [GENERATOR_VERSION, LOADER_VERSION],
        }
        if self.interests_per_persona != 3:  # keyed only when set, so the worlds cached before the field keep their keys
            src["interests_per_persona"] = self.interests_per_persona
        return hashlib.sha256(json.dumps(src, sort_keys=True).encode()).hexdigest()[:20]

    def replace(self, **changes) -> "EnvConfig":
        """A validated copy with ``changes`` applied; a custom ``builder`` follows changes of K and K_max."""
        if self.builder is not None and "builder" not in changes and {"K", "K_max"} & set(changes):
            changes["builder"] = dataclasses.replace(self.builder, **{
                theirs: changes.get(ours, getattr(self, ours)) for theirs, ours in _DERIVED_BUILDER.items()})
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ plain data
    def to_dict(self) -> dict[str, Any]:
        """Plain data (str, int, float, bool, None and dicts of them: JSON and YAML safe) that :meth:`from_dict`
        turns back into an equal config.

        ``shopper`` and ``builder`` are written in full (the builder without ``n_candidates`` and
        ``max_bundle_size``, which follow K and K_max), so a stored config keeps its values when defaults change;
        ``reward`` is a mode name or a mapping of weights.
        """
        out = plain(self)
        out["shopper"] = plain(self.shopper_params())
        if isinstance(self.reward, RewardWeights):
            out["reward"] = plain(self.reward)
        builder = plain(self.builder_config())
        for name in _DERIVED_BUILDER:
            del builder[name]
        builder["discounts"] = {int(k): float(v) for k, v in builder["discounts"].items()}
        out["builder"] = builder
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "EnvConfig":
        """The validated config of plain data as :meth:`to_dict` writes it; missing keys take the defaults.

        ``shopper`` / ``builder`` may be partial mappings (the rest from the defaults) or None; one equal to the
        defaults is stored as None (so ``from_dict(c.to_dict()) == c``). ``reward`` is a mode name or a (partial)
        mapping of RewardWeights. The builder's ``n_candidates`` / ``max_bundle_size`` may be left out (they
        follow K and K_max) or must equal them. Discount keys may be strings (as JSON writes them).

        :raises ConfigError: not a mapping, an unknown key (the message lists the valid ones), a value of the wrong
            type or out of range (the message names the field).
        """
        kw = from_mapping(cls, data, "EnvConfig", ConfigError)
        shopper, builder = kw.pop("shopper", None), kw.pop("builder", None)
        if isinstance(kw.get("reward"), Mapping):
            kw["reward"] = nested_config(RewardWeights, kw["reward"], "EnvConfig.reward", ConfigError)
        config = cls(**kw)
        changes = {}
        if shopper is not None:
            params = nested_config(_nested_class("shopper"), shopper, "EnvConfig.shopper", ConfigError)
            changes["shopper"] = None if params == config.shopper_params() else params
        if builder is not None:
            if isinstance(builder, Mapping) and isinstance(builder.get("discounts"), Mapping):
                builder = {**builder, "discounts": _int_keys(builder["discounts"])}
            derived = {theirs: getattr(config, ours) for theirs, ours in _DERIVED_BUILDER.items()}
            b = nested_config(_nested_class("builder"), builder, "EnvConfig.builder", ConfigError, defaults=derived)
            changes["builder"] = None if b == config.builder_config() else b
        return config.replace(**changes) if changes else config


def _int_keys(mapping: Mapping) -> dict:
    """``{2: .1}`` from ``{"2": .1}`` (JSON writes integer keys as strings)."""
    try:
        return {int(k): v for k, v in mapping.items()}
    except (TypeError, ValueError):
        raise ConfigError(f"EnvConfig.builder.discounts: keys {list(mapping)} must be bundle sizes (integers >= 2)") from None


_NESTED = ("shopper", "builder", "reward")
"""EnvConfig fields holding a config of their own (overridden one field at a time: ``shopper.tau_c=2.5``)."""


def _nested_class(name: str):
    if name == "shopper":
        from bundlerl.env.shopper_params import ShopperParams

        return ShopperParams
    if name == "reward":
        return RewardWeights
    from bundlerl.candidates.builder_config import BuilderConfig

    return BuilderConfig


def load_env_config(path: str | os.PathLike) -> EnvConfig:
    """The EnvConfig of a YAML file holding a mapping as :meth:`EnvConfig.to_dict` writes it (missing keys take the
    defaults of :class:`EnvConfig`).

    :raises ConfigError: the file is missing, not YAML, or holds a bad field (the message names the file, the
        field and the fix).
    """
    import yaml

    p = need_path(path, "path", "load_env_config", what="a YAML file", error=ConfigError).expanduser()
    if not p.is_file():
        raise ConfigError(f"env config file {p} not found; pass a YAML file of EnvConfig fields (see EnvConfig.to_dict)")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ConfigError(f"{p}: not valid YAML{where}: {getattr(err, 'problem', err)}") from None
    try:
        return EnvConfig.from_dict({} if data is None else data)
    except ConfigError as err:
        raise ConfigError(f"{p}: {err}") from None


def env_config_overrides(config: EnvConfig, overrides: Iterable[str]) -> EnvConfig:
    """``config`` with ``field=value`` overrides applied (command-line flags), validated once at the end.

    Fields are EnvConfig's (``horizon=30``, ``reward=revenue``, ``instacart_path=/data/instacart``) or a nested
    config's (``shopper.tau_c=2.5``, ``builder.mmr_lambda=0.5``, ``builder.discounts={2: 0.1, 3: 0.2}``,
    ``reward.w_click=0.1``: the weights of the mode in force, changed); values are
    read as the field's type (see :func:`bundlerl.utils.config_io.value_from_text`). The builder's
    ``n_candidates`` / ``max_bundle_size`` follow K and K_max: override those instead.

    :raises ConfigError: malformed override, unknown field (the message lists the valid ones), a value of the
        wrong type or out of range (the message names the field).
    """
    if not isinstance(config, EnvConfig):
        raise ConfigError(f"env_config_overrides(config={shown(config)}): config must be an EnvConfig")
    if isinstance(overrides, str):
        overrides = [overrides]
    if not isinstance(overrides, (list, tuple)) or not all(isinstance(o, str) for o in overrides):
        raise ConfigError(f"env_config_overrides(overrides={shown(overrides)}): overrides must be a list of "
                          "'field=value' texts")
    data = config.to_dict()
    top = annotations_of(EnvConfig)
    for text in overrides:
        path, raw = parse_assignment(text, ConfigError)
        if path[0] not in top:
            raise ConfigError(f"override {text!r}: EnvConfig has no field {path[0]!r}; valid fields are {sorted(top)}")
        if path[0] in _NESTED and (len(path) != 1 or path[0] != "reward"):  # reward=<mode> sets the whole field
            if len(path) != 2:
                raise ConfigError(f"override {text!r}: set one field of {path[0]}, e.g. {path[0]}.<field>=value")
            fields = annotations_of(_nested_class(path[0]))
            if path[1] in _DERIVED_BUILDER and path[0] == "builder":
                raise ConfigError(f"override {text!r}: builder.{path[1]} follows EnvConfig.{_DERIVED_BUILDER[path[1]]}; "
                                  f"override {_DERIVED_BUILDER[path[1]]} instead")
            if path[1] not in fields:
                valid = sorted(set(fields) - (set(_DERIVED_BUILDER) if path[0] == "builder" else set()))
                raise ConfigError(f"override {text!r}: {path[0]} has no field {path[1]!r}; valid fields are {valid}")
            if path[0] == "reward" and not isinstance(data["reward"], dict):  # a mode name: start from its weights
                data["reward"] = plain(_reward_weights_or_error(data["reward"]))
            data[path[0]][path[1]] = value_from_text(f"EnvConfig.{path[0]}.{path[1]}", fields[path[1]], raw, ConfigError)
        elif len(path) != 1:
            raise ConfigError(f"override {text!r}: EnvConfig.{path[0]} has no sub-fields; write {path[0]}=value")
        else:
            data[path[0]] = value_from_text(f"EnvConfig.{path[0]}", top[path[0]], raw, ConfigError)
    return EnvConfig.from_dict(data)


def _reward_weights_or_error(mode: Any) -> RewardWeights:
    try:
        return reward_weights(mode)
    except BundlerlError as err:
        raise ConfigError(f"EnvConfig.reward: {err}") from None


def instacart_config(path: str | os.PathLike | None = None, **changes) -> EnvConfig:
    """The ``instacart`` preset on the folder ``path`` (default: ``$BUNDLERL_INSTACART``).

    Raises ConfigError when no folder is given, or the folder or its ``products.csv`` is missing, saying where
    it looked.
    """
    if path is None:
        path = os.environ.get("BUNDLERL_INSTACART")
    need_path(path, "path", "instacart_config", optional=True, what="the Instacart folder", error=ConfigError)
    p = None if path is None else Path(path).expanduser()
    if p is None or not (p / "products.csv").is_file():
        raise ConfigError(
            f"instacart preset: {'no data folder' if p is None else f'no products.csv in {p}'}; pass the folder "
            "holding the Instacart CSVs (instacart_config(path), get_config('instacart', instacart_path=...), "
            "EnvConfig(source='instacart', instacart_path=...)) or set BUNDLERL_INSTACART"
        )
    # the default config on real data (registration takes the instacart id's horizon from ``default``)
    return PRESETS["default"].replace(**{"name": "instacart", "source": "instacart", "instacart_path": str(p), **changes})


PRESETS: dict[str, EnvConfig] = {
    "default": EnvConfig(),
    "small": EnvConfig(name="small", n_items=300, n_personas=64, n_baskets=2000, K=8, K_max=3, horizon=10,
                       profile_dim=16, compose_items=16),
    "revenue": EnvConfig(name="revenue", reward="revenue"),
    "clicks": EnvConfig(name="clicks", reward="clicks"),
}
"""Named presets. ``instacart`` is built on demand by :func:`instacart_config` (it needs a data folder)."""


def get_config(preset: "str | EnvConfig", **changes) -> EnvConfig:
    """An EnvConfig from a preset name or a config, with ``changes`` applied (:meth:`EnvConfig.replace`).

    ``get_config("instacart", instacart_path=folder)`` is :func:`instacart_config` on ``folder`` (without it,
    ``$BUNDLERL_INSTACART``). Unknown names raise ConfigError listing the known ones.
    """
    if not isinstance(preset, (str, EnvConfig)):
        raise ConfigError(f"preset={shown(preset)}: give a preset name ({sorted(PRESETS) + ['instacart']}) or an "
                          "EnvConfig")
    if isinstance(preset, EnvConfig):
        config = preset
    elif preset == "instacart":
        return instacart_config(changes.pop("instacart_path", None), **changes)
    else:
        try:
            config = PRESETS[preset]
        except (KeyError, TypeError):
            raise ConfigError(
                f"unknown preset {preset!r}; use one of {sorted(PRESETS) + ['instacart']} or pass an EnvConfig"
            ) from None
    return config.replace(**changes) if changes else config
