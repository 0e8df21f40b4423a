"""A small synthetic world for complementarity-fit tests (shared by the determinism, cache and progress tests)."""

from __future__ import annotations

import numpy as np

from bundlerl.sim_data import CatalogConfig, generate_baskets, generate_catalog, sample_personas


def fit_data(n_items: int, n_personas: int, n_baskets: int, dim: int, seed: int = 5):
    """(observable catalogue, baskets, (n_items, dim) random unit embeddings), all from ``seed``."""
    cat = generate_catalog(CatalogConfig(n_items=n_items, seed=seed))
    rng = np.random.default_rng(seed)
    baskets = generate_baskets(cat, sample_personas(cat, n_personas, rng), n_baskets, rng)
    emb = rng.standard_normal((cat.n_items, dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return cat.observable(), baskets, emb
