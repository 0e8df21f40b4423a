"""Tests of the estimated complementarity model (bundlerl.candidates.cooccurrence / text_comp / complementarity / comp_eval).

A small hand-made world: 12 categories in 6 directed complement pairs (camera -> memory card, ...),
5 items each with real MiniLM embeddings, baskets drawn from that structure.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bundlerl.candidates import comp_eval
from bundlerl.candidates.complementarity import ComplementConfig, ComplementError, ComplementModel, fit
from bundlerl.candidates.cooccurrence import (
    PairCounts,
    category_counts,
    direction_factor,
    expected_counts,
    lift_to_unit,
    shrunk_lift,
)
from bundlerl.sim_data.baskets import Baskets
from bundlerl.sim_data.catalog import Catalog

PAIRS = [
    ("digital camera", "camera memory card"),
    ("whole bean coffee", "paper coffee filters"),
    ("spaghetti pasta", "tomato pasta sauce"),
    ("tennis racket", "tennis balls"),
    ("laser printer", "printer toner cartridge"),
    ("smartphone", "phone protective case"),
]
BRANDS = ["Acme", "Borealis", "Corvo", "Dalton", "Zenith"]  # Zenith items are the cold ones
# eta > 0 (the default is 0): these tests exercise the direction factor
FAST = dict(eta=0.25, rank=8, n_pairs=20_000, epochs=6, batch_size=1024, lr=0.02, top_k=6, pool_size=1000, threads=1)
FAST_CFG = ComplementConfig(**FAST)


def make_catalog(single_category: bool = False, graph: bool = False) -> Catalog:
    cats = [c for p in PAIRS for c in p]
    titles, category = [], []
    for k, c in enumerate(cats):
        for b in BRANDS:
            titles.append(f"{b} {c}")
            category.append(0 if single_category else k)
    n = len(titles)
    C = 1 if single_category else len(cats)
    G = None
    if graph and not single_category:
        G = np.zeros((C, C), np.float32)
        for p in range(len(PAIRS)):
            G[2 * p, 2 * p + 1] = 0.9
            G[2 * p + 1, 2 * p] = 0.2
    return Catalog(
        item_ids=[f"i{k}" for k in range(n)],
        titles=titles,
        descriptions=[""] * n,
        category=category,
        category_names=["all"] if single_category else cats,
        category_department=[0] * C,
        department_names=["store"],
        brand=[t.split()[0] for t in titles],
        price=np.ones(n),
        popularity=np.ones(n),
        complement_graph=G,
    )


def make_baskets(n_baskets: int, rng: np.random.Generator, cold_brand: bool = True) -> Baskets:
    """Anchor item from an anchor category, its complement with prob 0.8, complements also bought alone
    (so the complement is more common: anchor -> complement is the strong direction), plus noise."""
    n_cat, nb = 2 * len(PAIRS), len(BRANDS)
    warm = nb - 1 if cold_brand else nb
    p = rng.integers(0, len(PAIRS), n_baskets)
    alone = rng.random(n_baskets) < 0.3
    first = np.where(alone, 2 * p + 1, 2 * p) * nb + rng.integers(0, warm, n_baskets)
    second = (2 * p + 1) * nb + rng.integers(0, warm, n_baskets)
    with_comp = (~alone) & (rng.random(n_baskets) < 0.8)
    noise = rng.integers(0, n_cat, n_baskets) * nb + rng.integers(0, warm, n_baskets)
    with_noise = rng.random(n_baskets) < 0.3
    rows = []
    for f, s, wc, z, wz in zip(first, second, with_comp, noise, with_noise):
        r = [int(f)] + ([int(s)] if wc else []) + ([int(z)] if wz else [])
        rows.append(r)
    return Baskets.from_lists(rows, n_cat * nb)


@pytest.fixture(scope="module")
def world(minilm):
    cat = make_catalog(graph=True)
    emb = minilm.encode(cat.item_texts())
    baskets = make_baskets(3000, np.random.default_rng(0))
    return cat, emb, baskets


@pytest.fixture(scope="module")
def model(world):
    cat, emb, baskets = world
    return fit(cat, baskets, emb, np.random.default_rng(1), ComplementConfig(**FAST), use_cache=False)


def item(cat_k: int, brand: int) -> int:
    return cat_k * len(BRANDS) + brand


# ---------------------------------------------------------------------- formulas (property tests)
counts_st = st.integers(0, 10_000)


@given(n=counts_st, e=st.one_of(st.just(0.0), st.floats(1e-6, 1e4)), l0=st.floats(0, 50), alpha=st.floats(0.01, 100))
def test_shrunk_lift_is_a_convex_blend_of_raw_lift_and_prior(n, e, l0, alpha):
    got = float(shrunk_lift(n, e, l0, alpha))
    w = e / (e + alpha)
    if e > 0:
        expect = w * (n / e) + (1 - w) * l0
        assert got == pytest.approx(expect, rel=1e-9, abs=1e-12)
        assert min(n / e, l0) - 1e-9 <= got <= max(n / e, l0) + 1e-9
    else:
        assert got == pytest.approx(n / alpha + l0)
    assert float(shrunk_lift(n + 1, e, l0, alpha)) > got  # more co-purchases never lower the lift


@given(ratio=st.floats(1.5, 20), k=st.integers(2, 50), l0=st.floats(0.1, 1.0), alpha=st.floats(0.1, 10))
def test_shrinkage_rare_evidence_pulled_to_prior_more_than_frequent(ratio, k, l0, alpha):
    e = 1.0 / ratio  # one co-purchase at raw lift `ratio` vs k co-purchases at the same raw lift
    rare = float(shrunk_lift(1, e, l0, alpha))
    frequent = float(shrunk_lift(k, k * e, l0, alpha))
    assert rare < frequent < ratio


@given(ni=counts_st, nj=counts_st, beta=st.floats(0.1, 100), eta=st.floats(0, 3))
def test_direction_factor_bounds_and_monotonicity(ni, nj, beta, eta):
    d = float(direction_factor(ni, nj, beta, eta))
    assert 0 < d <= 1
    if nj >= ni or eta == 0:
        assert d == 1.0
    assert float(direction_factor(ni + 1, nj, beta, eta)) <= d
    assert float(direction_factor(ni, nj + 1, beta, eta)) >= d


@given(a=st.floats(0, 1e6), b=st.floats(0, 1e6), kappa=st.floats(0.01, 100))
def test_lift_to_unit_is_monotone_into_unit_interval(a, b, kappa):
    ua, ub = float(lift_to_unit(a, kappa)), float(lift_to_unit(b, kappa))
    assert 0 <= ua < 1 and 0 <= ub < 1
    if a < b:
        assert ua <= ub
    assert float(lift_to_unit(kappa, kappa)) == pytest.approx(0.5)


@given(ni=counts_st, nj=counts_st, B=st.integers(1, 10_000))
def test_expected_counts_symmetric(ni, nj, B):
    assert float(expected_counts(ni, nj, B)) == float(expected_counts(nj, ni, B)) == pytest.approx(ni * nj / B)


basket_lists = st.lists(st.lists(st.integers(0, 7), max_size=6), min_size=1, max_size=25)


@settings(max_examples=60, deadline=None)
@given(rows=basket_lists)
def test_pair_counts_match_brute_force(rows):
    b = Baskets.from_lists(rows, 8)
    pc = PairCounts.from_baskets(b)
    sets = [set(r) for r in rows]
    ii, jj = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    got = pc.lookup(ii.ravel(), jj.ravel()).reshape(8, 8)
    for i, j in itertools.product(range(8), range(8)):
        assert got[i, j] == (0 if i == j else sum(i in s and j in s for s in sets))
    assert (pc.item_counts == [sum(i in s for s in sets) for i in range(8)]).all()
    row, j, c = pc.rows(np.array([3, 5]))
    for r, a in enumerate([3, 5]):
        assert dict(zip(j[row == r].tolist(), c[row == r].tolist())) == {
            k: int(got[a, k]) for k in range(8) if got[a, k] > 0
        }


@settings(max_examples=40, deadline=None)
@given(rows=basket_lists, cats=st.lists(st.integers(0, 2), min_size=8, max_size=8))
def test_category_counts_match_brute_force(rows, cats):
    b = Baskets.from_lists(rows, 8)
    pair, single = category_counts(b, np.array(cats), 3)
    csets = [[cats[i] for i in set(r)] for r in rows]
    for a in range(3):
        assert single[a] == sum(a in cs for cs in csets)
        assert pair[a, a] == sum(cs.count(a) >= 2 for cs in csets)
        for c in range(3):
            if a != c:
                assert pair[a, c] == sum(a in cs and c in cs for cs in csets)


@given(pos=st.lists(st.integers(0, 5), min_size=1, max_size=20), neg=st.lists(st.integers(0, 5), min_size=1, max_size=20))
def test_auc_matches_pairwise_definition(pos, neg):
    expect = np.mean([1.0 if p > q else 0.5 if p == q else 0.0 for p in pos for q in neg])
    assert comp_eval.auc(np.array(pos), np.array(neg)) == pytest.approx(expect)


def test_auc_handles_infinite_scores():
    assert comp_eval.auc(np.array([-np.inf, 1.0]), np.array([-np.inf, -np.inf])) == pytest.approx(0.75)


# ---------------------------------------------------------------------- the fitted model
def test_scores_in_unit_interval_and_self_is_zero(model):
    n = model.n_items
    ii, jj = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    s = model.score(ii.ravel(), jj.ravel())
    assert s.dtype == np.float32 and s.shape == (n * n,)
    assert np.isfinite(s).all() and (s >= 0).all() and (s <= 1).all()
    assert (s.reshape(n, n).diagonal() == 0).all()


def test_learns_true_complements_and_direction(world, model):
    cat, _, _ = world
    warm = range(len(BRANDS) - 1)
    cams = np.array([item(0, b) for b in warm for _ in warm])
    cards = np.array([item(1, b) for _ in warm for b in warm])
    coffee = np.array([item(2, b) for _ in warm for b in warm])
    # averaged over brands, so one item's count noise cannot flip the comparison
    assert model.score(cams, cards).mean() > model.score(cards, cams).mean()  # camera -> card stronger
    assert model.score(cams, cards).mean() > 2 * model.score(cams, coffee).mean()  # a complement beats an unrelated item
    agree = comp_eval.graph_agreement(model.category_scores, cat.complement_graph)
    assert agree["auc"] > 0.95


def test_asymmetry_from_directed_data(minilm):
    """a is always bought with b; b is also bought alone a lot -> comp(a -> b) > comp(b -> a)."""
    cat = make_catalog()
    emb = minilm.encode(cat.item_texts())
    a, b = item(0, 0), item(7, 0)  # camera, tennis balls: unrelated texts, so no prior favours either
    rng = np.random.default_rng(3)
    rows = [[a, b]] * 20 + [[b]] * 200 + [[int(x)] for x in rng.integers(0, cat.n_items, 400)]
    m = fit(cat, Baskets.from_lists(rows, cat.n_items), emb, np.random.default_rng(33), ComplementConfig(**FAST), use_cache=False)
    ab, ba = m.score(np.array([a, b]), np.array([b, a]))
    assert ab > ba
    sym = fit(cat, Baskets.from_lists(rows, cat.n_items), emb, np.random.default_rng(33),
              ComplementConfig(**{**FAST, "eta": 0.0}), use_cache=False)
    ab0, ba0 = sym.score(np.array([a, b]), np.array([b, a]))
    # same training stream, so the only change is the direction factor on the rare-partner direction
    n_a, n_b = m.counts.item_counts[[a, b]]
    assert ab == pytest.approx(ab0, rel=1e-5)
    assert ba == pytest.approx(ba0 * direction_factor(n_b, n_a, FAST_CFG.beta, FAST_CFG.eta), rel=1e-5)


def test_shrinkage_rare_pair_below_frequent_pair_with_same_ratio(minilm):
    """Same P(j|i) = 0.5 and same partner: 1 co-purchase out of 2 scores below 30 out of 60."""
    cat = make_catalog()
    emb = minilm.encode(cat.item_texts()).copy()
    rare, freq, j = item(0, 0), item(0, 1), item(7, 0)
    emb[rare] = emb[freq]  # identical text: the prior cannot tell them apart
    rng = np.random.default_rng(4)
    rows = [[rare, j], [rare]] + [[freq, j]] * 30 + [[freq]] * 30 + [[j]] * 169
    rows += [[int(x)] for x in rng.integers(2 * len(BRANDS), cat.n_items, 770)]
    cfg = ComplementConfig(**{**FAST, "use_item_ids": False})
    m = fit(cat, Baskets.from_lists(rows, cat.n_items), emb, rng, cfg, use_cache=False)
    prior = np.exp(m._prior_log_lift(np.array([rare, freq]), np.array([j, j])))
    assert prior[0] == pytest.approx(prior[1]) and prior[0] < 0.5 * 1000 / 200  # prior below the raw lift
    s_rare, s_freq = m.score(np.array([rare, freq]), np.array([j, j]))
    assert s_rare < s_freq


def test_substitutes_not_rewarded(minilm):
    """Two near-identical items of one category bought together all the time still score 0."""
    cat = make_catalog()
    emb = minilm.encode(cat.item_texts()).copy()
    a, b = item(0, 0), item(0, 1)
    emb[b] = emb[a]  # a near-duplicate listing of the same camera
    rows = [[a, b]] * 50 + [[item(2, 0), item(3, 0)]] * 50
    m = fit(cat, Baskets.from_lists(rows, cat.n_items), emb, np.random.default_rng(5), ComplementConfig(**FAST),
            use_cache=False)
    s_sub, s_comp = m.score(np.array([a, item(2, 0)]), np.array([b, item(3, 0)]))
    assert s_sub == 0.0 and s_comp > 0.3
    soft = fit(cat, Baskets.from_lists(rows, cat.n_items), emb, np.random.default_rng(5),
               ComplementConfig(**{**FAST, "substitute_penalty": 0.0}), use_cache=False)
    assert soft.score(np.array([a]), np.array([b]))[0] > 0.3  # the penalty, not the data, removed it


def test_cold_items_get_text_scores_ranking_complement_category_first(minilm):
    """No category information (one category) and no baskets for the Zenith items: only text can help."""
    cat = make_catalog(single_category=True)
    emb = minilm.encode(cat.item_texts())
    baskets = make_baskets(3000, np.random.default_rng(6))
    m = fit(cat, baskets, emb, np.random.default_rng(7), ComplementConfig(**FAST), use_cache=False)
    cold = len(BRANDS) - 1
    assert (baskets.item_counts()[[item(k, cold) for k in range(12)]] == 0).all()
    wins = []
    for p in range(len(PAIRS)):
        x = item(2 * p, cold)  # cold anchor
        comp_items = np.array([item(2 * p + 1, b) for b in range(len(BRANDS) - 1)])
        other = np.array([item(k, b) for k in range(12) if k not in (2 * p, 2 * p + 1) for b in range(len(BRANDS) - 1)])
        s_comp = m.score(np.full(comp_items.size, x), comp_items).mean()
        s_other = m.score(np.full(other.size, x), other).mean()
        wins.append(s_comp > s_other)
    assert sum(wins) >= 5, wins


def test_top_lists_sorted_and_consistent_with_score(model):
    items, scores = model.top_complements(np.arange(model.n_items))
    assert items.shape == scores.shape == (model.n_items, model.config.top_k)
    assert items.dtype == np.int32 and scores.dtype == np.float32
    assert (np.diff(scores, axis=1) <= 0).all()
    valid = items >= 0
    assert valid[:, 0].all()
    assert (scores[~valid] == 0).all()
    assert not (items == np.arange(model.n_items)[:, None]).any()
    rows = np.nonzero(valid)[0]
    np.testing.assert_allclose(model.score(rows, items[valid]), scores[valid], rtol=1e-6)
    # the best listed complement of each item is at least as good as any pool item
    n = model.n_items
    ii, jj = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    full = model.score(ii.ravel(), jj.ravel()).reshape(n, n)
    np.testing.assert_allclose(full.max(axis=1), scores[:, 0], rtol=1e-6)
    assert model.top_items is not None and model.top_scores.shape == items.shape


def test_blend_row_follows_basket_co_occurrence(world):
    """Both blend rows get fitted on validation pairs; score = sigmoid(F . w_s + b_s) x direction x
    (1 - penalty x substitute), s = pair seen in a basket; changing the seen row moves only seen pairs."""
    import copy

    from bundlerl.candidates.complementarity import FEATURES, blend_probability
    from bundlerl.candidates.text_comp import substitute_mask

    cat, emb, baskets = world
    model = fit(cat, baskets, emb, np.random.default_rng(5), ComplementConfig(**{**FAST, "min_blend_pairs": 200}), use_cache=False)
    assert model.blend_info["fitted"] == [True, True]
    assert not np.allclose(model.blend_w[0], model.blend_w[1])
    n = model.n_items
    ii, jj = (a.ravel() for a in np.meshgrid(np.arange(n), np.arange(n), indexing="ij"))
    keep = ii != jj
    ii, jj = ii[keep], jj[keep]
    F = model.pair_features(ii, jj)
    seen = model.counts.lookup(ii, jj) > 0
    assert seen.any() and (~seen).any()
    cfg = model.config
    expect = np.where(seen, blend_probability(F, model.blend_w[1], model.blend_b[1]),
                      blend_probability(F, model.blend_w[0], model.blend_b[0]))
    expect *= direction_factor(model.counts.item_counts[ii], model.counts.item_counts[jj], cfg.beta, cfg.eta)
    expect *= 1 - cfg.substitute_penalty * substitute_mask(ii, jj, model.category, model.emb16, cfg.substitute_cosine)
    s = model.score(ii, jj)
    np.testing.assert_allclose(s, expect, rtol=1e-5, atol=1e-7)
    other = copy.copy(model)
    other.blend_w = model.blend_w.copy()
    other.blend_w[1, FEATURES.index("log_lift")] += 1.0
    s2 = other.score(ii, jj)
    assert (s2[~seen] == s[~seen]).all() and (s2[seen] != s[seen]).any()


def test_save_load_round_trip(model, tmp_path):
    p = model.save(tmp_path / "comp.npz")
    m2 = ComplementModel.load(p)
    ii = np.arange(model.n_items).repeat(7)
    jj = np.random.default_rng(0).integers(0, model.n_items, ii.size)
    np.testing.assert_array_equal(model.score(ii, jj), m2.score(ii, jj))
    np.testing.assert_array_equal(model.top_items, m2.top_items)
    np.testing.assert_array_equal(model.top_scores, m2.top_scores)
    assert m2.config == model.config
    assert [f.name for f in tmp_path.iterdir()] == ["comp.npz"]  # no temp file left behind
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ComplementError, match="cannot read"):
        ComplementModel.load(tmp_path / "bad.npz")


def test_file_layout_is_pinned_to_its_format_version(model, tmp_path):
    """The saved arrays, their dtypes and the meta keys of FORMAT_VERSION 4. A change here changes the disk cache
    format: bump FORMAT_VERSION (which also renames every cached file) and update this pin."""
    import json

    from bundlerl.candidates.complementarity import FORMAT_VERSION

    with np.load(model.save(tmp_path / "comp.npz"), allow_pickle=False) as z:
        arrays = {k: z[k].dtype.str for k in z.files if k != "meta"}
        meta = json.loads(str(z["meta"]))
    assert FORMAT_VERSION == 4 and meta["format_version"] == 4
    assert arrays == {
        "category": "<i8", "emb16": "<f2", "keys": "<i8", "counts": "<i4", "item_counts": "<i8", "ukeys": "<i8",
        "ucounts": "<i4", "uitem_counts": "<i8", "cat_log_lift": "<f4", "cat_single": "<i8", "u": "<f4", "v": "<f4",
        "svd_basket": "<f4", "svd_user": "<f4", "blend_w": "<f8", "top_items": "<i4", "top_scores": "<f4",
    }
    assert sorted(meta) == ["bias", "blend_b", "blend_info", "config", "fit_seconds", "format_version", "n_baskets",
                            "n_items", "n_users"]
    assert sorted(meta["config"]) == sorted(f.name for f in dataclasses.fields(ComplementConfig))


def test_cache_reuse_and_rng_stream(world, tmp_path):
    cat, emb, baskets = world
    cfg = ComplementConfig(**FAST)
    r1, r2 = np.random.default_rng(9), np.random.default_rng(9)
    m1 = fit(cat, baskets, emb, r1, cfg, cache_dir=tmp_path)
    m2 = fit(cat, baskets, emb, r2, cfg, cache_dir=tmp_path)
    assert not m1.cache_hit and m2.cache_hit
    assert r1.integers(1 << 30) == r2.integers(1 << 30)  # hit and miss advance the caller's rng alike
    np.testing.assert_array_equal(m1.top_items, m2.top_items)
    m3 = fit(cat, baskets, emb, np.random.default_rng(9), ComplementConfig(**{**FAST, "alpha": 3.0}), cache_dir=tmp_path)
    assert not m3.cache_hit  # another config is another key
    assert len(list(tmp_path.glob("comp-*.npz"))) == 2


def test_never_reads_the_true_graph(world, model):
    cat, emb, baskets = world
    m = fit(cat.observable(), baskets, emb, np.random.default_rng(1), ComplementConfig(**FAST), use_cache=False)
    np.testing.assert_array_equal(m.top_items, model.top_items)
    np.testing.assert_array_equal(m.top_scores, model.top_scores)


def test_clear_errors(world, model):
    cat, emb, baskets = world
    rng = np.random.default_rng(0)
    with pytest.raises(ComplementError, match="catalogue has"):
        fit(cat, Baskets.from_lists([[0, 1]], cat.n_items + 1), emb, rng, use_cache=False)
    with pytest.raises(ComplementError, match="embeddings have shape"):
        fit(cat, baskets, emb[:-1], rng, use_cache=False)
    with pytest.raises(ComplementError, match="unit-norm"):
        fit(cat, baskets, emb * 2, rng, use_cache=False)
    with pytest.raises(ComplementError, match="Generator"):
        fit(cat, baskets, emb, 0, use_cache=False)
    with pytest.raises(ComplementError, match="equal-length"):
        model.score(np.array([0, 1]), np.array([1]))
    with pytest.raises(ComplementError, match="outside"):
        model.score(np.array([model.n_items]), np.array([0]))
    with pytest.raises(ComplementError, match="1-d"):
        model.top_complements(np.zeros((2, 2), int))
    with pytest.raises(ComplementError, match="alpha"):
        ComplementConfig(alpha=0)
    with pytest.raises(ComplementError, match="substitute_penalty"):
        ComplementConfig(substitute_penalty=2.0)
    with pytest.raises(ComplementError, match="top_k"):
        ComplementConfig(top_k=0)


def test_eval_protocol_on_planted_world(world, model):
    """Held-out pairs are real co-purchases, negatives are not, and the model beats the category lift baseline."""
    cat, _, baskets = world
    train, test = baskets.split(0.2, np.random.default_rng(0))
    pairs = comp_eval.heldout_pairs(train, test, np.random.default_rng(1), 5000)
    assert not (pairs.neg_i == pairs.neg_j).any()
    test_pc = PairCounts.from_baskets(test)
    assert (test_pc.lookup(pairs.pos_i, pairs.pos_j) > 0).all()
    assert (test_pc.lookup(pairs.neg_i, pairs.neg_j) == 0).all()
    m = fit(cat, train, world[1], np.random.default_rng(2), ComplementConfig(**FAST), use_cache=False)
    res = comp_eval.pair_ranking_auc(m.score, pairs)
    lift = comp_eval.pair_ranking_auc(comp_eval.category_lift_scorer(train, cat.category, cat.n_categories), pairs)
    assert res["overall"] > 0.8 and res["overall"] >= lift["overall"] - 0.02


# ---------------------------------------------------------------------- fit internals (speed-ups keep the maths)
@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 40), d=st.integers(1, 24), r=st.integers(1, 6), m=st.integers(1, 300), threads=st.sampled_from([1, 2]),
       seed=st.integers(0, 2**31 - 1))
def test_gather_matmul_is_bit_identical_to_autograd_mm(n, d, r, m, threads, seed):
    """The text model's tower f(E, idx, P) = E[idx] @ P: same forward values and same dP as autograd on the plain
    expression. Bit for bit when autograd runs with the same thread count as the tower (the same GEMM calls);
    with another count, torch may split the dP reduction over the m rows differently, so the sums agree to a
    float32 rounding tolerance only (the reason the tower pins its own count)."""
    import torch

    from bundlerl.candidates.text_comp import _gather_matmul
    from bundlerl.utils.threads import torch_threads

    g = torch.Generator().manual_seed(seed)
    E = torch.randn(n, d, generator=g)
    idx = torch.randint(0, n, (m,), generator=g)
    up = torch.randn(m, r, generator=g)  # upstream gradient
    P1 = torch.nn.Parameter(torch.randn(d, r, generator=g))
    out1 = _gather_matmul(torch, threads)(E, idx, P1)
    (out1 * up).sum().backward()
    for caller_threads in (threads, 3 - threads):
        P2 = torch.nn.Parameter(P1.detach().clone())
        with torch_threads(caller_threads):
            out2 = E[idx] @ P2
            (out2 * up).sum().backward()
        if caller_threads == threads:
            assert torch.equal(out1, out2)
            assert torch.equal(P1.grad, P2.grad)
        else:
            # float32 sums of m <= 300 products of N(0, 1) terms, reordered: rel. error ~ m * eps
            torch.testing.assert_close(out1, out2, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(P1.grad, P2.grad, rtol=3e-5, atol=1e-4)


@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_block_logit_is_the_dense_blend_logit(model, data):
    """block_logit (used to pre-select the top lists) = the blend logit of pair_features for every (anchor, pool)
    pair: the never-seen row for pairs never in a basket, the seen row for the others; the reused buffers of
    ``work`` (blocks of different sizes in turn) give the same bits as fresh ones."""
    import copy

    from bundlerl.candidates.complementarity.top_lists import block_logit, pool_side

    n = model.n_items
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31 - 1)))
    m = copy.copy(model)
    m.blend_w = rng.normal(size=model.blend_w.shape)
    m.blend_b = rng.normal(size=2)
    pool = np.sort(rng.choice(n, data.draw(st.integers(1, n)), replace=False))
    side, work = pool_side(m, pool), {}
    for _ in range(2):
        I = np.sort(rng.choice(n, data.draw(st.integers(1, n)), replace=False))
        got = block_logit(m, I, pool, side, work).copy()
        np.testing.assert_array_equal(got, block_logit(m, I, pool))
        ii, jj = np.repeat(I, pool.size), np.tile(pool, I.size)
        F = m.pair_features(ii, jj)
        seen = m.counts.lookup(ii, jj) > 0
        expect = np.where(seen, F @ m.blend_w[1] + m.blend_b[1], F @ m.blend_w[0] + m.blend_b[0]).reshape(I.size, pool.size)
        np.testing.assert_allclose(got, expect, rtol=1e-4, atol=1e-4)


def test_heldout_pairs_keep_every_positive_or_report_it():
    """A popular partner whose own stratum holds only co-purchases of the anchor: its negative comes from a widened
    stratum instead of the positive being dropped silently; every positive is accounted for in the report."""
    rng = np.random.default_rng(0)
    n = 30
    train_rows = [[0, 1]] * 50 + [[k, k + 1] for k in range(2, 28)] * 2
    # held out: item 0 with the most popular item 1 (its stratum: item 1 alone), plus background pairs
    test_rows = [[0, 1]] * 20 + [list(rng.choice(np.arange(2, n), 2, replace=False)) for _ in range(40)]
    train, test = Baskets.from_lists(train_rows, n), Baskets.from_lists(test_rows, n)
    pairs = comp_eval.heldout_pairs(train, test, np.random.default_rng(1))
    rep = pairs.report
    assert rep["sampled"] == rep["matched"] + rep["widened"] + rep["dropped"]
    assert rep["widened"] > 0 and rep["dropped"] == 0 and pairs.pos_i.size == rep["sampled"]
    held = {(int(a), int(b)) for a, b in zip(*comp_eval._basket_pairs(test.indptr, test.items))}
    assert all((int(i), int(j)) not in held and i != j for i, j in zip(pairs.neg_i, pairs.neg_j))


def test_half_fitted_blend_shares_one_scale(world):
    """A tiny validation split where only the never-seen blend row has enough pairs: the seen row takes the joint fit
    (not the fixed L / (L + kappa)), so both rows are probabilities of the same labels and real co-purchases score
    above never-seen pairs; the fit report says what fell back and is saved with the model."""
    import json
    import tempfile
    from pathlib import Path

    cat, emb, baskets = world
    small = baskets.subset(np.arange(600))
    cfg = ComplementConfig(**{**FAST, "min_blend_pairs": 400, "blend_fraction": 0.5})
    model = fit(cat, small, emb, np.random.default_rng(5), cfg, use_cache=False)
    info = model.blend_info
    assert info["fitted"] == [True, "joint"] and "joint fit" in info["rows"][1]
    assert info["heldout_pairs"]["dropped"] == 0
    n = model.n_items
    ii, jj = (a.ravel() for a in np.meshgrid(np.arange(n), np.arange(n), indexing="ij"))
    keep = ii != jj
    ii, jj = ii[keep], jj[keep]
    seen = model.counts.lookup(ii, jj) > 0
    s = model.score(ii, jj)
    assert s[seen].mean() > s[~seen].mean()
    with tempfile.TemporaryDirectory() as tmp:
        again = ComplementModel.load(model.save(Path(tmp) / "m.npz"))
    assert json.loads(json.dumps(again.blend_info)) == json.loads(json.dumps(info))
