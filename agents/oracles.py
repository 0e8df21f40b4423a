"""Oracles: policies that plan with the TRUE shopper model. They read simulator truth.

They exist to measure headroom (how much a policy could earn on an environment), never to be
deployed: each sets ``uses_simulator_truth = True``, its name starts with ``oracle-``, and
evaluation tables label it as such. Both choose among the env's current candidate bundles
(the same action space as every other policy), bundle action mode only.

- :class:`OneStepOracle`: the candidate with the highest exact one-step expected reward.
- :class:`LookaheadOracle`: a rollout planner. For the most promising candidates it simulates
  several futures with the true dynamics (the candidate now, then the one-step oracle's choices
  among the same candidates), with common random numbers across candidates, and picks the best
  mean simulated return. It sees what a purchase activates, what a miss costs in fatigue and
  leaving, and what spending does to the budget; it does not model future candidate pools.
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
    """ORACLE (reads simulator truth): plans over the candidates with rollouts of the true model.

    For each of the ``top_m`` candidates with the best one-step expected reward it simulates
    ``n_rollouts`` futures on copies of the hidden state: show the candidate, then for the next
    ``depth - 1`` steps (never past the horizon) show what the one-step oracle would show among the
    same candidates, accumulating the true rewards until the simulated shopper leaves. The score of a
    candidate is its mean simulated return; the others score below every planned one. This is a
    one-step policy-improvement (rollout) of the one-step oracle, so it sees what a purchase activates,
    what a miss costs in fatigue and leaving, and what spending does to the budget. It does not model
    future candidate pools (it assumes the current candidates stay on offer).

    Common random numbers: rollout r of every candidate uses the same uniforms, so differences between
    candidates are not drowned by sampling noise. The uniforms come from the oracle's own generator
    (seeded by ``seed``); the env's random streams are never touched.

    :param vec_env: the BundleRecVecEnv it acts in.
    :param n_rollouts: simulated futures per candidate, >= 1.
    :param depth: steps simulated per future, including the first, >= 1 (1 = the one-step oracle's
        choice, up to sampling noise).
    :param top_m: candidates planned per user (the best by one-step expected reward), >= 1.
    :param chunk: users planned at once (memory ~ chunk x top_m x n_rollouts hidden-state copies).
    :param seed: seed of the oracle's rollout generator.
    """

    name = "oracle-lookahead"

    def __init__(self, vec_env, n_rollouts: int = 16, depth: int = 6, top_m: int = 6, chunk: int = 16, seed: int = 0):
        super().__init__(vec_env)
        for label, v in (("n_rollouts", n_rollouts), ("depth", depth), ("top_m", top_m), ("chunk", chunk)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise PolicyError(f"{label}={v!r}; it must be an int >= 1")
        self.n_rollouts, self.depth, self.top_m, self.chunk = int(n_rollouts), int(depth), int(top_m), int(chunk)
        self.rng = np.random.default_rng([int(seed), 0x0AC1E])

    def scores(self, model, state, items):
        horizon = self.venv.core.config.horizon
        steps_left = horizon - np.asarray(self.venv.core.t)  # steps still to come, this one included
        out = np.empty(items.shape[:2])
        for lo in range(0, items.shape[0], self.chunk):
            rows = np.arange(lo, min(lo + self.chunk, items.shape[0]))
            out[rows] = self._plan(model, state.take(rows), items[rows], steps_left[rows])
        return out

    def _plan(self, model, state, items, steps_left):
        n, K, Km = items.shape
        now = model.expected_reward(state, items)  # (n, K)
        valid = (items >= 0).any(-1)
        M, R = min(self.top_m, K), self.n_rollouts
        first = np.argsort(-np.where(valid, now, -np.inf), axis=1, kind="stable")[:, :M]  # (n, M)
        # one simulated row per (user, first candidate, rollout); the candidates' static terms are shared
        rows = np.repeat(np.arange(n), M * R)
        sim = state.take(rows)
        terms = model.bundle_terms(items, rows_per_group=M * R)
        cand_valid = valid[rows]
        depth = np.repeat(np.minimum(self.depth, np.maximum(steps_left, 1)), M * R)
        u = self.rng.random((n, 1, R, self.depth, Km + 2))  # shared by the M candidates: common random numbers
        u = np.broadcast_to(u, (n, M, R, self.depth, Km + 2)).reshape(n * M * R, self.depth, Km + 2)
        ret = np.zeros(n * M * R)
        choice = np.repeat(first.reshape(-1), R)
        for d in range(self.depth):
            live = sim.active & (d < depth)
            if not live.any():
                break
            if d > 0:  # the base policy: the one-step oracle over the same candidates
                er = model.expected_reward(sim, terms)
                choice = np.argmax(np.where(cand_valid, er, -np.inf), axis=1)
            shown = np.where(live[:, None], items[rows, choice], -1)
            resp = model.step(sim, shown, _ForcedUniforms(np.ascontiguousarray(u[:, d])))
            ret += np.where(live, resp.reward, 0.0)
        value = ret.reshape(n, M, R).mean(-1)
        # planned candidates outrank the others; the others keep their one-step order below them
        # (rewards are >= 0, so simulated returns are too)
        out = np.where(valid, now - now.max(initial=0.0, where=valid) - 1.0, -np.inf)
        np.put_along_axis(out, first, value, axis=1)
        return out


ORACLES = {"oracle-one-step": OneStepOracle, "oracle-lookahead": LookaheadOracle}
"""Oracle classes by name; each takes the vec env as its first argument."""


def make_oracle(name: str, vec_env, **kwargs) -> Policy:
    """An oracle by name (see :data:`ORACLES`); KeyError names the valid ones."""
    try:
        cls = ORACLES[name]
    except KeyError:
        raise KeyError(f"unknown oracle {name!r}; use one of {sorted(ORACLES)}") from None
    return cls(vec_env, **kwargs)
