"""Organic baskets: validity, determinism, sizes, and visible (directed, noisy) complement structure."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bundlerl.sim_data.basket_gen import BasketConfig, generate_baskets
from bundlerl.sim_data.baskets import BasketError
from bundlerl.sim_data.personas_gen import sample_personas
from bundlerl.sim_data.synthetic import CatalogConfig, generate_catalog


@pytest.fixture(scope="module")
def world():
    cat = generate_catalog(CatalogConfig(n_items=2000, seed=0))
    personas = sample_personas(cat, 1000, np.random.default_rng(0))
    return cat, personas


def _cat_matrix(cat, b):
    M = np.zeros((len(b), cat.n_categories), np.float32)
    M[np.repeat(np.arange(len(b)), b.sizes), cat.category[b.items]] = 1
    return M


def _lift(cat, b):
    M = _cat_matrix(cat, b)
    f = M.mean(0)
    co = (M.T @ M) / len(b)
    with np.errstate(divide="ignore", invalid="ignore"):
        return co / np.outer(f, f)


def test_valid_and_sizes(world):
    cat, p = world
    b = generate_baskets(cat, p, 5000, np.random.default_rng(1))
    assert len(b) == 5000 and b.n_items == cat.n_items
    assert b.sizes.min() >= 1 and b.sizes.max() <= 10
    assert 2.5 < b.sizes.mean() < 5.0
    assert all(len(set(x.tolist())) == len(x) for x in b)  # no repeats within an order
    # user / order_number: 1..n_orders of that user, each exactly once
    for u in np.unique(b.user)[:50]:
        on = np.sort(b.order_number[b.user == u])
        assert np.array_equal(on, np.arange(1, on.size + 1))


def test_deterministic_by_rng(world):
    cat, p = world
    a = generate_baskets(cat, p, 800, np.random.default_rng(3))
    c = generate_baskets(cat, p, 800, np.random.default_rng(3))
    assert np.array_equal(a.indptr, c.indptr) and np.array_equal(a.items, c.items) and np.array_equal(a.user, c.user)
    d = generate_baskets(cat, p, 800, np.random.default_rng(4))
    assert not np.array_equal(a.items, d.items)


def test_chunking_does_not_change_the_structure(world):
    cat, p = world
    b = generate_baskets(cat, p, 3000, np.random.default_rng(5), BasketConfig(chunk_size=700))
    assert len(b) == 3000 and b.sizes.max() <= 10


def test_complement_lift(world):
    """G-linked category pairs co-occur far more than unlinked ones, and more with activation on."""
    cat, p = world
    G = cat.complement_graph
    off = ~np.eye(cat.n_categories, dtype=bool)
    linked = ((G + G.T) > 0) & off
    b = generate_baskets(cat, p, 20000, np.random.default_rng(2))
    L = np.nan_to_num(_lift(cat, b))
    assert L[linked].mean() > 3 * L[~linked & off].mean()
    b0 = generate_baskets(cat, p, 20000, np.random.default_rng(2), BasketConfig(complement_boost=0.0))
    L0 = np.nan_to_num(_lift(cat, b0))
    assert L[linked].mean() > 1.3 * L0[linked].mean()
    # noisy: plenty of unlinked pairs co-occur too
    M = _cat_matrix(cat, b)
    co = M.T @ M
    assert (co[~linked & off] > 0).mean() > 0.1


def test_directed_order(world):
    """For strongly asymmetric edges (G[a,b] >> G[b,a]) an `a` precedes a `b` more often than after it."""
    cat, p = world
    G = cat.complement_graph
    b = generate_baskets(cat, p, 30000, np.random.default_rng(7))
    c = cat.category[b.items].astype(np.int64)
    C = cat.n_categories
    before = np.zeros((C, C))
    for t in range(1, 10):  # pairs (first item of the basket, item at position t)
        has = b.sizes > t
        first = c[b.indptr[:-1][has]]
        later = c[b.indptr[:-1][has] + t]
        np.add.at(before, (first, later), 1)
    strong = (G >= 0.6) & (G.T <= 0.2)
    a_first = before[strong].sum()
    b_first = before.T[strong].sum()
    assert a_first > 1.5 * b_first


def test_cheaper_items_for_price_sensitive_shoppers(world):
    cat, p = world
    import dataclasses

    hi = dataclasses.replace(p, price_sensitivity=np.full(len(p), 5.0, np.float32))
    lo = dataclasses.replace(p, price_sensitivity=np.full(len(p), 0.01, np.float32))
    rel = np.log(cat.price / cat.category_mean_price()[cat.category])
    b_hi = generate_baskets(cat, hi, 4000, np.random.default_rng(9))
    b_lo = generate_baskets(cat, lo, 4000, np.random.default_rng(9))
    assert rel[b_hi.items].mean() < rel[b_lo.items].mean() - 0.1


@settings(max_examples=10, deadline=None)
@given(n=st.integers(1, 300), seed=st.integers(0, 10**6), mean=st.floats(1.0, 8.0), K=st.integers(1, 12),
       noise=st.floats(0.0, 0.9), rep=st.floats(0.0, 1.0))
def test_always_valid(world, n, seed, mean, K, noise, rep):
    cat, p = world
    cfg = BasketConfig(mean_basket_size=mean, max_basket_size=K, noise=noise, repeat_category_weight=rep)
    b = generate_baskets(cat, p, n, np.random.default_rng(seed), cfg)
    assert len(b) == n and b.sizes.min() >= 1 and b.sizes.max() <= K
    assert b.user.min() >= 0 and b.user.max() < len(p)
    b.validate()


def test_bad_input(world):
    cat, p = world
    with pytest.raises(BasketError, match="rng"):
        generate_baskets(cat, p, 10)
    with pytest.raises(BasketError):
        generate_baskets(cat, p, 0, np.random.default_rng(0))
    other = generate_catalog(CatalogConfig(n_items=50, seed=0))
    import dataclasses

    small = dataclasses.replace(p, needs=p.needs[:, :10])
    with pytest.raises(BasketError, match="categories"):
        generate_baskets(other, small, 10, np.random.default_rng(0))
    for bad in (dict(mean_basket_size=0.5), dict(max_basket_size=0), dict(noise=1.0), dict(price_candidates=0)):
        with pytest.raises(BasketError):
            BasketConfig(**bad)
