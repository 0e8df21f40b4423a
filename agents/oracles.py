"""Oracles: policies that plan with the TRUE shopper model. They read simulator truth.

They exist to measure headroom (how much a policy could earn on an environment), never to be
deployed: each sets ``uses_simulator_truth = True``, its name starts with ``oracle-``, and
evaluation tables label it as such. Both choose among the env's current candidate bundles
(the same action space as every other policy), bundle action mode only.

- :class:`OneStepOracle`: the candidate with the highest exact one-step expected reward.
- :class:`LookaheadOracle`: a rollout planner. For the most promising candidates it simulates
  several futures on forks of the env's sessions (the candidate now, then a base policy's choices
  among the candidates the env offers then: the one-step oracle, or any observable policy such as
  ``tuned-linear`` fed the forked sessions' own observations), with common random numbers across
  candidates, and picks the best mean simulated return.
"""

from __future__ import annotations

import numpy as np

from bundlerl.agents.policy import Observation, Policy, PolicyError, batch_size_of, check_name, greedy_probabilities
from bundlerl.env.observation import MASK_KEY
from bundlerl.utils.args import shown

__all__ = ["OneStepOracle", "LookaheadOracle", "ORACLES", "ORACLE_PREFIX", "oracle_name", "make_oracle"]


class _TruthPolicy(Policy):
    """Shared plumbing: reads the vec env's hidden state and candidate items for the observed batch."""

    uses_simulator_truth = True

    def __init__(self, vec_env):
        for attr in ("model", "state", "candidate_items"):
            if not hasattr(vec_env, attr):
                raise PolicyError(
                    f"{type(self).__name__} needs vec_env=a BundleRecVecEnv (it reads .{attr}); got "
                    f"{type(vec_env).__name__}"
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
        return self.venv.core.expected_reward(state, items)


class LookaheadOracle(_TruthPolicy):
    """ORACLE (reads simulator truth): plans with rollouts of the whole environment.

    For each planned candidate it simulates ``n_rollouts`` futures on forks of the env's sessions
    (:meth:`bundlerl.env.session.SessionBatch.fork`: hidden state, event log and candidate pool copied):
    show the candidate, then for the next ``depth - 1`` steps (never past the horizon) show what the
    **base policy** would show among the candidates the env offers *then* (pools are rebuilt after
    purchases as in the real env), accumulating the true rewards until the simulated session ends; the
    last simulated step adds its exact expected reward instead of a sampled one (the same mean, less
    noise; so with ``depth=1`` a candidate's value is its exact one-step expected reward). The score of
    a candidate is its mean simulated return; the other candidates score below every planned one.

    The base policy is the one-step oracle (``base=None``) or any observable :class:`Policy` (e.g.
    ``tuned-linear``): it is fed the forked sessions' own observations
    (:meth:`bundlerl.env.session.SessionBatch.observe`, the one observation code) and its deterministic
    choice is taken (so it must be memoryless, as the baselines and ``tuned-linear`` are). Planned
    candidates: the base policy's own choice now, then the best by one-step expected reward, ``top_m``
    in all. This is one step of policy improvement (a rollout) of the base: up to rollout noise it
    earns at least what the base earns, since the base's own choice is always among those compared.
    It sees what a purchase activates and which complements the env will then offer, what a miss costs
    in fatigue and leaving, and what spending does to the budget.

    Common random numbers: rollout r of every candidate of a user uses the same response streams, so
    differences between candidates are not drowned by sampling noise. The streams' keys come from the
    oracle's own generator (seeded by ``seed``); the env's own streams and state are never touched.

    :param vec_env: the BundleRecVecEnv it acts in.
    :param n_rollouts: simulated futures per candidate, >= 1.
    :param depth: steps simulated per future, including the first, >= 1.
    :param top_m: candidates planned per user, >= 1.
    :param chunk: users planned at once (memory ~ chunk x top_m x n_rollouts session copies).
    :param seed: seed of the oracle's rollout generator.
    :param base: the rollouts' base policy: None for the one-step oracle, else an observable Policy
        (name ``oracle-lookahead[<base name>]``).
    :param blind_budget: ABLATION: the planner does not know the shopper's budget: in its copies of the
        sessions (and its one-step values) the remaining budget is the personas' mean budget minus what this
        session has spent, not the true one (name ``...~budget``); the env itself is untouched.
    :raises PolicyError: a count that is not an int >= 1; a base that is not an observable Policy.
    """

    name = "oracle-lookahead"

    def __init__(self, vec_env, n_rollouts: int = 8, depth: int = 5, top_m: int = 5, chunk: int = 64, seed: int = 0,
                 base: Policy | None = None, blind_budget: bool = False):
        super().__init__(vec_env)
        for label, v in (("n_rollouts", n_rollouts), ("depth", depth), ("top_m", top_m), ("chunk", chunk)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise PolicyError(f"{label}={v!r}; it must be an int >= 1")
        if base is not None and (not isinstance(base, Policy) or getattr(base, "uses_simulator_truth", False)):
            raise PolicyError(f"base={base!r}; use None (the one-step oracle) or an observable bundlerl Policy "
                              "(e.g. tuned-linear): an oracle reads another env's truth")
        self.n_rollouts, self.depth, self.top_m, self.chunk = int(n_rollouts), int(depth), int(top_m), int(chunk)
        self.base = base
        if base is not None:
            self.name = f"{type(self).name}[{getattr(base, 'name', type(base).__name__)}]"
        self.blind_budget = bool(blind_budget)
        if self.blind_budget:
            self.name += "~budget"
        self.rng = np.random.default_rng([int(seed), 0x0AC1E])

    def scores(self, model, state, items):
        out = np.empty(items.shape[:2])
        for lo in range(0, items.shape[0], self.chunk):
            users = np.arange(lo, min(lo + self.chunk, items.shape[0]))
            out[users] = self._plan(model, state.take(users), users, items[users])
        return out

    def _base_actions(self, sim) -> np.ndarray:
        """(sim.n,) the base policy's choices in the sessions of ``sim`` (a SessionBatch)."""
        if self.base is None:  # the one-step oracle over the candidates offered now
            mask = sim.action_masks()
            er = sim.expected_reward(sim.state, np.where(mask[..., None], sim.cand_items, -1))
            return np.argmax(np.where(mask, er, -np.inf), axis=1)
        return self.base.act(sim.observe(), deterministic=True)[0]

    def _blind(self, state, users):
        """``state`` (a copy) with the remaining budget a planner blind to it would assume (see ``blind_budget``)."""
        core = self.venv.core
        initial = core.world.personas.budget[core.log.persona[users]].astype(np.float64)
        spent = initial - state.budget
        state.budget = np.maximum(float(core.world.personas.budget.mean()) - spent, 0.0).astype(np.float32)
        return state

    def _plan(self, model, state, users, items):
        """(n, K) scores of ``items`` (n, K, K_max; -1 = masked) for the env rows ``users``."""
        n, K, _ = items.shape
        if self.blind_budget:
            state = self._blind(state, users)
        now = self.venv.core.expected_reward(state, items)
        valid = (items >= 0).any(-1)
        M, R = min(self.top_m, K), self.n_rollouts
        order = np.where(valid, now, -np.inf)
        if self.base is not None:  # the base's own choice is always planned (the policy-improvement guarantee)
            own = self.base.act(self.venv.core.observe(users), deterministic=True)[0]
            ok = valid[np.arange(n), own]
            order[np.arange(n)[ok], own[ok]] = np.inf
        first = np.argsort(-order, axis=1, kind="stable")[:, :M]  # (n, M)
        # one simulated session per (user, first candidate, rollout)
        sim = self.venv.core.fork(np.repeat(users, M * R))
        keys = self.rng.integers(0, 2**63, size=(n, 1, R), dtype=np.uint64)  # shared by the M candidates
        sim.keys = np.broadcast_to(keys, (n, M, R)).reshape(-1).copy()
        if self.blind_budget:
            sim.state.budget = np.repeat(state.budget, M * R)
        ret = np.zeros(n * M * R)
        pos = np.arange(n * M * R)  # original position of each row of sim (ended rows are dropped)
        actions = np.repeat(first.reshape(-1), R)
        for d in range(self.depth):
            if d > 0:
                actions = self._base_actions(sim)
            if d == self.depth - 1:  # the last step: its exact expected reward (conditional expectation)
                mask = sim.action_masks()
                er = sim.expected_reward(sim.state, np.where(mask[..., None], sim.cand_items, -1))
                ret[pos] += er[np.arange(sim.n), actions]
                break
            out = sim.step(actions)
            ret[pos] += out.reward
            go_on = np.flatnonzero(~(out.terminated | out.truncated))
            if go_on.size == 0:
                break
            if go_on.size < sim.n:
                sim, pos = sim.fork(go_on), pos[go_on]
        value = ret.reshape(n, M, R).mean(-1)
        # planned candidates outrank the others, which keep their one-step order below them
        floor = min(float(value.min()), 0.0) - 1.0
        scores = np.where(valid, now - now.max(initial=0.0, where=valid) + floor, -np.inf)
        np.put_along_axis(scores, first, value, axis=1)
        return scores


ORACLES: dict[str, type[_TruthPolicy]] = {cls.name: cls for cls in (OneStepOracle, LookaheadOracle)}
"""The registry of oracles: class by name (each class's ``name``); each takes the vec env as its first argument."""

ORACLE_PREFIX = "oracle-"
"""Every oracle's name starts with it; ``oracle_name`` also accepts a name without it (``one-step``)."""


def oracle_name(name: str) -> str:
    """The registered name of ``name``: itself, or ``oracle-`` + ``name`` for the short form (``lookahead``).

    :raises PolicyError: neither is registered (the message lists :data:`ORACLES`).
    """
    if isinstance(name, str) and name not in ORACLES and ORACLE_PREFIX + name in ORACLES:
        return ORACLE_PREFIX + name
    return check_name(name, ORACLES, "oracle")


def make_oracle(name: str, vec_env, **kwargs) -> Policy:
    """An oracle by name (see :func:`oracle_name`) acting in ``vec_env``; ``kwargs`` go to its class.

    :raises PolicyError: an unknown name (the message lists the valid ones).
    """
    try:
        registered = oracle_name(name)
    except PolicyError as exc:
        raise PolicyError(f"make_oracle(name={shown(name)}): {exc}") from None
    return ORACLES[registered](vec_env, **kwargs)
