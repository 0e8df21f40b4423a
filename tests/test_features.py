"""The ten candidate features (bundlerl.candidates.features): one column map, and the builder's computation
(prefix tables + compiled kernel, float32) agrees with :func:`bundle_features` (any bundles, dense pair
matrices; compose mode's) on the same bundles."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_builder import make_catalog, make_comp, unit

from bundlerl.candidates.builder import BuilderConfig, BundleBuilder
from bundlerl.candidates.features import CANDIDATE_FEATURES, COL, FeatureIndex, bought_complementarity, bundle_features
from bundlerl.candidates.index import ItemIndex
from bundlerl.candidates.types import CANDIDATE_FEATURES as TYPES_FEATURES
from bundlerl.env.config import PRESETS
from bundlerl.env.vec_env import BundleRecVecEnv

#: The builder sums float32, bundle_features float64: rel_profile, rel_history and mean_comp differ by
#: float32 rounding (measured <= 1.2e-7 on the small preset); the other six columns are equal.
ATOL = 2e-6


def test_one_column_map():
    assert CANDIDATE_FEATURES == FeatureIndex._fields == TYPES_FEATURES
    assert tuple(COL) == tuple(range(len(CANDIDATE_FEATURES)))
    assert all(getattr(COL, name) == CANDIDATE_FEATURES.index(name) for name in CANDIDATE_FEATURES)


def _assert_same(got, want, mask):
    assert mask.sum() > 50
    for c, name in enumerate(CANDIDATE_FEATURES):
        np.testing.assert_allclose(got[mask][:, c], want[mask][:, c], rtol=0, atol=ATOL, err_msg=name)
    assert (got[~mask] == 0).all()


def test_builder_features_equal_bundle_features_with_a_price_cap():
    """Synthetic catalogue, price caps, bought and shown items, a user without history."""
    n, d = 300, 16
    cat = make_catalog(n=n, d=d)
    comp = make_comp(cat)
    b = BundleBuilder(cat, ItemIndex(cat.embeddings), comp, BuilderConfig(n_candidates=16, n_anchors=8, pool_size=24))
    rng = np.random.default_rng(1)
    N = 10
    profile, history = unit(rng.standard_normal((N, d))), unit(rng.standard_normal((N, d)))
    history[0] = 0
    bought = [rng.integers(0, n, rng.integers(0, 5)) for _ in range(N)]
    shown = [rng.integers(0, n, 12) for _ in range(N)]
    cs = b.build(profile, history, bought=bought, shown=shown, price_cap=rng.uniform(15, 60, N))
    shown_m = np.zeros((N, n), bool)
    for u, s in enumerate(shown):
        shown_m[u, s] = True
    bought_p = np.full((N, 5), -1)
    for u, bb in enumerate(bought):
        bought_p[u, :bb.size] = bb
    got = bundle_features(
        cs.items, profile=profile, history=history, shown=shown_m, bought=bought_p, embeddings=cat.embeddings,
        category=cat.category, price=b.price, popularity=b.pop_feat, discount=b.disc, comp_score=comp.score,
    )
    assert (cs.features[cs.mask][:, COL.comp_bought] > 0).any()  # the purchases' column is exercised
    _assert_same(got, cs.features, cs.mask)


@pytest.fixture(scope="module")
def compose_batch():
    """A compose-mode batch of 16 rows of the small preset after 12 random valid steps (history, shown and bought items)."""
    env = BundleRecVecEnv(PRESETS["small"], num_envs=16, seed=3, action_mode="compose")
    env.reset()
    core, rng = env.core, np.random.default_rng(0)
    for _ in range(12):
        env.step(np.array([rng.choice(np.flatnonzero(m)) for m in core.action_masks()]))
    assert core.has_hist.any() and core.n_bought_log.any() and core.n_shown.any()  # every feature is exercised
    return core


def test_builder_features_equal_compose_mode_features_for_the_same_bundles(compose_batch):
    """Candidates built by the world's builder for the batch's current state, and compose mode's features of
    those same bundles: every column agrees (float32 rounding apart). They agreed before compose mode called
    bundle_features too (same formulas written twice; max difference 1.2e-7, rel_history)."""
    core = compose_batch
    cs = core.world.builder.build(core.profile_vec, core._history_vectors(), core.bought_log, core.shown_log, None)
    _assert_same(core._bundle_features(cs.items), cs.features, cs.mask)


def test_cached_pool_features_stay_those_of_its_bundles(compose_batch):
    """Between rebuilds the session updates novelty and rel_history of its cached pool in place: they stay
    the features of the pool's bundles."""
    core = compose_batch
    _assert_same(core._bundle_features(core.cand_items), core.cand_feat, core.cand_mask)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**16), n_bought=st.integers(0, 4), extra=st.integers(0, 11))
def test_comp_bought_is_the_mean_over_items_of_the_best_purchase(seed, n_bought, extra):
    """``bought_complementarity`` (observation spec 2) equals its definition, mean over the bundle's items of
    max over purchases of comp(s -> i), computed by loops; it lies in [0, 1], is 0 before any purchase and for
    empty bundles, and one more purchase never lowers it."""
    rng = np.random.default_rng(seed)
    n, N, J, Km = 12, 3, 5, 3
    table = rng.uniform(0, 1, (n, n))
    np.fill_diagonal(table, 0.0)

    def score(i, j):
        return table[np.asarray(i), np.asarray(j)].astype(np.float32)

    items = rng.integers(0, n, (N, J, Km))
    items[rng.uniform(size=(N, J, Km)) < 0.3] = -1
    bought = np.full((N, 4), -1)
    bought[:, :n_bought] = rng.integers(0, n, (N, n_bought))
    got = bought_complementarity(items, bought, score)
    want = np.zeros((N, J))
    for u in range(N):
        bs = [b for b in bought[u] if b >= 0]
        for j in range(J):
            members = [i for i in items[u, j] if i >= 0]
            if bs and members:
                want[u, j] = np.mean([max(table[b, i] for b in bs) for i in members])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert got.dtype == np.float32 and (got >= 0).all() and (got <= 1).all()
    more = np.concatenate([bought, np.full((N, 1), extra)], axis=1)
    assert (bought_complementarity(items, more, score) >= got - 1e-6).all()
    asked = []  # each distinct (purchase, item) pair is scored once

    def counting(i, j):
        asked.extend(zip(np.asarray(i).tolist(), np.asarray(j).tolist()))
        return score(i, j)

    np.testing.assert_array_equal(bought_complementarity(items, bought, counting), got)
    assert len(asked) == len(set(asked))
