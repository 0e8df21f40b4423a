"""``tuned-linear`` (agents/tuned_linear.py) and its cross-entropy fit (evaluation/tuning.py), and the myopic control
(gamma = 0): the search recovers known weights, weights round-trip through JSON, the fit plays only its own training
streams, fits are cached by content, and gamma = 0 is accepted and recorded."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from bundlerl.agents.policy import PolicyError
from bundlerl.agents.tuned_linear import (
    OBSERVABLE_POLICIES,
    TUNED_LINEAR,
    TunedLinearPolicy,
    feature_names,
    linear_features,
)
from bundlerl.candidates.features import CANDIDATE_FEATURES
from bundlerl.env.observation import CANDIDATES_KEY, MASK_KEY, SESSION_FEATURES, SESSION_KEY
from bundlerl.evaluation.seeds import Purpose, env_stream, row_generator
from bundlerl.evaluation.stats import EvaluationError
from bundlerl.evaluation.tuning import CEMBudget, cem_search, tuning_streams

F = len(CANDIDATE_FEATURES)
S = len(SESSION_FEATURES)


def _obs(rng, n=64, k=8):
    return {CANDIDATES_KEY: rng.normal(size=(n, k, F)).astype(np.float32),
            MASK_KEY: (rng.random((n, k)) > 0.1).astype(np.float32),
            SESSION_KEY: rng.random((n, S)).astype(np.float32)}


def test_cem_recovers_known_weights_on_a_synthetic_greedy_task():
    """Reward of showing candidate k is x_k . w*; the search, scoring weight vectors by the reward of the greedy
    choice (the policy's own rule), finds w*'s direction and nearly all of the best achievable reward."""
    rng = np.random.default_rng(0)
    w_true = rng.normal(size=F)
    obs = _obs(rng, n=400)
    x = obs[CANDIDATES_KEY].astype(np.float64)
    valid = obs[MASK_KEY] > 0
    value = np.where(valid, x @ w_true, -np.inf)
    best = value.max(1).mean()

    def score(W, r):
        out = []
        for w in W:
            a, _ = TunedLinearPolicy(w, interactions=()).act(obs)
            out.append(value[np.arange(len(a)), a].mean())
        return np.array(out)

    mean, history = cem_search(score, np.zeros(F), CEMBudget(rounds=15, candidates=32, episodes=1, elite=8),
                               np.random.default_rng(1))
    cos = mean @ w_true / np.linalg.norm(mean) / np.linalg.norm(w_true)
    assert cos > 0.95, cos
    assert score(mean[None], 0)[0] >= 0.97 * best
    assert len(history) == 15 and history[-1]["best"] >= history[0]["best"]


@given(st.lists(st.floats(-5, 5), min_size=3 * F, max_size=3 * F))
def test_scores_are_the_linear_form_of_the_named_features(ws):
    rng = np.random.default_rng(3)
    obs = _obs(rng, n=5, k=4)
    inter = ("progress", "log_spent")
    pol = TunedLinearPolicy(np.array(ws), interactions=inter)
    phi = linear_features(obs, inter)
    assert phi.shape == (5, 4, 3 * F)
    j = feature_names(inter).index("log_price*log_spent")
    np.testing.assert_allclose(phi[..., j], obs[CANDIDATES_KEY][..., CANDIDATE_FEATURES.index("log_price")]
                               * obs[SESSION_KEY][:, None, SESSION_FEATURES.index("log_spent")], rtol=1e-6)
    np.testing.assert_allclose(pol.scores(obs), phi @ np.array(ws), rtol=1e-9, atol=1e-9)
    p = pol.action_probabilities(obs)
    assert np.allclose(p.sum(1), 1) and (p[obs[MASK_KEY] == 0] == 0).all()


def test_weights_round_trip_through_json(tmp_path):
    rng = np.random.default_rng(5)
    pol = TunedLinearPolicy(rng.normal(size=len(feature_names())), info={"world": "small", "budget": "x"})
    path = pol.save(tmp_path / "w.json")
    back = TunedLinearPolicy.load(path)
    assert back.names == pol.names and back.interactions == pol.interactions and back.info == pol.info
    np.testing.assert_array_equal(back.weights, pol.weights)
    obs = _obs(rng)
    np.testing.assert_array_equal(back.act(obs)[0], pol.act(obs)[0])
    data = json.loads(path.read_text())
    assert data["policy"] == TUNED_LINEAR and set(data["weights"]) == set(feature_names())


def test_bad_weight_files_are_clear_errors(tmp_path):
    p = tmp_path / "w.json"
    p.write_text('{"format": 1,\n "weights": [1, 2')
    with pytest.raises(PolicyError, match=r"w.json, line 2, column"):
        TunedLinearPolicy.load(p)
    good = TunedLinearPolicy(np.ones(F), interactions=()).to_dict()
    del good["weights"]["novelty"]
    p.write_text(json.dumps(good))
    with pytest.raises(PolicyError, match="field 'weights' must map exactly"):
        TunedLinearPolicy.load(p)
    with pytest.raises(PolicyError, match="no such weights file"):
        TunedLinearPolicy.load(tmp_path / "missing.json")
    with pytest.raises(PolicyError, match="not a session feature"):
        TunedLinearPolicy(np.ones(2 * F), interactions=("fatigue",))
    with pytest.raises(PolicyError, match="expected"):
        TunedLinearPolicy(np.ones(F + 1), interactions=())


def test_budget_parsing():
    b = CEMBudget.parse("12x24x200")
    assert (b.rounds, b.candidates, b.episodes, b.elite, b.total_episodes) == (12, 24, 200, 6, 57600)
    assert CEMBudget() == b and b.label == "12x24x200"
    for bad in ("12x24", "0x1x1", "axbxc"):
        with pytest.raises(EvaluationError):
            CEMBudget.parse(bad)


def test_the_fit_plays_only_its_own_training_streams(monkeypatch):
    """Every episode the fit plays comes from the TUNE streams, whose row generators are none of those of the
    evaluation streams (evaluate, periodic, final) nor of training, for the same seeds."""
    import bundlerl.evaluation.tuning as tuning

    seen = []

    def fake_rollouts(world, W, episodes, stream, interactions=(), chunk_rows=0):
        seen.append(stream)
        return np.tile(-np.linalg.norm(W - 1.0, axis=1)[:, None], (1, episodes))

    monkeypatch.setattr(tuning, "rollout_returns", fake_rollouts)
    pol = tuning.fit_tuned_linear("small", CEMBudget(rounds=3, candidates=4, episodes=2, elite=2), seed=7,
                                  progress=False)
    assert pol.info["seed"] == 7 and len(pol.info["history"]) == 3
    assert [s.spawn_key for s in seen] == [s.spawn_key for s in tuning_streams(7, 3)]
    assert all(s.spawn_key[0] == Purpose.TUNE and s.entropy == 7 for s in seen)

    def states(stream, rows=4):
        return {tuple(row_generator(stream, i).bit_generator.state["state"].values()) for i in range(rows)}

    fit_states = set().union(*(states(s) for s in tuning_streams(7, 3)))
    for purpose in (Purpose.EVALUATE, Purpose.PERIODIC_EVAL, Purpose.FINAL_EVAL, Purpose.TRAIN):
        for seed in (0, 7):
            assert not fit_states & states(env_stream(purpose, seed)), purpose


def test_row_generator_is_the_vec_envs_rule():
    from bundlerl.env.vec_env import BundleRecVecEnv

    stream = env_stream(Purpose.TUNE, 3, 1)
    venv = BundleRecVecEnv("small", num_envs=3, seed=stream)
    try:
        for i in range(3):
            assert venv.core.row_rngs[i].integers(2**62) == row_generator(stream, i).integers(2**62)
    finally:
        venv.close()


def test_a_real_fit_is_cached_by_content(tmp_path, monkeypatch):
    """A tiny real fit on the small world: the second call reads the cache; another budget is another entry; a
    damaged entry is a warned miss, refitted."""
    from bundlerl.evaluation import tuning

    monkeypatch.setenv("BUNDLERL_CACHE", str(tmp_path))
    budget = CEMBudget(rounds=1, candidates=2, episodes=4, elite=1)
    first = tuning.tuned_linear("small", budget=budget, progress=False)
    path = tuning.cache_path(tuning.cache_key("small", budget))
    assert path.is_file() and first.info["budget"]["rounds"] == 1
    calls = []
    monkeypatch.setattr(tuning, "fit_tuned_linear", lambda *a, **k: calls.append(a) or first)
    again = tuning.tuned_linear("small", budget=budget)
    np.testing.assert_array_equal(again.weights, first.weights)
    assert calls == []
    assert tuning.cache_key("small", budget) != tuning.cache_key("small", CEMBudget(rounds=2, candidates=2, episodes=4,
                                                                                     elite=1))
    assert tuning.cache_key("small", budget) != tuning.cache_key("revenue", budget)
    path.write_text("{garbage")
    with pytest.warns(RuntimeWarning, match="unreadable"):
        tuning.tuned_linear("small", budget=budget)
    assert len(calls) == 1


@pytest.mark.parametrize("module, name", [("bundlerl.env.observation", "SPEC_VERSION"),
                                          ("bundlerl.candidates.complementarity.fitting", "FIT_VERSION"),
                                          ("bundlerl.candidates.learned.fitting", "FIT_VERSION"),
                                          ("bundlerl.env.shopper_params", "SHOPPER_VERSION")])
def test_a_fit_on_other_candidates_or_features_is_not_a_cache_hit(monkeypatch, module, name):
    """Weights fitted before the observation spec, a candidate model's fit or the shopper changed are another entry
    (they were a hit when the key held only the world's config and data files)."""
    import importlib

    from bundlerl.evaluation import tuning

    budget = CEMBudget(rounds=1, candidates=2, episodes=4, elite=1)
    before = tuning.cache_key("small", budget)
    monkeypatch.setattr(importlib.import_module(module), name, getattr(importlib.import_module(module), name) + 1)
    assert tuning.cache_key("small", budget) != before


def test_tuned_linear_is_an_observable_baseline_everywhere(tmp_path):
    from bundlerl.evaluation.compare import named_policies

    assert OBSERVABLE_POLICIES[-1] == TUNED_LINEAR
    w = TunedLinearPolicy(np.ones(len(feature_names())))
    path = w.save(tmp_path / "w.json")
    pols = named_policies([TUNED_LINEAR, "random"], tuned_weights=path)
    assert callable(pols[TUNED_LINEAR]) and list(pols) == [TUNED_LINEAR, "random"]
    with pytest.raises(PolicyError, match="tuned-linear"):
        named_policies(["tuned-linaer"])


# ---------------------------------------------------------------------- the myopic control
def test_gamma_zero_is_accepted_and_the_myopic_flag_records_it():
    from bundlerl.agents.config import AgentConfigError, DQNConfig, PPOConfig
    from bundlerl.experiment.training import TrainConfig, train_dict

    assert PPOConfig(gamma=0.0).gamma == 0.0 and DQNConfig(gamma=0).gamma == 0
    with pytest.raises(AgentConfigError, match="gamma"):
        PPOConfig(gamma=-0.1)
    for algo in ("ppo", "dqn"):
        cfg = TrainConfig(algo=algo, preset="small", myopic=True)
        assert cfg.algo_config().gamma == 0.0 and train_dict(cfg)["myopic"] is True
        assert TrainConfig(algo=algo, preset="small").algo_config().gamma > 0.9
    with pytest.raises(AgentConfigError, match="myopic"):
        TrainConfig(myopic=True, hyperparams={"gamma": 0.9})


def test_a_myopic_run_records_gamma_zero(monkeypatch, tmp_path):
    from _train_fakes import patch_training, tiny_cfg

    from bundlerl.experiment.training import train

    patch_training(monkeypatch.setattr)
    for algo in ("ppo", "dqn"):
        res = train(tiny_cfg(algo, timesteps=64, myopic=True), out=tmp_path, log=lambda m: None)
        cfg = yaml.safe_load((res.run_dir / "config.yaml").read_text())
        assert cfg["train"]["myopic"] is True and cfg["algo_config"]["gamma"] == 0.0


def test_train_cli_has_a_myopic_flag():
    import argparse

    from bundlerl.scripts import train as train_cmd

    sub = argparse.ArgumentParser().add_subparsers()
    train_cmd.add_parser(sub)
    p = sub.choices["train"]
    assert p.parse_args(["--myopic"]).myopic is True and p.parse_args([]).myopic is None  # None: not given (--resume keeps the run's)
