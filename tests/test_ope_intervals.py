"""Bootstrap intervals of the per-decision estimators: what they cover, checked on simulated bandits whose value on
the logged contexts is known (coverage over repeated logs), and the replicate formulas as properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bundlerl.evaluation.ope.estimators import (
    DECISION_TERMS,
    IPS,
    SNIPS,
    DirectMethod,
    DoublyRobust,
    OPEError,
    SelfNormalizedDR,
    SwitchDR,
    decision_terms,
)
from bundlerl.evaluation.ope.evaluate import OPEConfig
from bundlerl.evaluation.ope.intervals import decision_replicates, percentile_estimate

PE = np.array([0.1, 0.2, 0.7])


def _logged_bandit(rng, n, spread=1.0, noise=0.3, model_error=0.05):
    """n contexts whose values differ by ``spread`` (sd), a uniform logger over 3 arms, rewards with ``noise``; the
    fitted model is the truth plus ``model_error``. Returns the decision terms, the logged-context truth."""
    mu = rng.normal(0, spread, n)
    q = mu[:, None] + np.array([0.0, 0.5, 1.0])[None]
    a = rng.integers(0, 3, n)
    r = q[np.arange(n), a] + rng.normal(0, noise, n)
    q_hat = q + rng.normal(0, model_error, q.shape)
    pe = np.tile(PE, (n, 1))
    terms = decision_terms(r, a, np.full(n, 1 / 3), pe, q_hat)
    return terms, float((pe * q).sum(axis=1).mean())


def _coverage(interval, est, repeats=120, n=500, B=200, **kw):
    rng = np.random.default_rng(18)
    hits = []
    for _ in range(repeats):
        terms, truth = _logged_bandit(rng, n, **kw)
        boot = rng.poisson(1.0, (B, n)) @ terms
        full = terms.sum(axis=0)
        e = percentile_estimate(est.value(dict(zip(DECISION_TERMS, full))),
                                decision_replicates(est, full, boot, interval), 0.95, n)
        hits.append(e.low <= truth <= e.high)
    return float(np.mean(hits))


@pytest.mark.parametrize("est", [DoublyRobust(), SelfNormalizedDR(), IPS(), SNIPS()], ids=lambda e: e.name)
def test_logged_intervals_cover_the_value_on_the_logged_contexts(est):
    # contexts whose values differ much more than the reward noise: the logged interval has its nominal 95% for
    # the logged-context value; for DR / SNDR (whose residuals are small) the population interval is far too wide
    logged = _coverage("logged", est)
    assert 0.90 <= logged <= 0.99, logged
    if isinstance(est, (DoublyRobust, SelfNormalizedDR)):
        assert _coverage("population", est, repeats=30) == 1.0


def test_without_context_spread_both_intervals_agree():
    # every context worth the same: nothing to hold fixed, both intervals are the usual one
    assert abs(_coverage("logged", DoublyRobust(), spread=0.0) - _coverage("population", DoublyRobust(),
                                                                         spread=0.0)) <= 0.05


@given(st.integers(1, 60), st.integers(0, 2**16), st.integers(2, 20))
def test_replicate_formulas(n, seed, B):
    rng = np.random.default_rng(seed)
    terms, _ = _logged_bandit(rng, n)
    full = terms.sum(axis=0)
    boot = rng.poisson(1.0, (B, n)) @ terms
    s = {k: boot[:, i] for i, k in enumerate(DECISION_TERMS)}
    with np.errstate(divide="ignore", invalid="ignore"):
        dr = decision_replicates(DoublyRobust(), full, boot)
        # DR on the logged contexts: the DM part held at the full log's, the weighted residuals resampled
        want = np.where(s["n"] > 0, full[4] / full[0] + s["wres"] / s["n"], np.nan)
    np.testing.assert_allclose(dr, want, rtol=1e-9, atol=1e-12)
    for est in (DirectMethod(), DoublyRobust(), IPS()):
        np.testing.assert_allclose(decision_replicates(est, full, boot, "population"),
                                   [est.value(dict(zip(DECISION_TERMS, b))) for b in boot], rtol=1e-12)
    np.testing.assert_allclose(decision_replicates(DirectMethod(), full, boot),
                               decision_replicates(DirectMethod(), full, boot, "population"))


def _switch_terms(rng, n, tau):
    """Decision terms of a greedy target (arm 2) under a uniform logger, Switch-DR at ``tau``."""
    mu = rng.normal(0, 1.0, n)
    q = mu[:, None] + np.array([0.0, 0.5, 1.0])[None]
    a = rng.integers(0, 3, n)
    r = q[np.arange(n), a] + rng.normal(0, 0.3, n)
    return decision_terms(r, a, np.full(n, 1 / 3), np.tile([0.0, 0.0, 1.0], (n, 1)), q + 0.05, tau=tau)


@given(st.integers(2, 60), st.integers(0, 2**16), st.integers(2, 20), st.sampled_from([0.0, 1.0, 10.0]))
def test_switch_dr_logged_interval_is_the_population_one(n, seed, B, tau):
    # Switch-DR leaves the model uncorrected where the weight exceeds tau: like DM, its spread is not held fixed
    rng = np.random.default_rng(seed)
    terms = _switch_terms(rng, n, tau)
    full, boot = terms.sum(axis=0), rng.poisson(1.0, (B, n)) @ terms
    with np.errstate(divide="ignore", invalid="ignore"):
        np.testing.assert_allclose(decision_replicates(SwitchDR(tau=tau), full, boot),
                                   decision_replicates(SwitchDR(tau=tau), full, boot, "population"))


def test_switch_dr_at_tau_zero_has_dm_width_not_zero():
    # the fresh user's case: at tau = 0 Switch-DR is DM; its logged interval was a point
    rng = np.random.default_rng(5)
    terms = _switch_terms(rng, 400, 0.0)
    full, boot = terms.sum(axis=0), rng.poisson(1.0, (200, 400)) @ terms
    sw = percentile_estimate(SwitchDR(tau=0.0).value(dict(zip(DECISION_TERMS, full))),
                             decision_replicates(SwitchDR(tau=0.0), full, boot), 0.95, 400)
    dm = percentile_estimate(DirectMethod().value(dict(zip(DECISION_TERMS, full))),
                             decision_replicates(DirectMethod(), full, boot), 0.95, 400)
    assert sw.value == pytest.approx(dm.value)
    assert sw.high - sw.low == pytest.approx(dm.high - dm.low) and sw.high - sw.low > 0.1


def test_unknown_interval_is_refused():
    with pytest.raises(OPEError, match="interval='both'"):
        OPEConfig(interval="both")
    with pytest.raises(OPEError, match="logged, population"):
        decision_replicates(DoublyRobust(), np.ones(7), np.ones((2, 7)), "sample")


def test_percentile_estimate_ignores_undefined_replicates():
    e = percentile_estimate(1.0, np.r_[np.linspace(0, 2, 101), np.nan], 0.9, 5)
    assert e.low == pytest.approx(0.1) and e.high == pytest.approx(1.9) and e.n == 5
    assert np.isnan(percentile_estimate(np.nan, np.ones(5), 0.95, 1).low)
    assert np.isnan(percentile_estimate(1.0, np.array([1.0, np.nan]), 0.95, 1).high)


def test_report_says_what_the_intervals_cover_and_warns_on_low_episode_ess():
    from bundlerl.evaluation.ope.evaluate import ESTIMATOR_NAMES, OPEResult
    from bundlerl.evaluation.ope.report import ope_markdown
    from bundlerl.evaluation.stats import Estimate

    est = {k: Estimate(1.0, 0.9, 1.1, 10) for k in ESTIMATOR_NAMES}
    ok = OPEResult("near", est, 100, 1000, 50.0, 200.0, 0.0)
    far = OPEResult("far", est, 100, 1000, 5.0, 3.0, 0.0, interval="population")
    text = ope_markdown([ok, far])
    assert ("the value on the logged contexts (DM's and Switch-DR's: on the traffic they came from, as they lean on "
            "the reward model) / the value on the traffic they came from") in text
    assert "Per-trajectory estimates of far rest on an episode-weight ESS under 1%" in text
    assert "estimates of near" not in text and "under 1%" not in ope_markdown([ok])
