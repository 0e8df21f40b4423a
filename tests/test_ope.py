"""Off-policy estimators: known answers (target == logger gives the logged mean; a two-armed bandit with known
rewards), property tests of every formula against a direct loop, and the streaming evaluator on real Parquet logs."""

from __future__ import annotations

import numpy as np
import pytest
from _log_data import rows, write
from hypothesis import given, settings
from hypothesis import strategies as st

from bundlerl.agents.baselines import RandomPolicy
from bundlerl.agents.exploration import Greedy
from bundlerl.agents.policy import Policy
from bundlerl.evaluation.ope.estimators import (
    IPS,
    PDIS,
    SNIPS,
    DirectMethod,
    DoublyRobust,
    OPEError,
    SelfNormalizedDR,
    SwitchDR,
    TrajectoryDR,
    WeightedDR,
    WeightedPDIS,
    decision_ess,
    decision_terms,
    trajectory_ess,
)
from bundlerl.evaluation.ope.evaluate import OPEConfig, off_policy_evaluate
from bundlerl.evaluation.ope.intervals import INTERVALS, TRAJECTORY_INTERVALS
from bundlerl.evaluation.ope.reward_model import returns_to_go

ALL_DECISION = (DirectMethod(), IPS(), SNIPS(), DoublyRobust(), SelfNormalizedDR(), SwitchDR())


def _bandit(n, K=3, seed=0):
    """A logged bandit: random logger distributions (> 0), sampled actions, rewards, a target and a q."""
    rng = np.random.default_rng(seed)
    pb = rng.dirichlet(np.ones(K), n) * 0.9 + 0.1 / K
    a = np.array([rng.choice(K, p=p) for p in pb])
    pe = rng.dirichlet(np.ones(K), n)
    r = rng.random(n)
    q = rng.random((n, K))
    return r, a, pb[np.arange(n), a], pe, q, pb


# ------------------------------------------------------------------ known answers
def test_target_equal_to_logger_gives_the_logged_mean():
    r, a, ps, _, q, pb = _bandit(500)
    for est in (IPS(), SNIPS()):
        assert est.estimate_policy_value(r, a, ps, pb) == pytest.approx(r.mean(), rel=1e-12)
    ep = np.repeat(np.arange(100), 5)
    ratio = np.ones(500)
    for est in (PDIS(), WeightedPDIS()):
        assert est.estimate_policy_value(ep, ratio, r) == pytest.approx(r.sum() / 100, rel=1e-12)
    # DR / SNDR with weights 1: mean r + mean (v - q_a), v the expectation of q_a under the logger
    v = (pb * q).sum(axis=1)
    dr = DoublyRobust().estimate_policy_value(r, a, ps, pb, q)
    assert dr == pytest.approx(r.mean() + (v - q[np.arange(500), a]).mean(), rel=1e-12)


def test_two_armed_bandit_with_known_rewards():
    rng = np.random.default_rng(1)
    n, means = 20_000, np.array([0.3, 0.7])
    pb = np.tile([0.8, 0.2], (n, 1))  # the logger mostly shows the worse arm
    a = (rng.random(n) < 0.2).astype(int)
    r = (rng.random(n) < means[a]).astype(float)
    target = np.tile([0.0, 1.0], (n, 1))  # deterministic: always arm 1, true value 0.7
    q_true = np.tile(means, (n, 1))
    ps = pb[np.arange(n), a]
    for est in ALL_DECISION:
        q = q_true if est.uses_model else None
        v = est.estimate_policy_value(r, a, ps, target, q)
        assert abs(v - 0.7) < 0.03, (est.name, v)
    assert DirectMethod().estimate_policy_value(r, a, ps, target, q_true) == pytest.approx(0.7)
    # a stochastic target 50/50: value 0.5
    half = np.full((n, 2), 0.5)
    assert abs(IPS().estimate_policy_value(r, a, ps, half) - 0.5) < 0.03
    # the ESS of the deterministic target is about the share of logged arm-1 decisions, 20% of n
    s = dict(zip(("n", "w", "w2"), decision_terms(r, a, ps, target).sum(axis=0)[:3]))
    assert decision_ess(s) == pytest.approx(0.2 * n, rel=0.05)


def test_model_estimators_need_q_and_inputs_are_checked():
    r, a, ps, pe, q, _ = _bandit(10)
    with pytest.raises(OPEError, match="needs q_hat"):
        DoublyRobust().estimate_policy_value(r, a, ps, pe)
    with pytest.raises(OPEError, match="pscore must be > 0"):
        IPS().estimate_policy_value(r, a, np.zeros(10), pe)
    with pytest.raises(OPEError, match="action_dist"):
        IPS().estimate_policy_value(r, a, ps, pe[:5])
    with pytest.raises(OPEError, match="clip"):
        IPS(clip=0.0)


# ------------------------------------------------------------------ property tests of each formula
_sizes = st.integers(1, 40)
_seeds = st.integers(0, 10_000)


@given(_sizes, _seeds, st.floats(0.5, 20))
def test_decision_formulas(n, seed, clip):
    r, a, ps, pe, q, _ = _bandit(n, seed=seed)
    i = np.arange(n)
    w = np.minimum(pe[i, a] / ps, clip)
    v = (pe * q).sum(axis=1)
    res = w * (r - q[i, a])
    assert IPS(clip=clip).estimate_policy_value(r, a, ps, pe) == pytest.approx((w * r).mean())
    assert SNIPS(clip=clip).estimate_policy_value(r, a, ps, pe) == pytest.approx((w * r).sum() / w.sum())
    assert DirectMethod().estimate_policy_value(r, a, ps, pe, q) == pytest.approx(v.mean())
    assert DoublyRobust(clip=clip).estimate_policy_value(r, a, ps, pe, q) == pytest.approx((v + res).mean())
    assert SelfNormalizedDR(clip=clip).estimate_policy_value(r, a, ps, pe, q) == pytest.approx(
        v.mean() + res.sum() / w.sum())
    tau = float(np.median(w))
    assert SwitchDR(clip=clip, tau=tau).estimate_policy_value(r, a, ps, pe, q) == pytest.approx(
        (v + np.where(w <= tau, res, 0)).mean())
    # limits: q = 0 turns DR into IPS and SNDR into SNIPS; Switch-DR is DR at tau = inf, DM at tau below every weight
    z = np.zeros_like(q)
    assert DoublyRobust(clip=clip).estimate_policy_value(r, a, ps, pe, z) == pytest.approx(
        IPS(clip=clip).estimate_policy_value(r, a, ps, pe))
    assert SelfNormalizedDR(clip=clip).estimate_policy_value(r, a, ps, pe, z) == pytest.approx(
        SNIPS(clip=clip).estimate_policy_value(r, a, ps, pe))
    assert SwitchDR(clip=clip, tau=np.inf).estimate_policy_value(r, a, ps, pe, q) == pytest.approx(
        DoublyRobust(clip=clip).estimate_policy_value(r, a, ps, pe, q))
    assert SwitchDR(tau=0.0).estimate_policy_value(r, a, ps, pe + 1e-9, q) == pytest.approx(v.mean(), abs=1e-6)
    s = dict(zip(("n", "w", "w2"), decision_terms(r, a, ps, pe, clip=clip).sum(axis=0)[:3]))
    assert 1 - 1e-9 <= decision_ess(s) <= n + 1e-9 or s["w2"] == 0


def _episodes(lengths, seed):
    rng = np.random.default_rng(seed)
    ep = np.repeat(np.arange(len(lengths)), lengths)
    n = ep.size
    return ep, rng.uniform(0.2, 3.0, n), rng.random(n), rng.random(n), rng.random(n)


def _loop_values(ep, ratio, r, q, v, gamma, clip=np.inf):
    """The per-trajectory estimators written as plain loops over padded episodes (absorbing after the end)."""
    E, H = ep.max() + 1, np.bincount(ep).max()
    R, Q, V = (np.zeros((E, H)) for _ in range(3))
    rho = np.zeros((E, H))
    for i in range(E):
        idx = np.flatnonzero(ep == i)
        cum = 1.0
        for t, j in enumerate(idx):
            cum *= ratio[j]
            rho[i, t] = min(cum, clip)
            R[i, t], Q[i, t], V[i, t] = r[j], q[j], v[j]
        rho[i, len(idx):] = rho[i, len(idx) - 1]  # absorbed: the weight stays, rewards and models are 0
    prev = np.concatenate([np.ones((E, 1)), rho[:, :-1]], axis=1)
    g = gamma ** np.arange(H)
    W, Wp = rho.sum(0), prev.sum(0)
    return {
        "PDIS": (g * (rho * R).sum(0)).sum() / E,
        "WPDIS": (g * (rho * R).sum(0) / W).sum(),
        "DR-traj": (g * (rho * (R - Q) + prev * V).sum(0)).sum() / E,
        "WDR-traj": (g * ((rho * (R - Q)).sum(0) / W + (prev * V).sum(0) / Wp)).sum(),
    }


@settings(max_examples=60)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=12), _seeds, st.floats(0.5, 1.0), st.floats(1.0, 50.0))
def test_trajectory_formulas_match_loops(lengths, seed, gamma, clip):
    ep, ratio, r, q, v = _episodes(lengths, seed)
    want = _loop_values(ep, ratio, r, q, v, gamma, clip)
    for cls in (PDIS, WeightedPDIS, TrajectoryDR, WeightedDR):
        got = cls(gamma=gamma, clip=clip).estimate_policy_value(ep, ratio, r, q, v)
        assert got == pytest.approx(want[cls.name], rel=1e-9, abs=1e-12), cls.name


@given(_sizes, _seeds)
def test_one_step_episodes_reduce_to_the_bandit_estimators(n, seed):
    r, a, ps, pe, q, _ = _bandit(n, seed=seed)
    i = np.arange(n)
    ratio, qa, v = pe[i, a] / ps, q[i, a], (pe * q).sum(axis=1)
    ep = np.arange(n)
    pairs = ((PDIS(), IPS()), (WeightedPDIS(), SNIPS()), (TrajectoryDR(), DoublyRobust()),
             (WeightedDR(), SelfNormalizedDR()))
    for traj, dec in pairs:
        assert traj.estimate_policy_value(ep, ratio, r, qa, v) == pytest.approx(
            dec.estimate_policy_value(r, a, ps, pe, q)), traj.name


@given(st.lists(st.floats(0.01, 100), min_size=1, max_size=50))
def test_ess_bounds(weights):
    w = np.asarray(weights)
    ess = trajectory_ess(w.sum(), (w ** 2).sum())
    assert 1 - 1e-9 <= ess <= w.size + 1e-9
    assert trajectory_ess(w.size * 2.0, w.size * 4.0) == pytest.approx(w.size)


def test_returns_to_go():
    ep = np.array([0, 0, 0, 1, 1])
    r = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_allclose(returns_to_go(ep, r, 1.0), [6, 5, 3, 9, 5])
    np.testing.assert_allclose(returns_to_go(ep, r, 0.5), [1 + 1 + 0.75, 2 + 1.5, 3, 4 + 2.5, 5])


# ------------------------------------------------------------------ the streaming evaluator on Parquet logs
class _Fixed(Policy):
    """A fixed distribution over K for every decision (a test target)."""

    def __init__(self, p, name="fixed"):
        self.p, self.name = np.asarray(p, float), name

    def action_probabilities(self, obs):
        return np.tile(self.p, (len(obs["action_mask"]), 1))


def _log(folder, n_episodes=200, length=4, rows_per_part=10_000, seed=0):
    data = rows(n_episodes, length, seed)
    data["reward"] = (data["action"] == 2) * 1.0 + 0.1 * data["reward"]  # action 2 pays
    return write(folder, data, rows_per_part=rows_per_part), data


def test_streaming_matches_in_memory_and_parts(tmp_path):
    _, data = _log(tmp_path / "one")
    _log(tmp_path / "many", rows_per_part=100)  # same rows, 8 parts
    targets = {"uniform": _Fixed(np.full(3, 1 / 3)), "arm2": _Fixed([0.1, 0.1, 0.8])}
    cfg = OPEConfig(n_boot=50, max_fit_rows=1000)
    one = off_policy_evaluate(tmp_path / "one", targets, cfg)
    many = off_policy_evaluate(tmp_path / "many", targets, cfg)
    for a, b in zip(one, many):
        for k in ("IPS", "SNIPS", "PDIS", "WPDIS"):
            assert a.estimates[k].value == pytest.approx(b.estimates[k].value, rel=1e-9)
    r, a, ps = data["reward"], data["action"], data["pscore"]
    uni, arm2 = one
    assert uni.estimates["IPS"].value == pytest.approx(r.mean())  # the target is the logger
    assert uni.estimates["PDIS"].value == pytest.approx(r.sum() / 200)
    assert arm2.estimates["IPS"].value == pytest.approx(IPS().estimate_policy_value(r, a, ps, np.tile(
        [0.1, 0.1, 0.8], (len(r), 1))))
    for res in one:
        for k, e in res.estimates.items():
            assert e.low <= e.value <= e.high, (res.policy, k)
        assert res.unsupported_share == 0 and 0 < res.ess_decisions <= res.n_decisions


def test_unsupported_mass_raises_or_is_reported(tmp_path):
    data = rows(50, 2)
    data["action_prob"] = np.tile([0.5, 0.5, 0.0], (100, 1))
    data["action"] = data["action"] % 2
    data["pscore"] = np.full(100, 0.5)
    write(tmp_path, data)
    target = {"arm2": _Fixed([0.0, 0.5, 0.5])}
    with pytest.raises(OPEError, match="arm2 puts 50.0% of its mass.*allow_unsupported"):
        off_policy_evaluate(tmp_path, target, OPEConfig(n_boot=10))
    (res,) = off_policy_evaluate(tmp_path, target, OPEConfig(n_boot=10, allow_unsupported=True))
    assert res.unsupported_share == pytest.approx(0.5)


def test_deterministic_targets_and_truth(tmp_path):
    write(tmp_path, rows(30, 3), truth=True)
    targets = {"random": RandomPolicy(np.random.default_rng(0)), "greedy": Greedy(_Fixed([0.2, 0.5, 0.3]))}
    res = off_policy_evaluate(tmp_path, targets, OPEConfig(n_boot=10, truth=True))
    assert [r.truth for r in res] == [0.0, 0.0]  # the synthetic truth is all zeros
    assert res[1].ess_decisions < res[0].ess_decisions
    assert res[0].n_decisions == 90 and res[0].n_episodes == 30


# ------------------------------------------------------------------ issue 18: ope.json records the settings
@given(clip=st.one_of(st.just(float("inf")), st.floats(1e-6, 1e9)), tau=st.floats(0, 1e6), gamma=st.floats(0, 1),
       n_boot=st.integers(2, 5000), seed=st.integers(0, 2**63), interval=st.sampled_from(INTERVALS),
       traj=st.sampled_from(TRAJECTORY_INTERVALS), unsupported=st.booleans(), truth=st.booleans())
def test_config_settings_round_trip(clip, tau, gamma, n_boot, seed, interval, traj, unsupported, truth):
    """Property: an OPEConfig's recorded settings are JSON and read back to the same config (no clipping: null)."""
    import json

    from bundlerl.evaluation.ope.report import config_from_settings, config_settings

    cfg = OPEConfig(clip=clip, tau=tau, gamma=gamma, n_boot=n_boot, seed=seed, interval=interval,
                    trajectory_interval=traj, allow_unsupported=unsupported, truth=truth, progress=False)
    data = json.loads(json.dumps(config_settings(cfg), allow_nan=False))
    assert (data["clip"] is None) == (clip == float("inf")) and "progress" not in data
    back = config_from_settings(data)
    assert back == OPEConfig(**{**cfg.__dict__, "progress": None})


def test_read_ope_json_layouts(tmp_path):
    import json

    from bundlerl.evaluation.ope.estimators import OPEError
    from bundlerl.evaluation.ope.report import config_from_settings, read_ope_json

    (tmp_path / "ope.json").write_text(json.dumps([{"policy": "random"}]))  # version 1: the bare list of results
    assert read_ope_json(tmp_path) == {"version": 1, "settings": None, "results": [{"policy": "random"}]}
    (tmp_path / "ope.json").write_text("{")
    with pytest.raises(OPEError, match="ope.json: cannot read it as JSON"):
        read_ope_json(tmp_path / "ope.json")
    with pytest.raises(OPEError, match="'clipp': not OPEConfig settings"):
        config_from_settings({"clipp": 3})


def test_chart_draws_an_interval_that_misses_its_estimate(tmp_path):
    """A bootstrap interval need not hold its point estimate (small logs, population / studentized intervals): the
    chart draws it instead of failing on matplotlib's negative yerr (an exit 1 of 'bundlerl ope' before)."""
    from bundlerl.evaluation.ope.evaluate import ESTIMATOR_NAMES, OPEResult
    from bundlerl.evaluation.ope.report import ope_chart
    from bundlerl.evaluation.stats import Estimate

    est = {k: Estimate(1.0, 1.2, 1.5, 10) for k in ESTIMATOR_NAMES}
    est[ESTIMATOR_NAMES[0]] = Estimate(1.0, float("nan"), float("nan"), 10)
    ope_chart([OPEResult("p", est, 100, 1000, 50.0, 200.0, 0.0)], tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 1000


def test_write_ope_report_refuses_a_non_empty_folder(tmp_path):
    """The Python form of 'bundlerl ope --out': a report goes into a missing or empty folder, or with overwrite=True
    (ope.json, written last, then holds the settings given)."""
    from bundlerl.evaluation.ope.estimators import OPEError
    from bundlerl.evaluation.ope.evaluate import ESTIMATOR_NAMES, OPEResult
    from bundlerl.evaluation.ope.report import read_ope_json, write_ope_report
    from bundlerl.evaluation.stats import Estimate

    res = [OPEResult("p", {k: Estimate(1.0, 0.9, 1.1, 10) for k in ESTIMATOR_NAMES}, 100, 1000, 50.0, 200.0, 0.0)]
    write_ope_report(res, tmp_path / "r", settings={"a": 1})
    with pytest.raises(OPEError, match=r"out .*: holds a report already \(ope.md, ope.png, ope.json\); pass "
                                       r"overwrite=True"):
        write_ope_report(res, tmp_path / "r")
    write_ope_report(res, tmp_path / "r", settings={"a": 2}, overwrite=True)
    assert read_ope_json(tmp_path / "r")["settings"] == {"a": 2}


def test_a_killed_writers_staging_folder_is_swept(tmp_path):
    """A report's staging folder left by a killed run (SIGKILL: no clean-up ran) is removed by the next report
    written beside it once its process is gone; a live writer's staging folder and unrelated folders stay."""
    import os
    import subprocess
    import sys
    import time

    from bundlerl.evaluation.ope.evaluate import ESTIMATOR_NAMES, OPEResult
    from bundlerl.evaluation.ope.report import write_ope_report
    from bundlerl.evaluation.stats import Estimate

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # a process that has exited
    old = time.time() - 3600
    stale = tmp_path / f".r.{dead_pid}.ab_cd123.tmp-report"
    live = tmp_path / f".r.{os.getpid()}.xy_zw789.tmp-report"
    other = tmp_path / ".r.notes"
    for d in (stale, live, other):
        d.mkdir()
        (d / "ope.md").write_text("half")
        os.utime(d, (old, old))
    res = [OPEResult("p", {k: Estimate(1.0, 0.9, 1.1, 10) for k in ESTIMATOR_NAMES}, 100, 1000, 50.0, 200.0, 0.0)]
    write_ope_report(res, tmp_path / "r")
    assert not stale.exists() and live.is_dir() and other.is_dir()
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["ope.json", "ope.md", "ope.png"]
