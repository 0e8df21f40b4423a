"""The fitted models of the model-based estimators (DM, DR, SNDR, Switch-DR; trajectory DR and WDR), cross-fitted.

``q(x, a)`` is a scikit-learn gradient-boosted regressor (``HistGradientBoostingRegressor``) on the features of one
(decision, candidate) pair: the candidate's features (``CANDIDATE_FEATURES``), the session counters
(``SESSION_FEATURES``) and the share of valid candidates. Two targets: the decision's reward (per-decision estimators)
and the discounted return-to-go from the decision (per-trajectory estimators; a Monte-Carlo fit under the logging
policy: any fit leaves DR unbiased, a better one lowers its variance).

Cross-fitting (two folds by context id parity): the model that predicts for a context never saw it, so the DR
residuals are not shrunk by overfitting. Each fold fits on at most ``max_fit_rows`` decisions (the first ones read),
so fitting memory does not grow with the log.
"""

from __future__ import annotations

import numpy as np

from bundlerl.evaluation.ope.estimators import OPEError

__all__ = ["pair_features", "pair_dim", "returns_to_go", "CrossFitModel"]


def pair_dim(dims) -> int:
    """Columns of :func:`pair_features` for a log of ``dims`` (``bundlerl.evaluation.logs.schema.Dims``): F + S + 1."""
    return int(dims.F) + int(dims.S) + 1


def pair_features(candidates: np.ndarray, session: np.ndarray, mask: np.ndarray, action: np.ndarray | None = None
                  ) -> np.ndarray:
    """Features of (decision, candidate) pairs, float32: (n, F + S + 1) for the logged ``action`` (n,), else
    (n * K, F + S + 1) for every candidate, row-major (decision, candidate).

    :param candidates: (n, K, F). :param session: (n, S). :param mask: (n, K) valid candidates.
    """
    n, K, F = candidates.shape
    valid = (np.asarray(mask) > 0).mean(axis=1, keepdims=True).astype(np.float32)
    ctx = np.concatenate([session.astype(np.float32), valid], axis=1)
    if action is not None:
        return np.concatenate([candidates[np.arange(n), action].astype(np.float32), ctx], axis=1)
    return np.concatenate([candidates.reshape(n * K, F).astype(np.float32), np.repeat(ctx, K, axis=0)], axis=1)


def returns_to_go(episode: np.ndarray, reward: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    """(n,) sum_{s >= t} gamma^(s - t) r_s within each episode; rows grouped by episode in step order."""
    ep = np.asarray(episode)
    r = np.asarray(reward, np.float64)
    out = np.empty_like(r)
    acc = 0.0
    for i in range(r.size - 1, -1, -1):  # one pass from the end; episodes reset the accumulator
        if i == r.size - 1 or ep[i + 1] != ep[i]:
            acc = 0.0
        acc = r[i] + gamma * acc
        out[i] = acc
    return out


class CrossFitModel:
    """Two regressors, one per fold (context id parity); each predicts for the contexts of the other fold.

    :param max_fit_rows: decisions kept per fold for fitting. :param max_iter: boosting iterations.
    :param seed: the regressors' random state.
    """

    def __init__(self, max_fit_rows: int = 100_000, max_iter: int = 100, seed: int = 0):
        if max_fit_rows < 10:
            raise OPEError(f"max_fit_rows={max_fit_rows}; it must be >= 10")
        self.max_fit_rows, self.max_iter, self.seed = int(max_fit_rows), int(max_iter), int(seed)
        self._X: list[list[np.ndarray]] = [[], []]
        self._y: list[list[np.ndarray]] = [[], []]
        self._rows = [0, 0]
        self.models: list = [None, None]

    def add(self, context: np.ndarray, X: np.ndarray, y: np.ndarray) -> None:
        """Keep fitting rows (features ``X`` (n, d), targets ``y`` (n,)) until each fold holds ``max_fit_rows``."""
        fold = np.asarray(context) % 2
        for f in (0, 1):
            room = self.max_fit_rows - self._rows[f]
            take = np.flatnonzero(fold == f)[:max(room, 0)]
            if take.size:
                self._X[f].append(X[take])
                self._y[f].append(np.asarray(y, np.float64)[take])
                self._rows[f] += take.size

    @property
    def full(self) -> bool:
        """Both folds hold ``max_fit_rows`` fitting rows (reading more of the log adds nothing)."""
        return min(self._rows) >= self.max_fit_rows

    def fit(self) -> "CrossFitModel":
        """Fit both folds' regressors (a fold without rows borrows the other's data)."""
        from sklearn.ensemble import HistGradientBoostingRegressor
        from threadpoolctl import threadpool_limits

        if not any(self._rows):
            raise OPEError("no decisions to fit the reward model on: the log is empty")
        for f in (0, 1):
            src = f if self._rows[f] else 1 - f
            X, y = np.concatenate(self._X[src]), np.concatenate(self._y[src])
            # one OpenMP thread: on a busy machine sklearn's default (every core) is many times slower
            with threadpool_limits(limits=1, user_api="openmp"):
                self.models[f] = HistGradientBoostingRegressor(max_iter=self.max_iter,
                                                               random_state=self.seed).fit(X, y)
        self._X, self._y = [[], []], [[], []]
        return self

    def predict(self, context: np.ndarray, X: np.ndarray, per_row: int = 1) -> np.ndarray:
        """Predictions for ``X`` (n * per_row, d) whose row i belongs to ``context[i // per_row]``: each by the
        model of the *other* fold (the one that did not fit on that context)."""
        if self.models[0] is None:
            raise OPEError("fit() the model before predict()")
        from threadpoolctl import threadpool_limits

        other = np.repeat(1 - np.asarray(context) % 2, per_row)
        out = np.empty(X.shape[0])
        with threadpool_limits(limits=1, user_api="openmp"):
            for f in (0, 1):
                rows = np.flatnonzero(other == f)
                if rows.size:
                    out[rows] = self.models[f].predict(X[rows])
        return out
