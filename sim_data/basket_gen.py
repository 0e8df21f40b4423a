"""Historical orders (:class:`~bundlerl.sim_data.baskets.Baskets`) generated from personas and the true graph.

    >>> baskets = generate_baskets(catalog, personas, 20_000, np.random.default_rng(0))

An order of persona ``u`` is built one add-to-cart position at a time. At each position the
category is drawn with weight

    w[c] = (ν_u[c] ** need_power + complement_boost · Σ_{items j already in the basket} G[c(j), c])
           · repeat_category_weight ** (# items of c already in the basket)

mixed with ``noise`` of a uniform draw over sellable categories (browsing noise); then the item
within the category is the best of ``price_candidates`` popularity-weighted draws under the
logit ``−β_u · log(p / p̄_c) + same_brand_bonus · [brand = the basket's first brand] + Gumbel``.
So complements show up in co-occurrence *and* in add-to-cart order (a camera tends to precede its
memory card), diluted by needs, noise and basket-size variation. Sizes are 1 + negative binomial
(mean ``mean_basket_size``), capped at ``max_basket_size``.

Vectorised over baskets (in chunks of ``chunk_size``); the only Python loop runs over positions.
Recommender-side use: the complementarity model is estimated from these baskets only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bundlerl.sim_data.baskets import BasketError, Baskets
from bundlerl.sim_data.catalog import Catalog
from bundlerl.sim_data.personas import Personas
from bundlerl.utils.args import need_instance
from bundlerl.utils.config_io import check_field_types

__all__ = ["BasketConfig", "generate_baskets"]


@dataclass(frozen=True)
class BasketConfig:
    """How organic orders are drawn; validated on construction (ValueError on bad values)."""

    mean_basket_size: float = 4.0
    """Mean number of items per order (before dropping repeats), >= 1."""
    max_basket_size: int = 10
    """Largest order, >= 1."""
    size_shape: float = 2.0
    """Gamma shape of the size's negative-binomial mixing, > 0 (smaller = more dispersed sizes)."""
    need_power: float = 3.0
    """Exponent on needs ν in the category weight, > 0; sharpens interests against background needs."""
    complement_boost: float = 2.0
    """Weight added to category b per item of category a already in the basket, times G[a, b]; >= 0."""
    repeat_category_weight: float = 0.1
    """Factor on a category's weight per item of it already in the basket, in [0, 1]
    (same category = substitutes, rarely bought together)."""
    noise: float = 0.1
    """Share of each draw that is uniform over sellable categories (browsing noise), in [0, 1)."""
    popularity_power: float = 1.0
    """Items within a category are proposed with probability ∝ popularity ** popularity_power, >= 0."""
    price_candidates: int = 3
    """Number of popularity-weighted proposals per pick; the best price fit wins, >= 1."""
    same_brand_bonus: float = 0.7
    """Logit bonus for the brand of the basket's first item (item-level fit), >= 0."""
    user_activity_sigma: float = 0.7
    """Orders are spread over personas with weight exp(N(0, sigma)), >= 0 (0 = uniform)."""
    chunk_size: int = 20_000
    """Baskets processed at once (bounds memory at about chunk_size x C x 8 bytes x a few), >= 1."""

    def __post_init__(self) -> None:
        check_field_types(self, BasketError)  # None / a wrong type named, before the range checks
        if not self.mean_basket_size >= 1:
            raise BasketError(f"BasketConfig.mean_basket_size={self.mean_basket_size}; it must be >= 1")
        for name in ("max_basket_size", "price_candidates", "chunk_size"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise BasketError(f"BasketConfig.{name}={v!r}; give an integer >= 1")
        for name in ("size_shape", "need_power"):
            if not getattr(self, name) > 0:
                raise BasketError(f"BasketConfig.{name}={getattr(self, name)}; it must be > 0")
        for name in ("complement_boost", "popularity_power", "same_brand_bonus", "user_activity_sigma"):
            if not getattr(self, name) >= 0:
                raise BasketError(f"BasketConfig.{name}={getattr(self, name)}; it must be >= 0")
        if not 0.0 <= self.repeat_category_weight <= 1.0:
            raise BasketError(f"BasketConfig.repeat_category_weight={self.repeat_category_weight}; it must be in [0, 1]")
        if not 0.0 <= self.noise < 1.0:
            raise BasketError(f"BasketConfig.noise={self.noise}; it must be in [0, 1)")


def _draw_rows(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(m,) int64 column per row ∝ ``weights`` (m, C) >= 0 with positive row sums."""
    cum = np.cumsum(weights, axis=1)
    u = rng.random(weights.shape[0]) * cum[:, -1]
    return np.minimum((cum <= u[:, None]).sum(axis=1), weights.shape[1] - 1)


def generate_baskets(
    catalog: Catalog,
    personas: Personas,
    n_baskets: int = 20_000,
    rng: np.random.Generator | None = None,
    config: BasketConfig | None = None,
) -> Baskets:
    """Draw ``n_baskets`` organic orders of ``personas`` over ``catalog``; all draws from ``rng``.

    Uses the catalogue's true ``complement_graph`` when present (simulator side); without it
    orders follow needs only. Returns Baskets with items in add-to-cart order (no repeats within
    an order, sizes 1..max_basket_size), ``user`` (B,) = persona row and ``order_number`` (B,) =
    1-based position of the order in that persona's history.
    Raises ValueError for a missing rng, n_baskets < 1, or personas whose needs do not match the
    catalogue's categories.
    """
    need_instance(catalog, "catalog", "generate_baskets", Catalog, "a Catalog", error=BasketError)
    need_instance(personas, "personas", "generate_baskets", Personas, "Personas (sample_personas)", error=BasketError)
    need_instance(config, "config", "generate_baskets", BasketConfig, "a BasketConfig", optional=True,
                  error=BasketError)
    cfg = config if config is not None else BasketConfig()
    if rng is None or not isinstance(rng, np.random.Generator):
        raise BasketError("generate_baskets needs rng=numpy.random.Generator (e.g. np.random.default_rng(seed))")
    if not isinstance(n_baskets, (int, np.integer)) or n_baskets < 1:
        raise BasketError(f"n_baskets={n_baskets!r}; give an integer >= 1")
    C = catalog.n_categories
    if personas.needs.shape[1] != C:
        raise BasketError(
            f"personas have needs over {personas.needs.shape[1]} categories but the catalogue has {C}; "
            "sample the personas from this catalogue"
        )
    B, N, K = int(n_baskets), len(personas), int(cfg.max_basket_size)

    # --- per-category item tables: items sorted by category, proposal CDF offset by category id
    cat = catalog.category.astype(np.int64)
    order = np.argsort(cat, kind="stable")
    counts = np.bincount(cat, minlength=C)
    sellable = counts > 0
    w_item = np.power(catalog.popularity.astype(np.float64)[order], cfg.popularity_power) + 1e-12
    seg_start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    csum = np.cumsum(w_item)
    seg_total = np.add.reduceat(w_item, seg_start[sellable]) if sellable.any() else np.zeros(0)
    totals = np.zeros(C)
    totals[sellable] = seg_total
    before = csum - w_item - np.repeat(np.cumsum(np.concatenate([[0.0], totals[:-1]])), counts)
    # within-category CDF in (0, 1], shifted by the category id so one searchsorted serves all
    keyed = cat[order] + (before + w_item) / np.repeat(np.where(totals > 0, totals, 1.0), counts)
    # pin each segment's end to exactly c + 1 so rounding never lets a draw spill into the next category
    seg_end = np.cumsum(counts)[sellable] - 1
    keyed[seg_end] = np.flatnonzero(sellable) + 1.0
    log_rel_price = np.log(catalog.price.astype(np.float64) / catalog.category_mean_price().astype(np.float64)[cat])
    _, brand_code = np.unique(catalog.brand, return_inverse=True)

    G = catalog.complement_graph
    G = None if G is None else G.astype(np.float32)
    need_w = np.where(sellable[None, :], np.power(personas.needs.astype(np.float32), cfg.need_power), 0.0).astype(np.float32)
    uniform = (sellable / sellable.sum()).astype(np.float32)

    # --- who orders, and how many items
    activity = np.exp(cfg.user_activity_sigma * rng.standard_normal(N))
    user = rng.choice(N, size=B, p=activity / activity.sum())
    lam = (cfg.mean_basket_size - 1.0) * rng.gamma(cfg.size_shape, 1.0 / cfg.size_shape, size=B)
    sizes = np.minimum(1 + rng.poisson(lam), K)

    slots = np.full((B, K), -1, dtype=np.int64)
    beta = personas.price_sensitivity.astype(np.float64)
    R = int(cfg.price_candidates)
    for start in range(0, B, cfg.chunk_size):
        rows = np.arange(start, min(B, start + cfg.chunk_size))
        m = rows.size
        u_rows = user[rows]
        base = need_w[u_rows]  # (m, C)
        n_in_cat = np.zeros((m, C), dtype=np.float32)
        act = np.zeros((m, C), dtype=np.float32)
        first_brand = np.full(m, -1, dtype=np.int64)
        for t in range(K):
            live = np.flatnonzero(sizes[rows] > t)
            if live.size == 0:
                break
            w = (base[live] + act[live]) * np.power(np.float32(cfg.repeat_category_weight), n_in_cat[live])
            tot = w.sum(axis=1, keepdims=True)
            w = np.where(tot > 0, (1 - cfg.noise) * w / np.maximum(tot, 1e-30), 0.0) + np.where(
                tot > 0, cfg.noise, 1.0
            ) * uniform[None, :]
            c = _draw_rows(w, rng)  # (l,)
            # R popularity-weighted proposals within category c, the best price / brand fit wins
            u = rng.random((live.size, R))
            pos = np.searchsorted(keyed, c[:, None] + np.clip(u, 1e-9, 1 - 1e-9), side="left")
            pos = np.clip(pos, 0, len(order) - 1)
            cand = order[pos]  # (l, R) item rows
            score = -beta[u_rows[live]][:, None] * log_rel_price[cand] + rng.gumbel(size=(live.size, R))
            if cfg.same_brand_bonus > 0 and t > 0:
                score += cfg.same_brand_bonus * (brand_code[cand] == first_brand[live][:, None])
            item = cand[np.arange(live.size), score.argmax(axis=1)]
            if t > 0:  # a repeat of an item already in the order is dropped (no repeats within a basket)
                dup = (slots[rows[live], :t] == item[:, None]).any(axis=1)
                item = np.where(dup, -1, item)
            slots[rows[live], t] = item
            if t == 0:
                first_brand[live] = brand_code[item]
            n_in_cat[live, c] += 1
            if G is not None and cfg.complement_boost > 0:
                act[live] += cfg.complement_boost * G[c]

    keep = slots >= 0
    row_sizes = keep.sum(axis=1)
    indptr = np.concatenate([[0], np.cumsum(row_sizes)]).astype(np.int64)
    items = slots[keep]  # row-major: add-to-cart order within each basket
    # order_number: 1-based rank of each basket among its user's baskets, in generation order
    by_user = np.argsort(user, kind="stable")
    su = user[by_user]
    group_start = np.flatnonzero(np.concatenate([[True], su[1:] != su[:-1]]))
    rank = np.arange(B) - np.repeat(group_start, np.diff(np.concatenate([group_start, [B]])))
    order_number = np.empty(B, dtype=np.int32)
    order_number[by_user] = rank + 1
    return Baskets(indptr=indptr, items=items.astype(np.int32), n_items=catalog.n_items,
                   user=user.astype(np.int64), order_number=order_number)
