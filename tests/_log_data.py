"""Small synthetic logs in the log schema, written with the real writer (no env): for the loader and estimator tests."""

from __future__ import annotations

import numpy as np

from bundlerl.candidates.features import CANDIDATE_FEATURES
from bundlerl.env.observation import observation_spec
from bundlerl.evaluation.logs.schema import Dims
from bundlerl.evaluation.logs.writer import LogWriter

DIMS = Dims(P=2, S=10, K=3, F=len(CANDIDATE_FEATURES), M=2)


def rows(n_episodes: int = 4, length: int = 3, seed: int = 0, dims: Dims = DIMS) -> dict:
    """Decision rows of ``n_episodes`` episodes of ``length`` steps, a uniform logger over K, random rewards."""
    rng = np.random.default_rng(seed)
    n = n_episodes * length
    K = dims.K
    probs = np.full((n, K), 1.0 / K)
    action = rng.integers(0, K, n)
    return {
        "context_id": np.repeat(np.arange(n_episodes), length), "step": np.tile(np.arange(length), n_episodes),
        "spec_version": np.full(n, observation_spec(dims.P, dims.K, dims.F)["version"]),
        "profile": rng.uniform(-1, 1, (n, dims.P)), "history": np.zeros((n, dims.P)),
        "session": rng.uniform(0, 1, (n, dims.S)), "candidates": rng.uniform(0, 1, (n, K, dims.F)),
        "action_mask": np.ones((n, K), bool), "item_ids": rng.integers(0, 50, (n, K, dims.M)),
        "action": action, "action_prob": probs, "pscore": probs[np.arange(n), action],
        "click": rng.random(n) < 0.5, "n_bought": np.zeros(n, int), "bought_items": np.full((n, dims.M), -1),
        "revenue": np.zeros(n), "reward": rng.random(n),
        "terminated": np.zeros(n, bool), "truncated": np.tile(np.arange(length) == length - 1, n_episodes),
    }


def write(folder, data: dict | None = None, dims: Dims = DIMS, truth: bool = False, **kw):
    """Write ``data`` (default :func:`rows`) as a log in ``folder``; returns the folder."""
    data = rows(dims=dims) if data is None else data
    spec = observation_spec(dims.P, dims.K, dims.F)
    with LogWriter(folder, dims, spec, truth=truth, **kw) as w:
        w.write(data, np.zeros((len(data["step"]), dims.K)) if truth else None)
    return folder
