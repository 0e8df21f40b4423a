"""Observable baselines: they read only the candidates' features and the mask."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bundlerl.agents.baselines import (
    BASELINES,
    ComplementGreedyPolicy,
    PopularityPolicy,
    RandomPolicy,
    RelevanceGreedyPolicy,
    make_baseline,
)
from bundlerl.agents.policy import Policy, PolicyError
from bundlerl.candidates.features import CANDIDATE_FEATURES, COL
from bundlerl.env.observation import MASK_KEY

F = len(CANDIDATE_FEATURES)


def _obs(feats: np.ndarray, mask: np.ndarray) -> dict:
    """A batched observation holding only what the baselines may read (no profile, session, ...)."""
    return {"candidates": feats.astype(np.float32), MASK_KEY: mask.astype(np.float32)}


feats_st = st.integers(1, 5).flatmap(
    lambda n: st.integers(1, 8).flatmap(
        lambda k: st.tuples(
            arrays(np.float32, (n, k, F), elements=st.floats(-3, 3, width=32)),
            arrays(bool, (n, k)),
        )
    )
)
POLICIES = [PopularityPolicy(), RelevanceGreedyPolicy(), ComplementGreedyPolicy(), RandomPolicy(np.random.default_rng(0))]


@settings(max_examples=60, deadline=None)
@given(feats_st)
def test_probabilities_are_distributions_on_valid_actions(fm):
    feats, mask = fm
    for pol in POLICIES:
        p = pol.action_probabilities(_obs(feats, mask))
        assert p.shape == mask.shape
        np.testing.assert_allclose(p.sum(axis=1), 1.0)
        has = mask.any(axis=1)
        assert (p[has][~mask[has]] == 0).all(), pol.name
        a, prop = pol.act(_obs(feats, mask), deterministic=True, rng=np.random.default_rng(1))
        assert mask[has, a[has]].all()
        np.testing.assert_allclose(prop, p[np.arange(len(a)), a])


@settings(max_examples=60, deadline=None)
@given(feats_st)
def test_greedy_baselines_pick_the_best_valid_score(fm):
    feats, mask = fm
    mask[:, 0] = True
    f = feats.astype(np.float64)
    expect = {
        "popularity": f[..., COL.popularity],
        "relevance-greedy": f[..., COL.rel_profile] + 0.5 * f[..., COL.rel_history],
        "complement-greedy": f[..., COL.rel_profile] + 0.5 * f[..., COL.rel_history] + f[..., COL.mean_comp]
        - 0.5 * f[..., COL.max_sub] + 0.1 * f[..., COL.novelty],
    }
    for pol in POLICIES[:3]:
        a, _ = pol.act(_obs(feats, mask))
        s = np.where(mask, expect[pol.name], -np.inf)
        np.testing.assert_allclose(s[np.arange(len(a)), a], s.max(axis=1), rtol=1e-6, atol=1e-6)


def test_complement_greedy_prefers_complements_over_substitutes():
    feats = np.zeros((1, 2, F), np.float32)
    feats[0, 0, COL.max_sub] = 0.9  # near-duplicates
    feats[0, 1, COL.mean_comp] = 0.5  # complements
    a, _ = ComplementGreedyPolicy().act(_obs(feats, np.ones((1, 2), bool)))
    assert a[0] == 1
    # relevance alone cannot tell them apart: tie -> lowest index
    a, _ = RelevanceGreedyPolicy().act(_obs(feats, np.ones((1, 2), bool)))
    assert a[0] == 0


def test_random_policy_is_uniform_over_valid_and_seeded():
    mask = np.array([[True, False, True, True]] * 3000)
    obs = _obs(np.zeros((3000, 4, F)), mask)
    a1, p = RandomPolicy(np.random.default_rng(5)).act(obs)
    a2, _ = RandomPolicy(np.random.default_rng(5)).act(obs)
    np.testing.assert_array_equal(a1, a2)
    assert not (a1 == 1).any()
    freq = np.bincount(a1, minlength=4)[[0, 2, 3]] / 3000
    np.testing.assert_allclose(freq, 1 / 3, atol=0.04)
    np.testing.assert_allclose(p, 1 / 3)


def test_malformed_observations_raise_policy_error():
    for pol in POLICIES:
        with pytest.raises(PolicyError):
            pol.action_probabilities({"candidates": np.zeros((2, 3, F))})  # no mask
        with pytest.raises(PolicyError):
            pol.action_probabilities(_obs(np.zeros((2, 3, F - 1)), np.ones((2, 3), bool)))
    with pytest.raises(PolicyError):
        RandomPolicy(rng=0)
    with pytest.raises(PolicyError):
        ComplementGreedyPolicy(comp_weight=-1)


def test_make_baseline_names():
    for name in BASELINES:
        assert make_baseline(name, np.random.default_rng(0)).name == name
    with pytest.raises(PolicyError, match="popularity"):
        make_baseline("oracle")


def test_baselines_never_read_simulator_side_keys():
    """Only ``candidates`` and the mask are touched: an observation with just those works, and the
    baselines are labelled observable."""
    feats = np.random.default_rng(0).normal(size=(4, 5, F))
    for pol in POLICIES:
        pol.action_probabilities(_obs(feats, np.ones((4, 5), bool)))
        assert pol.uses_simulator_truth is False


class _Broken(Policy):
    """A policy returning whatever it is given, to check that act() refuses malformed probabilities."""

    name = "broken"

    def __init__(self, probs):
        self.probs = probs

    def action_probabilities(self, obs):
        return self.probs


@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(["nan", "inf", "negative", "zeros", "unnormalised", "wrong_k", "wrong_n", "one_d"]),
       n=st.integers(1, 4), k=st.integers(2, 6))
def test_act_refuses_malformed_probabilities_instead_of_picking_action_0(kind, n, k):
    obs = {MASK_KEY: np.ones((n, k), np.float32)}
    good = np.full((n, k), 1.0 / k)
    bad = {
        "nan": np.where(np.arange(k) == 0, np.nan, good), "inf": np.where(np.arange(k) == 0, np.inf, good),
        "negative": good - np.where(np.arange(k) == 0, 2.0 / k, -1.0 / (k * (k - 1))),
        "zeros": np.zeros((n, k)), "unnormalised": 2 * good, "wrong_k": np.full((n, k + 1), 1.0 / (k + 1)),
        "wrong_n": np.full((n + 1, k), 1.0 / k), "one_d": np.full(k, 1.0 / k),
    }[kind]
    with pytest.raises(PolicyError, match=r"broken: .*action probabilities"):
        _Broken(bad).act(obs)
    actions, p = _Broken(good).act(obs)  # a well-formed distribution passes
    assert actions.shape == (n,) and np.allclose(p, 1.0 / k)


def test_nan_features_are_an_error_not_a_silent_choice():
    from bundlerl.agents.policy import greedy_probabilities

    with pytest.raises(PolicyError, match="NaN"):
        greedy_probabilities(np.array([[0.1, np.nan, 0.3]]), np.ones((1, 3)))
    # a NaN on a masked-out action is irrelevant
    assert greedy_probabilities(np.array([[0.1, np.nan, 0.3]]), np.array([[1, 0, 1]])).tolist() == [[0, 0, 1]]
