"""The exact baselines of bundle completion (issue 16, section 2), as ``score(seeds) -> (q, n)`` rows for
:func:`bundlerl.sim_data.ranking_metrics.evaluate_ranking`:

- :func:`text_scorer`: cosine of the packaged encoder's embeddings, ``<e_s, e_j>`` (unit rows);
- :func:`cooccurrence_scorer`: the number of training bundles / baskets holding both the seed and the item, ties
  broken by the item's training popularity (``count + pop_j / (max pop + 1)``: the popularity term is < 1, so it
  only orders equal counts), remaining ties by item position (``top_k``);
- :func:`popularity_scorer`: the item's training popularity (baskets holding it).
"""

from __future__ import annotations

import numpy as np

from bundlerl.candidates.cooccurrence import PairCounts
from bundlerl.sim_data.baskets import Baskets

__all__ = ["text_scorer", "cooccurrence_scorer", "popularity_scorer"]


def text_scorer(embeddings: np.ndarray):
    """Rows ``E[seeds] @ E.T``: (q, n) float32 text cosines; ``embeddings`` (n, d) unit rows."""
    E = np.ascontiguousarray(embeddings, np.float32)
    return lambda seeds: E[np.asarray(seeds, np.int64)] @ E.T


def cooccurrence_scorer(train: Baskets, counts: PairCounts | None = None):
    """Rows of training co-occurrence counts with the seed, ties by training popularity: (q, n) float64."""
    c = counts if counts is not None else PairCounts.from_baskets(train)
    pop = c.item_counts.astype(np.float64)
    tie = pop / (pop.max() + 1.0)

    def score(seeds):
        seeds = np.asarray(seeds, np.int64)
        out = np.broadcast_to(tie, (seeds.size, c.n_items)).copy()
        row, j, n = c.rows(seeds)
        out[row, j] += n
        return out

    return score


def popularity_scorer(train: Baskets):
    """Rows of training popularity (baskets holding each item): (q, n) float64."""
    pop = train.item_counts().astype(np.float64)
    return lambda seeds: np.broadcast_to(pop, (np.asarray(seeds).size, pop.size))
