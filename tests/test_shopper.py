"""The shopper model: SIMULATOR.md properties 1-6, its formulas, errors and per-user streams.

The catalogue here is a hand-made toy with controlled embeddings (a fake for unit-testing the
shopper alone): camera (0), memory card (1), tripod (2), socks (3); camera -> memory card is a
strong complement, memory card -> camera weak.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bundlerl.env.shopper import ShopperError, ShopperModel, sigmoid
from bundlerl.env.shopper_params import ShopperParams, ShopperParamsError
from bundlerl.env.shopper_state import ShopperState
from bundlerl.env.user_streams import UserStreams
from bundlerl.sim_data.catalog import Catalog
from bundlerl.sim_data.personas import Personas

D = 16
CAMERA, CARD, TRIPOD, SOCKS = range(4)


def _unit(v):
    v = np.asarray(v, np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _toy_catalog(n_per_cat: int = 6, seed: int = 0) -> Catalog:
    rng = np.random.default_rng(seed)
    C = 4
    cat = np.repeat(np.arange(C), n_per_cat)
    centres = _unit(rng.standard_normal((C, D)))
    emb = _unit(centres[cat] + 0.3 * rng.standard_normal((cat.size, D)))
    G = np.zeros((C, C), np.float32)
    G[CAMERA, CARD], G[CARD, CAMERA], G[CAMERA, TRIPOD], G[TRIPOD, CAMERA] = 0.9, 0.1, 0.6, 0.2
    n = cat.size
    return Catalog(
        item_ids=[f"i{i}" for i in range(n)], titles=[f"item {i}" for i in range(n)], descriptions=[""] * n,
        category=cat, category_names=["camera", "memory card", "tripod", "socks"], category_department=[0, 0, 0, 1],
        department_names=["photo", "clothing"], brand=["acme" if i % 2 else "zeta" for i in range(n)],
        price=rng.uniform(5, 50, n).astype(np.float32), popularity=np.ones(n, np.float32),
        embeddings=emb.astype(np.float32), complement_graph=G,
    )


def _personas(n: int, C: int = 4, budget: float = 200.0, needs=None) -> Personas:
    nd = np.full((n, C), 0.5, np.float32) if needs is None else np.broadcast_to(np.asarray(needs, np.float32), (n, C))
    return Personas(texts=[f"p{i}" for i in range(n)], interests=np.zeros((n, 1), np.int32), needs=nd.copy(),
                    budget=np.full(n, budget, np.float32), price_sensitivity=np.ones(n, np.float32))


def _state(model: ShopperModel, n: int = 1, seed: int = 0, **kw) -> ShopperState:
    vecs = _unit(np.random.default_rng(seed).standard_normal((n, D))).astype(np.float32)
    return model.init_state(_personas(n, **kw), vecs, np.random.default_rng(seed))


class Forced:
    """An rng whose ``random`` returns fixed uniforms: 0 forces an event (when p > 0), 1 forbids it."""

    def __init__(self, u):
        self.u = np.asarray(u, np.float64)

    def random(self, size):
        return np.broadcast_to(self.u, size).copy()


@pytest.fixture(scope="module")
def catalog():
    return _toy_catalog()


def _items_of(catalog, c):
    return np.flatnonzero(catalog.category == c)


# ---------------------------------------------------------------- 1. monotone in taste and price
@settings(max_examples=40, deadline=None)
@given(c1=st.floats(-0.9, 0.9), c2=st.floats(-0.9, 0.9))
def test_click_prob_rises_with_taste_similarity(c1, c2):
    base = _toy_catalog()
    theta = _unit(np.eye(D)[0])
    orth = np.eye(D)[1]
    emb = base.embeddings.copy()
    emb[0] = c1 * theta + np.sqrt(1 - c1**2) * orth
    emb[1] = c2 * theta + np.sqrt(1 - c2**2) * orth  # same category, set to the same price as item 0
    price = base.price.copy()
    price[1] = price[0]
    cat = Catalog(**{**base.__dict__, "embeddings": emb.astype(np.float32), "price": price})
    model = ShopperModel(cat, ShopperParams())
    st_ = _state(model)
    st_.theta[:] = theta
    pc = model.click_prob(st_, np.array([[[0, -1, -1], [1, -1, -1]]]))[0]
    assert (pc[0] <= pc[1]) == (c1 <= c2) or np.isclose(pc[0], pc[1], atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(p1=st.floats(1, 100), p2=st.floats(1, 100))
def test_click_prob_falls_with_price(p1, p2):
    base = _toy_catalog()
    emb = base.embeddings.copy()
    emb[1] = emb[0]
    price = base.price.copy()
    price[0], price[1] = p1, p2
    cat = Catalog(**{**base.__dict__, "embeddings": emb, "price": price})
    model = ShopperModel(cat)
    pc = model.click_prob(_state(model), np.array([[[0, -1, -1], [1, -1, -1]]]))[0]
    if p1 < p2:
        assert pc[0] >= pc[1]
    elif p1 > p2:
        assert pc[0] <= pc[1]


# ---------------------------------------------------------------- 2. complements help, substitutes hurt
def test_true_complement_raises_anchor_purchase_probability(catalog):
    model = ShopperModel(catalog)
    st_ = _state(model)
    cam, card, sock = _items_of(catalog, CAMERA)[0], _items_of(catalog, CARD)[0], _items_of(catalog, SOCKS)[0]
    pb = model.purchase_probs(st_, np.array([[[card, -1], [card, cam], [card, sock]]]))[0]
    assert pb[1, 0] > pb[0, 0]  # camera -> card is a complement: the card sells better next to a camera
    assert np.isclose(pb[2, 0], pb[0, 0])  # socks complement nothing: no change


def test_near_duplicate_substitute_lowers_utility(catalog):
    emb = catalog.embeddings.copy()
    a, b = _items_of(catalog, TRIPOD)[:2]
    emb[b] = emb[a]
    price = catalog.price.copy()
    price[b] = price[a]
    cat = Catalog(**{**catalog.__dict__, "embeddings": emb, "price": price})
    model = ShopperModel(cat)
    u = model.utility(_state(model), np.array([[[a, -1], [a, b]]]))[0]
    p = model.params
    assert u[1] < u[0]
    assert np.isclose(u[0] - u[1], p.delta, atol=1e-4)  # same mean affinity, no comp within a category, sub = 1


def test_utility_formula_matches_simulator_md(catalog):
    """U(B) = mean a(i) + γ·mean comp* − δ·max sub − ρ·seen, recomputed by hand for one bundle."""
    p = ShopperParams()
    model = ShopperModel(catalog, p)
    st_ = _state(model)
    cam, card = _items_of(catalog, CAMERA)[1], _items_of(catalog, CARD)[2]
    st_.shown[0, cam] = True
    th, nu, beta = st_.theta[0], st_.needs[0], st_.beta[0]
    pbar = catalog.category_mean_price()

    def a(i):
        c = catalog.category[i]
        return p.w_s * th @ catalog.embeddings[i] + p.w_n * nu[c] - beta * np.log(catalog.price[i] / pbar[c])

    tiers = catalog.price_tier(3)

    def comp(i, j):
        fit = 0.5 + p.fit_brand * (catalog.brand[i] == catalog.brand[j]) + p.fit_tier * (tiers[i] == tiers[j])
        return catalog.complement_graph[catalog.category[i], catalog.category[j]] * fit

    want = (a(cam) + a(card)) / 2 + p.gamma * (comp(cam, card) + comp(card, cam)) / 2 - p.rho * 0.5
    got = model.utility(st_, np.array([[[cam, card]]]))[0, 0]
    assert np.isclose(got, want, atol=1e-4)
    assert np.isclose(model.click_prob(st_, np.array([[[cam, card]]]))[0, 0], sigmoid((want - p.tau_c) / p.T_c), atol=1e-5)


# ---------------------------------------------------------------- 3. satiation and activation
def test_purchase_satiates_its_category_and_activates_complements(catalog):
    p = ShopperParams()
    model = ShopperModel(catalog, p)
    st_ = _state(model, needs=[0.9, 0.1, 0.1, 0.1])
    cam = _items_of(catalog, CAMERA)[0]
    before = st_.needs.copy()
    resp = model.step(st_, np.array([[cam, -1, -1]]), Forced([0, 0, 1, 1, 1]))
    assert resp.click[0] and resp.n_bought[0] == 1
    assert np.isclose(st_.needs[0, CAMERA], before[0, CAMERA] * (1 - p.satiation))
    assert np.isclose(st_.needs[0, CARD], min(1, before[0, CARD] + p.kappa * 0.9))
    assert st_.needs[0, TRIPOD] > before[0, TRIPOD]
    assert np.isclose(st_.needs[0, SOCKS], before[0, SOCKS])


def test_activation_switch_turns_complement_activation_off(catalog):
    model = ShopperModel(catalog, ShopperParams(activation=False))
    st_ = _state(model, needs=[0.9, 0.1, 0.1, 0.1])
    model.step(st_, np.array([[_items_of(catalog, CAMERA)[0], -1, -1]]), Forced([0, 0, 1, 1, 1]))
    assert np.isclose(st_.needs[0, CARD], 0.1)


# ---------------------------------------------------------------- 4. fatigue and leaving
@settings(max_examples=50, deadline=None)
@given(f1=st.floats(0, 1), f2=st.floats(0, 1))
def test_more_fatigue_never_lowers_leave_probability(catalog, f1, f2):
    model = ShopperModel(catalog)
    lo, hi = sorted([f1, f2])
    assert model.leave_prob(lo) <= model.leave_prob(hi)


def test_repeated_impressions_raise_fatigue_more(catalog):
    p = ShopperParams()
    model = ShopperModel(catalog, p)
    st_ = _state(model)
    b = np.array([[_items_of(catalog, SOCKS)[0], -1, -1]])
    no_click = Forced([1, 1, 1, 1, 1])
    model.step(st_, b, no_click)
    f1 = float(st_.fatigue[0])
    model.step(st_, b, no_click)
    f2 = float(st_.fatigue[0])
    assert np.isclose(f1, p.phi_miss)
    assert np.isclose(f2 - f1, p.phi_miss + p.phi_rep)  # the second impression is fully "seen"
    model.step(st_, b, Forced([0, 1, 1, 1, 1]))  # a click relieves fatigue
    assert np.isclose(st_.fatigue[0], f2 * (1 - p.phi_hit))


def test_fatigue_switch_keeps_fatigue_zero(catalog):
    model = ShopperModel(catalog, ShopperParams(fatigue=False))
    st_ = _state(model)
    model.step(st_, np.array([[0, -1, -1]]), Forced([1, 1, 1, 1, 1]))
    assert st_.fatigue[0] == 0


# ---------------------------------------------------------------- 5. budget
@settings(max_examples=30, deadline=None)
@given(budget=st.floats(1, 120), seed=st.integers(0, 2**31 - 1))
def test_budget_never_negative_and_nothing_bought_that_does_not_fit(catalog, budget, seed):
    model = ShopperModel(catalog, ShopperParams(tau_b=-5.0, tau_c=-5.0))  # eager shopper: tests the budget cap
    N = 16
    st_ = _state(model, n=N, seed=seed % 1000, budget=budget)
    rng = np.random.default_rng(seed)
    for _ in range(6):
        b = rng.integers(-1, catalog.n_items, size=(N, 3))
        before = st_.budget.copy()
        resp = model.step(st_, b, rng)
        paid_items = np.where(resp.bought, catalog.price[np.maximum(b, 0)], 0).sum(1)
        assert (st_.budget >= 0).all()
        assert (paid_items <= before + 1e-3).all()
        assert (resp.revenue <= paid_items + 1e-3).all()
        assert np.allclose(before - st_.budget, resp.revenue, atol=1e-3)


def test_bundle_discount_applies_only_when_every_item_is_bought(catalog):
    p = ShopperParams(tau_b=-20.0, tau_c=-20.0)
    model = ShopperModel(catalog, p)
    items = np.array([[_items_of(catalog, CAMERA)[0], _items_of(catalog, CARD)[0], _items_of(catalog, TRIPOD)[0]]])
    st_ = _state(model, budget=1e6)
    resp = model.step(st_, items, Forced([0, 0, 0, 0, 1]))
    full = catalog.price[items[0]].sum()
    assert resp.n_bought[0] == 3 and np.isclose(resp.revenue[0], full * (1 - 0.15), rtol=1e-5)  # the store's default
    st_ = _state(model, budget=1e6)
    resp = model.step(st_, items, Forced([0, 0, 1, 0, 1]))
    assert resp.n_bought[0] == 2 and np.isclose(resp.revenue[0], catalog.price[items[0, [0, 2]]].sum(), rtol=1e-5)
    # the shopper pays the discount the store shows: the builder's discounts, not a constant of its own
    store = ShopperModel(catalog, p, discounts={2: 0.05, 3: 0.3})
    resp = store.step(_state(store, budget=1e6), items, Forced([0, 0, 0, 0, 1]))
    assert np.isclose(resp.revenue[0], full * (1 - 0.3), rtol=1e-5)
    resp = store.step(_state(store, budget=1e6), items[:, :2], Forced([0, 0, 0, 1]))
    assert np.isclose(resp.revenue[0], catalog.price[items[0, :2]].sum() * (1 - 0.05), rtol=1e-5)


def test_out_of_budget_ends_the_session(catalog):
    model = ShopperModel(catalog)
    st_ = _state(model, budget=1.0)  # below every price
    resp = model.step(st_, np.array([[0, -1, -1]]), Forced([1, 1, 1, 1, 1]))
    assert resp.out_of_budget[0] and resp.done[0] and not st_.active[0]
    again = model.step(st_, np.array([[0, -1, -1]]), Forced([0, 0, 0, 0, 0]))
    assert again.done[0] and not again.click[0] and again.n_bought[0] == 0 and again.revenue[0] == 0


# ---------------------------------------------------------------- expected response (and reward) is exact
@pytest.mark.parametrize("mode", ["purchases", "revenue", "clicks"])
def test_expected_reward_matches_monte_carlo(catalog, mode):
    from bundlerl.env.reward import REWARD_MODES, reward

    model = ShopperModel(catalog, ShopperParams(tau_b=1.5, tau_c=1.0))
    w, mean_price = REWARD_MODES[mode], float(catalog.price.mean())
    st_ = _state(model, budget=60.0)
    bundles = np.array([[[0, 6, 12], [7, -1, -1], [13, 19, -1]]])
    expected = [x[0] for x in model.expected_response(st_, bundles)]
    exact = reward(*expected, w, mean_price)
    R = 40000
    rng = np.random.default_rng(1)
    for k in range(3):
        rep = st_.take(np.zeros(R, np.int64))
        resp = model.step(rep, np.repeat(bundles[:, k], R, 0), rng)
        for got, want in zip((resp.click, resp.n_bought, resp.revenue), expected):  # each part of the response
            assert abs(got.mean() - want[k]) < 4 * got.std() / np.sqrt(R) + 1e-6, (k, got.mean(), want[k])
        r = reward(resp.click, resp.n_bought, resp.revenue, w, mean_price)
        se = r.std() / np.sqrt(R)
        assert abs(r.mean() - exact[k]) < 4 * se + 1e-6, (k, r.mean(), exact[k])


# ---------------------------------------------------------------- 6. determinism and batch independence
def _rollout(model, personas, vecs, keys, steps=8):
    st_ = model.init_state(personas, vecs, UserStreams(keys))
    rng_b = np.random.default_rng(0)
    bundles = rng_b.integers(-1, model.n_items, size=(steps, len(keys), 3))
    out = []
    for t in range(steps):
        r = model.step(st_, bundles[t, : len(keys)], UserStreams(keys * 1000 + t))
        out.append((r.click.copy(), r.bought.copy(), r.revenue.copy(), r.done.copy()))
    return st_, out


def test_same_seed_same_trajectory_and_batch_equals_single_runs(catalog):
    model = ShopperModel(catalog)
    N = 5
    P = _personas(N)
    vecs = _unit(np.random.default_rng(3).standard_normal((N, D))).astype(np.float32)
    keys = np.arange(100, 100 + N, dtype=np.uint64)
    s1, o1 = _rollout(model, P, vecs, keys)
    s2, o2 = _rollout(model, P, vecs, keys)
    for a, b in zip(o1, o2):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(s1.theta, s2.theta)
    # a batch of N equals N single-user runs with the same per-user keys (same bundles per row)
    bundles_rng = np.random.default_rng(0).integers(-1, model.n_items, size=(8, N, 3))
    batch = model.init_state(P, vecs, UserStreams(keys))
    single = [model.init_state(P.take([i]), vecs[[i]], UserStreams(keys[[i]])) for i in range(N)]
    for t in range(8):
        rb = model.step(batch, bundles_rng[t], UserStreams(keys * 1000 + t))
        for i in range(N):
            ri = model.step(single[i], bundles_rng[t, [i]], UserStreams(keys[[i]] * 1000 + t))
            assert ri.click[0] == rb.click[i] and ri.revenue[0] == rb.revenue[i] and ri.done[0] == rb.done[i]
    for i in range(N):
        np.testing.assert_array_equal(single[i].theta[0], batch.theta[i])
        np.testing.assert_array_equal(single[i].needs[0], batch.needs[i])


def test_user_streams_are_uniform_normal_and_batch_independent():
    keys = np.arange(2000, dtype=np.uint64)
    u = UserStreams(keys).random((2000, 50))
    assert u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.01
    z = UserStreams(keys).standard_normal((2000, 50))
    assert abs(z.mean()) < 0.02 and abs(z.std() - 1) < 0.02
    np.testing.assert_array_equal(UserStreams(keys[[7]]).random((1, 50))[0], u[7])
    s = UserStreams(keys[:3])
    first, second = s.random((3, 4)), s.random((3, 4))
    np.testing.assert_array_equal(np.concatenate([first, second], 1), UserStreams(keys[:3]).random((3, 8)))
    with pytest.raises(ValueError, match="start with the number of streams"):
        s.random((4, 2))


# ---------------------------------------------------------------- bad input
def test_bad_input_gives_clear_errors(catalog):
    model = ShopperModel(catalog)
    st_ = _state(model)
    with pytest.raises(ShopperError, match="outside"):
        model.step(st_, np.array([[catalog.n_items, -1, -1]]), np.random.default_rng(0))
    with pytest.raises(ShopperError, match="shape"):
        model.step(st_, np.array([0, 1, 2]), np.random.default_rng(0))
    with pytest.raises(ShopperError, match="integer"):
        model.utility(st_, np.zeros((1, 2, 3), np.float32))
    with pytest.raises(ShopperError, match="complement graph"):
        ShopperModel(catalog.observable())
    with pytest.raises(ShopperError, match="profile_vecs"):
        model.init_state(_personas(2), np.full((2, D), np.nan, np.float32), np.random.default_rng(0))
    with pytest.raises(ShopperParamsError, match="T_c"):
        ShopperParams(T_c=0.0)
    with pytest.raises(ShopperParamsError, match="satiation"):
        ShopperParams(satiation=1.5)
    with pytest.raises(ShopperParamsError, match="fatigue"):
        ShopperParams(fatigue="yes")


def test_zero_padded_tables_are_shared_per_source_and_dropped_with_it():
    import gc

    from bundlerl.utils.arrays import _PADDED, zero_padded

    src = np.arange(12, dtype=np.float32).reshape(4, 3)
    a = zero_padded(src)
    assert a is zero_padded(src)  # every env over the same embeddings shares one copy
    assert a.shape == (5, 3) and a.dtype == src.dtype and not a.flags.writeable
    np.testing.assert_array_equal(a[:-1], src)
    np.testing.assert_array_equal(a[np.array([2, -1])], [src[2], np.zeros(3)])  # -1 (empty slot) gathers zeros
    other = src.copy()
    assert zero_padded(other) is not a  # equal values, another source: its own table
    n = len(_PADDED)
    del src, other
    gc.collect()
    assert len(_PADDED) == n - 2
