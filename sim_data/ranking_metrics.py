"""Ranking metrics of bundle completion: the top-k of a scored pool, Recall@k and NDCG@k per query.

Per query (a seed item and its targets, :class:`bundlerl.sim_data.splits.Queries`), a method scores every item; the
pool minus the seed is ranked by score, **ties broken by item position** (lower first), so every method's ranking
is deterministic. With ``T`` the targets and ``r_1..r_k`` the top k:

- ``Recall@k = |{r_1..r_k} & T| / min(k, |T|)`` (1 when every slot that could hold a target does);
- ``NDCG@k = DCG / IDCG`` with ``DCG = sum_i [r_i in T] / log2(i + 1)`` and ``IDCG = sum_{i <= min(k, |T|)} 1 / log2(i + 1)``.

Both lie in [0, 1]. Means and confidence intervals over queries: ``bundlerl.evaluation.stats.mean_ci`` (a layer up).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from bundlerl.sim_data.baskets import BasketError
from bundlerl.sim_data.splits import Queries

__all__ = ["top_k", "recall_at_k", "ndcg_at_k", "evaluate_ranking", "ScoreRows"]

#: ``score(seeds (q,) int64) -> (q, n) float``: a method's score of every catalogue item for each seed.
ScoreRows = Callable[[np.ndarray], np.ndarray]


def top_k(scores: np.ndarray, k: int, seeds: np.ndarray, pool: np.ndarray | None = None) -> np.ndarray:
    """(q, k) int64: the k best items of each row of ``scores`` (q, n), best first, ties by lower item position;
    the row's seed, items outside ``pool`` ((n,) bool; None = all) and NaN / -inf scores are never returned
    (-1 pads rows with fewer rankable items)."""
    s = np.array(scores, dtype=np.float64, copy=True)
    if s.ndim != 2:
        raise BasketError(f"scores have shape {s.shape}; expected (queries, items)")
    q, n = s.shape
    seeds = np.asarray(seeds, np.int64).reshape(-1)
    if seeds.size != q:
        raise BasketError(f"{seeds.size} seeds for {q} score rows; give one seed per row")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise BasketError(f"k={k!r}; rank at least one item")
    s[np.isnan(s)] = -np.inf
    if pool is not None:
        s[:, ~np.asarray(pool, bool)] = -np.inf
    s[np.arange(q), seeds] = -np.inf
    out = np.full((q, k), -1, np.int64)
    kk = min(k, n)
    for r in range(q):
        row = s[r]
        t = -np.partition(-row, kk - 1)[kk - 1]  # the k-th best value; every item scoring >= t competes
        cand = np.flatnonzero(row >= t) if np.isfinite(t) else np.flatnonzero(np.isfinite(row))
        best = cand[np.lexsort((cand, -row[cand]))[:kk]]
        out[r, : best.size] = best
    return out


def _hits(ranked: np.ndarray, queries: Queries) -> tuple[np.ndarray, np.ndarray]:
    ranked = np.asarray(ranked, np.int64)
    if ranked.ndim != 2 or ranked.shape[0] != len(queries):
        raise BasketError(f"ranked has shape {ranked.shape}; expected ({len(queries)}, k), one row per query")
    hit = np.zeros(ranked.shape, bool)
    for q in range(len(queries)):
        hit[q] = np.isin(ranked[q], queries.targets(q)) & (ranked[q] >= 0)
    return hit, np.diff(queries.target_indptr)


def recall_at_k(ranked: np.ndarray, queries: Queries) -> np.ndarray:
    """(Q,) float64 Recall@k of each query's ranked list ``ranked`` (Q, k) (the module docstring's formula)."""
    hit, nt = _hits(ranked, queries)
    return hit.sum(1) / np.maximum(np.minimum(ranked.shape[1], nt), 1)


def ndcg_at_k(ranked: np.ndarray, queries: Queries) -> np.ndarray:
    """(Q,) float64 NDCG@k of each query's ranked list ``ranked`` (Q, k), binary relevance."""
    hit, nt = _hits(ranked, queries)
    k = ranked.shape[1]
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(disc)[np.maximum(np.minimum(k, nt), 1) - 1]
    return (hit * disc).sum(1) / ideal


def evaluate_ranking(score: ScoreRows, queries: Queries, pool: np.ndarray, k: int = 10, chunk: int = 512) -> dict:
    """Rank the pool for every query with ``score`` (called on chunks of ``chunk`` seeds) and measure it.

    :returns: ``{"recall": (Q,), "ndcg": (Q,), "ranked": (Q, k) int64}``; split by ``queries.seen`` for the
        seen / unseen figures.
    """
    Q = len(queries)
    ranked = np.full((Q, k), -1, np.int64)
    for lo in range(0, Q, chunk):
        seeds = queries.seed[lo : lo + chunk]
        ranked[lo : lo + seeds.size] = top_k(score(seeds), k, seeds, pool)
    return {"recall": recall_at_k(ranked, queries), "ndcg": ndcg_at_k(ranked, queries), "ranked": ranked}
