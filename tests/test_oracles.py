"""Oracles: labelled, mask-respecting, read-only on the env, deterministic, and correct planners."""

from __future__ import annotations

import numpy as np
import pytest

from bundlerl.agents.oracles import LookaheadOracle, OneStepOracle, make_oracle
from bundlerl.agents.policy import PolicyError
from bundlerl.env.observation import MASK_KEY

SMALL = "small"


@pytest.fixture(scope="module")
def venv():
    from bundlerl.env.vec_env import BundleRecVecEnv

    v = BundleRecVecEnv(SMALL, num_envs=6, seed=3)
    yield v
    v.close()


def _snapshot(v):
    s = v.state
    return {k: getattr(s, k).copy() for k in ("theta", "needs", "budget", "fatigue", "shown", "bought", "active")}


def test_oracles_are_labelled_and_need_the_vec_env(venv):
    for o in (OneStepOracle(venv), LookaheadOracle(venv), make_oracle("oracle-lookahead", venv, depth=2)):
        assert o.uses_simulator_truth and o.name.startswith("oracle-")
    with pytest.raises(PolicyError, match="BundleRecVecEnv"):
        OneStepOracle(object())
    with pytest.raises(PolicyError, match="unknown oracle 'oracle-psychic'; use one of: oracle-one-step, oracle-lookahead"):
        make_oracle("oracle-psychic", venv)
    assert type(make_oracle("one-step", venv)) is OneStepOracle  # the short form of a registered name
    with pytest.raises(PolicyError, match="n_rollouts"):
        LookaheadOracle(venv, n_rollouts=0)


def test_oracle_registry_names_are_the_classes_names():
    from bundlerl.agents.oracles import ORACLES, oracle_name

    for name, cls in ORACLES.items():
        assert cls.name == name and name.startswith("oracle-")
        assert oracle_name(name) == name == oracle_name(name.removeprefix("oracle-"))


def test_one_step_oracle_picks_the_best_exact_expected_reward(venv):
    obs = venv.reset()
    a, _ = OneStepOracle(venv).act(obs)
    mask = obs[MASK_KEY] > 0
    items = np.where(mask[..., None], venv.candidate_items, -1)
    er = np.where(mask, venv.core.expected_reward(venv.state, items), -np.inf)
    np.testing.assert_array_equal(a, er.argmax(1))


def test_lookahead_is_read_only_deterministic_and_respects_the_mask(venv):
    obs = venv.reset()
    before = _snapshot(venv)
    a1, p1 = LookaheadOracle(venv, n_rollouts=4, depth=3, seed=5).act(obs)
    a2, _ = LookaheadOracle(venv, n_rollouts=4, depth=3, seed=5).act(obs)
    after = _snapshot(venv)
    for k in before:  # planning works on copies: the hidden state is untouched
        np.testing.assert_array_equal(before[k], after[k], err_msg=k)
    np.testing.assert_array_equal(a1, a2)
    assert (obs[MASK_KEY][np.arange(len(a1)), a1] > 0).all() and (p1 == 1).all()


def test_lookahead_value_at_depth_one_is_the_exact_one_step_expectation(venv):
    # with depth 1 the value of a planned candidate is its exact expected reward (the last simulated step adds its
    # expectation, not a draw)
    obs = venv.reset()
    R = 8
    o = LookaheadOracle(venv, n_rollouts=R, depth=1, top_m=4, seed=1)
    mask = obs[MASK_KEY] > 0
    items = np.where(mask[..., None], venv.candidate_items, -1)[:2]
    state = venv.state.take(np.arange(2))
    planned = o._plan(venv.model, state, np.arange(2), items)
    exact = venv.core.expected_reward(state, items)
    top = np.argsort(-np.where(mask[:2], exact, -np.inf), axis=1, kind="stable")[:, :4]
    est = np.take_along_axis(planned, top, 1)
    ref = np.take_along_axis(exact, top, 1)
    np.testing.assert_allclose(est, ref, rtol=1e-9, atol=1e-12)
    rest = np.ones_like(mask[:2])
    np.put_along_axis(rest, top, False, 1)
    assert (planned[rest & mask[:2]] < est.min()).all()  # unplanned candidates rank below planned ones


@pytest.mark.slow
def test_lookahead_earns_more_than_the_one_step_oracle_on_the_same_sessions():
    from bundlerl.evaluation.rollout import evaluate
    from bundlerl.evaluation.stats import mean_ratio_ci

    kw = dict(n_episodes=96, seed=11, num_envs=48, progress=False, keep_log=False)
    one = evaluate(OneStepOracle, SMALL, **kw)
    la = evaluate(lambda v: LookaheadOracle(v, n_rollouts=8, depth=5, top_m=4, seed=0), SMALL, **kw)
    r = mean_ratio_ci(la.returns, one.returns)
    assert r.value > 1.0, (la.returns.mean(), one.returns.mean())


# ---------------------------------------------------------------- a base policy for the rollouts (issue 17)
def _complement_greedy():
    from bundlerl.agents.baselines import make_baseline

    return make_baseline("complement-greedy", np.random.default_rng(0))


def test_lookahead_with_a_base_policy_is_labelled_and_rejects_an_oracle_base(venv):
    o = LookaheadOracle(venv, base=_complement_greedy())
    assert o.uses_simulator_truth and o.name == "oracle-lookahead[complement-greedy]"
    assert LookaheadOracle(venv).name == "oracle-lookahead"  # the one-step base keeps the registered name
    with pytest.raises(PolicyError, match="observable"):
        LookaheadOracle(venv, base=OneStepOracle(venv))
    with pytest.raises(PolicyError, match="base="):
        LookaheadOracle(venv, base="tuned-linear")


@pytest.mark.parametrize("with_base", [False, True])
def test_lookahead_at_depth_one_chooses_what_the_one_step_oracle_chooses(venv, with_base):
    # depth 1: each planned candidate's value is its exact expected reward, and the one-step best is planned
    obs = venv.reset()
    base = _complement_greedy() if with_base else None
    a, _ = LookaheadOracle(venv, n_rollouts=3, depth=1, top_m=2, seed=4, base=base).act(obs)
    b, _ = OneStepOracle(venv).act(obs)
    np.testing.assert_array_equal(a, b)


def test_lookahead_always_plans_the_base_policys_own_choice(venv):
    # top_m=1 with a base: the only planned candidate is the base's choice, so the oracle acts as the base
    obs = venv.reset()
    base = _complement_greedy()
    a, _ = LookaheadOracle(venv, n_rollouts=2, depth=2, top_m=1, seed=0, base=base).act(obs)
    np.testing.assert_array_equal(a, base.act(obs)[0])


def test_lookahead_with_a_base_policy_is_read_only_and_deterministic_for_a_seed(venv):
    obs = venv.reset()
    before = _snapshot(venv)
    runs = [LookaheadOracle(venv, n_rollouts=3, depth=3, top_m=3, seed=9, base=_complement_greedy()).act(obs)[0]
            for _ in range(2)]
    after = _snapshot(venv)
    for k in before:
        np.testing.assert_array_equal(before[k], after[k], err_msg=k)
    np.testing.assert_array_equal(*runs)
    assert (obs[MASK_KEY][np.arange(len(runs[0])), runs[0]] > 0).all()


def test_lookahead_earns_at_least_its_base_policy_on_the_same_sessions():
    # policy improvement: the rollout of a base earns >= the base up to noise. Common random numbers: the same env
    # seeds give both the same shoppers and the same response streams. A weak base (popularity) must be beaten
    # clearly; a strong observable one (complement-greedy) must not be lost to beyond noise.
    from bundlerl.agents.baselines import make_baseline
    from bundlerl.evaluation.rollout import evaluate
    from bundlerl.evaluation.stats import mean_ratio_ci

    kw = dict(n_episodes=48, seed=13, num_envs=48, progress=False, keep_log=False)
    for name, strict in (("popularity", True), ("complement-greedy", False)):
        base = make_baseline(name, np.random.default_rng(0))
        own = evaluate(base, SMALL, **kw)
        la = evaluate(lambda v, base=base: LookaheadOracle(v, n_rollouts=4, depth=3, top_m=3, seed=0, base=base),
                      SMALL, **kw)
        r = mean_ratio_ci(la.returns, own.returns)
        assert (r.low > 1.0) if strict else (r.high >= 1.0), (name, la.returns.mean(), own.returns.mean(), r)


def test_budget_blind_lookahead_plans_with_the_mean_budget_and_leaves_the_env_alone(venv):
    obs = venv.reset()
    venv.step(OneStepOracle(venv).act(obs)[0])  # something spent in some rows
    obs = venv.core.observe()
    before = _snapshot(venv)
    o = LookaheadOracle(venv, n_rollouts=2, depth=2, top_m=2, seed=1, base=_complement_greedy(), blind_budget=True)
    assert o.name == "oracle-lookahead[complement-greedy]~budget" and o.uses_simulator_truth
    a, _ = o.act(obs)
    for k, v in _snapshot(venv).items():
        np.testing.assert_array_equal(before[k], v, err_msg=k)
    assert (obs[MASK_KEY][np.arange(len(a)), a] > 0).all()
    users = np.arange(venv.num_envs)
    blind = o._blind(venv.state.take(users), users)
    personas = venv.core.world.personas.budget
    spent = personas[venv.core.log.persona] - venv.state.budget
    np.testing.assert_allclose(blind.budget, np.maximum(personas.mean() - spent, 0), rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(blind.theta, venv.state.theta)  # only the budget is hidden from the planner
