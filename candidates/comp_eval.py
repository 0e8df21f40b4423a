"""Evaluation of complementarity scores: held-out pair-ranking AUC and agreement with a true graph.

Protocol (``pair_ranking_auc``): positives are directed co-purchase instances (i, j) of held-out
baskets; each positive gets one negative (i, j') with the same anchor whose partner j' is drawn from
the partners of all held-out co-purchases *within j's training-popularity stratum* (so popularity
alone scores 0.5 pair by pair), redrawn where j' == i or (i, j') is itself a held-out co-purchase. AUC = P(score(pos) > score(neg)), ties count 1/2.
"Never seen" = the subset of positives and negatives whose pair never co-occurs in training.

Baselines with the same ``ScoreFn`` signature: :func:`pmi_scorer` (item PMI, unseen pairs lowest)
and :func:`category_lift_scorer` (raw category lift).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from bundlerl.candidates.cooccurrence import CooccurrenceError, PairCounts, _basket_pairs, category_counts
from bundlerl.sim_data.baskets import Baskets

__all__ = [
    "auc",
    "HeldoutPairs",
    "heldout_pairs",
    "popularity_bins",
    "pair_ranking_auc",
    "pmi_scorer",
    "category_lift_scorer",
    "graph_agreement",
    "spearman",
]

ScoreFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (1-based) with ties sharing the mean rank."""
    x = np.asarray(x, np.float64)
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    bounds = np.flatnonzero(xs[1:] != xs[:-1]) + 1  # not np.diff: inf - inf is nan
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [xs.size]])
    avg = (starts + ends + 1) / 2.0
    r = np.empty(x.size)
    r[order] = np.repeat(avg, ends - starts)
    return r


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Mann-Whitney AUC = P(pos > neg) + P(pos == neg) / 2; NaN if either side is empty."""
    pos = np.asarray(pos, np.float64).ravel()
    neg = np.asarray(neg, np.float64).ravel()
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    r = _ranks(np.concatenate([pos, neg]))
    return float((r[: pos.size].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties); NaN for constant input."""
    ra, rb = _ranks(np.ravel(a)), _ranks(np.ravel(b))
    ra -= ra.mean()
    rb -= rb.mean()
    den = np.sqrt((ra**2).sum() * (rb**2).sum())
    return float((ra * rb).sum() / den) if den > 0 else float("nan")


@dataclass(frozen=True)
class HeldoutPairs:
    """Directed evaluation pairs: ``pos_i, pos_j`` (P,), ``neg_i, neg_j`` (P,) int64 and
    ``pos_seen``, ``neg_seen`` (P,) bool = the pair co-occurs in the training baskets.

    ``report``: how the negatives were found: ``sampled`` positives, ``matched`` (negative from the positive's own
    popularity stratum), ``widened`` (from the nearest strata, when every partner of the own stratum is a
    co-purchase of the anchor), ``dropped`` (no valid negative anywhere: kept out, with ``dropped_why``)."""

    pos_i: np.ndarray
    pos_j: np.ndarray
    neg_i: np.ndarray
    neg_j: np.ndarray
    pos_seen: np.ndarray
    neg_seen: np.ndarray
    report: dict | None = None


def popularity_bins(counts: np.ndarray, exact_below: int = 16, ratio: float = 1.15) -> np.ndarray:
    """Popularity stratum of each count: the count itself below ``exact_below``, then geometric bins whose
    edges grow by ``ratio`` (so matched items differ in popularity by less than that factor). (m,) int64,
    non-decreasing in the count."""
    c = np.asarray(counts, np.int64)
    if exact_below < 1 or ratio <= 1:
        raise CooccurrenceError(f"exact_below={exact_below}, ratio={ratio}; need exact_below >= 1 and ratio > 1")
    big = np.floor(np.log(np.maximum(c, exact_below) / exact_below) / np.log(ratio)).astype(np.int64)
    return np.where(c < exact_below, c, exact_below + big)


def heldout_pairs(train: Baskets, test: Baskets, rng: np.random.Generator, max_pairs: int = 200_000) -> HeldoutPairs:
    """Sample up to ``max_pairs`` directed co-purchase instances (i, j) of ``test`` (a pair bought together in
    k held-out baskets can be drawn up to k times) and one popularity-matched negative (i, j') for each.

    ``j'`` is drawn from the partners of all held-out co-purchases (so test-side popularity is kept)
    restricted to the *training* popularity stratum of ``j`` (:func:`popularity_bins` of the training
    basket counts): a scorer that only knows training popularity scores 0.5 in expectation, pair by pair.
    Draws where ``j' == i`` or ``(i, j')`` is itself a held-out co-purchase are redrawn (20 rounds). A positive
    whose stratum still gives no valid negative (typically a pair with a top-20 product: its stratum holds a handful
    of partners, all bought with ``i``) draws from the nearest strata instead, widening one stratum each way per
    round ("widened"); only a positive with no valid partner in the whole pool is dropped. The counts are in
    ``report`` (every positive is kept or reported: before, 10-12% of Instacart's positives were dropped silently)."""
    if train.n_items != test.n_items:
        raise CooccurrenceError(f"train has n_items={train.n_items}, test {test.n_items}; split one Baskets object")
    n = test.n_items
    a, b = _basket_pairs(test.indptr, test.items)
    if a.size == 0:
        raise CooccurrenceError("the held-out baskets hold no pair of items; give baskets with >= 2 items")
    keys = np.unique(a * n + b)  # every held-out co-purchase, to keep negatives clean
    take = rng.choice(a.size, size=max_pairs, replace=False) if a.size > max_pairs else np.arange(a.size)
    pi, pj = a[take], b[take]
    # partner multiset sorted by training-popularity stratum; draw uniformly inside the positive's stratum
    strat = popularity_bins(train.item_counts())
    order = np.argsort(strat[b], kind="stable")
    pool = b[order]
    pool_strat = strat[pool]
    lo = np.searchsorted(pool_strat, strat[pj], side="left")
    hi = np.searchsorted(pool_strat, strat[pj], side="right")  # hi - lo >= 1: pj itself is in the pool

    def invalid(idx, cand):
        q = pi[idx] * n + cand
        pos = np.minimum(np.searchsorted(keys, q), keys.size - 1)
        return (cand == pi[idx]) | (keys[pos] == q)

    def draw(idx):
        return pool[lo[idx] + (rng.random(idx.size) * (hi[idx] - lo[idx])).astype(np.int64)]

    nj = draw(np.arange(pi.size))
    bad = np.flatnonzero(invalid(np.arange(pi.size), nj))
    for _ in range(20):
        if bad.size == 0:
            break
        nj[bad] = draw(bad)
        bad = bad[invalid(bad, nj[bad])]
    widened = np.zeros(pi.size, bool)
    # widen the stratum of what is left: one neighbouring stratum each way per round, 20 draws per width. These
    # draws come from their own generator, seeded by the positives left: ``rng`` advances exactly as when such
    # positives were dropped, so every caller's later draws (a fit's text model) stay what they were.
    if bad.size:
        rng = np.random.default_rng([int(bad.size), int(pi[bad].sum()), int(pj[bad].sum())])
    levels = np.unique(pool_strat)
    while bad.size:
        widened[bad] = True
        at_lo = np.searchsorted(levels, pool_strat[lo[bad]])
        at_hi = np.searchsorted(levels, pool_strat[hi[bad] - 1])
        lo[bad] = np.searchsorted(pool_strat, levels[np.maximum(at_lo - 1, 0)], side="left")
        hi[bad] = np.searchsorted(pool_strat, levels[np.minimum(at_hi + 1, levels.size - 1)], side="right")
        for _ in range(20):
            nj[bad] = draw(bad)
            bad = bad[invalid(bad, nj[bad])]
            if bad.size == 0:
                break
        full = (lo[bad] == 0) & (hi[bad] == pool.size)
        if full.all():
            break
    dropped = np.zeros(pi.size, bool)
    for k in bad:  # the whole pool: find a valid partner exhaustively, or drop the positive
        ok = pool[~invalid(np.full(pool.size, k), pool)]
        if ok.size:
            nj[k] = ok[int(rng.integers(ok.size))]
        else:
            dropped[k] = True
    report = {"sampled": int(pi.size), "matched": int((~widened).sum()), "widened": int((widened & ~dropped).sum()),
              "dropped": int(dropped.sum()),
              "dropped_why": "every held-out partner is the anchor itself or bought with it" if dropped.any() else ""}
    keep = ~dropped
    pi, pj, nj = pi[keep], pj[keep], nj[keep]
    tr = PairCounts.from_baskets(train)
    return HeldoutPairs(pi, pj, pi.copy(), nj, tr.lookup(pi, pj) > 0, tr.lookup(pi, nj) > 0, report)


def pair_ranking_auc(score: ScoreFn, pairs: HeldoutPairs) -> dict:
    """AUCs of ``score`` on ``pairs``: ``overall``, ``never_seen`` and ``seen`` (subsets by training
    co-occurrence), with the pair counts of each subset."""
    sp = np.asarray(score(pairs.pos_i, pairs.pos_j), np.float64)
    sn = np.asarray(score(pairs.neg_i, pairs.neg_j), np.float64)
    ns_p, ns_n = ~pairs.pos_seen, ~pairs.neg_seen
    return {
        "overall": auc(sp, sn),
        "never_seen": auc(sp[ns_p], sn[ns_n]),
        "seen": auc(sp[~ns_p], sn[~ns_n]),
        "n_pos": int(sp.size),
        "n_pos_never_seen": int(ns_p.sum()),
        "n_neg_never_seen": int(ns_n.sum()),
    }


def pmi_scorer(train: Baskets) -> ScoreFn:
    """Item PMI ``log(n_ij B / (n_i n_j))`` from ``train``; pairs never seen together score -inf (all tied)."""
    c = PairCounts.from_baskets(train)
    n_i = c.item_counts.astype(np.float64)
    B = max(1, c.n_baskets)

    def score(i, j):
        n_ij = c.lookup(i, j).astype(np.float64)
        with np.errstate(divide="ignore"):
            return np.where(n_ij > 0, np.log(n_ij * B / np.maximum(n_i[i] * n_i[j], 1.0)), -np.inf)

    return score


def category_lift_scorer(train: Baskets, category: np.ndarray, n_categories: int) -> ScoreFn:
    """Raw (unshrunk) category lift ``N_ab B / (N_a N_b)`` from ``train``; 0 where a category is unseen."""
    pair, single = category_counts(train, category, n_categories)
    s = single.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        L = np.nan_to_num(pair * max(1, len(train)) / (s[:, None] * s[None, :]), nan=0.0, posinf=0.0)
    cat = np.asarray(category, np.int64)
    return lambda i, j: L[cat[i], cat[j]]


def graph_agreement(estimated: np.ndarray, truth: np.ndarray, edge_threshold: float = 0.0) -> dict:
    """Agreement of an estimated (C, C) category comp matrix with a true graph ``G`` (off-diagonal only).

    ``auc``: estimated scores of true edges (G > edge_threshold) vs non-edges; ``spearman``: rank
    correlation over all off-diagonal entries; ``spearman_edges``: over true edges only.
    """
    est = np.asarray(estimated, np.float64)
    g = np.asarray(truth, np.float64)
    if est.shape != g.shape or est.ndim != 2 or est.shape[0] != est.shape[1]:
        raise CooccurrenceError(f"estimated {est.shape} and truth {g.shape} must be the same square shape")
    off = ~np.eye(g.shape[0], dtype=bool)
    e, t = est[off], g[off]
    edge = t > edge_threshold
    return {
        "auc": auc(e[edge], e[~edge]),
        "spearman": spearman(e, t),
        "spearman_edges": spearman(e[edge], t[edge]) if edge.sum() > 2 else float("nan"),
        "n_edges": int(edge.sum()),
    }
