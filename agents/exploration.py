"""Exploration wrappers for logging: a policy whose every valid candidate keeps a known, non-zero propensity, so that
off-policy estimators can reweight its logs (``bundlerl.evaluation.ope``). Each wraps any :class:`Policy` and is one:

- :class:`EpsilonGreedy`: ``(1 - eps) * onehot(argmax pi) + eps * uniform(valid)``;
- :class:`Softmax`: ``softmax(scores / T)`` over the valid candidates, ``scores`` the base policy's own
  (``base.scores(obs)`` when it has them, e.g. the linear baselines; else ``log pi``, so that ``T = 1`` is the base);
- :class:`PropensityFloor`: ``(1 - p) * pi + p * uniform(valid)``: every valid candidate gets at least ``p / n_valid``.

and the opposite, for evaluating a stochastic policy's deterministic form: :class:`Greedy` (one-hot on ``argmax pi``).

Rows with no valid candidate stay uniform over all K (the Policy protocol's rule).
"""

from __future__ import annotations

import numpy as np

from bundlerl.agents.policy import (
    Observation,
    Policy,
    PolicyError,
    check_probabilities,
    greedy_probabilities,
    masked_softmax,
    uniform_valid,
)
from bundlerl.env.observation import MASK_KEY

__all__ = ["EpsilonGreedy", "Softmax", "PropensityFloor", "Greedy", "exploring"]


def _unit(value: float, name: str, low_open: bool = False) -> float:
    v = float(value)
    if not np.isfinite(v) or v < 0 or v > 1 or (low_open and v == 0):
        raise PolicyError(f"{name}={value!r}; it must be in {'(0' if low_open else '[0'}, 1]")
    return v


class _Wrapper(Policy):
    def __init__(self, base: Policy):
        if not isinstance(base, Policy):
            raise PolicyError(f"exploration wraps a bundlerl Policy; got {type(base).__name__}")
        self.base = base
        self.uses_simulator_truth = base.uses_simulator_truth

    def _base_probs(self, obs: Observation) -> np.ndarray:
        return check_probabilities(self.base.action_probabilities(obs), obs, self.base.name)

    def reset(self, env_indices=None) -> None:
        self.base.reset(env_indices)


class EpsilonGreedy(_Wrapper):
    """With probability ``epsilon`` a uniform valid candidate, else the base policy's most probable one."""

    def __init__(self, base: Policy, epsilon: float):
        super().__init__(base)
        self.epsilon = _unit(epsilon, "epsilon")
        self.name = f"{base.name}+eps{self.epsilon:g}"

    def action_probabilities(self, obs: Observation) -> np.ndarray:
        p = self._base_probs(obs)
        mask = np.asarray(obs[MASK_KEY])
        greedy = greedy_probabilities(p, mask) if (np.asarray(mask) > 0).any() else p
        return (1 - self.epsilon) * greedy + self.epsilon * uniform_valid(mask)


class Softmax(_Wrapper):
    """``softmax(scores / temperature)`` over the valid candidates (see the module docstring for ``scores``)."""

    def __init__(self, base: Policy, temperature: float):
        super().__init__(base)
        t = float(temperature)
        if not np.isfinite(t) or t <= 0:
            raise PolicyError(f"temperature={temperature!r}; it must be a number > 0")
        self.temperature = t
        self.name = f"{base.name}+softmax{t:g}"

    def action_probabilities(self, obs: Observation) -> np.ndarray:
        mask = np.asarray(obs[MASK_KEY]) > 0
        if hasattr(self.base, "scores"):
            s = np.asarray(self.base.scores(obs), np.float64)
        else:
            with np.errstate(divide="ignore"):
                s = np.log(self._base_probs(obs))
        return masked_softmax(s / self.temperature, mask)


class PropensityFloor(_Wrapper):
    """The base distribution mixed with ``floor`` uniform over the valid candidates."""

    def __init__(self, base: Policy, floor: float):
        super().__init__(base)
        self.floor = _unit(floor, "floor")
        self.name = f"{base.name}+floor{self.floor:g}"

    def action_probabilities(self, obs: Observation) -> np.ndarray:
        return (1 - self.floor) * self._base_probs(obs) + self.floor * uniform_valid(obs[MASK_KEY])


class Greedy(_Wrapper):
    """The base policy's most probable valid candidate with probability 1 (ties -> lowest index): what
    ``act(deterministic=True)`` plays, as a distribution (a deterministic target for off-policy evaluation)."""

    def __init__(self, base: Policy):
        super().__init__(base)
        self.name = f"{base.name}:greedy"

    def action_probabilities(self, obs: Observation) -> np.ndarray:
        return greedy_probabilities(self._base_probs(obs), obs[MASK_KEY])


def exploring(base: Policy, *, epsilon: float | None = None, temperature: float | None = None,
              floor: float | None = None) -> Policy:
    """``base`` with the exploration of ``bundlerl log``: epsilon-greedy or a softmax (not both), then a floor.

    :raises PolicyError: both ``epsilon`` and ``temperature``, or a value out of range.
    """
    if epsilon is not None and temperature is not None:
        raise PolicyError("use epsilon or temperature, not both")
    pol = base
    if epsilon is not None:
        pol = EpsilonGreedy(pol, epsilon)
    if temperature is not None:
        pol = Softmax(pol, temperature)
    if floor is not None:
        pol = PropensityFloor(pol, floor)
    return pol
