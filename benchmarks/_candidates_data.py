"""Shared data for the candidate-generation benchmarks (bench_index, bench_builder).

Real MiniLM embeddings of the Instacart product names (49,688 products, encoded once through
``bundlerl.encoders.default_encoder()``'s disk cache). Catalogues of other sizes:

- ``n <= 49,688``: the ``n`` most ordered products (ties by product order);
- ``n > 49,688``: the real vectors tiled, each extra copy jittered (``x + 0.25 * noise / sqrt(d)``,
  renormalised; cosine to its source ~0.97) so that there are no exact duplicates. The
  neighbourhood structure stays that of real text embeddings.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

DATA = Path(os.environ.get("BUNDLERL_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def instacart():
    """(Catalog, Baskets) of the shared Instacart data, via ``bundlerl.sim_data.loaders.load_instacart``."""
    from bundlerl.sim_data.loaders import load_instacart

    return load_instacart(DATA / "instacart")


def name_embeddings(catalog) -> np.ndarray:
    """(n, 384) float32 MiniLM embeddings of the catalogue's item texts (cached on disk)."""
    from bundlerl.encoders import default_encoder

    return default_encoder().encode(catalog.item_texts(), progress=False)


def tiled(E: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(n, d) vectors: E tiled with jittered copies; and (n,) source row of each."""
    src = np.arange(n) % E.shape[0]
    X = E[src].copy()
    extra = np.arange(n) >= E.shape[0]
    noise = rng.standard_normal((int(extra.sum()), E.shape[1])).astype(np.float32)
    X[extra] += 0.25 * noise / np.sqrt(E.shape[1])
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(np.float32), src


def user_queries(E: np.ndarray, N: int, rng: np.random.Generator) -> np.ndarray:
    """(N, d) unit 'user' vectors: the normalised mean of 3 random item vectors (a profile-like blend)."""
    q = E[rng.integers(0, E.shape[0], (N, 3))].mean(1)
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)
