"""Delayed-payoff complements (docs/SIMULATOR.md, User; ``ShopperParams.dormant_complements``): a complement whose
anchor is among the persona's interests starts the session with a near-zero need, and buying the anchor activates
it. Property tests on the hand-made toy catalogue of tests/test_shopper.py (camera -> memory card 0.9, card ->
camera 0.1, camera -> tripod 0.6, tripod -> camera 0.2; a fake for unit-testing the shopper alone)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from test_shopper import CAMERA, CARD, TRIPOD, D, Forced, _toy_catalog, _unit

from bundlerl.env.shopper import ShopperModel
from bundlerl.env.shopper_params import ShopperParams
from bundlerl.sim_data.personas import Personas

CAT = _toy_catalog()
SOCKS = 3


def _personas(interests, n: int = 8, need: float = 0.8) -> Personas:
    interests = np.asarray(interests, np.int32)
    nd = np.full((n, 4), 0.1, np.float32)
    nd[:, interests] = need
    return Personas(texts=[f"p{i}" for i in range(n)], interests=np.tile(interests, (n, 1)), needs=nd,
                    budget=np.full(n, 500.0, np.float32), price_sensitivity=np.ones(n, np.float32))


def _init(params: ShopperParams, interests, n: int = 8, seed: int = 0):
    model = ShopperModel(CAT, params)
    vecs = np.tile(_unit(np.random.default_rng(99).standard_normal(D)).astype(np.float32), (n, 1))
    return model, model.init_state(_personas(interests, n), vecs, np.random.default_rng(seed))


@settings(max_examples=25, deadline=None)
@given(phi=st.floats(0.0, 1.0), thr=st.floats(0.0, 1.0), seed=st.integers(0, 2**16))
def test_dormant_needs_are_the_anchor_rules_categories_times_one_minus_phi(phi, thr, seed):
    """With the camera among the interests, exactly the categories x with G[camera, x] > G[x, camera] and
    G[camera, x] >= threshold start at need x (1 - phi); every other need, taste and budget are those of phi = 0
    (dormancy draws nothing: the per-user streams stay aligned)."""
    interests = [CAMERA, CARD, TRIPOD]
    model, s = _init(ShopperParams(dormant_complements=phi, dormant_threshold=thr), interests, seed=seed)
    _, s0 = _init(ShopperParams(), interests, seed=seed)
    G = model.G
    want = np.zeros(4, bool)
    for x in range(4):
        want[x] = any(G[c, x] > G[x, c] and G[c, x] >= thr for c in interests if c != x)
    np.testing.assert_array_equal(model.dormant_mask(np.array([interests]))[0], want)
    np.testing.assert_allclose(s.needs[:, want], s0.needs[:, want] * (1.0 - phi), rtol=1e-6)
    np.testing.assert_array_equal(s.needs[:, ~want], s0.needs[:, ~want])
    np.testing.assert_array_equal(s.theta, s0.theta)
    np.testing.assert_array_equal(s.budget, s0.budget)
    assert not want[CAMERA] and not want[SOCKS]  # the anchor itself and unrelated categories are never dormant


def test_no_anchor_among_the_interests_no_dormancy():
    """A card shopper without the camera among the interests: the card is not waiting for anything."""
    _, s = _init(ShopperParams(dormant_complements=1.0), [CARD, SOCKS])
    _, s0 = _init(ShopperParams(), [CARD, SOCKS])
    np.testing.assert_array_equal(s.needs, s0.needs)


def _items(c: int) -> np.ndarray:
    return np.flatnonzero(CAT.category == c)


@settings(max_examples=20, deadline=None)
@given(phi=st.floats(0.5, 1.0), kappa=st.floats(0.5, 2.0), seed=st.integers(0, 2**16))
def test_buying_the_anchor_unlocks_the_dormant_complement(phi, kappa, seed):
    """Delayed payoff: a memory card is less likely to be bought by a dormant camera shopper than without dormancy;
    once the camera is bought (forced), the card's purchase probability rises above its dormant value, and the
    card's need is at least min(1, dormant need + kappa * G[camera, card])."""
    params = ShopperParams(dormant_complements=phi, kappa=kappa, satiation=0.5, eta=0.0)  # no taste drift: needs only
    model, s = _init(params, [CAMERA, CARD], n=4, seed=seed)
    _, s0 = _init(ShopperParams(kappa=kappa, satiation=0.5, eta=0.0), [CAMERA, CARD], n=4, seed=seed)
    card = np.full((4, 1, 3), -1)
    card[:, 0, 0] = _items(CARD)[0]
    before = model.purchase_probs(s, card)[:, 0, 0]
    assert (before <= model.purchase_probs(s0, card)[:, 0, 0] + 1e-7).all()
    need_before = s.needs[:, CARD].copy()
    camera = np.full((4, 3), -1)
    camera[:, 0] = _items(CAMERA)[0]
    resp = model.step(s, camera, Forced(np.zeros((4, 5))))  # click and buy the camera
    assert resp.bought[:, 0].all()
    expect = np.minimum(1.0, need_before + kappa * model.G[CAMERA, CARD])
    np.testing.assert_allclose(s.needs[:, CARD], expect, rtol=1e-5)
    after = model.purchase_probs(s, card)[:, 0, 0]
    assert (after > before).all()
