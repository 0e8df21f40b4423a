"""Candidate generation of the learned completion: for each seed item, the union of its co-occurrence partners
(most co-purchased first; basket-level and user-level), its nearest items by text, the most popular items and (when a complementarity model is
given) the head of its top list; the seed itself and repeats removed.

Every baseline's top 10 is inside this set (text: the ``n_text`` nearest; co-occurrence: the partners, then the
most popular items for seeds with fewer than 10), so a fitted ranking can reproduce each baseline.
"""

from __future__ import annotations

import numpy as np

from bundlerl.candidates.learned.config import CompletionConfig
from bundlerl.candidates.learned.signals import Signals

__all__ = ["generate", "text_neighbours"]


def text_neighbours(E: np.ndarray, seeds: np.ndarray, k: int, pool: np.ndarray | None = None,
                    chunk: int = 256) -> np.ndarray:
    """(q, k) int64 the ``k`` items of ``pool`` (int positions; None = every item) with the highest text cosine to
    each seed (order within a row unspecified; the seed itself may be among them), exact: BLAS products in chunks of
    ``chunk`` seeds. Exact search replaces a FAISS index here: building an HNSW index over 50k items took ~60 s on
    the 2-core VM, longer than all the rest of the fit."""
    P = E if pool is None else E[pool]
    k = min(k, P.shape[0])
    out = np.empty((seeds.size, k), np.int64)
    for lo in range(0, seeds.size, chunk):
        s = E[seeds[lo : lo + chunk]] @ P.T
        top = np.argpartition(-s, k - 1, axis=1)[:, :k] if k < P.shape[0] else np.broadcast_to(np.arange(k), s.shape)
        out[lo : lo + chunk] = top if pool is None else pool[top]
    return out


def _top_partners(signals: Signals, counts, seeds: np.ndarray, k: int) -> np.ndarray:
    """(q, k) int64 the k most co-purchased partners of each seed in ``counts`` (ties by popularity, then position),
    -1 padded."""
    out = np.full((seeds.size, k), -1, np.int64)
    if k == 0:
        return out
    row, j, cnt = counts.rows(seeds)
    if row.size == 0:
        return out
    order = np.lexsort((j, -signals.popularity[j], -cnt, row))
    row, j = row[order], j[order]
    start = np.searchsorted(row, np.arange(seeds.size))
    rank = np.arange(row.size) - start[row]
    keep = rank < k
    out[row[keep], rank[keep]] = j[keep]
    return out


def generate(signals: Signals, seeds: np.ndarray, config: CompletionConfig, complements: np.ndarray | None = None,
             *, text_pool: np.ndarray | None = None, scale: float = 1.0) -> np.ndarray:
    """(q, W) int64 candidates of each seed, -1 where there is none (rows without repeats or the seed; valid first).

    :param complements: optional (n, C_top) top lists of a complementarity model (-1 padded).
    :param text_pool: item positions the text neighbours are searched among (None = every item).
    :param scale: multiplies the counts ``n_cooccurrence``, ``n_text``, ``n_popular`` (the top lists use fewer).
    """
    seeds = np.asarray(seeds, np.int64).reshape(-1)
    n = signals.n_items
    n_co, n_text, n_pop = (max(1, int(round(x * scale))) if x else 0
                           for x in (config.n_cooccurrence, config.n_text, config.n_popular))
    parts = [_top_partners(signals, signals.counts, seeds, min(n_co, n))]
    if signals.user_counts is not signals.counts:
        parts.append(_top_partners(signals, signals.user_counts, seeds, min(n_co, n)))
    parts.append(text_neighbours(signals.embeddings, seeds, n_text + 1, text_pool))
    if n_pop > 0:
        pop = np.lexsort((np.arange(n), -signals.popularity))[:n_pop]
        parts.append(np.broadcast_to(pop, (seeds.size, pop.size)))
    if complements is not None and config.n_complements > 0:
        parts.append(np.asarray(complements, np.int64)[seeds, : config.n_complements])
    cand = np.concatenate(parts, axis=1)
    cand = np.where(cand == seeds[:, None], -1, cand)
    cand.sort(axis=1)
    dup = np.zeros(cand.shape, bool)
    dup[:, 1:] = cand[:, 1:] == cand[:, :-1]
    cand[dup] = -1
    cand.sort(axis=1)
    # valid entries last after the sort (-1 first): flip so rows start with candidates, -1 padding at the end
    return np.ascontiguousarray(cand[:, ::-1])
