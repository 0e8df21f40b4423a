"""A bounded memo of directed pair scores, for the ``comp_bought`` column's repeated (purchase, item) pairs.

Why: in a session a user's purchases and candidate pool change rarely, so the env scores the same (purchase, item)
pairs step after step; scoring them with the learned completion's signals was ~60% of a batched env step
(BENCHMARKS.md, Environment speed). A pair's score does not depend on the batch it is scored in, so a memo returns
exactly what scoring would.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["PairScoreMemo"]


class PairScoreMemo:
    """``score(i, j)`` with its results kept for later calls: (m,), (m,) int item positions -> (m,) float64.

    :param score: the scoring function (e.g. a complementarity model's ``score``); it must be batch-independent
        (each output a function of its own pair only).
    :param n_items: catalogue size; ids must lie in [0, n_items).
    :param max_pairs: memo size bound; when a call would exceed it the memo restarts from that call's pairs (outputs
        never change, only speed).

    The memo is a pair of sorted arrays swapped in one assignment, so a concurrent reader always sees a consistent
    snapshot (a concurrent writer may drop another's additions, which costs only a re-score).
    """

    def __init__(self, score: Callable[[np.ndarray, np.ndarray], np.ndarray], n_items: int, max_pairs: int = 2_000_000):
        self.score = score
        self.n_items = int(n_items)
        self.max_pairs = int(max_pairs)
        self._memo = (np.empty(0, np.int64), np.empty(0, np.float64))

    def __len__(self) -> int:
        return self._memo[0].size

    def __call__(self, i, j) -> np.ndarray:
        i = np.asarray(i, np.int64).reshape(-1)
        j = np.asarray(j, np.int64).reshape(-1)
        key = i * self.n_items + j
        keys, vals = self._memo
        out = np.empty(key.size, np.float64)
        if keys.size:
            pos = np.minimum(np.searchsorted(keys, key), keys.size - 1)
            hit = keys[pos] == key
            out[hit] = vals[pos[hit]]
        else:
            hit = np.zeros(key.size, bool)
        if hit.all():
            return out
        new, inv = np.unique(key[~hit], return_inverse=True)
        score = np.asarray(self.score(new // self.n_items, new % self.n_items), np.float64)
        out[~hit] = score[inv.reshape(-1)]
        if keys.size + new.size > self.max_pairs:
            self._memo = (new, score)
        else:
            at = np.searchsorted(keys, new)
            self._memo = (np.insert(keys, at, new), np.insert(vals, at, score))
        return out
