"""The ten per-candidate features: their names and column order, and their formulas.

Names and order: :class:`FeatureIndex` (its fields, in column order), :data:`COL` (the column of each,
``features[..., COL.log_price]``) and :data:`CANDIDATE_FEATURES` (the names as a tuple). Nothing else
spells a column number.

Formulas: one function per feature ingredient (:func:`substitution`, :func:`popularity_feature`,
:func:`discount_for_sizes`, :func:`log_price`, the pair aggregates :func:`mean_offdiag` /
:func:`max_offdiag`, :func:`bought_complementarity`), and two ways of evaluating them on bundles:

- the bundle builder's (``bundlerl.candidates.builder``): bundles are prefixes of a completion, so
  item means and pair aggregates are running (prefix) values over each source's members,
  :func:`prefix_mean`, :func:`prefix_pair_mean_upper`, :func:`prefix_pair_max_upper`, gathered from
  tables tabulated per catalogue (float32), and the picked ones assembled by the compiled kernel
  ``bundlerl.candidates.kernels.selected_bundles``;
- :func:`bundle_features`: any bundles, from the item tables and dense pair matrices (float64
  accumulation); the env's compose mode uses it for the bundles its actions would lead to.

``tests/test_features.py`` checks that the two agree on the same bundles (to float32 rounding:
~1e-7 on rel_profile, rel_history and mean_comp, exactly on the other seven).

``comp_bought`` (observation spec 2) is the recommender's own estimate of how much this session's purchases make the
bundle wanted: :func:`bought_complementarity`, from the estimated complementarity model and the purchases the
recommender recorded (never the true graph). Both evaluations call that one function.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import numpy as np

__all__ = [
    "FeatureIndex",
    "COL",
    "CANDIDATE_FEATURES",
    "PRICE_FLOOR",
    "discount_for_sizes",
    "upper_pairs",
    "log_price",
    "bundle_log_price",
    "popularity_feature",
    "substitution",
    "mean_offdiag",
    "max_offdiag",
    "prefix_mean",
    "prefix_pair_mean",
    "prefix_pair_max",
    "prefix_pair_mean_upper",
    "prefix_pair_max_upper",
    "bundle_features",
    "bought_complementarity",
]


class FeatureIndex(NamedTuple):
    """Column of each per-candidate feature in ``CandidateSet.features`` (the fields, in column order).

    Use the instance :data:`COL`. A ``NamedTuple`` so that the compiled kernels take it as an argument
    (numba types it as a tuple of ints) and never freeze a column number into their on-disk cache.
    """

    rel_profile: int  # mean cosine of the bundle's items to the profile vector, in [-1, 1]
    rel_history: int  # mean cosine of the bundle's items to the history vector (0 without history), in [-1, 1]
    mean_comp: int  # mean estimated complementarity over ordered pairs (0 for size 1), in [0, 1]
    max_sub: int  # max same-category cosine over pairs (estimated substitution; 0 for size 1), in [0, 1]
    log_price: int  # log of the bundle's discounted price (currency units)
    size: int  # number of items / K_max, in (0, 1]
    popularity: int  # mean of the items' popularity_feature, in [0, 1]
    novelty: int  # share of the bundle's items not yet shown to this user this session, in [0, 1]
    discount: int  # bundle discount fraction for this size, in [0, 1)
    comp_bought: int  # mean over the bundle's items of the best estimated comp(bought -> item) this session, in [0, 1]


#: The column of each feature: ``features[..., COL.novelty]``.
COL = FeatureIndex(*range(len(FeatureIndex._fields)))

#: Names of the per-candidate features, in column order of ``CandidateSet.features``.
CANDIDATE_FEATURES: tuple[str, ...] = FeatureIndex._fields

#: Smallest discounted price whose log is taken (an empty bundle's price is 0; its features are masked to 0).
PRICE_FLOOR = 1e-12


# ---------------------------------------------------------------------- item and pair formulas
def discount_for_sizes(sizes: np.ndarray, discounts: dict) -> np.ndarray:
    """Discount fraction for each bundle size: the value of the largest key <= size, 0 if none."""
    sizes = np.asarray(sizes)
    out = np.zeros(sizes.shape, dtype=np.float64)
    for k in sorted(discounts):
        out = np.where(sizes >= k, float(discounts[k]), out)
    return out


def log_price(discounted_price: np.ndarray) -> np.ndarray:
    """The log_price feature: ``log(max(discounted bundle price, PRICE_FLOOR))``, same shape, float64."""
    return np.log(np.maximum(discounted_price, PRICE_FLOOR))


def bundle_log_price(item_prices: np.ndarray, valid: np.ndarray, discounts: dict) -> np.ndarray:
    """log of the discounted bundle price: log(sum of valid item prices * (1 - d(size))).

    :param item_prices: (..., K_max) > 0; :param valid: (..., K_max) bool, at least one True per bundle.
    """
    size = valid.sum(-1)
    total = np.where(valid, item_prices, 0.0).sum(-1)
    return log_price(total * (1.0 - discount_for_sizes(size, discounts)))


def popularity_feature(popularity: np.ndarray) -> np.ndarray:
    """(n,) float32 in [0, 1]: log1p(popularity) / log1p(max popularity) (all 0 when max is 0)."""
    lp = np.log1p(np.asarray(popularity, dtype=np.float64))
    top = lp.max() if lp.size else 0.0
    return (lp / top if top > 0 else np.zeros_like(lp)).astype(np.float32)


def substitution(cat_a: np.ndarray, cat_b: np.ndarray, cos: np.ndarray) -> np.ndarray:
    """Estimated substitution: [same category] * max(0, cosine), in [0, 1]."""
    return np.where(np.asarray(cat_a) == np.asarray(cat_b), np.maximum(np.asarray(cos, dtype=np.float64), 0.0), 0.0)


def _offdiag_pairs(valid: np.ndarray) -> np.ndarray:
    """(..., K, K) bool: ordered pairs u != v of valid members."""
    K = valid.shape[-1]
    return valid[..., :, None] & valid[..., None, :] & ~np.eye(K, dtype=bool)


def mean_offdiag(pair: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Mean of ``pair[..., u, v]`` over ordered pairs u != v of valid members; 0 when fewer than 2.

    :param pair: (..., K, K); :param valid: (..., K) bool.
    """
    m = _offdiag_pairs(valid)
    cnt = m.sum((-1, -2))
    s = np.where(m, pair, 0.0).sum((-1, -2))
    return np.where(cnt > 0, s / np.maximum(cnt, 1), 0.0)


def max_offdiag(pair: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Max of ``pair[..., u, v]`` over pairs u != v of valid members; 0 when fewer than 2."""
    if valid.shape[-1] < 2:
        return np.zeros(valid.shape[:-1])
    return np.where(_offdiag_pairs(valid), pair, -np.inf).max((-1, -2), initial=-np.inf).clip(min=0.0)


def bought_complementarity(
    items: np.ndarray, bought: np.ndarray, comp_score: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> np.ndarray:
    """The ``comp_bought`` feature: (N, J) float32, for each bundle the mean over its items i of
    ``max_{s bought this session} comp(s -> i)`` (the estimated, directed complementarity); 0 for an empty bundle or a
    user who has bought nothing.

    Why the max over purchases: one anchor is enough to make a complement wanted (a camera makes a memory card wanted
    whatever else was bought); why the mean over items: a bundle is as activated as its average member.

    :param items: (N, J, K_max) int catalogue positions, -1 padded. :param bought: (N, B) int catalogue positions of
        the items each user bought this session, -1 padded (any order, B >= 0).
    :param comp_score: the complementarity model's ``score(i, j)``: (m,), (m,) -> (m,) in [0, 1].
    """
    items = np.asarray(items)
    bought = np.asarray(bought)
    N, J, Km = items.shape
    out = np.zeros((N, J), np.float32)
    has = (bought >= 0).any(axis=1) if bought.size else np.zeros(N, bool)
    rows = np.flatnonzero(has & (items >= 0).any(axis=(1, 2)))
    if rows.size == 0:
        return out
    b = bought[rows]
    b = b[:, (b >= 0).any(axis=0)]  # drop all-padding columns
    it = items[rows]
    valid = it >= 0
    pair = valid[..., None] & (b >= 0)[:, None, None, :]  # (n, J, Km, B)
    src = np.broadcast_to(b[:, None, None, :], pair.shape)[pair]
    dst = np.broadcast_to(it[..., None], pair.shape)[pair]
    comp = np.zeros(pair.shape, np.float64)
    comp[pair] = _distinct_scores(src, dst, comp_score)
    best = comp.max(axis=-1)  # (n, J, Km): 0 is the floor (scores are in [0, 1])
    size = valid.sum(-1)
    out[rows] = (np.where(valid, best, 0.0).sum(-1) / np.maximum(size, 1)).astype(np.float32)
    return out


def _distinct_scores(src: np.ndarray, dst: np.ndarray, comp_score: Callable[[np.ndarray, np.ndarray], np.ndarray]
                     ) -> np.ndarray:
    """(m,) float64 ``comp_score(src, dst)``, each distinct pair scored once. Why: in a batched env step only ~40% of
    the (purchase, bundle item) pairs are distinct (a user's K bundles share items), and scoring them (the learned
    completion's signals) was ~60% of a step; a pair's score does not depend on the pairs scored with it."""
    src, dst = np.asarray(src, np.int64), np.asarray(dst, np.int64)
    if src.size == 0:
        return np.zeros(0, np.float64)
    base = int(dst.max()) + 1
    uniq, inv = np.unique(src * base + dst, return_inverse=True)
    return np.asarray(comp_score(uniq // base, uniq % base), np.float64)[inv.reshape(-1)]


# ---------------------------------------------------------------------- prefix forms (the builder's)
@functools.lru_cache(maxsize=None)
def upper_pairs(K: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.triu_indices(K, 1)`` (the pairs u < v of K members, u-major), computed once per K and read-only: the
    builder asks for it three times per call, and at one user per call (serving) rebuilding it cost ~5% of a call."""
    iu, iv = np.triu_indices(K, 1)
    iu.flags.writeable = iv.flags.writeable = False
    return iu, iv


def prefix_mean(x: np.ndarray) -> np.ndarray:
    """Mean of the first k+1 entries along the last axis, for every k: (..., K) -> (..., K)."""
    x = np.asarray(x)
    dt = x.dtype if x.dtype.kind == "f" else np.float64  # float32 in, float32 out
    return np.cumsum(x, -1, dtype=dt) / np.arange(1, x.shape[-1] + 1, dtype=dt)


def prefix_pair_mean(pair: np.ndarray) -> np.ndarray:
    """For every prefix {0..k}: mean of ``pair[u, v]`` over ordered pairs u != v in it (0 for k = 0).

    (..., K, K) -> (..., K); equals :func:`mean_offdiag` with the prefix as ``valid``.
    """
    pair = np.asarray(pair)
    iu, iv = upper_pairs(pair.shape[-1])
    return prefix_pair_mean_upper(pair[..., iu, iv] + pair[..., iv, iu], pair.shape[-1])


def prefix_pair_max(pair: np.ndarray) -> np.ndarray:
    """For every prefix {0..k}: max of ``pair[u, v]`` over pairs u != v in it, floored at 0 (0 for k = 0).

    (..., K, K) -> (..., K), ``pair`` symmetric; equals :func:`max_offdiag` with the prefix as ``valid``.
    """
    pair = np.asarray(pair)
    iu, iv = upper_pairs(pair.shape[-1])
    return prefix_pair_max_upper(pair[..., iu, iv], pair.shape[-1])


def prefix_pair_mean_upper(sym: np.ndarray, K: int) -> np.ndarray:
    """:func:`prefix_pair_mean` from the upper triangle only: ``sym[..., p] = pair[u, v] + pair[v, u]`` for the
    p-th pair u < v of ``np.triu_indices(K, 1)``. (..., K(K-1)/2) -> (..., K); float32 in, float32 out.

    The builder gathers just these K(K-1)/2 entries of its symmetric tables instead of all K^2."""
    sym = np.asarray(sym)
    dt = sym.dtype if sym.dtype.kind == "f" else np.float64
    iu, iv = upper_pairs(K)
    new = np.zeros(sym.shape[:-1] + (K,), dt)  # pairs added by member v
    for p in range(iu.size):  # u-major order: each v sums its pairs by increasing u
        new[..., iv[p]] += sym[..., p]
    size = np.arange(1, K + 1)
    return np.cumsum(new, -1) / np.maximum(size * (size - 1), 1).astype(dt)


def prefix_pair_max_upper(up: np.ndarray, K: int) -> np.ndarray:
    """:func:`prefix_pair_max` from the upper triangle only: ``up[..., p] = pair[u, v]`` for the p-th pair u < v of
    ``np.triu_indices(K, 1)``. (..., K(K-1)/2) -> (..., K)."""
    up = np.asarray(up)
    iu, iv = upper_pairs(K)
    new = np.zeros(up.shape[:-1] + (K,), up.dtype if up.dtype.kind == "f" else np.float64)  # floor at 0
    for p in range(iu.size):
        np.maximum(new[..., iv[p]], up[..., p], out=new[..., iv[p]])
    return np.maximum.accumulate(new, -1)


# ---------------------------------------------------------------------- any bundles (dense)
def bundle_features(
    bundles: np.ndarray,
    *,
    profile: np.ndarray,
    history: np.ndarray,
    shown: np.ndarray,
    bought: np.ndarray | None = None,
    embeddings: np.ndarray,
    category: np.ndarray,
    price: np.ndarray,
    popularity: np.ndarray,
    discount: np.ndarray,
    comp_score: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> np.ndarray:
    """(N, J, F) float32 features (:data:`COL` order) of arbitrary bundles; all-0 rows for empty bundles.

    The same formulas as the builder's candidates, from exact embeddings and dense (K_max, K_max) pair
    matrices, so any item sets work (the builder's only cover prefixes of its completions).

    :param bundles: (N, J, K_max) int catalogue positions, -1 padded (members need not come first).
    :param profile: (N, d) float32 unit profile vectors. :param history: (N, d) float32 history vectors
        (a zero row: no history, rel_history 0). :param shown: (N, n) bool items shown to each user (novelty).
    :param bought: (N, B) int items each user bought this session, -1 padded (``comp_bought``); None: nothing bought.
    :param embeddings: (n, d) float32 unit item vectors. :param category: (n,) int item categories.
    :param price: (n,) item prices. :param popularity: (n,) :func:`popularity_feature` of the items.
    :param discount: (K_max + 1,) discount fraction by bundle size (``BuilderConfig.discount_table()``).
    :param comp_score: the complementarity model's ``score(i, j)``: (m,), (m,) -> (m,) in [0, 1].
    """
    N, J, Km = bundles.shape
    valid = bundles >= 0
    bc = np.maximum(bundles, 0)
    size = valid.sum(-1)
    sz = np.maximum(size, 1)
    E = embeddings[bc]  # (N, J, Km, d)

    def mean_m(x):
        return np.where(valid, x, 0.0).sum(-1) / sz

    rel_p = np.einsum("njkd,nd->njk", E, profile)
    rel_h = np.einsum("njkd,nd->njk", E, history)
    ii = np.broadcast_to(bc[..., :, None], (N, J, Km, Km))
    jj = np.broadcast_to(bc[..., None, :], (N, J, Km, Km))
    comp = np.asarray(comp_score(ii.reshape(-1), jj.reshape(-1)), np.float64).reshape(N, J, Km, Km)
    cos = np.einsum("njkd,njld->njkl", E, E)
    cat = category[bc]
    sub = substitution(cat[..., :, None], cat[..., None, :], cos)
    total = np.where(valid, price[bc], 0.0).sum(-1)
    disc = discount[np.minimum(size, len(discount) - 1)]
    f = np.zeros((N, J, len(COL)), np.float64)
    f[..., COL.rel_profile] = mean_m(rel_p)
    f[..., COL.rel_history] = mean_m(rel_h)
    f[..., COL.mean_comp] = mean_offdiag(comp, valid)
    f[..., COL.max_sub] = max_offdiag(sub, valid)
    f[..., COL.log_price] = log_price(total * (1 - disc))
    f[..., COL.size] = size / Km
    f[..., COL.popularity] = mean_m(popularity[bc])
    f[..., COL.novelty] = mean_m(~shown[np.arange(N)[:, None, None], bc])
    f[..., COL.discount] = disc
    if bought is not None:
        f[..., COL.comp_bought] = bought_complementarity(bundles, bought, comp_score)
    return np.where((size > 0)[..., None], f, 0.0).astype(np.float32)
