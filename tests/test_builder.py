"""BundleBuilder: CandidateSet invariants, exact features, exclusions, price cap, completion, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bundlerl.candidates.builder import BuilderConfig, BuilderError, BundleBuilder
from bundlerl.candidates.features import (
    CANDIDATE_FEATURES,
    COL,
    bundle_log_price,
    discount_for_sizes,
    max_offdiag,
    mean_offdiag,
    popularity_feature,
    prefix_mean,
    prefix_pair_max,
    prefix_pair_max_upper,
    prefix_pair_mean,
    prefix_pair_mean_upper,
    substitution,
)
from bundlerl.candidates.index import ItemIndex
from bundlerl.sim_data.catalog import Catalog


class FakeComp:
    """Dense directed complementarity matrix with the ComplementModel interface (test double)."""

    def __init__(self, M: np.ndarray, c_top: int = 12):
        self.M = M.astype(np.float32)
        order = np.argsort(-self.M, axis=1, kind="stable")[:, :c_top]
        self.top_items = order.astype(np.int32)
        self.top_scores = np.take_along_axis(self.M, order, 1)
        self.top_items[self.top_scores <= 0] = -1
        self.top_scores[self.top_scores <= 0] = 0

    def score(self, i, j):
        return self.M[np.asarray(i), np.asarray(j)]


def unit(x):
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def make_catalog(n=300, d=16, C=6, seed=0, embeddings=None, category=None, price=None):
    rng = np.random.default_rng(seed)
    E = unit(rng.standard_normal((n, d))) if embeddings is None else embeddings
    cat = rng.integers(0, C, n) if category is None else np.asarray(category)
    return Catalog(
        item_ids=[str(i) for i in range(n)],
        titles=[f"item {i}" for i in range(n)],
        descriptions=[""] * n,
        category=cat,
        category_names=[f"c{i}" for i in range(C)],
        category_department=np.zeros(C, int),
        department_names=["d"],
        brand=[""] * n,
        price=rng.uniform(1, 20, n) if price is None else price,
        popularity=rng.random(n) * 100,
        embeddings=E,
    )


def make_comp(catalog, seed=0):
    rng = np.random.default_rng(seed)
    C = catalog.n_categories
    G = rng.random((C, C)) * (rng.random((C, C)) < 0.5)
    np.fill_diagonal(G, 0)
    cat = catalog.category
    M = G[cat][:, cat] * rng.uniform(0.5, 1, (catalog.n_items, catalog.n_items))
    np.fill_diagonal(M, 0)
    return FakeComp(M)


@pytest.fixture(scope="module")
def setup():
    cat = make_catalog()
    comp = make_comp(cat)
    builder = BundleBuilder(cat, ItemIndex(cat.embeddings), comp, BuilderConfig(n_candidates=16, n_anchors=8, pool_size=24))
    rng = np.random.default_rng(5)
    N = 12
    profile = unit(rng.standard_normal((N, 16)))
    history = unit(rng.standard_normal((N, 16)))
    history[0] = 0  # user 0 has no history
    bought = [rng.integers(0, 300, rng.integers(0, 6)) for _ in range(N)]
    bought[1] = np.array([], int)
    shown = [rng.integers(0, 300, 10) for _ in range(N)]
    cap = rng.uniform(15, 60, N)
    cs = builder.build(profile, history, bought=bought, shown=shown, price_cap=cap)
    return dict(cat=cat, comp=comp, builder=builder, profile=profile, history=history, bought=bought, shown=shown, cap=cap, cs=cs)


def test_shapes_dtypes_and_mask_invariants(setup):
    cs, b = setup["cs"], setup["builder"]
    K, Km = 16, b.config.max_bundle_size
    assert cs.items.shape == (12, K, Km) and cs.items.dtype == np.int32
    assert cs.sizes.shape == (12, K) and cs.sizes.dtype == np.int8
    assert cs.mask.shape == (12, K) and cs.mask.dtype == bool
    assert cs.features.shape == (12, K, len(CANDIDATE_FEATURES)) and cs.features.dtype == np.float32
    assert cs.mask.sum(1).min() >= 8  # plenty of candidates in this catalogue
    # valid slots first
    assert (np.diff(cs.mask.astype(int), axis=1) <= 0).all()
    # invalid slots are all -1 / 0 / 0
    assert (cs.items[~cs.mask] == -1).all() and (cs.sizes[~cs.mask] == 0).all() and (cs.features[~cs.mask] == 0).all()
    for u, k in zip(*np.nonzero(cs.mask)):
        s = int(cs.sizes[u, k])
        assert 1 <= s <= Km
        row = cs.items[u, k]
        assert (row[:s] >= 0).all() and (row[s:] == -1).all()
        assert len(set(row[:s].tolist())) == s  # no repeated items
    # de-duplication: no two valid bundles of a user are the same item set
    for u in range(12):
        sets = {frozenset(cs.items[u, k][: cs.sizes[u, k]].tolist()) for k in np.flatnonzero(cs.mask[u])}
        assert len(sets) == cs.mask[u].sum()
    # sizes are mixed
    assert len(np.unique(cs.sizes[cs.mask])) >= 2


def test_features_match_reference_and_ranges(setup):
    cs, cat, comp, b = setup["cs"], setup["cat"], setup["comp"], setup["builder"]
    E, Km = cat.embeddings, b.config.max_bundle_size
    pop = popularity_feature(cat.popularity)
    disc = {2: 0.10, 3: 0.15}
    f = cs.features
    assert np.isfinite(f).all()
    for u, k in zip(*np.nonzero(cs.mask)):
        it = cs.items[u, k][: cs.sizes[u, k]].astype(int)
        s = it.size
        pairs = [(i, j) for i in it for j in it if i != j]
        want = {
            "rel_profile": np.mean(E[it] @ setup["profile"][u]),
            "rel_history": np.mean(E[it] @ setup["history"][u]),
            "mean_comp": np.mean([comp.M[i, j] for i, j in pairs]) if pairs else 0.0,
            "max_sub": max([max(0.0, float(E[i] @ E[j])) if cat.category[i] == cat.category[j] else 0.0 for i, j in pairs], default=0.0),
            "log_price": np.log(cat.price[it].astype(float).sum() * (1 - (0 if s < 2 else disc[min(s, 3)]))),
            "size": s / Km,
            "popularity": pop[it].mean(),
            "novelty": np.mean([i not in set(setup["shown"][u].tolist()) for i in it]),
            "discount": 0 if s < 2 else disc[min(s, 3)],
        }
        for name, v in want.items():
            assert f[u, k, getattr(COL, name)] == pytest.approx(v, abs=2e-4), (name, u, k)
    m = cs.mask
    assert (np.abs(f[m][:, [COL.rel_profile, COL.rel_history]]) <= 1 + 1e-5).all()
    for name in ("mean_comp", "max_sub", "popularity", "novelty"):
        assert ((f[m][:, getattr(COL, name)] >= 0) & (f[m][:, getattr(COL, name)] <= 1 + 1e-6)).all(), name
    assert ((f[m][:, COL.size] > 0) & (f[m][:, COL.size] <= 1)).all()
    assert ((f[m][:, COL.discount] >= 0) & (f[m][:, COL.discount] < 1)).all()
    assert (f[0][m[0]][:, COL.rel_history] == 0).all()  # no history -> 0


def test_no_bought_item_and_price_cap(setup):
    cs, cat = setup["cs"], setup["cat"]
    for u in range(12):
        items = cs.items[u][cs.items[u] >= 0]
        assert not np.isin(items, setup["bought"][u]).any()
        for k in np.flatnonzero(cs.mask[u]):
            it = cs.items[u, k][: cs.sizes[u, k]]
            s = it.size
            price = cat.price[it].sum() * (1 - discount_for_sizes(np.array(s), {2: 0.1, 3: 0.15}))
            assert price <= setup["cap"][u] * (1 + 1e-6)


def test_cross_sell_bundles_come_first_and_complement_purchases(setup):
    cs, comp, b = setup["cs"], setup["comp"], setup["builder"]
    n_cs = round(b.config.cross_sell_share * b.config.n_candidates)
    for u in range(12):
        bought = setup["bought"][u]
        if bought.size == 0:
            continue
        seeds = bought[::-1][: b.config.n_cross_sell_seeds]
        allowed = set(comp.top_items[seeds][:, : b.C].ravel().tolist()) - {-1}
        for k in range(n_cs):
            if not cs.mask[u, k]:
                continue
            it = cs.items[u, k][: cs.sizes[u, k]].tolist()
            if not set(it) <= allowed:  # fallback: no cross-sell bundle left for this user
                assert all(not set(cs.items[u, j][: cs.sizes[u, j]].tolist()) <= allowed for j in range(k, n_cs) if cs.mask[u, j])
                break


def test_determinism(setup):
    s = setup
    again = s["builder"].build(s["profile"], s["history"], bought=s["bought"], shown=s["shown"], price_cap=s["cap"])
    for a in ("items", "sizes", "mask", "features"):
        np.testing.assert_array_equal(getattr(again, a), getattr(s["cs"], a))


def test_padded_logs_give_the_same_candidates_as_lists(setup):
    """bought / shown as (N, L) int arrays padded with -1 (the env's logs) mean the same as ragged lists."""
    s = setup

    def padded(rows, L=12):
        out = np.full((len(rows), L), -1, np.int64)
        for r, row in enumerate(rows):
            out[r, : len(row)] = row
        return out

    got = s["builder"].build(s["profile"], s["history"], padded(s["bought"]), padded(s["shown"]), s["cap"])
    for a in ("items", "sizes", "mask", "features"):
        np.testing.assert_array_equal(getattr(got, a), getattr(s["cs"], a))
    assert got.mask.any(axis=1).all()


def test_complement_ranks_above_random_and_substitute_penalised():
    # items 0..5: 0 = seed (cat 0); 1 = true complement (cat 1); 2 = near-duplicate of 0 (cat 0);
    # 3 = same embedding as 2 but another category (cat 2); rest random.
    rng = np.random.default_rng(7)
    n, d = 60, 16
    E = unit(rng.standard_normal((n, d)))
    E[2] = unit(E[0] + 0.05 * rng.standard_normal(d))
    E[3] = E[2]
    category = rng.integers(3, 6, n)
    category[[0, 1, 2, 3]] = [0, 1, 0, 2]
    cat = make_catalog(n=n, d=d, embeddings=E, category=category)
    M = np.zeros((n, n), np.float32)
    M[0, 1] = M[1, 0] = 0.9
    M[0, 2] = M[0, 3] = 0.5
    b = BundleBuilder(cat, ItemIndex(E), FakeComp(M))
    ranked = b.complete_bundle([0], 59).tolist()
    assert 0 not in ranked
    assert ranked.index(1) < min(ranked.index(x) for x in ranked if x >= 4)  # complement above random items
    assert ranked.index(3) < ranked.index(2)  # same-category near-duplicate is penalised
    no_pen = BundleBuilder(cat, ItemIndex(E), FakeComp(M), BuilderConfig(w_sub=0.0)).complete_bundle([0], 59).tolist()
    assert no_pen.index(2) <= no_pen.index(3) + 1  # without the penalty they tie (same embedding, same comp)
    assert 1 not in b.complete_bundle([0], 5, exclude=[1]).tolist()
    # and in build(): the complement completes the seed's bundle
    cs = b.build(E[[0]], bought=None)
    bundles = [set(cs.items[0, k][: cs.sizes[0, k]].tolist()) for k in np.flatnonzero(cs.mask[0])]
    assert {0, 1} in bundles or any({0, 1} <= s for s in bundles)
    assert not any({0, 2} <= s for s in bundles)


def test_errors(setup):
    b, p = setup["builder"], setup["profile"]
    with pytest.raises(BuilderError, match="shape"):
        b.build(p[:, :8])
    bad = p.copy()
    bad[1, 3] = np.nan
    with pytest.raises(BuilderError, match=r"profile\[1\].*NaN"):
        b.build(bad)
    with pytest.raises(BuilderError, match="norm"):
        b.build(p * 2)
    with pytest.raises(BuilderError, match="history"):
        b.build(p, setup["history"][:3])
    with pytest.raises(BuilderError, match="rows for 12"):
        b.build(p, bought=[[1]])
    with pytest.raises(BuilderError, match="outside"):
        b.build(p, bought=[[300]] * 12)
    with pytest.raises(BuilderError, match="price_cap"):
        b.build(p, price_cap=np.full(12, -1.0))
    with pytest.raises(BuilderError, match="price_cap"):
        b.build(p, price_cap=np.ones(3))
    with pytest.raises(BuilderError, match="seed_items"):
        b.complete_bundle([999], 3)
    cat = setup["cat"]
    with pytest.raises(BuilderError, match="index holds"):
        BundleBuilder(cat, ItemIndex(cat.embeddings[:10]), setup["comp"])
    with pytest.raises(BuilderError, match="> 64"):
        BuilderConfig(n_anchors=30, n_cross_sell_seeds=4, max_bundle_size=3)
    with pytest.raises(BuilderError, match="mmr_lambda"):
        BuilderConfig(mmr_lambda=1.5)
    with pytest.raises(BuilderError, match="discounts"):
        BuilderConfig(discounts={1: 0.1})
    assert b.build(p[:0]).items.shape == (0, 16, 3)


# ---------------------------------------------------------------- property tests of the formulas
pair_arrays = hnp.arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(1, 4)).map(lambda t: (t[0], t[1], t[1])),
                         elements=st.floats(0, 1))


@settings(max_examples=80, deadline=None)
@given(pair=pair_arrays)
def test_prefix_pair_formulas_equal_masked_definitions(pair):
    K = pair.shape[-1]
    sym = (pair + np.swapaxes(pair, -1, -2)) / 2
    got_mean, got_max = prefix_pair_mean(pair), prefix_pair_max(sym)
    for k in range(K):
        valid = np.broadcast_to(np.arange(K) <= k, pair.shape[:-1])
        np.testing.assert_allclose(got_mean[..., k], mean_offdiag(pair, valid), atol=1e-12)
        np.testing.assert_allclose(got_max[..., k], max_offdiag(sym, valid), atol=1e-12)
        ref = [np.mean([pair[b, u, v] for u in range(k + 1) for v in range(k + 1) if u != v]) if k else 0.0 for b in range(pair.shape[0])]
        np.testing.assert_allclose(got_mean[..., k], ref, atol=1e-12)
    assert (got_max >= 0).all() and (np.diff(got_max, axis=-1) >= 0).all()  # max over growing sets never falls


@settings(max_examples=60, deadline=None)
@given(pair=pair_arrays)
def test_upper_triangle_forms_of_a_symmetric_table_equal_the_full_ones_bit_for_bit(pair):
    """The builder gathers only u < v of its symmetric tables (COMPS holds comp(u->v) + comp(v->u)): same bits
    as the full K x K form halved into both directions.

    Bit-identity is guaranteed for normal float32 numbers only: halving is exact there, while halving a subnormal
    (below ~1.2e-38) rounds, so (a + b) * 0.5 and a * 0.5 + b * 0.5 may differ in the last bit. Such inputs are
    flushed to zero here (the builder's complementarity scores are never that small: they are logistic outputs
    or exact zeros); test_upper_triangle_forms_agree_within_a_rounding_step_on_any_input covers them."""
    pair = pair.astype(np.float32)
    pair[np.abs(pair) < np.finfo(np.float32).tiny] = 0.0
    table = pair + np.swapaxes(pair, -1, -2)  # symmetric by construction, as COMPS
    K = table.shape[-1]
    iu, iv = np.triu_indices(K, 1)
    assert np.array_equal(prefix_pair_mean_upper(table[..., iu, iv], K), prefix_pair_mean(table * np.float32(0.5)))
    assert np.array_equal(prefix_pair_max_upper(table[..., iu, iv], K), prefix_pair_max(table))
    assert prefix_pair_mean_upper(table[..., iu, iv], K).dtype == np.float32


@settings(max_examples=60, deadline=None)
@given(pair=pair_arrays)
def test_upper_triangle_forms_agree_within_a_rounding_step_on_any_input(pair):
    """Subnormals included: the two forms agree to within one float32 rounding of the halving (atol = the
    smallest subnormal step, rtol = float32 epsilon)."""
    pair = pair.astype(np.float32)
    table = pair + np.swapaxes(pair, -1, -2)
    K = table.shape[-1]
    iu, iv = np.triu_indices(K, 1)
    tiny = float(np.finfo(np.float32).smallest_subnormal)
    np.testing.assert_allclose(prefix_pair_mean_upper(table[..., iu, iv], K), prefix_pair_mean(table * np.float32(0.5)),
                               rtol=float(np.finfo(np.float32).eps), atol=2 * tiny)
    assert np.array_equal(prefix_pair_max_upper(table[..., iu, iv], K), prefix_pair_max(table))  # max is exact


@settings(max_examples=60, deadline=None)
@given(x=hnp.arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(1, 5)), elements=st.floats(-5, 5)))
def test_prefix_mean(x):
    for k in range(x.shape[1]):
        np.testing.assert_allclose(prefix_mean(x)[:, k], x[:, : k + 1].mean(1), atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    prices=hnp.arrays(np.float64, st.integers(1, 4), elements=st.floats(0.01, 1e4)),
    n_valid=st.integers(1, 4),
    d2=st.floats(0, 0.9),
    d3=st.floats(0, 0.9),
)
def test_bundle_price_and_discount(prices, n_valid, d2, d3):
    valid = np.arange(prices.size) < min(n_valid, prices.size)
    s = int(valid.sum())
    disc = {2: d2, 3: d3}
    d = discount_for_sizes(np.array(s), disc)
    assert d == (0.0 if s < 2 else d2 if s == 2 else d3)
    lp = bundle_log_price(prices, valid, disc)
    assert lp == pytest.approx(np.log(prices[valid].sum() * (1 - d)))
    assert lp <= np.log(prices[valid].sum()) + 1e-12  # a discount never raises the price


@settings(max_examples=60, deadline=None)
@given(pop=hnp.arrays(np.float64, st.integers(1, 20), elements=st.floats(0, 1e6)))
def test_popularity_feature(pop):
    f = popularity_feature(pop)
    assert ((f >= 0) & (f <= 1 + 1e-6)).all()
    order = np.argsort(pop, kind="stable")
    assert (np.diff(f[order]) >= -1e-6).all()  # monotone in popularity
    if pop.max() > 0:
        assert f[np.argmax(pop)] == pytest.approx(1.0)


@settings(max_examples=60, deadline=None)
@given(ca=st.integers(0, 3), cb=st.integers(0, 3), cos=st.floats(-1, 1))
def test_substitution(ca, cb, cos):
    s = float(substitution(np.array(ca), np.array(cb), np.array(cos)))
    assert 0 <= s <= 1
    assert s == (max(0.0, cos) if ca == cb else 0.0)


def test_works_over_hnsw_without_history_or_purchases(setup):
    from bundlerl.candidates.index import IndexConfig

    cat, comp = setup["cat"], setup["comp"]
    b = BundleBuilder(cat, ItemIndex(cat.embeddings, IndexConfig(kind="hnsw")), comp, BuilderConfig(n_candidates=8))
    cs = b.build(setup["profile"])
    assert cs.mask.all() and (cs.features[..., COL.rel_history] == 0).all() and (cs.features[..., COL.novelty] == 1).all()
    # no purchases -> no cross-sell; every bundle then contains one of the user's nearest items
    _, near = ItemIndex(cat.embeddings).search(setup["profile"], b.config.pool_size)
    for u in range(12):
        for k in range(8):
            assert np.isin(cs.items[u, k][: cs.sizes[u, k]], near[u]).any()
