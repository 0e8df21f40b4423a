"""Linear fitted-Q evaluation (LSTD-Q), the per-trajectory DR / WDR's return model: exact on tabular chains whose
Q^pi is known by dynamic programming, DR with it exact whatever the logger, streaming sums equal to in-memory ones,
and the streaming evaluator on a Parquet log whose target value is known."""

from __future__ import annotations

import numpy as np
import pytest
from _log_data import rows, write
from hypothesis import given, settings
from hypothesis import strategies as st

from bundlerl.agents.policy import Policy
from bundlerl.evaluation.ope.estimators import (
    OPEError,
    TrajectoryDR,
    WeightedDR,
    cumulative_weights,
    trajectory_terms,
)
from bundlerl.evaluation.ope.evaluate import OPEConfig, off_policy_evaluate
from bundlerl.evaluation.ope.fitted_q import FittedQ, fqe_stats, lstdq_solve, q_features


def _chain(L, K, seed, gamma, deterministic):
    """A chain MDP (state = step, L steps, K actions, deterministic rewards), a target, Q^pi by backward DP."""
    rng = np.random.default_rng(seed)
    R = rng.uniform(-1, 2, (L, K))
    pi = rng.dirichlet(np.ones(K), L)
    if deterministic:
        pi = np.eye(K)[pi.argmax(axis=1)]
    Q = np.zeros((L, K))
    for t in range(L - 1, -1, -1):
        Q[t] = R[t] + (gamma * pi[t + 1] @ Q[t + 1] if t + 1 < L else 0.0)
    return R, pi, Q, float(pi[0] @ Q[0])


def _chain_log(L, K, R, pi, seed):
    """2K episodes covering every (step, action): episodes 2j and 2j + 1 (one per cross-fitting fold) take actions
    (j + t) % K. One-hot (step, action) features. Returns the arrays fqe_stats and trajectory_terms take."""
    E = 2 * K
    ep = np.repeat(np.arange(E), L)
    t = np.tile(np.arange(L), E)
    a = ((ep // 2) + t) % K
    n = ep.size
    phi = np.zeros((n, K, L * K))
    phi[np.arange(n)[:, None], np.arange(K)[None, :], t[:, None] * K + np.arange(K)[None, :]] = 1.0
    pscore = np.random.default_rng(seed).uniform(0.2, 1.0, n)  # any logger that could take these actions
    target = pi[t]
    ratio = target[np.arange(n), a] / pscore
    return ep, t, a, R[t, a], target, ratio, phi


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5), st.integers(2, 4), st.integers(0, 2**16), st.sampled_from([1.0, 0.9]), st.booleans())
def test_lstdq_recovers_q_pi_on_a_tabular_chain(L, K, seed, gamma, deterministic):
    R, pi, Q, _ = _chain(L, K, seed, gamma, deterministic)
    ep, t, a, r, target, ratio, phi = _chain_log(L, K, R, pi, seed)
    _, rho, rho_prev = cumulative_weights(ep, ratio)
    s = fqe_stats(ep, t, phi, a, r, target, rho, rho_prev, L, gamma)
    w = lstdq_solve(s["A"].sum(axis=0), s["b"].sum(axis=0), s["G"].sum(axis=0), ridge=0.0)
    np.testing.assert_allclose(w.reshape(L, K), Q, atol=1e-8)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5), st.integers(2, 4), st.integers(0, 2**16), st.booleans())
def test_dr_with_fitted_q_is_exact_on_a_deterministic_chain(L, K, seed, deterministic):
    """With q = Q^pi and deterministic transitions every residual r + v' - q is 0: DR and WDR equal the true value
    whatever the importance weights (each fold's fit alone recovers Q^pi, so cross-fitting changes nothing)."""
    R, pi, _, value = _chain(L, K, seed, 1.0, deterministic)
    ep, t, a, r, target, ratio, phi = _chain_log(L, K, R, pi, seed)
    _, rho, rho_prev = cumulative_weights(ep, ratio)
    E = int(ep.max()) + 1
    fq = FittedQ(B=2, d=L * K, ridge=0.0)
    fq.add(fqe_stats(ep, t, phi, a, r, target, rho, rho_prev, L), np.arange(E) % 2, np.ones((2, E)))
    terms, _, _ = trajectory_terms(ep, ratio, r, np.zeros_like(r), np.zeros_like(r), L)
    S = terms.sum(axis=0)
    Q, V = fq.terms(L)
    for b in range(3):
        S[2], S[3] = Q[b], V[b]
        for est in (TrajectoryDR(), WeightedDR()):
            assert est.value(S, float(E)) == pytest.approx(value, abs=1e-8), (est.name, b)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=2, max_size=12), st.integers(0, 2**16), st.integers(1, 5))
def test_streamed_parts_and_replicates_equal_the_in_memory_sums(lengths, seed, B):
    """FittedQ's sums over parts equal one pass over all episodes, and replicate b equals the full-log fit on data
    whose episodes are repeated boot[b, e] times (a Poisson replicate is a reweighted log)."""
    rng = np.random.default_rng(seed)
    H, K, d = max(lengths), 3, 4
    ep = np.repeat(np.arange(len(lengths)), lengths)
    t = np.concatenate([np.arange(m) for m in lengths])
    n = ep.size
    phi = rng.normal(size=(n, K, d))
    a = rng.integers(0, K, n)
    r = rng.normal(size=n)
    target = rng.dirichlet(np.ones(K), n)
    ratio = rng.uniform(0.2, 3, n)
    _, rho, rho_prev = cumulative_weights(ep, ratio)
    E = len(lengths)
    fold = rng.integers(0, 2, E)
    boot = rng.poisson(1.0, (B, E)).astype(float)
    whole = FittedQ(B, d)
    whole.add(fqe_stats(ep, t, phi, a, r, target, rho, rho_prev, H), fold, boot)
    split = FittedQ(B, d)
    cut = E // 2
    for sel in (ep < cut, ep >= cut):
        e0 = int(ep[sel].min())
        eps = slice(e0, int(ep[sel].max()) + 1)
        Hp = int(t[sel].max()) + 1  # a part's own horizon: later parts may reach further
        split.add(fqe_stats(ep[sel] - e0, t[sel], phi[sel], a[sel], r[sel], target[sel], rho[sel], rho_prev[sel], Hp),
                  fold[eps], boot[:, eps])
    for x, y in zip(whole.terms(H), split.terms(H)):
        np.testing.assert_allclose(x, y, rtol=1e-7, atol=1e-9)
    # replicate b against the full-log fit of the log with each episode's rows repeated boot[b, e] times
    b = int(rng.integers(0, B))
    keep = np.repeat(np.arange(n), boot[b, ep].astype(int))
    if keep.size == 0 or len(np.unique(fold[ep[keep]])) < 2:
        return  # a fold left without rows borrows the other: checked elsewhere
    reps = np.repeat(np.arange(E), boot[b].astype(int))
    new_ep = np.concatenate([np.full(lengths[e], i) for i, e in enumerate(reps)])
    rows_ = np.concatenate([np.flatnonzero(ep == e) for e in reps])
    one = FittedQ(1, d)
    one.add(fqe_stats(new_ep, t[rows_], phi[rows_], a[rows_], r[rows_], target[rows_], rho[rows_], rho_prev[rows_],
                      H), fold[reps], np.ones((1, len(reps))))
    np.testing.assert_allclose(whole.weights()[1 + b], one.weights()[0], rtol=1e-6, atol=1e-8)


def test_a_fold_without_data_borrows_the_other():
    L, K = 3, 2
    R, pi, Q, _ = _chain(L, K, 0, 1.0, False)
    ep, t, a, r, target, ratio, phi = _chain_log(L, K, R, pi, 0)
    _, rho, rho_prev = cumulative_weights(ep, ratio)
    E = int(ep.max()) + 1
    fq = FittedQ(B=1, d=L * K, ridge=0.0)
    fq.add(fqe_stats(ep, t, phi, a, r, target, rho, rho_prev, L), np.zeros(E, int), np.ones((1, E)))
    w = fq.weights()
    np.testing.assert_allclose(w[:, 1].reshape(-1, L, K), np.broadcast_to(Q, (2, L, K)), atol=1e-8)
    assert np.isfinite(fq.terms(L)[0]).all()


def test_q_features_shape_and_columns():
    rng = np.random.default_rng(0)
    pairs, qg, qr = rng.normal(size=(5, 3, 4)), rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    phi = q_features(pairs, qg, qr)
    assert phi.shape == (5, 3, 7) and phi.dtype == np.float64
    np.testing.assert_array_equal(phi[..., 4], qg)
    np.testing.assert_array_equal(phi[..., 6], 1.0)


# ------------------------------------------------------------------ the streaming evaluator, known target value
class _Fixed(Policy):
    def __init__(self, p, name="fixed"):
        self.p, self.name = np.asarray(p, float), name

    def action_probabilities(self, obs):
        return np.tile(self.p, (len(obs["action_mask"]), 1))


def test_evaluator_wdr_with_fitted_q_finds_a_known_value(tmp_path):
    """Reward = the chosen candidate's feature 0 (iid uniform candidates), progress in the session counters: Q^pi is
    linear in the pair features (feature 0 + 0.5 (L - 1) - 0.5 L progress for a target whose expected feature is
    0.5), so the fitted-Q WDR / DR find the value L * 0.5 and their intervals hold it; the Monte-Carlo model still
    works."""
    L, n_ep = 4, 400
    data = rows(n_ep, L, seed=3)
    data["session"][:, 0] = data["step"] / L
    data["reward"] = data["candidates"][np.arange(n_ep * L), data["action"], 0]
    write(tmp_path, data, rows_per_part=600)
    target = {"arm2": _Fixed([0.1, 0.1, 0.8])}
    (fqe,) = off_policy_evaluate(tmp_path, target, OPEConfig(n_boot=50, max_fit_rows=2000, return_model="fqe"))
    (mc,) = off_policy_evaluate(tmp_path, target, OPEConfig(n_boot=50, max_fit_rows=2000, return_model="mc"))
    for name in ("DR-traj", "WDR-traj"):
        e = fqe.estimates[name]
        assert abs(e.value - 2.0) < 0.1 and e.low <= 2.0 <= e.high, (name, e)
        assert np.isfinite(mc.estimates[name].value), name
    # PDIS does not use the model: the same under both
    assert fqe.estimates["PDIS"].value == pytest.approx(mc.estimates["PDIS"].value, rel=1e-12)


def test_unknown_return_model_is_refused():
    with pytest.raises(OPEError, match="return_model='lstd'; it must be one of mc, fqe"):
        OPEConfig(return_model="lstd")
