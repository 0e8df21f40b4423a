"""The studentized (bootstrap-t) per-trajectory intervals: analytic gradients of every per-trajectory estimator
against finite differences, the episodes' second moments streamed in parts (growing horizon) against one pass and
against the sum of squared influences, and coverage on simulated heavy-tailed episode weights, where it beats the
percentile interval."""

from __future__ import annotations

import numpy as np
import pytest
from _heavy_log import heavy_log
from hypothesis import given, settings
from hypothesis import strategies as st

from bundlerl.evaluation.ope.estimators import (
    PDIS,
    TRAJECTORY_ESTIMATORS,
    TrajectoryDR,
    WeightedDR,
    WeightedPDIS,
    trajectory_terms,
)
from bundlerl.evaluation.ope.intervals import EpisodeMoments, percentile_estimate, studentized_estimate


def _episodes(lengths, seed):
    rng = np.random.default_rng(seed)
    ep = np.repeat(np.arange(len(lengths)), lengths)
    n = ep.size
    return ep, rng.uniform(0.1, 3.0, n), rng.normal(1, 1, n), rng.normal(size=n), rng.normal(size=n)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=1, max_size=10), st.integers(0, 2**16), st.floats(0.5, 1.0))
def test_gradients_match_finite_differences_and_are_homogeneous(lengths, seed, gamma):
    ep, ratio, r, q, v = _episodes(lengths, seed)
    H = max(lengths)
    terms, _, _ = trajectory_terms(ep, ratio, r, q, v, H)
    S, n = terms.sum(axis=0), float(len(lengths))
    x = np.r_[S.ravel(), n]
    for cls in TRAJECTORY_ESTIMATORS:
        est = cls(gamma=gamma)
        f = lambda z: est.value(z[:-1].reshape(4, H), z[-1])  # noqa: E731
        g = est.gradient(S, n)
        h = 1e-6 * np.maximum(np.abs(x), 1.0)
        num = np.array([(f(x + h[i] * np.eye(x.size)[i]) - f(x - h[i] * np.eye(x.size)[i])) / (2 * h[i])
                        for i in range(x.size)])
        np.testing.assert_allclose(g, num, rtol=1e-4, atol=1e-6, err_msg=est.name)
        assert g @ x == pytest.approx(0.0, abs=1e-8 * max(1.0, np.abs(g).max() * np.abs(x).max())), est.name


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=2, max_size=12), st.integers(0, 2**16), st.integers(1, 4))
def test_moments_stream_over_parts_with_a_growing_horizon(lengths, seed, B):
    ep, ratio, r, q, v = _episodes(lengths, seed)
    H = max(lengths)
    E = len(lengths)
    boot = np.random.default_rng(seed).poisson(1.0, (B, E)).astype(float)
    terms, _, _ = trajectory_terms(ep, ratio, r, q, v, H)
    one = EpisodeMoments(B)
    one.add(terms, boot)
    parts = EpisodeMoments(B, chunk=2)
    cut = E // 2
    for sel, eps in ((ep < cut, slice(0, cut)), (ep >= cut, slice(cut, E))):
        e0 = int(ep[sel].min())
        Hp = max(lengths[eps])  # a part's own horizon: the moments grow when a later part reaches further
        parts.grow(max(parts.H, Hp))
        t, _, _ = trajectory_terms(ep[sel] - e0, ratio[sel], r[sel], q[sel], v[sel], parts.H)
        parts.add(t, boot[:, eps])
    parts.grow(H)
    np.testing.assert_allclose(parts.M, one.M, rtol=1e-9, atol=1e-9)
    # the variance is the sum over episodes of the squared influences g . x_i (weighted in a replicate)
    S = terms.sum(axis=0)
    X = np.concatenate([terms.reshape(E, -1), np.ones((E, 1))], axis=1)
    for est in (PDIS(), WeightedPDIS(), TrajectoryDR(), WeightedDR()):
        g = est.gradient(S, float(E))
        assert one.se(0, g) == pytest.approx(np.sqrt(((X @ g) ** 2).sum()), rel=1e-9, abs=1e-12)


def test_studentized_intervals_cover_heavy_tailed_weights_better_than_percentile():
    """Both bootstrap-t forms (equal-tailed and symmetric) hold the truth more often than the percentile interval."""
    rng = np.random.default_rng(0)
    B, truth, logs = 100, 4 * 0.7, 120
    hits = {}
    for _ in range(logs):
        terms = heavy_log(rng)
        E = terms.shape[0]
        boot = rng.poisson(1.0, (B, E)).astype(float)
        mom = EpisodeMoments(B)
        mom.add(terms, boot)
        S, Sb, nb = terms.sum(axis=0), np.einsum("be,eth->bth", boot, terms), boot.sum(axis=1)
        for est in (PDIS(), WeightedPDIS()):
            reps = np.array([est.value(Sb[b], nb[b]) for b in range(B)])
            value = est.value(S, E)
            se_reps = np.array([mom.se(b + 1, est.gradient(Sb[b], nb[b])) for b in range(B)])
            t = studentized_estimate(value, mom.se(0, est.gradient(S, E)), reps, se_reps, 0.95, E)
            p = percentile_estimate(value, reps, 0.95, E)
            y = studentized_estimate(value, mom.se(0, est.gradient(S, E)), reps, se_reps, 0.95, E, symmetric=True)
            hits.setdefault((est.name, "sym"), []).append(y.low <= truth <= y.high)
            hits.setdefault((est.name, "t"), []).append(t.low <= truth <= t.high)
            hits.setdefault((est.name, "pct"), []).append(p.low <= truth <= p.high)
    cov = {k: float(np.mean(v)) for k, v in hits.items()}
    for name in ("PDIS", "WPDIS"):
        assert cov[name, "t"] > cov[name, "pct"] and cov[name, "sym"] > cov[name, "pct"], cov
        assert min(cov[name, "t"], cov[name, "sym"]) >= 0.84, cov


def test_studentized_falls_back_to_percentile_without_a_spread():
    reps = np.array([1.0, 2.0, 3.0])
    e = studentized_estimate(2.0, 0.0, reps, np.zeros(3), 0.95, 3)
    p = percentile_estimate(2.0, reps, 0.95, 3)
    assert (e.low, e.high) == (p.low, p.high)
    e = studentized_estimate(2.0, 1.0, reps, np.array([1.0, 1.0, 1.0]), 0.95, 3)
    assert e.low < 2.0 < e.high
    s = studentized_estimate(2.0, 1.0, np.array([1.0, 2.5, 4.0]), np.ones(3), 0.95, 3, symmetric=True)
    assert s.high - 2.0 == pytest.approx(2.0 - s.low) and s.high - s.low == pytest.approx(2 * np.percentile(
        [1.0, 0.5, 2.0], 95))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 9), st.integers(1, 30), st.integers(1, 3), st.integers(0, 2**16), st.integers(1, 7))
def test_moments_equal_the_dense_sum_of_outer_products(H, E, B, seed, chunk):
    """``EpisodeMoments.add`` (episodes grouped by how far their terms vary, spread by slices) equals
    sum_i w_i x_i x_i^T with x_i = (terms_i flattened, 1), for any terms: tails of zeros and a repeated normaliser
    value (as ``trajectory_terms`` writes them), episodes that vary to the last step, and arbitrary values."""
    rng = np.random.default_rng(seed)
    terms = rng.normal(size=(E, 4, H))
    for e in range(E):
        L = int(rng.integers(0, H + 1))
        terms[e, [0, 2, 3], L:] = 0.0
        terms[e, 1, L:] = terms[e, 1, L - 1] if L else rng.normal()
    terms[rng.uniform(size=terms.shape) < 0.1] = 0.0  # zeros inside the varying steps too
    boot = rng.poisson(1.0, (B, E)).astype(float)
    mom = EpisodeMoments(B, chunk=chunk)
    mom.add(terms, boot)
    X = np.concatenate([terms.reshape(E, 4 * H), np.ones((E, 1))], axis=1)
    W = np.concatenate([np.ones((1, E)), boot])
    want = np.einsum("be,ei,ej->bij", W, X, X)
    np.testing.assert_allclose(mom.M, want, rtol=1e-10, atol=1e-10)
