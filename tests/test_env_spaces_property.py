"""Every observation lies inside its declared space: a property test over every registered id and action mode.

Each registered id runs on a small world (the ``small`` catalogue with the id's reward and action mode; the
instacart id on the tests/fixtures/instacart folder) with a horizon drawn from 1 to 40, under sequences of moves
drawn by Hypothesis: random valid actions, masked actions, out-of-range actions (refused with InvalidActionError,
leaving the env as it was), the priciest / cheapest candidate (pushes money counters to their bounds), the same
action again (repeats, satiation), and resets mid-episode with new seeds; episodes end and restart along the way.
After every reset and step the observation (and, in the batched env, every ``terminal_observation``) must be in
``observation_space``, float32, with the info / ``action_masks()`` mask equal to the observation's.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bundlerl  # noqa: F401  - registers the ids
from bundlerl.candidates.features import COL
from bundlerl.env.config import PRESETS, get_config, instacart_config
from bundlerl.env.observation import CANDIDATES_KEY, MASK_KEY
from bundlerl.env.registration import ENV_IDS
from bundlerl.env.session import InvalidActionError
from bundlerl.env.vec_env import BundleRecVecEnv

SMALL = PRESETS["small"]
FIXTURE = Path(__file__).parent / "fixtures" / "instacart"
MOVES = ("valid", "masked", "out_of_range", "priciest", "cheapest", "repeat", "reset")
HORIZONS = (1, 3, SMALL.horizon, 40)


def _small_config(env_id: str, horizon: int):
    """The id's config on a small world (same reward and action mode), with ``horizon``."""
    base = ENV_IDS[env_id][0].get("preset", "default")
    if base == "instacart":
        return instacart_config(FIXTURE, **{k: getattr(SMALL, k) for k in (
            "n_personas", "K", "K_max", "profile_dim", "compose_items")}, horizon=horizon)
    return SMALL.replace(reward=get_config(base).reward, name=f"small-{base}", horizon=horizon)


def _assert_in_space(space: gym.spaces.Dict, obs: dict, where: str) -> None:
    for key, sub in space.spaces.items():
        v = obs[key]
        assert v.dtype == np.float32 and v.shape == sub.shape, (where, key, v.dtype, v.shape)
        if not sub.contains(v):
            bad = np.argwhere(~((v >= sub.low) & (v <= sub.high)))
            i = tuple(bad[0]) if bad.size else ()
            raise AssertionError(f"{where}: obs[{key!r}] outside its space at {i}: {v[i] if i else v} not in "
                                 f"[{sub.low[i] if i else sub.low}, {sub.high[i] if i else sub.high}]")


def _pick(move: str, k: int, mask: np.ndarray, cand: np.ndarray, last: int) -> "int | float":
    """The action of ``move`` for one row (``k`` draws among the eligible ones)."""
    valid, masked = np.flatnonzero(mask), np.flatnonzero(~mask)
    n = mask.size
    if move == "out_of_range":
        return (-1, n, n + 7, 2.5)[k % 4]
    if move == "masked" and masked.size:
        return int(masked[k % masked.size])
    if not valid.size:
        return int(k % n)
    if move in ("priciest", "cheapest"):
        price = cand[valid, COL.log_price]
        return int(valid[np.argmax(price) if move == "priciest" else np.argmin(price)])
    if move == "repeat" and 0 <= last < n:
        return last
    return int(valid[k % valid.size])


moves = st.lists(st.tuples(st.sampled_from(MOVES), st.integers(0, 1000)), min_size=20, max_size=150)


@pytest.mark.parametrize("env_id", sorted(ENV_IDS))
@given(seed=st.integers(0, 2**31 - 1), horizon=st.sampled_from(HORIZONS), plan=moves)
@settings(max_examples=15, deadline=None)
def test_single_env_observations_stay_in_their_space(env_id, seed, horizon, plan):
    config = _small_config(env_id, horizon)
    compose = ENV_IDS[env_id][0].get("action_mode") == "compose"
    env = gym.make(env_id, preset=config, **({} if compose else {"max_episode_steps": horizon}))
    space = env.observation_space
    obs, info = env.reset(seed=seed)
    _assert_in_space(space, obs, "reset")
    last = -1
    for t, (move, k) in enumerate(plan):
        mask = env.unwrapped.action_masks()
        np.testing.assert_array_equal(mask, obs[MASK_KEY] > 0)
        if move == "reset":
            obs, info = env.reset(seed=seed + t + 1)
            _assert_in_space(space, obs, f"reset at move {t}")
            continue
        a = _pick(move, k, mask, obs[CANDIDATES_KEY], last)
        if move == "out_of_range":
            with pytest.raises(InvalidActionError, match="mask"):
                env.step(a)
            np.testing.assert_array_equal(env.unwrapped.action_masks(), mask)  # refused: nothing changed
            continue
        obs, r, term, trunc, info = env.step(a)
        last = int(a)
        _assert_in_space(space, obs, f"step {t} ({move}, action {a})")
        assert np.isfinite(r)
        np.testing.assert_array_equal(info[MASK_KEY], obs[MASK_KEY] > 0)
        if term or trunc:
            obs, info = env.reset(seed=seed + 10_000 + t)
            _assert_in_space(space, obs, f"reset after the end at move {t}")


@pytest.mark.parametrize("action_mode", ["bundle", "compose"])
@given(seed=st.integers(0, 2**31 - 1), horizon=st.sampled_from(HORIZONS),
       plan=st.lists(st.lists(st.tuples(st.sampled_from(MOVES), st.integers(0, 1000)), min_size=4, max_size=4),
                     min_size=10, max_size=80))
@settings(max_examples=20, deadline=None)
def test_vec_env_observations_and_terminal_observations_stay_in_their_space(action_mode, seed, horizon, plan):
    """The batched env, 4 rows each with its own move per step (a row's "reset" or "out_of_range" applies to the
    whole batch: ``reset()``, or a refused step)."""
    vec = BundleRecVecEnv(SMALL.replace(horizon=horizon), num_envs=4, seed=seed, action_mode=action_mode)
    space = vec.observation_space
    obs = vec.reset()

    def check(batch, where):
        for i in range(batch[MASK_KEY].shape[0]):
            _assert_in_space(space, {k: v[i] for k, v in batch.items()}, f"{where}, row {i}")

    check(obs, "reset")
    last = np.full(4, -1)
    for t, row_moves in enumerate(plan):
        masks = vec.action_masks()
        np.testing.assert_array_equal(masks, obs[MASK_KEY] > 0)
        kinds = [m for m, _ in row_moves]
        if "reset" in kinds:
            obs = vec.reset()
            check(obs, f"reset at move {t}")
            continue
        actions = [_pick(m, k, masks[i], obs[CANDIDATES_KEY][i], last[i]) for i, (m, k) in enumerate(row_moves)]
        if "out_of_range" in kinds:
            with pytest.raises(InvalidActionError):
                vec.step(np.array(actions))
            np.testing.assert_array_equal(vec.action_masks(), masks)
            continue
        obs, rewards, dones, infos = vec.step(np.array(actions))
        last = np.array(actions)
        assert np.isfinite(rewards).all()
        check(obs, f"step {t}")
        for i in np.flatnonzero(dones):
            _assert_in_space(space, infos[i]["terminal_observation"], f"terminal observation of row {i}, step {t}")
