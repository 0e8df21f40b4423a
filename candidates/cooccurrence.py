"""Co-purchase statistics from baskets and the formulas of the complementarity model.

Everything here is numpy only and vectorised. Pair counts are kept sparse as a sorted array
of encoded keys ``i * n + j`` (ordered pairs, both directions, ``i != j``) with their counts;
lookups are ``np.searchsorted`` over that array.

The formulas (each property-tested in ``tests/test_complementarity.py``):

- expected count under independence:  ``E_ij = n_i n_j / B``
- empirical-Bayes (Poisson-Gamma) shrunk lift: ``(n_ij + alpha * L0) / (E_ij + alpha)``; with
  no evidence (``E_ij -> 0``, ``n_ij = 0``) it is the prior lift ``L0``; with much evidence it
  tends to the raw lift ``n_ij / E_ij``.
- direction factor: ``min(1, (n_j + beta) / (n_i + beta)) ** eta`` (a shrunk ratio of the
  confidences ``P(j|i) / P(i|j) = n_j / n_i``): ``i -> j`` keeps its strength when ``j`` is at
  least as common as ``i`` (buying ``i`` makes ``j`` likely), and is damped when ``j`` is rarer.
- lift to [0, 1]: ``L / (L + kappa)`` (monotone; ``L = kappa`` maps to 0.5).
- partner share: ``share(i, j) = sum_{b holding i, j} 1 / (|b| - 1)  /  #{b holding i, |b| >= 2}``, the chance that
  a random other item of a basket holding ``i`` is ``j`` (rows sum to 1 over ``j``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bundlerl.sim_data.baskets import Baskets
from bundlerl.utils.errors import BundlerlError

__all__ = [
    "CooccurrenceError",
    "PairCounts",
    "category_counts",
    "expected_counts",
    "shrunk_lift",
    "direction_factor",
    "lift_to_unit",
    "category_log_lift",
    "user_baskets",
    "ppmi_embeddings",
    "shrunk_log_lift",
    "partner_shares",
]


class CooccurrenceError(BundlerlError):
    """Bad input to a co-occurrence statistic (a count, a prior strength); the message names it and the fix."""


def _basket_pairs(indptr: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All ordered pairs (a, b), a != b, of items sharing a basket; vectorised over baskets.

    Returns two int64 arrays of length ``sum(s * (s - 1))`` (``s`` = basket sizes).
    """
    sizes = np.diff(indptr)
    nnz = int(indptr[-1])
    if nnz == 0:
        z = np.zeros(0, np.int64)
        return z, z
    basket_of = np.repeat(np.arange(sizes.size), sizes)
    reps = sizes[basket_of]  # each element pairs with every element of its basket
    src = np.repeat(np.arange(nnz), reps)
    start = np.repeat(np.cumsum(reps) - reps, reps)
    dst = indptr[np.repeat(basket_of, reps)] + (np.arange(src.size) - start)
    keep = src != dst
    return items[src[keep]].astype(np.int64), items[dst[keep]].astype(np.int64)


@dataclass(frozen=True)
class PairCounts:
    """Sparse basket co-occurrence counts over ``n_items`` items.

    ``keys`` (P,) int64 sorted, ``key = i * n_items + j`` for each ordered pair with
    ``count(i, j) > 0`` (symmetric: both (i, j) and (j, i) are stored); ``counts`` (P,) int32 =
    number of baskets holding both; ``item_counts`` (n_items,) int64 = baskets holding each
    item; ``n_baskets`` = number of baskets counted.
    """

    keys: np.ndarray
    counts: np.ndarray
    item_counts: np.ndarray
    n_baskets: int
    n_items: int

    @classmethod
    def from_baskets(cls, baskets: Baskets, max_basket_size: int = 0) -> "PairCounts":
        """Count co-occurrences; baskets larger than ``max_basket_size`` (if > 0) are left out of the
        pair counts (their quadratic pair count would dominate) but still count in ``item_counts``."""
        if not isinstance(baskets, Baskets):
            raise CooccurrenceError(f"baskets must be a bundlerl.sim_data.baskets.Baskets, got {type(baskets).__name__}")
        n = int(baskets.n_items)
        indptr, items = baskets.indptr, baskets.items
        if max_basket_size > 0 and (baskets.sizes > max_basket_size).any():
            keep = baskets.sizes <= max_basket_size
            sub = baskets.subset(keep)
            indptr, items = sub.indptr, sub.items
        a, b = _basket_pairs(indptr, items)
        keys, counts = np.unique(a * n + b, return_counts=True)
        return cls(keys, counts.astype(np.int32), baskets.item_counts().astype(np.int64), len(baskets), n)

    def lookup(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """(m,) int64 co-occurrence counts of pairs (i[k], j[k]); 0 for pairs never seen together."""
        return self.gather(self.counts, i, j).astype(np.int64)

    def gather(self, values: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """(m,) ``values[position of pair (i[k], j[k]) in keys]``, 0 for pairs not stored; ``values`` (P,) is any
        array aligned with ``keys`` (the counts, or ``partner_shares``' weighted counts)."""
        q = np.asarray(i, np.int64) * self.n_items + np.asarray(j, np.int64)
        if self.keys.size == 0:
            return np.zeros(q.shape, np.asarray(values).dtype)
        pos = np.minimum(np.searchsorted(self.keys, q), self.keys.size - 1)
        return np.where(self.keys[pos] == q, values[pos], 0)

    def rows(self, i: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Stored pairs whose first item is in ``i`` (int array): (row position in ``i``, j, count)."""
        i = np.asarray(i, np.int64)
        lo = np.searchsorted(self.keys, i * self.n_items)
        hi = np.searchsorted(self.keys, (i + 1) * self.n_items)
        lens = hi - lo
        row = np.repeat(np.arange(i.size), lens)
        idx = np.repeat(lo, lens) + (np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens))
        return row, self.keys[idx] % self.n_items, self.counts[idx].astype(np.int64)

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(i, j) int64 arrays of all stored ordered pairs."""
        return self.keys // self.n_items, self.keys % self.n_items


def category_counts(baskets: Baskets, category: np.ndarray, n_categories: int) -> tuple[np.ndarray, np.ndarray]:
    """Category incidence statistics: a category counts once per basket however many of its items it holds.

    Returns ``(pair, single)``: ``pair`` (C, C) int64 = baskets holding both categories (diagonal =
    baskets holding >= 2 items of that category), ``single`` (C,) int64 = baskets holding the category.
    """
    category = np.asarray(category, np.int64)
    C = int(n_categories)
    basket_of = np.repeat(np.arange(len(baskets), dtype=np.int64), baskets.sizes)
    cats = category[baskets.items]
    key, mult = np.unique(basket_of * C + cats, return_counts=True)
    single = np.bincount(key % C, minlength=C).astype(np.int64)
    b = key // C
    c = key % C
    # CSR over baskets of distinct categories, then all ordered pairs of distinct categories
    indptr = np.concatenate([[0], np.cumsum(np.bincount(b, minlength=len(baskets)))]).astype(np.int64)
    x, y = _basket_pairs(indptr, c)
    pair = np.bincount(x * C + y, minlength=C * C).reshape(C, C).astype(np.int64)
    pair[np.diag_indices(C)] = np.bincount(c[mult >= 2], minlength=C)
    return pair, single


def expected_counts(n_i: np.ndarray, n_j: np.ndarray, n_baskets: int) -> np.ndarray:
    """Expected co-occurrence count under independence, ``n_i * n_j / B`` (float64); B must be > 0."""
    if n_baskets <= 0:
        raise CooccurrenceError(f"n_baskets={n_baskets}; need at least one basket")
    return np.asarray(n_i, np.float64) * np.asarray(n_j, np.float64) / float(n_baskets)


def shrunk_lift(n_ij: np.ndarray, expected: np.ndarray, prior_lift: np.ndarray, alpha: float) -> np.ndarray:
    """Posterior-mean lift ``(n_ij + alpha * prior) / (expected + alpha)`` (Poisson likelihood, Gamma prior
    with mean ``prior_lift`` and strength ``alpha`` pseudo-expected-counts). All inputs broadcast; >= 0."""
    if alpha <= 0:
        raise CooccurrenceError(f"alpha={alpha}; the prior strength must be > 0")
    return (np.asarray(n_ij, np.float64) + alpha * np.asarray(prior_lift, np.float64)) / (
        np.asarray(expected, np.float64) + alpha
    )


def direction_factor(n_i: np.ndarray, n_j: np.ndarray, beta: float, eta: float) -> np.ndarray:
    """``min(1, (n_j + beta) / (n_i + beta)) ** eta`` in (0, 1]; ``eta = 0`` gives a symmetric model."""
    if beta <= 0 or eta < 0:
        raise CooccurrenceError(f"beta={beta}, eta={eta}; need beta > 0 and eta >= 0")
    r = (np.asarray(n_j, np.float64) + beta) / (np.asarray(n_i, np.float64) + beta)
    return np.minimum(1.0, r) ** eta


def lift_to_unit(lift: np.ndarray, kappa: float) -> np.ndarray:
    """Map a lift in [0, inf) to [0, 1): ``L / (L + kappa)``, increasing; ``kappa > 0``."""
    if kappa <= 0:
        raise CooccurrenceError(f"kappa={kappa}; must be > 0")
    lift = np.asarray(lift, np.float64)
    return lift / (lift + kappa)


def category_log_lift(pair: np.ndarray, single: np.ndarray, n_baskets: int, alpha: float) -> np.ndarray:
    """(C, C) float32 log of the category lift shrunk toward 1 (independence) with strength ``alpha``.

    ``pair``/``single`` from :func:`category_counts`. Categories never seen get log-lift 0.
    """
    E = expected_counts(single[:, None], single[None, :], n_baskets)
    return np.log(shrunk_lift(pair, E, 1.0, alpha)).astype(np.float32)


def user_baskets(baskets: Baskets, max_items: int = 0) -> Baskets:
    """User-level "baskets": the set of items each user bought over all of ``baskets`` (one row per user).

    Baskets whose ``user`` is unknown (``baskets.user is None`` or a negative id) stay rows of their own.
    Users with more than ``max_items`` distinct items (if > 0) keep only their first ``max_items`` (by
    item position) so that a few heavy users do not dominate the quadratic pair count.
    Pass only *training* baskets: co-occurrence across a user's orders is then training evidence only.
    """
    B = len(baskets)
    sizes = baskets.sizes
    gid = np.arange(B, dtype=np.int64) if baskets.user is None else np.asarray(baskets.user, np.int64)
    # unknown users -> their own group, offset past every real id so they never merge with one
    off = int(gid.max()) + 1 if gid.size else 0
    gid = np.where(gid >= 0, gid, off + np.arange(B, dtype=np.int64))
    g = np.repeat(gid, sizes)
    it = baskets.items.astype(np.int64)
    key = np.unique(g * baskets.n_items + it)  # sorted by group, then item; one entry per (user, item)
    grp, item = key // baskets.n_items, key % baskets.n_items
    starts = np.flatnonzero(np.r_[True, grp[1:] != grp[:-1]])
    if max_items > 0:
        rank = np.arange(key.size) - np.repeat(starts, np.diff(np.r_[starts, key.size]))
        keep = rank < max_items
        item, grp = item[keep], grp[keep]
        starts = np.flatnonzero(np.r_[True, grp[1:] != grp[:-1]]) if grp.size else np.zeros(0, np.int64)
    indptr = np.r_[starts, item.size].astype(np.int64) if item.size else np.zeros(1, np.int64)
    return Baskets(indptr, item, baskets.n_items)


def ppmi_embeddings(counts: PairCounts, rank: int, rng: np.random.Generator, n_iter: int = 3) -> np.ndarray:
    """Item embeddings from a truncated SVD of the positive PMI matrix ``max(0, log(n_ij B / (n_i n_j)))``.

    Returns (n_items, r) float32 rows of unit norm (``r = min(rank, n_items)``), zero rows for items with
    no co-occurrence; the cosine of two rows is a smoothed co-purchase affinity that also links items
    never bought together but bought with the same others. Randomised range finder (Halko et al.) with
    ``n_iter`` power iterations; the test matrix is drawn from ``rng`` (deterministic given it).
    torch (sparse CSR matmul) is imported lazily and runs on one intra-op thread whatever the caller's setting:
    torch splits the sparse products and the QR by thread count, so the rows moved by ~2e-5 between a process
    with 1 thread (``bundlerl train``) and one with 2 (a plain script), and a world's complementarity model
    depended on which command built it first.
    """
    import torch

    from bundlerl.utils.threads import torch_threads

    n = counts.n_items
    r = int(min(rank, n))
    ii, jj = counts.pairs()
    ni = counts.item_counts.astype(np.float64)
    if ii.size == 0 or r < 1:
        return np.zeros((n, max(r, 0)), np.float32)
    pmi = np.log(counts.counts * float(max(1, counts.n_baskets)) / (ni[ii] * ni[jj]))
    keep = pmi > 0
    ii, jj, val = ii[keep], jj[keep], pmi[keep]
    if ii.size == 0:
        return np.zeros((n, r), np.float32)
    indptr = np.r_[0, np.cumsum(np.bincount(ii, minlength=n))]  # keys are sorted by i, then j
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR is beta": the matmul used here is stable
        A = torch.sparse_csr_tensor(
            torch.from_numpy(indptr.astype(np.int64)), torch.from_numpy(jj.astype(np.int64)),
            torch.from_numpy(val.astype(np.float32)), size=(n, n), check_invariants=False,
        )
    p = min(n, r + 10)
    Q = torch.from_numpy(rng.standard_normal((n, p)).astype(np.float32))
    with torch_threads(1):
        Q = torch.linalg.qr(A @ Q).Q
        for _ in range(int(n_iter)):  # A is symmetric: A^T Q = A Q
            Q = torch.linalg.qr(A @ Q).Q
        Bm = (A @ Q).T  # = Q^T A  (p, n)
        Ub, S, _ = torch.linalg.svd(Bm, full_matrices=False)
        W = (Q @ Ub[:, :r]) * torch.sqrt(S[:r])
    W = W.numpy().astype(np.float32)
    norm = np.linalg.norm(W, axis=1, keepdims=True)
    return np.where(norm > 1e-8, W / np.maximum(norm, 1e-8), 0.0).astype(np.float32)


def shrunk_log_lift(n_ij: np.ndarray, expected: np.ndarray, alpha: float) -> np.ndarray:
    """``log((n_ij + alpha) / (expected + alpha))``: the log lift shrunk toward independence (0) with strength
    ``alpha`` (> 0); increasing in ``n_ij``, decreasing in ``expected``; 0 when both are 0."""
    return np.log(shrunk_lift(n_ij, expected, 1.0, alpha))


def partner_shares(baskets: Baskets, counts: PairCounts) -> tuple[np.ndarray, np.ndarray]:
    """Size-weighted co-occurrence: each basket of ``m >= 2`` items gives each ordered pair it holds ``1 / (m - 1)``
    (so a basket spreads one unit over each item's partners), where a plain count gives 1.

    Why: Recall@k of a completion counts a found item of a bundle of ``m`` items as ``1 / (m - 1)`` (``m <= k + 1``),
    so the expected recall of ranking ``j`` for seed ``i`` is estimated by this sum, not by the count: pairs seen in
    small baskets say more about small bundles than pairs of a 40-item weekly shop (Instacart: Recall@10 0.166
    ranking by it against 0.147 by the count, benchmarks/HISTORY.md).

    :param counts: ``PairCounts.from_baskets(baskets)`` (all baskets: ``max_basket_size`` 0).
    :returns: ``(weighted, mass)``: (P,) float64 aligned with ``counts.keys`` (the weighted count of each stored
        pair, in ``(0, counts]``), and (n_items,) float64 baskets of >= 2 items holding each item (the denominator
        of ``share(i, j) = weighted / mass[i]``; the weighted row of ``i`` sums to it).
    """
    if not isinstance(baskets, Baskets) or not isinstance(counts, PairCounts) or baskets.n_items != counts.n_items:
        raise CooccurrenceError("partner_shares takes Baskets and their PairCounts over the same items")
    sizes = baskets.sizes
    n = int(baskets.n_items)
    weight = 1.0 / np.maximum(sizes - 1, 1).astype(np.float64)
    a, b = _basket_pairs(baskets.indptr, baskets.items)
    # _basket_pairs emits each basket's s (s - 1) pairs consecutively, baskets in order
    per_basket = sizes.astype(np.int64) * (sizes.astype(np.int64) - 1)
    w = np.repeat(weight, per_basket)
    pos = np.searchsorted(counts.keys, a * n + b)
    if pos.size and (pos.max() >= counts.keys.size or (counts.keys[pos] != a * n + b).any()):
        raise CooccurrenceError("counts do not hold every pair of these baskets; pass PairCounts.from_baskets(baskets)")
    weighted = np.bincount(pos, weights=w, minlength=counts.keys.size)
    has_partner = np.repeat(sizes >= 2, sizes)
    mass = np.bincount(baskets.items[has_partner].astype(np.int64), minlength=n).astype(np.float64)
    return weighted, mass
