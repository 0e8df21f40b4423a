"""RegDR-traj, per-trajectory DR with the per-step weight means as control variates of known mean 1 (the regression
estimator): known answers (weights all 1: DR's and WDR's value and standard error; a TD error proportional to the
weight: the exact value for any weights), its difference from WDR in closed form (it moves up where the sample's mean
weight is under 1 and the TD error grows with the weight), the influences behind its studentized interval, moments
streamed over parts, and coverage on simulated heavy-tailed episode weights, where it beats WDR."""

from __future__ import annotations

import numpy as np
import pytest
from _heavy_log import heavy_log
from hypothesis import given, settings
from hypothesis import strategies as st

from bundlerl.evaluation.ope.estimators import (
    RegressionDR,
    TrajectoryDR,
    WeightedDR,
    episode_moments,
    trajectory_terms,
)
from bundlerl.evaluation.ope.intervals import EpisodeMoments, studentized_estimate


def _episodes(lengths, seed, ratio=None):
    rng = np.random.default_rng(seed)
    ep = np.repeat(np.arange(len(lengths)), lengths)
    n = ep.size
    r = rng.uniform(0.1, 3.0, n) if ratio is None else np.full(n, ratio)
    return ep, r, rng.normal(1, 1, n), rng.normal(size=n), rng.normal(size=n)


def _step_parts(terms, gamma):
    """Per-step a_t, b_t, beta_t computed directly from the episodes (the definitions, not the moments)."""
    E, _, H = terms.shape
    A, W, Q, V = terms[:, 0], terms[:, 1], terms[:, 2], terms[:, 3]
    D = A - Q + gamma * np.concatenate([V[:, 1:], np.zeros((E, 1))], axis=1)
    a, b = D.mean(axis=0), W.mean(axis=0)
    var = W.var(axis=0)
    beta = np.where(var > 1e-12 * np.maximum(b * b, 1.0), ((W - b) * (D - a)).mean(axis=0) / np.where(var > 0, var, 1),
                    0.0)
    return D, a, b, beta


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=12), st.integers(0, 2**16), st.floats(0.5, 1.0),
       st.integers(1, 4))
def test_weights_all_one_give_dr_and_wdr_value_and_standard_error(lengths, seed, gamma, B):
    """Target == logger (every ratio 1): nothing to correct, so RegDR's value, its replicates and their standard
    errors equal DR's and WDR's, and so does its studentized interval (the bias-free case keeps the old interval)."""
    ep, ratio, r, q, v = _episodes(lengths, seed, ratio=1.0)
    H, E = max(lengths), len(lengths)
    terms, _, _ = trajectory_terms(ep, ratio, r, q, v, H)
    boot = np.random.default_rng(seed).poisson(1.0, (B, E)).astype(float)
    mom = EpisodeMoments(B)
    mom.add(terms, boot)
    reg, wdr, dr = RegressionDR(gamma=gamma), WeightedDR(gamma=gamma), TrajectoryDR(gamma=gamma)
    S = terms.sum(axis=0)
    assert reg.value_moments(mom.M[0]) == pytest.approx(wdr.value(S, E), rel=1e-9, abs=1e-9)
    assert reg.value_moments(mom.M[0]) == pytest.approx(dr.value(S, E), rel=1e-9, abs=1e-9)
    for b in range(B + 1):
        Sb = S if b == 0 else np.einsum("e,eth->th", boot[b - 1], terms)
        nb = E if b == 0 else boot[b - 1].sum()
        if nb == 0:
            continue
        assert reg.value_moments(mom.M[b]) == pytest.approx(wdr.value(Sb, nb), rel=1e-9, abs=1e-9)
        assert mom.se(b, reg.gradient_moments(mom.M[b])) == pytest.approx(mom.se(b, wdr.gradient(Sb, nb)), rel=1e-7,
                                                                           abs=1e-6)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 8), st.integers(2, 30), st.integers(0, 2**16), st.floats(0.3, 1.0))
def test_td_error_proportional_to_the_weight_gives_the_exact_value_for_any_weights(H, E, seed, gamma):
    """If every episode's weighted TD error at step t is k_t times its weight (one TD error per step), the value is
    mean v_0 + sum_t gamma^t k_t whatever the weights, as long as they vary at each step: the regression line passes
    through every episode (as WDR). (Where a step's weights do not vary, no slope can be fitted and the step is DR's.)"""
    rng = np.random.default_rng(seed)
    terms = np.zeros((E, 4, H))
    terms[:, 1] = rng.lognormal(0, 1.5, (E, H)) * (rng.uniform(size=(E, H)) < 0.7)  # heavy, with zeros
    terms[0, 1], terms[1, 1] = 0.0, 1.0 + rng.lognormal(0, 1.5, H)  # weights vary at every step
    terms[:, 2] = rng.normal(size=(E, H))
    terms[:, 3] = rng.normal(size=(E, H))
    k = rng.normal(size=H)
    nxt = np.concatenate([terms[:, 3, 1:], np.zeros((E, 1))], axis=1)
    terms[:, 0] = k * terms[:, 1] + terms[:, 2] - gamma * nxt
    want = terms[:, 3, 0].mean() + (gamma ** np.arange(H)) @ k
    assert RegressionDR(gamma=gamma).value_moments(episode_moments(terms)) == pytest.approx(want, rel=1e-8, abs=1e-8)
    if (terms[:, 1].sum(axis=0) > 0).all():
        assert WeightedDR(gamma=gamma).value(terms.sum(axis=0), E) == pytest.approx(want, rel=1e-8, abs=1e-8)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=2, max_size=15), st.integers(0, 2**16), st.floats(0.5, 1.0))
def test_difference_from_wdr_in_closed_form(lengths, seed, gamma):
    """RegDR - WDR = sum_t gamma^t (1 - b_t)(beta_t - a_t / b_t): it moves *up* from WDR exactly where the sample's
    mean weight is under its expectation 1 and the TD error grows faster with the weight than WDR assumes (the
    rare heavy episodes a sample misses carry the larger corrections), and down in the mirror cases."""
    ep, ratio, r, q, v = _episodes(lengths, seed)
    H, E = max(lengths), len(lengths)
    terms, _, _ = trajectory_terms(ep, ratio, r, q, v, H)
    _, a, b, beta = _step_parts(terms, gamma)
    d = gamma ** np.arange(H)
    reg = RegressionDR(gamma=gamma).value_moments(episode_moments(terms))
    wdr = WeightedDR(gamma=gamma).value(terms.sum(axis=0), E)
    assert reg - wdr == pytest.approx(d @ ((1 - b) * (beta - a / b)), rel=1e-7, abs=1e-9)


def test_moves_up_when_the_sample_misses_the_heavy_high_value_episodes():
    """A one-step log whose mean weight is 0.5 (the heavy episodes are missing), where the TD error grows with the
    weight: WDR extrapolates the seen average, RegDR the seen slope, and lands higher."""
    w = np.array([0.0, 0.0, 0.5, 0.5, 1.0, 1.0])
    delta = np.array([0.0, 0.0, 1.0, 1.0, 3.0, 3.0])
    terms = np.zeros((6, 4, 1))
    terms[:, 1, 0], terms[:, 0, 0] = w, w * delta
    reg = RegressionDR().value_moments(episode_moments(terms))
    wdr = WeightedDR().value(terms.sum(axis=0), 6)
    assert wdr == pytest.approx((w * delta).sum() / w.sum())
    assert reg > wdr


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=2, max_size=12), st.integers(0, 2**16), st.floats(0.5, 1.0))
def test_gradient_gives_the_episodes_influences(lengths, seed, gamma):
    """g . x_i is episode i's influence / n with the slopes fixed, (v_i0 - m0) + sum_t gamma^t [(D_it - a_t) -
    beta_t (W_it - b_t)]; they sum to zero, and g^T M g is the sum of their squares."""
    ep, ratio, r, q, v = _episodes(lengths, seed)
    H, E = max(lengths), len(lengths)
    terms, _, _ = trajectory_terms(ep, ratio, r, q, v, H)
    D, a, b, beta = _step_parts(terms, gamma)
    d = gamma ** np.arange(H)
    v0 = terms[:, 3, 0]
    infl = (v0 - v0.mean()) + ((D - a) - beta * (terms[:, 1] - b)) @ d
    M = episode_moments(terms)
    g = RegressionDR(gamma=gamma).gradient_moments(M)
    X = np.concatenate([terms.reshape(E, -1), np.ones((E, 1))], axis=1)
    np.testing.assert_allclose(X @ g, infl / E, rtol=1e-7, atol=1e-9)
    assert g @ M[-1] == pytest.approx(0.0, abs=1e-9 * max(1.0, np.abs(M).max()))
    assert g @ M @ g == pytest.approx((infl ** 2).sum() / E ** 2, rel=1e-7, abs=1e-12)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=2, max_size=12), st.integers(0, 2**16))
def test_streamed_moments_equal_the_in_memory_estimate(lengths, seed):
    """Moments added part by part with a growing horizon (as the evaluator streams them) give the in-memory value."""
    ep, ratio, r, q, v = _episodes(lengths, seed)
    H, E = max(lengths), len(lengths)
    want = RegressionDR().estimate_policy_value(ep, ratio, r, q, v, horizon=H)
    mom = EpisodeMoments(1)
    cut = E // 2
    for sel, eps in ((ep < cut, slice(0, cut)), (ep >= cut, slice(cut, E))):
        if not sel.any():
            continue
        mom.grow(max(mom.H, max(lengths[eps])))
        t, _, _ = trajectory_terms(ep[sel] - int(ep[sel].min()), ratio[sel], r[sel], q[sel], v[sel], mom.H)
        mom.add(t, np.ones((1, t.shape[0])))
    mom.grow(H)
    assert RegressionDR().value_moments(mom.M[0]) == pytest.approx(want, rel=1e-9, abs=1e-9)


def test_no_episodes_is_nan():
    assert np.isnan(RegressionDR().value_moments(np.zeros((5, 5))))


def test_covers_heavy_tailed_weights_better_than_wdr():
    """On simulated logs of 40 episodes (not the benchmark's), the symmetric bootstrap-t interval of RegDR holds the
    truth more often than WDR's, and within the 90-99% band."""
    rng = np.random.default_rng(1)
    B, truth, logs = 100, 4 * 0.7, 150
    hits: dict[str, list] = {}
    reg, wdr = RegressionDR(), WeightedDR()
    for _ in range(logs):
        terms = heavy_log(rng, E=40)
        E = terms.shape[0]
        boot = rng.poisson(1.0, (B, E)).astype(float)
        mom = EpisodeMoments(B)
        mom.add(terms, boot)
        S, Sb, nb = terms.sum(axis=0), np.einsum("be,eth->bth", boot, terms), boot.sum(axis=1)
        w = studentized_estimate(wdr.value(S, E), mom.se(0, wdr.gradient(S, E)),
                                 np.array([wdr.value(Sb[b], nb[b]) for b in range(B)]),
                                 np.array([mom.se(b + 1, wdr.gradient(Sb[b], nb[b])) for b in range(B)]), 0.95, E,
                                 symmetric=True)
        g = studentized_estimate(reg.value_moments(mom.M[0]), mom.se(0, reg.gradient_moments(mom.M[0])),
                                 np.array([reg.value_moments(mom.M[b + 1]) for b in range(B)]),
                                 np.array([mom.se(b + 1, reg.gradient_moments(mom.M[b + 1])) for b in range(B)]),
                                 0.95, E, symmetric=True)
        hits.setdefault("WDR", []).append(w.low <= truth <= w.high)
        hits.setdefault("RegDR", []).append(g.low <= truth <= g.high)
    cov = {k: float(np.mean(v)) for k, v in hits.items()}
    assert cov["RegDR"] > cov["WDR"], cov
    assert 0.90 <= cov["RegDR"] <= 0.99, cov
