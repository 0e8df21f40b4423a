"""An id that fixes a reward mode (or an action mode) keeps it under any ``preset=`` override; only an explicit
``reward=`` / ``action_mode=`` changes it. Swept over every registered id and every world override."""

from __future__ import annotations

import gymnasium as gym
import pytest

import bundlerl  # noqa: F401 - registers the ids
from bundlerl.env import ConfigError, get_config
from bundlerl.env.registration import ENV_IDS

IDS = sorted(i for i in ENV_IDS if "instacart" not in i)  # instacart needs a data folder
SMALL = get_config("small")


def _expected(env_id: str, preset) -> tuple:
    """(reward, action mode) the env must have: the id's own where it names them, else the preset's."""
    kwargs = ENV_IDS[env_id][0]
    reward = kwargs.get("reward", get_config(preset).reward)
    return reward, kwargs.get("action_mode", "bundle")


@pytest.mark.parametrize("env_id", IDS)
@pytest.mark.parametrize("preset", ["small", SMALL.replace(name="small-clicks", reward="clicks"),
                                    SMALL.replace(name="small-revenue", reward="revenue")],
                         ids=["small", "cfg-clicks", "cfg-revenue"])
def test_a_preset_override_keeps_the_ids_reward_and_action_mode(env_id, preset):
    env = gym.make(env_id, preset=preset)
    try:
        core = env.unwrapped
        assert (core.config.reward, core.action_mode) == _expected(env_id, preset), env_id
        assert core.world.n_items == SMALL.n_items  # the override's world
    finally:
        env.close()


@pytest.mark.parametrize("reward", ["clicks", "purchases"])
def test_an_explicit_reward_argument_wins(reward):
    env = gym.make("bundlerl/BundleRec-revenue-v0", preset="small", reward=reward)
    assert env.unwrapped.config.reward == reward
    env.close()


def test_an_unknown_reward_argument_is_a_config_error():
    with pytest.raises(ConfigError, match="reward='psychic'"):
        gym.make("bundlerl/BundleRec-revenue-v0", preset="small", reward="psychic")
