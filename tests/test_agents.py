"""Agents: configs, factories, the candidate-set network's order-freedom, masking (fast; a stand-in env).

The stand-in env (tests/_agents_fake_env.py) follows the observation contract only; the real env
is exercised in tests/test_train_cli.py and tests/test_evaluate_cli.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from _agents_fake_env import K, fake_space, fake_vec_env
from hypothesis import given, settings
from hypothesis import strategies as st

th = pytest.importorskip("torch")

from bundlerl.agents.config import (  # noqa: E402
    ALGOS,
    AgentConfigError,
    DQNConfig,
    NetworkConfig,
    PPOConfig,
    config_from_dict,
    config_to_dict,
    load_algo_config,
)
from bundlerl.env.observation import CANDIDATES_KEY, HISTORY_KEY, MASK_KEY, PROFILE_KEY, SESSION_KEY  # noqa: E402


# ---------------------------------------------------------------------------- configs
@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("preset", ["small", "default", "revenue"])
def test_yaml_configs_load_and_validate(algo, preset):
    cfg = load_algo_config(algo, preset)
    raw = yaml.safe_load(open(Path(__file__).resolve().parents[1] / "agents" / "configs" / f"{algo}.yaml"))
    key = preset if preset in raw else "default"
    for k, v in raw[key].items():
        if k != "network":
            assert getattr(cfg, k) == v
    assert cfg.network.extractor == raw[key]["network"]["extractor"]
    assert config_from_dict(algo, config_to_dict(cfg)) == cfg  # round trip


@pytest.mark.parametrize("cls,field,value", [
    (PPOConfig, "learning_rate", 0.0), (PPOConfig, "gamma", 1.5), (PPOConfig, "n_steps", 0),
    (PPOConfig, "batch_size", 10**9), (PPOConfig, "ent_coef", -0.1), (PPOConfig, "n_epochs", 2.5),
    (DQNConfig, "exploration_final_eps", 1.2), (DQNConfig, "tau", 0.0), (DQNConfig, "buffer_size", 0),
    (NetworkConfig, "extractor", "attention"), (NetworkConfig, "net_arch", [64, -1]),
    (NetworkConfig, "activation", "sigmoid"), (NetworkConfig, "hidden", True),
])
def test_invalid_config_values_raise(cls, field, value):
    with pytest.raises(AgentConfigError, match=field):
        cls(**{field: value})


def test_overrides_and_unknown_keys(tmp_path):
    cfg = load_algo_config("ppo", "small", overrides={"learning_rate": 1e-4, "network": {"extractor": "mlp"}})
    assert cfg.learning_rate == 1e-4 and cfg.network.extractor == "mlp"
    assert cfg.network.hidden == load_algo_config("ppo", "small").network.hidden  # partial network merge
    with pytest.raises(AgentConfigError, match="unknown keys"):
        load_algo_config("dqn", "small", overrides={"n_steps": 3})
    with pytest.raises(AgentConfigError, match="unknown algo"):
        load_algo_config("a2c")
    bad = tmp_path / "x.yaml"
    bad.write_text("small: {learning_rate: 0.1}\n")
    with pytest.raises(AgentConfigError, match="no key"):
        load_algo_config("ppo", "default", path=bad)


# ---------------------------------------------------------------------------- network order-freedom
def _obs_batch(rng, n, k=K, valid_p=0.7):
    sp = fake_space(k).spaces
    mask = (rng.random((n, k)) < valid_p).astype(np.float32)
    mask[np.arange(n), rng.integers(k, size=n)] = 1.0
    return {
        PROFILE_KEY: rng.uniform(-1, 1, (n,) + sp[PROFILE_KEY].shape).astype(np.float32),
        HISTORY_KEY: rng.uniform(-1, 1, (n,) + sp[HISTORY_KEY].shape).astype(np.float32),
        SESSION_KEY: rng.uniform(0, 1, (n,) + sp[SESSION_KEY].shape).astype(np.float32),
        CANDIDATES_KEY: (rng.normal(size=(n,) + sp[CANDIDATES_KEY].shape) * mask[..., None]).astype(np.float32),
        MASK_KEY: mask,
    }


def _t(obs):
    return {k: th.as_tensor(v) for k, v in obs.items()}


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 4))
def test_set_extractor_and_heads_are_permutation_equivariant(seed, n):
    from bundlerl.agents.networks import CandidateScorer, CandidateSetExtractor, _Scorer

    rng = np.random.default_rng(seed)
    th.manual_seed(seed % 1000)
    fe = CandidateSetExtractor(fake_space(), hidden=8, context_dim=4)
    head = CandidateScorer(fe.layout, hidden=8, vf_arch=[8], act=th.nn.ReLU)
    qhead = _Scorer(fe.layout, 8, th.nn.Tanh)
    obs = _obs_batch(rng, n)
    perm = rng.permutation(K)
    pobs = {**obs, CANDIDATES_KEY: obs[CANDIDATES_KEY][:, perm], MASK_KEY: obs[MASK_KEY][:, perm]}
    with th.no_grad():
        e, pe = fe.encode(_t(obs)), fe.encode(_t(pobs))
        f, pf = fe(_t(obs)), fe(_t(pobs))
        logits, value = head(f)
        plogits, pvalue = head(pf)
        q, pq = qhead(f), qhead(pf)
    np.testing.assert_allclose(pe["pooled"], e["pooled"], atol=1e-5)   # pooled features invariant
    np.testing.assert_allclose(pe["context"], e["context"], atol=1e-6)
    np.testing.assert_allclose(pe["tokens"], e["tokens"][:, perm], atol=1e-6)  # tokens permuted
    np.testing.assert_allclose(plogits, logits[:, perm], atol=1e-4)    # logits permuted
    np.testing.assert_allclose(pq, q[:, perm], atol=1e-4)
    np.testing.assert_allclose(pvalue, value, atol=1e-5)               # value invariant
    assert (logits.numpy()[obs[MASK_KEY] == 0] <= -1e7).all()    # masked logits


def test_pooling_ignores_masked_candidates():
    """Changing the features of a masked candidate changes nothing pooled (the mask really masks)."""
    from bundlerl.agents.networks import CandidateSetExtractor

    rng = np.random.default_rng(3)
    fe = CandidateSetExtractor(fake_space(), hidden=8, context_dim=4)
    obs = _obs_batch(rng, 6, valid_p=0.5)
    obs[MASK_KEY][:, 0] = 0.0
    obs[MASK_KEY][:, 1] = 1.0
    other = {**obs, CANDIDATES_KEY: obs[CANDIDATES_KEY].copy()}
    other[CANDIDATES_KEY][:, 0] += 5.0
    with th.no_grad():
        a, b = fe.encode(_t(obs))["pooled"], fe.encode(_t(other))["pooled"]
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_masked_fill_leaves_rows_without_valid_action():
    from bundlerl.agents.networks import masked_fill_invalid

    v = th.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    m = th.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    out = masked_fill_invalid(v, m, -9.0)
    assert out.tolist() == [[1.0, -9.0, 3.0], [4.0, 5.0, 6.0]]


# ---------------------------------------------------------------------------- factories, masking
def _tiny(algo, extractor, n_envs=4):
    over = {"num_envs": n_envs, "network": {"extractor": extractor, "hidden": 8, "context_dim": 4, "net_arch": [8]}}
    if algo == "dqn":
        over.update(learning_starts=16, batch_size=16, buffer_size=500)
    else:
        over.update(n_steps=8, batch_size=16)
    return load_algo_config(algo, "small", overrides=over)


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("extractor", ["set", "mlp"])
def test_factories_build_learn_and_never_choose_masked(algo, extractor):
    from bundlerl.agents.sb3 import SB3Policy, make_model

    venv = fake_vec_env(4, seed=1)
    model = make_model(algo, venv, _tiny(algo, extractor), seed=0)
    model.learn(64)
    assert model.num_timesteps >= 64
    rng = np.random.default_rng(0)
    obs = _obs_batch(rng, 64, valid_p=0.4)
    policy = SB3Policy(model)
    probs = policy.action_probabilities(obs)
    assert probs.shape == (64, K)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    assert (probs[obs[MASK_KEY] == 0] == 0).all()
    acts, props = policy.act(obs, deterministic=False, rng=rng)
    assert (obs[MASK_KEY][np.arange(64), acts] == 1).all()
    np.testing.assert_allclose(props, probs[np.arange(64), acts])
    kw = {"action_masks": obs[MASK_KEY] > 0} if algo == "maskable_ppo" else {}
    act_sb3, _ = model.predict(obs, deterministic=True, **kw)  # SB3's own verb
    if algo != "ppo" or extractor == "set":  # plain PPO + MLP does not mask inside SB3's predict
        assert (obs[MASK_KEY][np.arange(64), act_sb3] == 1).all()


def test_dqn_masks_q_exploration_and_epsilon_policy():
    from bundlerl.agents.sb3 import SB3Policy, make_model

    venv = fake_vec_env(4)
    model = make_model("dqn", venv, _tiny("dqn", "set"), seed=0)
    obs = _obs_batch(np.random.default_rng(5), 200, valid_p=0.3)
    mask = obs[MASK_KEY] > 0
    with th.no_grad():
        q = model.q_net(model.policy.obs_to_tensor(obs)[0]).numpy()
    assert (q[~mask] <= -1e8).all() and (q[mask] > -1e8).all()  # TD max runs over valid actions only
    model.exploration_rate = 1.0
    a, _ = model.predict(obs, deterministic=False)                # pure exploration
    assert mask[np.arange(200), a].all()
    assert len(np.unique(a)) > 1
    model._last_obs = obs
    warm, _ = model._sample_action(learning_starts=10**9, n_envs=200)  # warm-up sampling
    assert mask[np.arange(200), warm].all()
    eps = SB3Policy(model, epsilon=0.2).action_probabilities(obs)
    nvalid = mask.sum(axis=1)
    np.testing.assert_allclose(eps.max(axis=1), 0.8 + 0.2 / nvalid)
    assert (eps[~mask] == 0).all() and (eps[mask] > 0).all()


def test_sb3policy_rejects_bad_input():
    from bundlerl.agents.policy import PolicyError
    from bundlerl.agents.sb3 import SB3Policy, make_model

    model = make_model("ppo", fake_vec_env(4), _tiny("ppo", "set"), seed=0)
    with pytest.raises(PolicyError):
        SB3Policy(model, epsilon=0.1)
    obs = _obs_batch(np.random.default_rng(0), 1)
    with pytest.raises(PolicyError, match="batch axis"):
        SB3Policy(model).action_probabilities({k: v[0] for k, v in obs.items()})


def test_num_envs_mismatch_is_explained():
    from bundlerl.agents.sb3 import make_model

    with pytest.raises(AgentConfigError, match="num_envs"):
        make_model("ppo", fake_vec_env(2), _tiny("ppo", "set", n_envs=4))


@pytest.mark.parametrize("algo", ["maskable_ppo", "dqn"])
def test_save_load_roundtrip_keeps_policy(tmp_path, algo):
    from bundlerl.agents.sb3 import SB3Policy, load_model, make_model

    model = make_model(algo, fake_vec_env(4), _tiny(algo, "set"), seed=0)
    model.learn(32)
    model.save(tmp_path / "m.zip")
    again = load_model(algo, tmp_path / "m.zip")
    obs = _obs_batch(np.random.default_rng(1), 16)
    np.testing.assert_allclose(SB3Policy(again).action_probabilities(obs), SB3Policy(model).action_probabilities(obs),
                               atol=1e-6)
    with pytest.raises(FileNotFoundError):
        load_model(algo, tmp_path / "missing.zip")
