"""A tiny stand-in of the bundle env's observation contract, for agent unit tests only.

Dict obs: profile (P,), history (P,), session (S,), candidates (K, F), action_mask (K,). The reward
of candidate k is its feature 0 (so a learner can tell candidates apart); masked actions cost 1.
All randomness from ``self.np_random``.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from bundlerl.candidates.features import CANDIDATE_FEATURES
from bundlerl.env.observation import CANDIDATES_KEY, HISTORY_KEY, MASK_KEY, PROFILE_KEY, SESSION_KEY

P, S, K, F = 4, 3, 5, len(CANDIDATE_FEATURES)  # so the baselines read it


def fake_space(k: int = K) -> spaces.Dict:
    return spaces.Dict({
        PROFILE_KEY: spaces.Box(-1, 1, (P,), np.float32),
        HISTORY_KEY: spaces.Box(-1, 1, (P,), np.float32),
        SESSION_KEY: spaces.Box(0, np.inf, (S,), np.float32),
        CANDIDATES_KEY: spaces.Box(-np.inf, np.inf, (k, F), np.float32),
        MASK_KEY: spaces.Box(0, 1, (k,), np.float32),
    })


class FakeBundleEnv(gym.Env):
    def __init__(self, horizon: int = 5):
        self.observation_space = fake_space()
        self.action_space = spaces.Discrete(K)
        self.horizon = horizon

    def _draw(self):
        r = self.np_random
        mask = (r.random(K) < 0.6).astype(np.float32)
        mask[r.integers(K)] = 1.0
        cand = r.normal(size=(K, F)).astype(np.float32) * mask[:, None]
        self._obs = {
            PROFILE_KEY: r.uniform(-1, 1, P).astype(np.float32),
            HISTORY_KEY: np.zeros(P, np.float32),
            SESSION_KEY: np.array([self.t / self.horizon, 0, 0], np.float32),
            CANDIDATES_KEY: cand,
            MASK_KEY: mask,
        }
        return self._obs

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._draw(), {}

    def step(self, action):
        a = int(action)
        ok = self._obs[MASK_KEY][a] > 0
        reward = float(self._obs[CANDIDATES_KEY][a, 0]) if ok else -1.0
        self.t += 1
        return self._draw(), reward, False, self.t >= self.horizon, {}

    def action_masks(self):
        return self._obs[MASK_KEY] > 0


def fake_vec_env(n: int = 4, seed=0):
    """``n`` stand-in envs seeded with ``seed`` (an int, or a SeedSequence stream as the commands pass)."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    class StreamSeeded(DummyVecEnv):
        def seed(self, seed=None):
            if isinstance(seed, np.random.SeedSequence):
                seed = int(seed.generate_state(1)[0] % 2**31)
            return super().seed(seed)

    venv = StreamSeeded([FakeBundleEnv for _ in range(n)])
    venv.seed(seed)
    return venv


class FakeBundleVecEnv:
    """Stand-in of ``bundlerl.env.vec_env.BundleRecVecEnv`` for evaluation code paths: the stand-in env batched,
    with ``config`` (name, K_max) and ``last_outcome`` as ``bundlerl.evaluation.rollout.evaluate`` reads them."""

    N_ITEMS, K_MAX = 20, 3

    def __init__(self, preset="small", num_envs=4, seed=0, action_mode="bundle"):
        from types import SimpleNamespace

        self.venv = fake_vec_env(num_envs, seed=seed)
        self.num_envs = num_envs
        self.config = SimpleNamespace(name=getattr(preset, "name", str(preset)), K_max=self.K_MAX)
        self.rng = np.random.default_rng(seed)
        self.last_outcome = None

    def reset(self):
        return self.venv.reset()

    def step(self, actions):
        obs, rew, dones, infos = self.venv.step(np.asarray(actions))
        from types import SimpleNamespace

        n, r = self.num_envs, self.rng
        sizes = r.integers(1, self.K_MAX + 1, size=n)
        shown = np.full((n, self.K_MAX), -1, np.int32)
        for i, s in enumerate(sizes):
            shown[i, :s] = r.choice(self.N_ITEMS, size=s, replace=False)
        click = rew > 0
        self.last_outcome = SimpleNamespace(
            click=click, n_bought=np.where(click, 1, 0), revenue=np.where(click, 2.0, 0.0),
            responded=np.ones(n, bool), invalid=rew == -1.0, shown=shown,
            truncated=dones.copy(), terminated=np.zeros(n, bool))
        return obs, rew, dones, infos

    def close(self):
        pass


def fake_world(seed: int = 0):
    """A world with a catalogue of ``FakeBundleVecEnv.N_ITEMS`` items: embeddings, categories, complement graph."""
    from types import SimpleNamespace

    r = np.random.default_rng(seed)
    emb = r.normal(size=(FakeBundleVecEnv.N_ITEMS, 8)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    cat = SimpleNamespace(embeddings=emb, category=r.integers(4, size=FakeBundleVecEnv.N_ITEMS),
                          complement_graph=r.random((4, 4)).astype(np.float32))
    return SimpleNamespace(catalog=cat)
