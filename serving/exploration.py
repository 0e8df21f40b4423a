"""Exploration of the live service: the distribution a served impression is drawn from, and the ranked list.

From the policy's action probabilities ``p`` (N, K) over the valid candidates (mask ``m``):

1. temperature ``T`` > 0: ``p_k ∝ p_k^(1/T)`` over valid k (T = 1 leaves p as is; T > 1 flattens it, and a one-hot
   policy stays one-hot: zero mass stays zero, which step 2 or 3 fixes);
2. epsilon ``ε`` in [0, 1]: ``p ← (1 - ε) p + ε / n_valid`` on valid k;
3. propensity floor ``f`` in [0, 1 / n_valid]: ``p ← f + (1 - n_valid f) p`` on valid k, so every valid candidate
   has probability >= f exactly (a floor above 1 / n_valid gives the uniform distribution).

Each step keeps rows summing to 1 and zero off the mask. The ranked list of ``k`` bundles: slot 1 is **drawn** from
the final distribution (that draw is the logged action, its probability the logged propensity: off-policy
evaluation treats an impression as showing its slot-1 bundle); slots 2..k are the other valid candidates by
decreasing probability (ties: lower candidate index first), a deterministic function of the draw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bundlerl.utils.errors import BundlerlError

__all__ = ["Exploration", "explore", "ranked_slots"]


@dataclass(frozen=True)
class Exploration:
    """Exploration settings of one request (see the module docstring): ``epsilon`` in [0, 1], ``temperature`` > 0,
    ``floor`` in [0, 1]."""

    epsilon: float = 0.0
    temperature: float = 1.0
    floor: float = 0.0

    def __post_init__(self):
        for name, v, ok in (("epsilon", self.epsilon, 0.0 <= self.epsilon <= 1.0),
                            ("temperature", self.temperature, 0.0 < self.temperature <= 1e3),
                            ("floor", self.floor, 0.0 <= self.floor <= 1.0)):
            if not (np.isfinite(v) and ok):
                raise BundlerlError(f"exploration.{name}={v!r} is out of range: epsilon in [0, 1], temperature in "
                                    "(0, 1000], floor in [0, 1]")


def explore(probs: np.ndarray, mask: np.ndarray, x: Exploration) -> np.ndarray:
    """(N, K) float64 exploring distribution from policy probabilities ``probs`` (N, K) and the (N, K) mask.

    Rows with no valid candidate are returned unchanged (the caller shows nothing for them)."""
    p = np.asarray(probs, np.float64).copy()
    valid = np.asarray(mask) > 0
    n_valid = valid.sum(axis=1, keepdims=True)
    ok = n_valid[:, 0] > 0
    p = np.where(valid, p, 0.0)
    if x.temperature != 1.0:
        with np.errstate(divide="ignore"):
            z = np.where(valid & (p > 0), np.log(np.maximum(p, 1e-300)) / x.temperature, -np.inf)
        z = z - np.where(np.isfinite(z).any(axis=1, keepdims=True), z.max(axis=1, keepdims=True, initial=-np.inf,
                                                                             where=np.isfinite(z)), 0.0)
        e = np.where(np.isfinite(z), np.exp(z), 0.0)
        p = e / np.maximum(e.sum(axis=1, keepdims=True), 1e-300)
    uniform = np.where(valid, 1.0 / np.maximum(n_valid, 1), 0.0)
    if x.epsilon > 0:
        p = (1 - x.epsilon) * p + x.epsilon * uniform
    if x.floor > 0:
        room = 1.0 - n_valid * x.floor
        p = np.where(room >= 0, x.floor * valid + np.maximum(room, 0.0) * p, uniform)
    p = p / np.maximum(p.sum(axis=1, keepdims=True), 1e-300)
    return np.where(ok[:, None], p, probs)


def ranked_slots(p: np.ndarray, mask: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """(k,) int64 candidate indices of one row's ranked list (-1 padded when fewer than k are valid): slot 0 drawn
    from ``p`` (K,), the rest by decreasing ``p`` among the other valid candidates; all -1 when none is valid."""
    valid = np.flatnonzero(np.asarray(mask) > 0)
    out = np.full(k, -1, dtype=np.int64)
    if valid.size == 0:
        return out
    pv = p[valid] / p[valid].sum()
    first = int(valid[min(int(np.searchsorted(np.cumsum(pv), rng.random() * pv.sum(), side="right")), valid.size - 1)])
    rest = [int(c) for c in valid[np.lexsort((valid, -p[valid]))] if c != first]
    chosen = [first, *rest][:k]
    out[: len(chosen)] = chosen
    return out
