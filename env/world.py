"""The :class:`World` of an environment config: its heavy, episode-independent parts, built once and cached.

A World holds what a config builds: the catalogue with embeddings, historical baskets, the estimated
complementarity model, the FAISS item index, the candidate builder, the persona pool and its profile
embeddings, the observation's projection and each persona's initial candidate pool. Worlds are cached twice:
in-process and on disk, both by :func:`~bundlerl.env.world_cache.world_cache_key` (the config and the content of
its data files; catalogue, personas and baskets in one pickle, see :mod:`bundlerl.env.world_cache`; embeddings
through the encoder's own cache; the complementarity model through its own cache), so the second construction of
the same world is fast. A build shows its stages on stderr (:func:`build_world`'s ``progress``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bundlerl.env.config import ConfigError, EnvConfig, get_config
from bundlerl.env.world_cache import load_raw, save_raw, world_cache_key
from bundlerl.utils.progress import progress_bar, progress_enabled

__all__ = ["World", "build_world"]


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
    completion: Any = None
    """bundlerl.candidates.learned.CompletionModel: the completion fitted on ``baskets`` (recommender side); the
    builder's complementarity model (its top lists, tables, compose-mode ``mean_comp``). None for a hand-made World."""

    @property
    def n_items(self) -> int:
        return int(self.catalog.n_items)

    def initial_pools(self):
        """CandidateSet (n_personas, K, K_max): each persona's pool at episode start (profile only, no history,
        nothing shown or bought), built once in one batched call: by :func:`build_world` (a stage of its own), or on
        first use for a World assembled by hand."""
        pools = self.__dict__.get("_initial_pools")
        if pools is None:
            pools = self.builder.build(self.persona_vecs, None, None, None, None)
            self.__dict__["_initial_pools"] = pools
        return pools


_WORLDS: dict[str, World] = {}
_LOCK = threading.Lock()


def _encode(texts: list[str], progress: bool | None) -> np.ndarray:
    from bundlerl.encoders import default_encoder

    return np.asarray(default_encoder().encode(texts, progress=progress), dtype=np.float32)


def _make_raw(config: EnvConfig):
    """(catalog without embeddings, personas, baskets), generated (synthetic) or read from the data folder."""
    rng = np.random.default_rng([config.world_seed, 7919])
    if config.source == "synthetic":
        from bundlerl.sim_data.basket_gen import generate_baskets
        from bundlerl.sim_data.synthetic import CatalogConfig, generate_catalog

        catalog = generate_catalog(CatalogConfig(n_items=config.n_items, seed=config.catalog_seed))
        personas = _personas(catalog, config, rng)
        baskets = generate_baskets(catalog, personas, config.n_baskets, rng)
    else:
        from bundlerl.sim_data.loaders import load_instacart

        loaded = load_instacart(config.instacart_path)
        catalog, baskets = (loaded if isinstance(loaded, tuple) else (loaded.catalog, loaded.baskets))[:2]
        personas = _personas(catalog, config, rng)
    return catalog, personas, baskets


def _personas(catalog, config: EnvConfig, rng: np.random.Generator):
    """The world's persona pool; an ``interests_per_persona`` the catalogue cannot serve is a ConfigError naming the
    EnvConfig field and its valid range for this catalogue."""
    from bundlerl.sim_data.personas_gen import PersonaConfig, interest_range, sample_personas

    k, (lo, hi) = config.interests_per_persona, interest_range(catalog)
    if not lo <= k <= hi:
        raise ConfigError(f"EnvConfig.interests_per_persona: {k}, but the {config.name!r} catalogue sells in only "
                          f"{hi} categories; give an integer in [{lo}, {hi}] (e.g. --env-set "
                          f"interests_per_persona={hi})")
    return sample_personas(catalog, config.n_personas, rng, PersonaConfig(interests_per_persona=k))


class _Stages:
    """One bar over the stages of a world build (``world small: fitting complementarity  3/5``), on stderr."""

    def __init__(self, name: str, n: int, show: bool):
        self.name = name
        self.bar = progress_bar(n, f"world {name}", unit="stage", show=show)

    @contextlib.contextmanager
    def stage(self, what: str):
        self.bar.set_description(f"world {self.name}: {what}")
        yield
        self.bar.update(1)

    def done(self) -> None:
        self.bar.set_description(f"world {self.name}: built")


def build_world(preset: "str | EnvConfig", *, progress: bool | None = None) -> World:
    """The World of a preset or config: cached in-process and on disk by
    :func:`~bundlerl.env.world_cache.world_cache_key` (the config and the content of its data files).

    :param progress: show a bar on stderr naming each stage of the build (generating or loading the data, encoding
        texts, calibrating the complement graph for real data, fitting complementarity, building the item index,
        building the initial candidate pools), and pass it to the encoder's and the fit's own bars; None: only
        for a cold build (the raw parts not cached on disk; each step's own cache decides its bar), never under
        ``BUNDLERL_PROGRESS=0`` (:mod:`bundlerl.utils.progress`). An in-process hit is silent.
    :raises ConfigError: unknown presets or missing data folders; loader and dependency errors propagate.
    """
    config = get_config(preset)
    key = world_cache_key(config)
    with _LOCK:
        world = _WORLDS.get(key)
        if world is not None:
            return world if world.config == config else _with_config(world, config)
        raw = load_raw(config, key)
        n_stages = (raw is None) + 4 + (config.source == "instacart")
        stages = _Stages(config.name, n_stages, progress_enabled(progress, default=raw is None))
        try:
            world = _build(config, key, raw, progress, stages)
            stages.done()
        finally:
            stages.bar.close()
        _WORLDS[key] = world
        return world


def _with_config(world: World, config: EnvConfig) -> World:
    """``world`` under ``config``, a config of the same world key: the key leaves out what the world's parts do not
    depend on (horizon, reward, shopper parameters, ...), so the parts are shared, but ``World.config`` is the one
    asked for (callers read the horizon from it)."""
    out = dataclasses.replace(world, config=config)
    if "_initial_pools" in world.__dict__:  # built from the builder, which the key covers
        out.__dict__["_initial_pools"] = world.__dict__["_initial_pools"]
    return out


def _build(config: EnvConfig, key: str, raw, progress: bool | None, stages: _Stages) -> World:
    real = config.source == "instacart"
    if raw is None:
        with stages.stage(f"loading {config.instacart_path}" if real else "generating catalogue, personas, baskets"):
            raw = _make_raw(config)
            save_raw(key, *raw)
    catalog, personas, baskets = raw
    with stages.stage("encoding texts"):
        if catalog.embeddings is None:
            catalog = catalog.with_embeddings(_encode(catalog.item_texts(), progress))
        persona_vecs = _encode(list(personas.texts), progress)
    if real:
        with stages.stage("calibrating the complement graph"):
            if catalog.complement_graph is None:
                # Real data: the true graph is calibrated from the real baskets (docs/SIMULATOR.md, Catalogue).
                from bundlerl.sim_data.loaders import calibrate_complement_graph  # noqa: PLC0415

                catalog = dataclasses.replace(catalog, complement_graph=calibrate_complement_graph(catalog, baskets))
    observable = catalog.observable()
    from bundlerl.candidates import complementarity
    from bundlerl.candidates.builder import BundleBuilder
    from bundlerl.candidates.index import IndexConfig, ItemIndex
    from bundlerl.candidates.learned import fit_completion
    from bundlerl.candidates.projection import pca_projection

    with stages.stage("fitting complementarity"):
        rng = np.random.default_rng([config.world_seed, 104729])
        comp = complementarity.fit(observable, baskets, observable.embeddings, rng,  # disk-cached by content hash
                                   progress=progress)
        # the builder completes bundles with the completion learned from these baskets (issue 16), its candidates
        # joined by the complementarity model's top lists; disk-cached by content hash like the fit
        completion = fit_completion(observable, baskets, observable.embeddings,
                                    np.random.default_rng([config.world_seed, 104743]), complement_model=comp)
    with stages.stage("building the item index"):
        index = ItemIndex(observable.embeddings, IndexConfig.for_size(observable.n_items))
        builder = BundleBuilder(observable, index, completion, config.builder_config())  # K, K_max checked by EnvConfig
        world = World(
            config=config,
            catalog=catalog,
            observable_catalog=observable,
            baskets=baskets,
            personas=personas,
            persona_vecs=np.ascontiguousarray(persona_vecs, dtype=np.float32),
            comp_model=comp,
            completion=completion,
            index=index,
            builder=builder,
            projection=pca_projection(observable.embeddings, config.profile_dim, center=True),  # coordinates: centred
            mean_price=float(np.mean(catalog.price)),
        )
        world.persona_obs = np.clip(world.persona_vecs @ world.projection, -1.0, 1.0).astype(np.float32)
        world.item_proj = np.ascontiguousarray(observable.embeddings @ world.projection, dtype=np.float32)
    with stages.stage("building the initial candidate pools"):
        world.initial_pools()
    return world
