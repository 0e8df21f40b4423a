"""A simulated log with heavy-tailed episode weights, shared by the per-trajectory interval tests."""

from __future__ import annotations

import numpy as np

from bundlerl.evaluation.ope.estimators import trajectory_terms


def heavy_log(rng, E=100, L=4, K=4, p=0.7):
    """Per-episode trajectory terms (E, 4, L) of a uniform logger over K actions and a target with p on action 0
    (per-step weights 2.8 or 0.4 at the defaults: episode ESS ~12 of 100). Reward 1{a = 0} + noise, so the target's
    value is L p and the TD error (q = v = 0) grows with the weight."""
    a = rng.integers(0, K, (E, L))
    r = (a == 0) * 1.0 + rng.normal(0, 0.5, (E, L))
    ratio = np.where(a == 0, p, (1 - p) / (K - 1)).ravel() * K
    ep = np.repeat(np.arange(E), L)
    z = np.zeros(E * L)
    return trajectory_terms(ep, ratio, r.ravel(), z, z, L)[0]
