"""Exploration of the live service: one request's settings, its exploring distribution, and the ranked list of k.

The distribution is the policy wrapped by ``bundlerl.agents.exploration.exploring``, the same exploration
``bundlerl log`` logs with: epsilon-greedy (``(1 - ε) onehot(argmax π) + ε uniform(valid)``) **or** a softmax at
temperature ``T`` (over the policy's own scores when it has them, else ``log π``), then a propensity floor ``f``
(``(1 - f) p + f uniform(valid)``: every valid candidate keeps at least ``f / n_valid``). Without settings it is the
policy's own distribution.

The ranked list of ``k`` bundles: slot 1 is **drawn** from that distribution (the draw is the logged action and its
probability the logged propensity; off-policy evaluation treats an impression as showing its slot-1 bundle); slots
2..k are the other valid candidates by decreasing probability (ties: lower candidate index first), a deterministic
function of the draw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bundlerl.agents.policy import Policy, PolicyError

__all__ = ["Exploration", "exploring_probabilities", "ranked_slots"]


@dataclass(frozen=True)
class Exploration:
    """One request's exploration: ``epsilon`` in [0, 1] or ``temperature`` > 0 (not both), and ``floor`` in [0, 1];
    None: not used. :raises PolicyError: both epsilon and temperature, or a value out of range."""

    epsilon: float | None = None
    temperature: float | None = None
    floor: float | None = None

    def __post_init__(self):
        from bundlerl.agents.exploration import exploring

        exploring(_Check(), **self.settings())  # the wrappers' own validation

    def settings(self) -> dict[str, float]:
        return {k: v for k, v in (("epsilon", self.epsilon), ("temperature", self.temperature),
                                  ("floor", self.floor)) if v is not None}


class _Check(Policy):
    """A stand-in base for validating settings without a policy."""

    name = "check"

    def action_probabilities(self, obs):  # pragma: no cover - never called
        raise NotImplementedError


def exploring_probabilities(policy, obs, policy_probs: np.ndarray, x: Exploration) -> np.ndarray:
    """(N, K) exploring distribution of ``policy`` on the observation batch ``obs`` for settings ``x``;
    ``policy_probs`` (the policy's own (N, K) probabilities) when there are none."""
    from bundlerl.agents.exploration import exploring

    if not x.settings():
        return policy_probs
    return exploring(policy, **x.settings()).action_probabilities(obs)


def ranked_slots(p: np.ndarray, mask: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """(k,) int64 candidate indices of one row's ranked list (-1 padded when fewer than k are valid): slot 0 drawn
    from ``p`` (K,), the rest by decreasing ``p`` among the other valid candidates; all -1 when none is valid."""
    valid = np.flatnonzero(np.asarray(mask) > 0)
    out = np.full(k, -1, dtype=np.int64)
    if valid.size == 0:
        return out
    pv = np.asarray(p, np.float64)[valid]
    if not pv.sum() > 0:
        raise PolicyError("the exploring distribution has no mass on a valid candidate")
    cdf = np.cumsum(pv / pv.sum())
    first = int(valid[min(int(np.searchsorted(cdf, rng.random(), side="right")), valid.size - 1)])
    rest = [int(c) for c in valid[np.lexsort((valid, -p[valid]))] if c != first]
    chosen = [first, *rest][:k]
    out[: len(chosen)] = chosen
    return out
