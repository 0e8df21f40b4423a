"""env/reward.py: the reward is a function of the shopper's response and the weights; the reward modes."""

from __future__ import annotations

import numpy as np
import pytest

from bundlerl.env import PRESETS, ConfigError, EnvConfig, env_config_overrides
from bundlerl.env.observation import MASK_KEY
from bundlerl.env.reward import REWARD_MODES, RewardError, RewardWeights, penalised, reward, reward_weights

SMALL = PRESETS["small"]


def test_the_modes():
    assert {k: (w.w_click, w.w_buy, w.w_rev) for k, w in REWARD_MODES.items()} == {
        "clicks": (1, 0, 0), "purchases": (0, 1, 0), "revenue": (0, 0, 1)}
    assert reward_weights("revenue") is REWARD_MODES["revenue"]
    w = RewardWeights(0.1, 1.0, 0.5)
    assert reward_weights(w) is w
    with pytest.raises(RewardError, match=r"use one of \['clicks', 'purchases', 'revenue'\]"):
        reward_weights("likes")


@pytest.mark.parametrize("bad, match", [(dict(w_buy=0.0), "all 0"), (dict(w_click=-1.0), "w_click"),
                                        (dict(w_rev=float("nan")), "w_rev"), (dict(w_buy=True), "w_buy")])
def test_weights_are_validated(bad, match):
    with pytest.raises(RewardError, match=match):
        RewardWeights(**bad)


def test_reward_is_linear_in_the_response_and_the_penalty_is_charged_on_masked_actions():
    w = RewardWeights(w_click=0.5, w_buy=2.0, w_rev=3.0)
    click, n, paid = np.array([True, False, True]), np.array([2, 0, 0]), np.array([10.0, 0.0, 0.0])
    np.testing.assert_allclose(reward(click, n, paid, w, mean_price=5.0), [0.5 + 4 + 6, 0, 0.5])
    out = penalised(np.array([1.5, 0.0], np.float32), np.array([False, True]), 1.0)
    assert out.dtype == np.float32 and out.tolist() == [1.5, -1.0]


@pytest.mark.parametrize("mode", [*sorted(REWARD_MODES), RewardWeights(w_click=0.25, w_buy=1.0, w_rev=0.5)])
def test_the_env_pays_the_reward_of_the_response(mode):
    """Every step's reward is reward(click, items bought, paid) of the reported response, minus the penalty."""
    from bundlerl.env.vec_env import BundleRecVecEnv

    cfg = SMALL.replace(reward=mode, name="small-r")
    v = BundleRecVecEnv(cfg, num_envs=32, seed=3)
    obs = v.reset()
    rng = np.random.default_rng(0)
    w, seen = cfg.reward_weights(), 0.0
    for t in range(12):
        mask = obs[MASK_KEY] > 0
        if t % 4 == 3:  # now and then a masked action: nothing shown, penalised
            mask = ~mask
        obs, r, _, _ = v.step(np.argmax(rng.random(mask.shape) * mask, axis=1))
        out = v.last_outcome
        want = reward(out.click, out.n_bought, out.revenue, w, v.world.mean_price) - cfg.invalid_action_penalty * out.invalid
        np.testing.assert_allclose(r, want, rtol=1e-6, atol=1e-6)
        seen += float(np.abs(r[~out.invalid]).sum())
    assert seen > 0


def test_custom_weights_round_trip_and_override():
    cfg = SMALL.replace(reward=RewardWeights(w_click=0.25, w_buy=1.0, w_rev=0.5), name="small-w")
    d = cfg.to_dict()
    assert d["reward"] == {"w_click": 0.25, "w_buy": 1.0, "w_rev": 0.5}
    assert EnvConfig.from_dict(d) == cfg
    tuned = env_config_overrides(SMALL, ["reward.w_click=0.5"])  # the weights of the mode in force, changed
    assert tuned.reward == RewardWeights(w_click=0.5, w_buy=1.0, w_rev=0.0)
    assert env_config_overrides(tuned, ["reward=revenue"]).reward == "revenue"
    with pytest.raises(ConfigError, match="EnvConfig.reward: .*all 0"):
        env_config_overrides(SMALL, ["reward.w_buy=0"])
    with pytest.raises(ConfigError, match=r"reward has no field 'w_like'"):
        env_config_overrides(SMALL, ["reward.w_like=1"])
