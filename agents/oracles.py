"""Oracles: policies that plan with the TRUE shopper model. They read simulator truth.

They exist to measure headroom (how much a policy could earn on an environment), never to be
deployed: each sets ``uses_simulator_truth = True``, its name starts with ``oracle-``, and
evaluation tables label it as such. Both choose among the env's current candidate bundles
(the same action space as every other policy), bundle action mode only.

- :class:`OneStepOracle`: the candidate with the highest exact one-step expected reward.
- :class:`LookaheadOracle`: adds the value of the state each response leads to. For every
  candidate it enumerates the shopper's possible responses (no click; click with each pattern of
  wanted items: 1 + 2^K_max outcomes, with their exact probabilities), applies the true dynamics
  to copies of the hidden state, and values each next state as
  ``m · (1 + q + ... + q^(R-1))`` where m is the best one-step expected reward among the
  candidates still valid there, q the probability of staying one more step at the new fatigue and
  R the steps left before the horizon. So it sees what a purchase activates, what a miss costs in
  fatigue and leaving, and what spending does to the budget; it does not model future candidate
  pools (it assumes the current candidates stay on offer).
"""

from __future__ import annotations

import numpy as np

from agents.policy import MASK_KEY, Observation, Policy, PolicyError, batch_size_of, greedy_probabilities

__all__ = ["OneStepOracle", "LookaheadOracle", "ORACLES", "make_oracle"]


class _ForcedUniforms:
    """An ``rng`` stand-in that returns given uniforms, forcing one response of ``ShopperModel.step``.

    ``step`` compares uniforms u with probabilities p as ``u < p``: u = 0 forces the event (whenever
    p > 0) and u = 1 forbids it. Outcomes with p = 0 get weight 0 in the enumeration, so they never count.
    """

    def __init__(self, u: np.ndarray):
        self.u = u

    def random(self, size) -> np.ndarray:
        if tuple(size) != self.u.shape:
            raise RuntimeError(f"forced uniforms have shape {self.u.shape}, step asked for {tuple(size)}")
        return self.u


class _TruthPolicy(Policy):
    """Shared plumbing: reads the vec env's hidden state and candidate items for the observed batch."""

    uses_simulator_truth = True

    def __init__(self, vec_env):
        for attr in ("model", "state", "candidate_items"):
            if not hasattr(vec_env, attr):
                raise PolicyError(
                    f"{type(self).__name__} needs a BundleRecVecEnv (it reads .{attr}); got {type(vec_env).__name__}"
                )
        if getattr(getattr(vec_env, "core", None), "mode", "bundle") != "bundle":
            raise PolicyError("oracles choose among candidate bundles: use action_mode='bundle'")
        self.venv = vec_env

    def _inputs(self, obs: Observation):
        n = batch_size_of(obs)
        items = np.asarray(self.venv.candidate_items)
        if items.shape[0] != n:
            raise PolicyError(f"observation batch has {n} rows, the oracle's env has {items.shape[0]}: use its own obs")
        mask = np.asarray(obs[MASK_KEY]) > 0
        return self.venv.model, self.venv.state, np.where(mask[..., None], items, -1), mask

    def action_probabilities(self, obs: Observation) -> np.ndarray:
        model, state, items, mask = self._inputs(obs)
        return greedy_probabilities(self.scores(model, state, items), mask)

    def scores(self, model, state, items: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


class OneStepOracle(_TruthPolicy):
    """ORACLE (reads simulator truth): the candidate with the highest exact one-step expected reward."""

    name = "oracle-one-step"

    def scores(self, model, state, items):
        return model.expected_reward(state, items)


class LookaheadOracle(_TruthPolicy):
    """ORACLE (reads simulator truth): one-step reward plus the value of the next state; see the module docstring.

    :param vec_env: the BundleRecVecEnv it acts in.
    :param future_weight: scale on the next-state value (0 = the one-step oracle), >= 0.
    :param chunk: users planned at once (memory: chunk x K x (1 + 2^K_max) copies of the hidden state).
    """

    name = "oracle-lookahead"

    def __init__(self, vec_env, future_weight: float = 1.0, chunk: int = 16):
        super().__init__(vec_env)
        if not np.isfinite(future_weight) or future_weight < 0:
            raise PolicyError(f"future_weight={future_weight}; it must be finite and >= 0")
        if chunk < 1:
            raise PolicyError(f"chunk={chunk}; it must be >= 1")
        self.future_weight, self.chunk = float(future_weight), int(chunk)

    def scores(self, model, state, items):
        horizon = self.venv.core.config.horizon
        steps_left = horizon - np.asarray(self.venv.core.t) - 1  # after the step being chosen now
        out = np.empty(items.shape[:2])
        for lo in range(0, items.shape[0], self.chunk):
            rows = np.arange(lo, min(lo + self.chunk, items.shape[0]))
            out[rows] = self._plan(model, state.take(rows), items[rows], steps_left[rows])
        return out

    def _plan(self, model, state, items, steps_left):
        n, K, Km = items.shape
        now = model.expected_reward(state, items)  # (n, K)
        if self.future_weight == 0:
            return now
        click = model.click_prob(state, items).astype(np.float64)  # (n, K)
        buy = model.purchase_probs(state, items).astype(np.float64)  # (n, K, Km)
        patterns = (np.arange(2**Km)[:, None] >> np.arange(Km)[None, :]) & 1  # (P, Km) wanted slots
        P = patterns.shape[0]
        # outcome 0: no click; outcomes 1..P: click with wanted pattern p
        p_want = np.prod(np.where(patterns[None, None], buy[:, :, None, :], 1.0 - buy[:, :, None, :]), axis=-1)
        prob = np.concatenate([(1.0 - click)[..., None], click[..., None] * p_want], axis=-1)  # (n, K, 1+P)
        O = 1 + P
        u = np.ones((n, K, O, Km + 2))
        u[:, :, 1:, 0] = 0.0  # click in outcomes 1..P
        u[:, :, 1:, 1:Km + 1] = 1.0 - patterns[None, None]  # wanted slots forced
        rows = np.repeat(np.arange(n), K * O)
        sim = state.take(rows)
        shown = np.repeat(items, O, axis=0).reshape(n, O, K, Km).transpose(0, 2, 1, 3).reshape(-1, Km)
        resp = model.step(sim, shown, _ForcedUniforms(u.reshape(-1, Km + 2)))
        # value of each next state: best one-step reward among candidates still on offer there
        cand = np.repeat(items, K * O, axis=0)  # (n*K*O, K, Km)
        nxt = model.expected_reward(sim, cand).max(axis=1)
        stay = 1.0 - model.leave_prob(sim.fatigue)
        R = np.repeat(np.maximum(steps_left, 0), K * O)
        geom = np.where(np.isclose(stay, 1.0), R, (1.0 - stay**R) / np.maximum(1.0 - stay, 1e-12))
        value = np.where(resp.out_of_budget, 0.0, stay * nxt * geom).reshape(n, K, O)
        return now + self.future_weight * (prob * value).sum(-1)


ORACLES = {"oracle-one-step": OneStepOracle, "oracle-lookahead": LookaheadOracle}
"""Oracle classes by name; each takes the vec env as its first argument."""


def make_oracle(name: str, vec_env, **kwargs) -> Policy:
    """An oracle by name (see :data:`ORACLES`); KeyError names the valid ones."""
    try:
        cls = ORACLES[name]
    except KeyError:
        raise KeyError(f"unknown oracle {name!r}; use one of {sorted(ORACLES)}") from None
    return cls(vec_env, **kwargs)
