"""The session errand of docs/SIMULATOR.md (``ShopperParams.sigma_intent``, ``intent_focus``): each session a shopper
comes for one of the persona's interest categories, hidden from the recommender (the profile names all of them);
its taste leans towards that category and the needs of the other interests are damped. Property tests on the
hand-made toy catalogue of tests/test_shopper.py (a fake for unit-testing the shopper alone)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from test_shopper import D, _toy_catalog, _unit

from bundlerl.env.shopper import ShopperModel
from bundlerl.env.shopper_params import ShopperParams
from bundlerl.sim_data.personas import Personas

CAT = _toy_catalog()
INTERESTS = np.array([0, 1, 2], np.int32)  # camera, memory card, tripod


def _personas(n: int, needs: float = 0.8) -> Personas:
    nd = np.full((n, 4), 0.1, np.float32)
    nd[:, INTERESTS] = needs
    return Personas(texts=[f"p{i}" for i in range(n)], interests=np.tile(INTERESTS, (n, 1)), needs=nd,
                    budget=np.full(n, 200.0, np.float32), price_sensitivity=np.ones(n, np.float32))


def _init(params: ShopperParams, n: int, seed: int = 0):
    model = ShopperModel(CAT, params)
    vecs = np.tile(_unit(np.random.default_rng(99).standard_normal(D)).astype(np.float32), (n, 1))  # one profile
    return model, model.init_state(_personas(n), vecs, np.random.default_rng(seed))


@settings(max_examples=25, deadline=None)
@given(focus=st.floats(0.0, 1.0), seed=st.integers(0, 2**16))
def test_focus_damps_every_interest_but_one_by_the_stated_factor(focus, seed):
    """Per session: exactly the errand keeps its need; every other interest's need is times (1 - focus); the
    categories outside the interests are untouched."""
    _, s = _init(ShopperParams(intent_focus=focus, sigma_intent=1.0), 64, seed)
    before = _personas(64).needs
    ratio = s.needs[:, INTERESTS] / before[:, INTERESTS]
    kept = np.isclose(ratio, 1.0, atol=1e-6)
    damped = np.isclose(ratio, 1.0 - focus, atol=1e-6)
    assert (kept | damped).all()
    if focus > 1e-6:
        assert (kept.sum(1) == 1).all()
    np.testing.assert_array_equal(s.needs[:, 3], before[:, 3])


@settings(max_examples=20, deadline=None)
@given(sigma=st.floats(0.3, 4.0), seed=st.integers(0, 2**16))
def test_taste_leans_towards_the_errand_category(sigma, seed):
    """With the errand tilt, the session's taste is closer to its errand's category direction than to the other
    interests' directions, and closer than it is without the tilt (same taste noise draws)."""
    model, s = _init(ShopperParams(sigma_intent=sigma, intent_focus=1.0), 64, seed)
    _, s0 = _init(ShopperParams(sigma_intent=0.0, intent_focus=1.0), 64, seed)
    errand = INTERESTS[np.argmax(s.needs[:, INTERESTS] > 0.5, axis=1)]
    cos = s.theta @ model.category_dir.T  # (N, C)
    cos0 = s0.theta @ model.category_dir.T
    rows = np.arange(64)
    assert (cos[rows, errand] > cos0[rows, errand]).all()
    others = np.where(np.isin(np.arange(4), errand[:, None]) | ~np.isin(np.arange(4), INTERESTS), -np.inf, cos)
    assert (cos[rows, errand] > others.max(1)).mean() > 0.9


def test_errands_are_drawn_uniformly_and_the_default_has_none():
    model, s = _init(ShopperParams(sigma_intent=1.0, intent_focus=1.0), 3000, 1)
    errand = np.argmax(s.needs[:, INTERESTS] > 0.5, axis=1)
    share = np.bincount(errand, minlength=3) / 3000
    assert np.abs(share - 1 / 3).max() < 0.04
    _, d = _init(ShopperParams(), 8)
    np.testing.assert_array_equal(d.needs, _personas(8).needs)  # the default shopper has no errand


def test_the_errand_makes_its_category_clicked_more():
    """Clicks reveal the errand: single items of the errand category are clicked more often than those of the
    persona's other interests (so a policy that sees clicks can learn it)."""
    model, s = _init(ShopperParams(sigma_intent=2.0, intent_focus=0.8), 600, 2)
    errand = INTERESTS[np.argmax(s.needs[:, INTERESTS] > 0.5, axis=1)]
    items = np.array([np.flatnonzero(CAT.category == c)[0] for c in INTERESTS])
    bundles = np.full((600, 3, 3), -1, np.int64)
    bundles[:, :, 0] = items[None, :]
    p = model.click_prob(s, bundles)
    own = p[np.arange(600), np.searchsorted(INTERESTS, errand)]
    assert own.mean() > p.mean(1).mean() + 0.05
