"""Reference exhaustive search shared by the index tests (a plain module: tests/ is on sys.path under pytest)."""

from __future__ import annotations

import numpy as np


def brute(E: np.ndarray, Q: np.ndarray, k: int, exclude=None) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` by inner product: ``(scores (N, k), items (N, k))``, ties by position; ``exclude`` is one
    list of positions per query row that never appear."""
    S = Q @ E.T
    if exclude is not None:
        for r, ex in enumerate(exclude):
            S[r, np.asarray(ex, dtype=int)] = -np.inf
    items = np.argsort(-S, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(S, items, 1), items
