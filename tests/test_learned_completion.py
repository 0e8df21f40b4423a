"""The learned completion (candidates/learned): it leans on the signal that explains the bundles, never loses to
the baselines where the answer is known, its files round-trip, its cache heals."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bundlerl.candidates.learned import (
    SF,
    SIGNALS,
    CompletionConfig,
    CompletionError,
    CompletionModel,
    cooccurrence_scorer,
    fit_completion,
    text_scorer,
)
from bundlerl.candidates.learned.fitting import ndcg_of_groups
from bundlerl.sim_data.baskets import Baskets
from bundlerl.sim_data.catalog import Catalog
from bundlerl.sim_data.ranking_metrics import evaluate_ranking
from bundlerl.sim_data.splits import holdout_split

FAST = CompletionConfig(n_cooccurrence=30, n_text=30, n_popular=10, svd_rank=8, max_queries=600, top_k=10)


def _catalog(E: np.ndarray, n_cat: int = 6) -> Catalog:
    n = E.shape[0]
    cat = np.arange(n) % n_cat
    return Catalog(item_ids=[f"i{k}" for k in range(n)], titles=[f"item {k}" for k in range(n)], descriptions=[""] * n,
                   category=cat, category_names=[f"c{k}" for k in range(n_cat)], category_department=np.zeros(n_cat, int),
                   department_names=["all"], brand=[""] * n, price=np.full(n, 2.0), popularity=np.ones(n),
                   embeddings=E)


def _unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _cooccurrence_world(seed=0, n=160, d=16, B=1500):
    """Bundles drawn from fixed groups of 4 items; embeddings random: co-occurrence explains the bundles, text not."""
    rng = np.random.default_rng(seed)
    E = _unit(rng.standard_normal((n, d)))
    groups = rng.permutation(n).reshape(-1, 4)
    rows = [rng.choice(groups[rng.integers(len(groups))], size=rng.integers(2, 5), replace=False) for _ in range(B)]
    return _catalog(E), Baskets.from_lists(rows, n)


def _text_world(seed=0, n=200, d=16, B=300):
    """Bundles drawn from text clusters of 10 items (tight around a cluster direction); each item is in few bundles:
    text explains the bundles, co-occurrence is sparse."""
    rng = np.random.default_rng(seed)
    centres = _unit(rng.standard_normal((n // 10, d)))
    cluster = np.repeat(np.arange(n // 10), 10)
    E = _unit(centres[cluster] + 0.15 * rng.standard_normal((n, d)))
    rows = []
    for _ in range(B):
        c = rng.integers(n // 10)
        rows.append(rng.choice(np.flatnonzero(cluster == c), size=3, replace=False))
    return _catalog(E), Baskets.from_lists(rows, n)


def _recall(model, catalog, split):
    q = split.queries()
    out = {}
    for name, fn in (("learned", model.score_rows), ("text", text_scorer(catalog.embeddings)),
                     ("cooc", cooccurrence_scorer(split.train))):
        r = evaluate_ranking(fn, q, split.pool, k=10)
        out[name] = (r["recall"][q.seen].mean() if q.seen.any() else np.nan,
                     r["recall"][~q.seen].mean() if (~q.seen).any() else np.nan, r["recall"].mean())
    return out


def test_pure_cooccurrence_bundles_lean_on_cooccurrence(tmp_path):
    catalog, baskets = _cooccurrence_world()
    split = holdout_split(baskets, 0.2, 0)
    model = fit_completion(catalog, split.train, catalog.embeddings, np.random.default_rng(0), FAST, cache_dir=tmp_path)
    w = model.weights[1]  # seen seeds
    sd = model.signals.features(*np.nonzero(np.ones((20, 20), bool))).std(0)  # a scale to compare weights on
    count_like = max(abs(w[SF.log1p_count]), abs(w[SF.pmi]), abs(w[SF.log1p_user_count]), abs(w[SF.user_pmi]))
    assert count_like > abs(w[SF.text_cos]) * max(sd[SF.text_cos], 1e-3)
    r = _recall(model, catalog, split)
    assert r["learned"][0] >= r["cooc"][0] - 0.02  # seen seeds: at least co-occurrence (within noise)
    assert r["learned"][0] > r["text"][0] + 0.3
    assert any("seen seeds" == info["regime"] for info in model.report["regimes"])


def test_pure_text_clusters_lean_on_text(tmp_path):
    catalog, baskets = _text_world()
    split = holdout_split(baskets, 0.3, 1)
    model = fit_completion(catalog, split.train, catalog.embeddings, np.random.default_rng(1), FAST, cache_dir=tmp_path)
    r = _recall(model, catalog, split)
    assert r["learned"][2] >= r["text"][2] - 0.02 and r["learned"][2] > r["cooc"][2]
    for row in range(2):  # both regimes: text is the heaviest weight
        w = model.weights[row]
        assert w[SF.text_cos] > 0 and abs(w[SF.text_cos]) == np.abs(w[[SF.text_cos, SF.log1p_count, SF.pmi]]).max()


def test_too_few_bundles_fall_back_to_the_baselines_and_say_so():
    catalog, baskets = _text_world(B=8)
    model = fit_completion(catalog, baskets, catalog.embeddings, np.random.default_rng(0), FAST, use_cache=False)
    assert [r["fitted"] for r in model.report["regimes"]] == [False, False]
    assert all(r["why"] for r in model.report["regimes"])
    np.testing.assert_array_equal(model.weights[0][SF.text_cos], 1.0)
    # scores of both regimes are probabilities in [0, 1]
    s = model.score(np.arange(10), np.arange(10, 20))
    assert ((s >= 0) & (s <= 1)).all()


def test_scores_share_one_scale_on_a_tiny_basket_set(tmp_path):
    """A tiny basket set where only one regime has validation data: the other borrows its calibration, so a cold
    seed's best text neighbour and a warm seed's real co-purchase are probabilities of comparable size."""
    catalog, baskets = _cooccurrence_world(B=120)
    model = fit_completion(catalog, baskets, catalog.embeddings, np.random.default_rng(3), FAST, cache_dir=tmp_path)
    cal = [r["calibrated"] for r in model.report["regimes"]]
    assert all(c is not None for c in cal)
    assert "none" not in " ".join(cal) or all("none" in c for c in cal)
    seen = np.flatnonzero(baskets.item_counts() > 0)[:5]
    items, scores = model.complete([int(seen[0])], 5)
    assert (np.diff(scores) <= 1e-12).all() and (scores <= 1).all()


def test_contributions_sum_to_the_logit_and_complete_excludes(tmp_path):
    catalog, baskets = _cooccurrence_world(B=400)
    model = fit_completion(catalog, baskets, catalog.embeddings, np.random.default_rng(0), FAST, cache_dir=tmp_path)
    s, j = np.full(7, 3), np.arange(10, 17)
    c = model.contributions(s, j)
    assert c.shape == (7, len(SIGNALS))
    np.testing.assert_allclose(c.sum(1), model.logits(s, j))
    items, _ = model.complete([3, 5], 8, exclude=[int(model.top_items[3, 0])])
    assert 3 not in items and 5 not in items and int(model.top_items[3, 0]) not in items
    with pytest.raises(CompletionError, match="outside"):
        model.score([0], [catalog.n_items])
    # the builder's scale: L / (L + 2) of the lift over the base rate, the same order as the probability
    ii, jj = np.repeat(np.arange(20), 20), np.tile(np.arange(20), 20)
    p, s = model.probability(ii, jj), model.score(ii, jj)
    L = p / model.base_rate
    np.testing.assert_allclose(s, L / (L + 2.0), rtol=1e-6)
    assert ((s >= 0) & (s < 1)).all() and (s[ii == jj] == 0).all()
    order = np.argsort(p, kind="stable")
    assert (np.diff(s[order].astype(np.float64)) >= -1e-7).all()


def test_save_load_round_trip_and_damage_heals(tmp_path):
    catalog, baskets = _cooccurrence_world(B=300)
    rng = lambda: np.random.default_rng(4)  # noqa: E731
    m1 = fit_completion(catalog, baskets, catalog.embeddings, rng(), FAST, cache_dir=tmp_path)
    assert not m1.cache_hit and m1.cache_path.exists()
    m2 = fit_completion(catalog, baskets, catalog.embeddings, rng(), FAST, cache_dir=tmp_path)
    assert m2.cache_hit and m2.report == m1.report
    i, j = np.arange(50), np.arange(50, 100)
    np.testing.assert_array_equal(m1.score(i, j), m2.score(i, j))
    np.testing.assert_array_equal(m1.top_items, m2.top_items)
    other = _unit(np.random.default_rng(9).standard_normal(catalog.embeddings.shape))
    with pytest.raises(CompletionError, match="embeddings differ"):
        CompletionModel.load(m1.cache_path, other)
    raw = bytearray(m1.cache_path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # a flipped bit
    m1.cache_path.write_bytes(bytes(raw))
    with pytest.warns(RuntimeWarning, match="unusable"):
        m3 = fit_completion(catalog, baskets, catalog.embeddings, rng(), FAST, cache_dir=tmp_path)
    assert not m3.cache_hit
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m4 = fit_completion(catalog, baskets, catalog.embeddings, rng(), FAST, cache_dir=tmp_path)
    assert m4.cache_hit  # healed


def test_config_and_input_errors():
    with pytest.raises(CompletionError, match="n_text"):
        CompletionConfig(n_text=0)
    with pytest.raises(CompletionError, match="validation_fraction"):
        CompletionConfig(validation_fraction=0.9)
    catalog, baskets = _text_world(B=20)
    with pytest.raises(CompletionError, match="unit-norm"):
        fit_completion(catalog, baskets, catalog.embeddings * 2, np.random.default_rng(0), use_cache=False)
    with pytest.raises(CompletionError, match="catalogue has"):
        fit_completion(catalog, Baskets.from_lists([[0, 1]], 5), catalog.embeddings, np.random.default_rng(0))


@given(st.lists(st.tuples(st.floats(-5, 5), st.booleans()), min_size=1, max_size=30), st.integers(1, 10))
def test_ndcg_of_groups_matches_the_ranking_metrics(rows, k):
    """The fit's NDCG of candidate groups equals ranking_metrics.ndcg_at_k on the same ranked list."""
    from bundlerl.sim_data.ranking_metrics import ndcg_at_k, top_k
    from bundlerl.sim_data.splits import Queries

    z = np.array([r[0] for r in rows])
    lab = np.array([r[1] for r in rows])
    item = np.arange(len(rows))
    got = ndcg_of_groups(np.zeros(len(rows), np.int64), item, z, lab, np.array([max(1, lab.sum())]), k)
    scores = np.full((1, len(rows) + 1), -np.inf)
    scores[0, :len(rows)] = z
    ranked = top_k(scores, k, [len(rows)])
    tg = item[lab]
    q = Queries(np.array([len(rows)]), np.array([0]), np.array([0, tg.size]), tg, np.array([True]))
    want = ndcg_at_k(ranked, q)[0] if tg.size else 0.0
    assert got[0] == pytest.approx(want)


@given(st.integers(0, 10_000), st.integers(0, 10_000), st.floats(0.0, 500.0), st.floats(0.01, 50.0))
def test_shrunk_pmi_properties(n1, n2, expected, alpha):
    """The ``pmi`` signal, log((n + alpha) / (E + alpha)): increasing in the count, decreasing in the expected count,
    0 with no evidence either way, and between 0 and the raw log lift (shrunk toward independence)."""
    from bundlerl.candidates.cooccurrence import shrunk_log_lift

    lo, hi = sorted((n1, n2))
    assert shrunk_log_lift(lo, expected, alpha) <= shrunk_log_lift(hi, expected, alpha) + 1e-12
    assert shrunk_log_lift(hi, expected + 1.0, alpha) <= shrunk_log_lift(hi, expected, alpha) + 1e-12
    assert shrunk_log_lift(0, 0.0, alpha) == pytest.approx(0.0)
    if hi > 0 and expected > 0:
        raw = np.log(hi / expected)
        s = float(shrunk_log_lift(hi, expected, alpha))
        assert min(0.0, raw) - 1e-9 <= s <= max(0.0, raw) + 1e-9


@given(st.lists(st.integers(0, 50), min_size=2, max_size=12), st.lists(st.integers(0, 1000), min_size=12, max_size=12))
def test_cooccurrence_baseline_orders_by_count_then_popularity(counts, pops):
    """The co-occurrence score ``count + pop / (max pop + 1)`` ranks by count, popularity only among equal counts; the
    weight row ``log1p_count + 1e-7 log1p_popularity`` gives the same order."""
    from bundlerl.candidates.learned import baseline_weights

    n = len(counts)
    c, p = np.asarray(counts, float), np.asarray(pops[:n], float)
    s = c + p / (p.max() + 1.0)
    w = baseline_weights()[1]
    z = w[SF.log1p_count] * np.log1p(c) + w[SF.log1p_popularity] * np.log1p(p)
    for a in range(n):
        for b in range(n):
            if c[a] != c[b]:
                assert (s[a] > s[b]) == (c[a] > c[b]) == (z[a] > z[b])
            elif p[a] != p[b]:
                assert (s[a] > s[b]) == (p[a] > p[b]) == (z[a] > z[b])


@given(st.integers(0, 2**31 - 1))
def test_softmax_ranking_loss_gradient(seed):
    """The listwise loss's analytic gradient matches finite differences, and the loss is the mean softmax
    cross-entropy of the targets."""
    from bundlerl.candidates.learned.fitting import _softmax_loss

    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 6, 4)
    Z = rng.standard_normal((sizes.sum(), 3))
    label = np.zeros(sizes.sum(), bool)
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    label[starts] = True
    label[starts + 1] = rng.random(4) < 0.5
    group = np.repeat(np.arange(4), sizes)
    n_pos = np.add.reduceat(label.astype(float), starts)
    w = rng.standard_normal(3)
    loss, grad = _softmax_loss(w, Z, label, starts, group, n_pos, 0.3)
    num = np.array([(_softmax_loss(w + h, Z, label, starts, group, n_pos, 0.3)[0]
                     - _softmax_loss(w - h, Z, label, starts, group, n_pos, 0.3)[0]) / 2e-6 for h in np.eye(3) * 1e-6])
    np.testing.assert_allclose(grad, num, rtol=1e-4, atol=1e-6)
    z = Z @ w
    want = np.mean([-(np.log(np.exp(z[g == group]) / np.exp(z[g == group]).sum())[label[g == group]]).sum()
                    for g in range(4)]) + 0.15 * w @ w
    assert loss == pytest.approx(want)


@given(st.lists(st.lists(st.integers(0, 7), min_size=1, max_size=6, unique=True), min_size=1, max_size=12))
def test_partner_shares_match_the_definition(rows):
    """``partner_shares``: each basket of m >= 2 items gives each of its ordered pairs 1 / (m - 1) (brute force);
    an item's weighted row sums to the baskets of >= 2 items holding it (so shares sum to 1), and never exceeds
    the plain count."""
    from bundlerl.candidates.cooccurrence import PairCounts, partner_shares

    b = Baskets.from_lists(rows, 8)
    c = PairCounts.from_baskets(b)
    w, mass = partner_shares(b, c)
    want = np.zeros((8, 8))
    for r in rows:
        for x in r:
            for y in r:
                if x != y:
                    want[x, y] += 1.0 / (len(r) - 1)
    i, j = c.pairs()
    np.testing.assert_allclose(w, want[i, j])
    np.testing.assert_allclose(np.bincount(i, weights=w, minlength=8), mass)
    np.testing.assert_array_equal(mass, [sum(1 for r in rows if len(r) >= 2 and x in r) for x in range(8)])
    assert (w <= c.counts + 1e-12).all()


def test_partner_and_small_basket_signals_and_their_round_trip(tmp_path):
    """partner_share is w_sj / m_s in [0, 1] (each seed's shares over all partners sum to 1); log_partner_share ranks
    pairs never bought together by the candidate's share of partner slots; the bundle-sized-basket signals count only
    baskets of <= max_query_items items and are 0 when every basket is that small; all survive save / load."""
    catalog, small = _cooccurrence_world(B=300)
    rng = np.random.default_rng(5)
    big = [rng.choice(catalog.n_items, 15, replace=False) for _ in range(40)]
    baskets = Baskets.from_lists([small.basket(k) for k in range(len(small))] + big, catalog.n_items)
    cfg = CompletionConfig(**{**FAST.to_dict(), "max_query_items": 6})
    m = fit_completion(catalog, baskets, catalog.embeddings, np.random.default_rng(0), cfg, cache_dir=tmp_path)
    s = np.repeat(np.arange(catalog.n_items), catalog.n_items)
    j = np.tile(np.arange(catalog.n_items), catalog.n_items)
    F = m.signals.features(s, j)
    share = F[:, SF.partner_share].reshape(catalog.n_items, -1)
    assert (share >= 0).all() and (share <= 1 + 1e-12).all()
    np.testing.assert_allclose(share.sum(1)[m.signals.partner_mass > 0], 1.0)
    small_n = sum(1 for r in big if len(r) <= 6) + len(small)
    assert m.signals.small_counts.n_baskets == small_n
    pair_in_big_only = (F[:, SF.log1p_count] > 0) & (F[:, SF.log1p_small_count] == 0)
    assert pair_in_big_only.any()  # pairs of the 15-item baskets only count in log1p_count
    never = F[:, SF.log1p_count] == 0
    q = m.signals.partner_mass[j[never]]
    lps = F[never, SF.log_partner_share]
    same_seed = s[never] == s[never][0]
    assert (np.diff(lps[same_seed][np.argsort(q[same_seed], kind="stable")]) >= -1e-12).all()
    m2 = CompletionModel.load(m.cache_path, catalog.embeddings)
    np.testing.assert_array_equal(m2.signals.features(s[:500], j[:500]), F[:500])
    m0 = fit_completion(catalog, small, catalog.embeddings, np.random.default_rng(0), FAST, cache_dir=tmp_path)
    F0 = m0.signals.features(s[:500], j[:500])
    assert (F0[:, [SF.log1p_small_count, SF.log1p_small_popularity]] == 0).all()  # every bundle <= 10 items


def test_fit_is_a_smooth_function_of_the_embeddings():
    """Embeddings moved by float32 rounding (1e-7 relative) move the fitted scores by far less than the 2e-6 the golden
    snapshots' stress test shifts the builder's completion by: the ranking fit runs L-BFGS to convergence (with
    scipy's default tolerances its stopping point moved the small world's scores by up to 6e-6)."""
    catalog, baskets = _cooccurrence_world(B=400)
    E = catalog.embeddings
    E2 = E * (1 + 1e-7 * np.random.default_rng(1).standard_normal(E.shape)).astype(np.float32)
    E2 = (E2 / np.linalg.norm(E2, axis=1, keepdims=True)).astype(np.float32)
    a = fit_completion(catalog, baskets, E, np.random.default_rng(0), FAST, use_cache=False)
    b = fit_completion(catalog.with_embeddings(E2), baskets, E2, np.random.default_rng(0), FAST, use_cache=False)
    assert [r["chosen"] for r in a.report["regimes"]] == [r["chosen"] for r in b.report["regimes"]]
    i, j = np.nonzero(np.ones((catalog.n_items, catalog.n_items), bool))
    assert np.abs(a.score(i, j) - b.score(i, j)).max() < 1e-6
