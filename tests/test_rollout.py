"""evaluate(): episode accounting, determinism, factories, summaries; the CI helpers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bundlerl.agents.baselines import ComplementGreedyPolicy, PopularityPolicy, RandomPolicy
from bundlerl.agents.policy import Policy
from bundlerl.env.config import PRESETS
from bundlerl.env.observation import MASK_KEY
from bundlerl.evaluation.metrics import METRICS
from bundlerl.evaluation.report import markdown_table
from bundlerl.evaluation.rollout import EvalResult, evaluate
from bundlerl.evaluation.stats import EvaluationError, mean_ci, mean_ratio_ci, ratio_ci

SMALL = PRESETS["small"]


@pytest.fixture(scope="module")
def greedy_result() -> EvalResult:
    return evaluate(ComplementGreedyPolicy(), SMALL, n_episodes=60, seed=3, num_envs=16, progress=False)


def test_evaluate_collects_exactly_n_episodes_with_consistent_counts(greedy_result):
    r = greedy_result
    assert r.n_episodes == 60 and r.policy == "complement-greedy" and r.preset == "small"
    assert (r.length >= 1).all() and (r.length <= SMALL.horizon).all()
    assert (r.clicks <= r.length).all() and (r.purchases <= r.clicks).all()
    assert (r.items >= r.purchases).all() and (r.items <= r.purchases * SMALL.K_max).all()
    assert (r.length[r.truncated] == SMALL.horizon).all()
    # the bundle log has one row per shown bundle and matches the per-episode sums
    assert r.log_episode.size == r.length.sum()
    np.testing.assert_array_equal(np.bincount(r.log_episode, minlength=60), r.length)
    np.testing.assert_array_equal(np.bincount(r.log_episode, weights=r.log_click, minlength=60), r.clicks)
    np.testing.assert_array_equal(np.bincount(r.log_episode, weights=r.log_n_bought, minlength=60), r.items)
    assert r.log_items.shape == (r.log_episode.size, SMALL.K_max)
    assert (r.log_propensity == 1.0).all()  # deterministic greedy


def test_evaluate_is_deterministic_per_seed(greedy_result):
    again = evaluate(ComplementGreedyPolicy(), SMALL, n_episodes=60, seed=3, num_envs=16, progress=False)
    np.testing.assert_array_equal(again.returns, greedy_result.returns)
    other = evaluate(ComplementGreedyPolicy(), SMALL, n_episodes=60, seed=4, num_envs=16, progress=False)
    assert not np.array_equal(other.returns, greedy_result.returns)


def test_summary_and_markdown(greedy_result):
    s = greedy_result.summary()
    assert set(s) == set(METRICS)
    assert s["return"].value == pytest.approx(greedy_result.returns.mean())
    assert s["length"].low <= s["length"].value <= s["length"].high
    assert s["click_rate"].value == pytest.approx(greedy_result.clicks.sum() / greedy_result.length.sum())
    table = markdown_table({"greedy": greedy_result})
    assert table.count("\n") == 3 and "| greedy | 60 |" in table and "mean return" in table


def test_policy_factory_receives_the_vec_env_and_oracles_are_labelled():
    seen = {}

    class Peek(Policy):
        name = "oracle-peek"
        uses_simulator_truth = True

        def __init__(self, venv):
            self.venv = venv
            seen["venv"] = venv

        def action_probabilities(self, obs):
            assert self.venv.state is not None and self.venv.candidate_items.shape[0] == len(obs[MASK_KEY])
            return PopularityPolicy().action_probabilities(obs)

    r = evaluate(Peek, SMALL, n_episodes=8, seed=0, num_envs=4, progress=False)
    assert type(seen["venv"]).__name__ == "BundleRecVecEnv"
    assert "(oracle, reads simulator truth)" in r.markdown()


def test_random_policy_rollout_logs_propensities_and_compose_mode_runs():
    r = evaluate(RandomPolicy(np.random.default_rng(0)), SMALL, n_episodes=10, seed=1, num_envs=5, progress=False)
    assert (r.log_propensity < 1).all() and (r.log_propensity > 0).all()
    c = evaluate(PopularityPolicy(), SMALL, n_episodes=6, seed=1, num_envs=3, action_mode="compose", progress=False)
    assert c.n_episodes == 6 and (c.length <= SMALL.horizon).all()


def test_evaluate_rejects_bad_counts():
    with pytest.raises(EvaluationError, match="n_episodes"):
        evaluate(PopularityPolicy(), SMALL, n_episodes=0)


# ---------------------------------------------------------------------- CI helpers
@settings(max_examples=80, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=50))
def test_mean_ci_brackets_the_mean(xs):
    e = mean_ci(np.array(xs))
    assert e.low <= e.value <= e.high and e.n == len(xs)
    assert e.value == pytest.approx(np.mean(xs), abs=1e-9)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.floats(0, 100), min_size=2, max_size=50))
def test_ratio_ci_with_unit_denominator_is_the_mean_ci(xs):
    x = np.array(xs)
    r, m = ratio_ci(x, np.ones_like(x)), mean_ci(x)
    assert r.value == pytest.approx(m.value) and r.half_width == pytest.approx(m.half_width, rel=1e-9, abs=1e-12)


def test_ci_coverage_is_about_95_percent():
    rng = np.random.default_rng(0)
    cover_m = cover_r = 0
    reps = 600
    for _ in range(reps):
        x = rng.exponential(2.0, 200)
        cover_m += mean_ci(x).low <= 2.0 <= mean_ci(x).high
        den = rng.integers(1, 10, 200).astype(float)
        num = rng.binomial(den.astype(int), 0.3).astype(float)
        e = ratio_ci(num, den)
        cover_r += e.low <= 0.3 <= e.high
    assert 0.92 <= cover_m / reps <= 0.975
    assert 0.92 <= cover_r / reps <= 0.975


@settings(max_examples=80, deadline=None)
@given(st.lists(st.floats(0, 100), min_size=2, max_size=50), st.floats(0.1, 10))
def test_mean_ratio_ci_against_a_constant_is_the_scaled_mean_ci(xs, c):
    # b constant: no uncertainty from the denominator, so R = mean(a)/c with the mean's CI scaled by 1/c
    x = np.array(xs)
    r, m = mean_ratio_ci(x, np.full(7, c)), mean_ci(x)
    assert r.value == pytest.approx(m.value / c)
    assert r.half_width == pytest.approx(m.half_width / c, rel=1e-9, abs=1e-12)


def test_mean_ratio_ci_coverage_is_about_95_percent():
    rng = np.random.default_rng(1)
    reps, cover = 600, 0
    for _ in range(reps):
        e = mean_ratio_ci(rng.exponential(3.0, 300), rng.exponential(2.0, 200))
        cover += e.low <= 1.5 <= e.high
    assert 0.92 <= cover / reps <= 0.975
    assert np.isnan(mean_ratio_ci(np.ones(3), np.zeros(3)).value)


def test_ci_edge_cases_and_errors():
    assert np.isnan(mean_ci(np.array([])).value)
    assert np.isnan(ratio_ci(np.array([1.0]), np.array([0.0])).value)
    assert mean_ci(np.array([3.0])).half_width == 0
    with pytest.raises(EvaluationError, match="NaN"):
        mean_ci(np.array([1.0, np.nan]))
    with pytest.raises(EvaluationError, match="same shape"):
        ratio_ci(np.ones(3), np.ones(4))
