"""Environment configuration, named presets and the cached :class:`World`.

An :class:`EnvConfig` says everything an environment needs: where the catalogue comes from,
how many personas and historical baskets to generate, the action geometry (``K`` candidate
bundles of at most ``K_max`` items), the horizon, the reward mode, the shopper and builder
parameters, the observation size and the candidate refresh policy.

A :class:`World` holds the heavy, episode-independent parts built from a config: the
catalogue with embeddings, historical baskets, the estimated complementarity model, the FAISS
item index, the candidate builder, the persona pool and its profile embeddings. Worlds are
cached twice: in-process (one per world key) and on disk by content hash (catalogue, personas
and baskets in one pickle; embeddings through the encoder's own cache; the complementarity
model through its own cache), so the second construction of the same world is fast.

Presets: ``default`` (synthetic ~5k items, K=16, K_max=3, horizon 20, purchase reward),
``small`` (300 items, few personas; for tests), ``revenue`` (default with revenue reward),
``instacart`` (real Instacart-format folder; see :func:`instacart_config`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bundlerl.sim_data.versions import GENERATOR_VERSION, LOADER_VERSION
from bundlerl.utils.cache import cache_root
from bundlerl.utils.errors import BundlerlError

__all__ = [
    "ConfigError",
    "EnvConfig",
    "World",
    "PRESETS",
    "get_config",
    "instacart_config",
    "build_world",
    "REWARD_MODES",
]

REWARD_MODES = ("clicks", "purchases", "revenue")
"""Reward modes; each maps to a ``ShopperParams`` preset (reward weights w_click, w_buy, w_rev)."""

_WORLD_FORMAT = 1  # bump when the pickled world layout changes so stale caches are ignored


class ConfigError(BundlerlError):
    """An environment config is invalid; the message names the field and the fix."""


@dataclass(frozen=True)
class EnvConfig:
    """Everything that defines a bundle-recommendation environment. Validated on construction."""

    name: str = "default"
    """Preset name, recorded in run directories and render output."""
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
    K: int = 16
    """Number of candidate bundles offered per step (the action space is Discrete(K))."""
    K_max: int = 3
    """Maximum number of items per bundle."""
    horizon: int = 20
    """Episode length in shopper-facing steps; reaching it truncates (never terminates) the episode."""
    reward: str = "purchases"
    """Reward mode, one of ``REWARD_MODES``; selects the ShopperParams preset when ``shopper`` is None."""
    shopper: Any = None
    """``bundlerl.env.shopper_params.ShopperParams`` or None for the preset of ``reward``."""
    builder: Any = None
    """``bundlerl.candidates.builder.BuilderConfig`` or None for the defaults with this config's K and K_max."""
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

        if self.source not in ("synthetic", "instacart"):
            raise bad("source", f"{self.source!r}; use 'synthetic' or 'instacart'")
        if self.source == "instacart" and not self.instacart_path:
            raise bad("instacart_path", "source='instacart' needs the folder with the Instacart CSVs")
        for name, lo in (("n_items", 10), ("n_personas", 1), ("n_baskets", 1), ("K", 1), ("K_max", 1),
                         ("horizon", 1), ("profile_dim", 1), ("refresh_every", 1), ("compose_items", 1),
                         ("min_valid_candidates", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise bad(name, f"{v!r}; it must be an integer >= {lo}")
        if self.reward not in REWARD_MODES:
            raise bad("reward", f"{self.reward!r}; use one of {REWARD_MODES}")
        if self.profile_dim > 384:
            raise bad("profile_dim", f"{self.profile_dim} > 384, the embedding dimension")
        if self.min_valid_candidates > self.K:
            raise bad("min_valid_candidates", f"{self.min_valid_candidates} > K={self.K}")
        if not np.isfinite(self.invalid_action_penalty) or self.invalid_action_penalty < 0:
            raise bad("invalid_action_penalty", f"{self.invalid_action_penalty}; it must be finite and >= 0")

    # ------------------------------------------------------------------ derived
    def shopper_params(self):
        """The ShopperParams in force: ``shopper`` or the preset of the reward mode."""
        if self.shopper is not None:
            return self.shopper
        from bundlerl.env.shopper_params import ShopperParams

        return getattr(ShopperParams, self.reward)()  # REWARD_MODES are ShopperParams' preset constructors

    def builder_config(self):
        """The BuilderConfig in force: ``builder`` or defaults with this K and K_max."""
        if self.builder is not None:
            return self.builder
        from bundlerl.candidates.builder import BuilderConfig

        names = {f.name for f in dataclasses.fields(BuilderConfig)}
        kw = {}
        for ours, theirs in (("K", "n_candidates"), ("K_max", "max_bundle_size")):
            if theirs in names:
                kw[theirs] = getattr(self, ours)
        return BuilderConfig(**kw)

    def world_key(self) -> str:
        """Content hash of what the World depends on (not K, horizon, reward, ...)."""
        src = {
            "format": _WORLD_FORMAT,
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
        return hashlib.sha256(json.dumps(src, sort_keys=True).encode()).hexdigest()[:20]

    def replace(self, **changes) -> "EnvConfig":
        """A validated copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)


def instacart_config(path: str | os.PathLike | None = None, **changes) -> EnvConfig:
    """The ``instacart`` preset on the folder ``path`` (default: ``$BUNDLERL_INSTACART``).

    Raises ConfigError when no folder is given, or the folder or its ``products.csv`` is missing, saying where
    it looked.
    """
    if path is None:
        path = os.environ.get("BUNDLERL_INSTACART")
    if path is None:
        raise ConfigError(
            "instacart preset: no data folder; pass the folder holding the Instacart CSVs "
            "(instacart_config(path) or preset=EnvConfig(source='instacart', instacart_path=...)) "
            "or set BUNDLERL_INSTACART"
        )
    p = Path(path).expanduser()
    if not (p / "products.csv").is_file():
        raise ConfigError(
            f"instacart preset: no products.csv in {p}; pass the folder holding the Instacart CSVs "
            "(instacart_config(path) or preset=EnvConfig(source='instacart', instacart_path=...)) "
            "or set BUNDLERL_INSTACART"
        )
    kw = dict(name="instacart", source="instacart", instacart_path=str(p), n_personas=2000)
    kw.update(changes)
    return EnvConfig(**kw)


PRESETS: dict[str, EnvConfig] = {
    "default": EnvConfig(),
    "small": EnvConfig(name="small", n_items=300, n_personas=64, n_baskets=2000, K=8, K_max=3, horizon=10,
                       profile_dim=16, compose_items=16),
    "revenue": EnvConfig(name="revenue", reward="revenue"),
    "clicks": EnvConfig(name="clicks", reward="clicks"),
}
"""Named presets. ``instacart`` is built on demand by :func:`instacart_config` (it needs a data folder)."""


def get_config(preset: "str | EnvConfig") -> EnvConfig:
    """An EnvConfig from a preset name or a config (returned as is). Unknown names raise ConfigError."""
    if isinstance(preset, EnvConfig):
        return preset
    if preset == "instacart":
        return instacart_config()
    try:
        return PRESETS[preset]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown preset {preset!r}; use one of {sorted(PRESETS) + ['instacart']} or pass an EnvConfig"
        ) from None


# ---------------------------------------------------------------------- the world
@dataclass
class World:
    """The heavy, episode-independent parts of an environment (built once per world key).

    ``catalog`` and ``personas`` hold SIMULATOR TRUTH (complement graph, needs, budgets): only the
    shopper model and oracles read them. The recommender side uses ``observable_catalog``,
    ``baskets``, ``comp_model``, ``index``, ``builder``, ``persona_vecs`` (the profile text embeddings)
    and ``projection``.
    """

    config: EnvConfig
    catalog: Any
    """bundlerl.sim_data.catalog.Catalog with embeddings (n, d) and, for synthetic data, the true complement graph."""
    observable_catalog: Any
    """The same catalogue without simulator truth."""
    baskets: Any
    """bundlerl.sim_data.baskets.Baskets: historical orders the complementarity model is estimated from."""
    personas: Any
    """bundlerl.sim_data.personas.Personas: the persona pool (texts observable, the rest truth)."""
    persona_vecs: np.ndarray
    """(n_personas, d) float32 unit rows: enc(persona text), the observable profile vectors."""
    comp_model: Any
    """Estimated complementarity model (recommender side)."""
    index: Any
    """bundlerl.candidates.index.ItemIndex over the item embeddings."""
    builder: Any
    """bundlerl.candidates.builder.BundleBuilder producing CandidateSets."""
    projection: np.ndarray
    """(d, P) float32 orthonormal columns: top-P principal directions of the item embeddings."""
    persona_obs: np.ndarray | None = None
    """(n_personas, P) float32 profile observations (persona_vecs @ projection), computed once per persona
    so a user's profile observation does not depend on the batch it is computed in."""
    item_proj: np.ndarray | None = None
    """(n_items, P) float32 item embeddings @ projection (history observations are sums of these rows)."""
    mean_price: float = field(default=1.0)
    """Mean catalogue price (normalises money in the observation)."""

    @property
    def n_items(self) -> int:
        return int(self.catalog.n_items)

    def initial_pools(self):
        """CandidateSet (n_personas, K, K_max): each persona's pool at episode start (profile only, no history,
        nothing shown or bought), built once on first use in one batched call."""
        pools = self.__dict__.get("_initial_pools")
        if pools is None:
            pools = self.builder.build(self.persona_vecs, None, None, None, None)
            self.__dict__["_initial_pools"] = pools
        return pools


_WORLDS: dict[str, World] = {}
_LOCK = threading.Lock()


def _encode(texts: list[str]) -> np.ndarray:
    from bundlerl.encoders import default_encoder

    return np.asarray(default_encoder().encode(texts), dtype=np.float32)


def _load_raw(config: EnvConfig, key: str):
    """(catalog without embeddings, personas, baskets), from the disk cache or generated."""
    path = cache_root() / "worlds" / f"{key}.pkl"
    if path.is_file():
        try:
            with open(path, "rb") as fh:
                raw = pickle.load(fh)
            if raw.get("format") == _WORLD_FORMAT:
                return raw["catalog"], raw["personas"], raw["baskets"]
        except Exception:  # a corrupt or stale cache is rebuilt, never trusted
            pass
    rng = np.random.default_rng([config.world_seed, 7919])
    if config.source == "synthetic":
        from bundlerl.sim_data.basket_gen import generate_baskets
        from bundlerl.sim_data.personas_gen import sample_personas
        from bundlerl.sim_data.synthetic import CatalogConfig, generate_catalog

        catalog = generate_catalog(CatalogConfig(n_items=config.n_items, seed=config.catalog_seed))
        personas = sample_personas(catalog, config.n_personas, rng)
        baskets = generate_baskets(catalog, personas, config.n_baskets, rng)
    else:
        from bundlerl.sim_data.loaders import load_instacart
        from bundlerl.sim_data.personas_gen import sample_personas

        loaded = load_instacart(config.instacart_path)
        catalog, baskets = (loaded if isinstance(loaded, tuple) else (loaded.catalog, loaded.baskets))[:2]
        personas = sample_personas(catalog, config.n_personas, rng)
    from bundlerl.utils.atomic import atomic_write

    with atomic_write(path) as tmp:
        with open(tmp, "wb") as fh:
            pickle.dump({"format": _WORLD_FORMAT, "catalog": catalog, "personas": personas, "baskets": baskets}, fh)
    return catalog, personas, baskets


def build_world(preset: "str | EnvConfig") -> World:
    """The World of a preset or config: cached in-process by :meth:`EnvConfig.world_key`, heavy parts on disk.

    Raises ConfigError for unknown presets or missing data folders; dependency errors propagate.
    """
    config = get_config(preset)
    key = config.world_key()
    with _LOCK:
        world = _WORLDS.get(key)
        if world is not None:
            return world
        catalog, personas, baskets = _load_raw(config, key)
        if catalog.embeddings is None:
            catalog = catalog.with_embeddings(_encode(catalog.item_texts()))
        if catalog.complement_graph is None and config.source == "instacart":
            # Real data: the true graph is calibrated from the real baskets (SIMULATOR.md, Catalogue).
            from bundlerl.sim_data.loaders import calibrate_complement_graph  # noqa: PLC0415

            catalog = dataclasses.replace(catalog, complement_graph=calibrate_complement_graph(catalog, baskets))
        persona_vecs = _encode(list(personas.texts))
        observable = catalog.observable()
        from bundlerl.candidates import complementarity
        from bundlerl.candidates.builder import BundleBuilder
        from bundlerl.candidates.index import IndexConfig, ItemIndex
        from bundlerl.candidates.projection import pca_projection

        rng = np.random.default_rng([config.world_seed, 104729])
        comp = complementarity.fit(observable, baskets, observable.embeddings, rng)  # disk-cached by content hash
        index = ItemIndex(observable.embeddings, IndexConfig.for_size(observable.n_items))
        builder = BundleBuilder(observable, index, comp, config.builder_config())
        bc = builder.config
        if (bc.n_candidates, bc.max_bundle_size) != (config.K, config.K_max):
            raise ConfigError(
                f"EnvConfig.builder has n_candidates={bc.n_candidates}, max_bundle_size={bc.max_bundle_size} but the "
                f"env has K={config.K}, K_max={config.K_max}; make them agree"
            )
        world = World(
            config=config,
            catalog=catalog,
            observable_catalog=observable,
            baskets=baskets,
            personas=personas,
            persona_vecs=np.ascontiguousarray(persona_vecs, dtype=np.float32),
            comp_model=comp,
            index=index,
            builder=builder,
            projection=pca_projection(observable.embeddings, config.profile_dim, center=True),  # coordinates: centred
            mean_price=float(np.mean(catalog.price)),
        )
        world.persona_obs = np.clip(world.persona_vecs @ world.projection, -1.0, 1.0).astype(np.float32)
        world.item_proj = np.ascontiguousarray(observable.embeddings @ world.projection, dtype=np.float32)
        _WORLDS[key] = world
        return world
