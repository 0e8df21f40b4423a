"""Bootstrap intervals of the off-policy estimators, and what each interval is an interval *for*.

Every estimator is a function of summed per-unit terms (``bundlerl.evaluation.ope.estimators``); a bootstrap replicate
is the same function of the terms summed with per-episode Poisson(1) weights. The interval is the replicates'
percentile interval. What the replicates vary decides the estimand the interval covers:

- ``"population"``: the estimator itself per replicate. Resampling episodes resamples the logged *contexts* as well as
  the logger's actions and rewards, so the interval covers the policy's value on the context distribution the log was
  drawn from (new traffic like the logged one).
- ``"logged"`` (per decision, the default): the value **on the logged contexts**, sum_i sum_a pi(a|x_i) E[r|x_i, a] / n
  (the estimand of the per-decision ground truth; Imbens 2004's sample- vs population-average distinction). Given
  the contexts, only the logger's actions and the rewards are random, so the spread of the context values v(x_i) must
  not enter the interval: a replicate is ``est* - DM* + DM``, the estimator's deviation from the direct method (the
  fitted model's value, a function of the contexts only) resampled around the full-log DM. For DR this is exactly the
  bootstrap of the importance-weighted residuals with the DM part held fixed; for IPS / SNIPS the model only centres
  the spread. The interval is then conservative by the spread of the model's error across contexts, not by the
  spread of the values themselves (on the default simulator the latter made the population interval up to 5x wider
  than 1.96 x the estimator's real error against the logged-context truth for targets close to the logger: coverage
  100%).
  DM's own interval stays the population one: given the contexts DM moves only with the model's fit, which no
  bootstrap that does not refit sees. Switch-DR gets the population interval too: it never corrects the model on
  the actions whose weight exceeds ``tau`` (for a greedy target far from the logger, most of its mass), so there it
  is DM, and holding the model's value fixed gave a zero-width interval at ``tau`` = 0 around an estimate that is
  DM's (a fresh user's report).

Per-trajectory estimators estimate the on-policy mean return of fresh episodes, a population value: their intervals
are always ``"population"``. Their *form* (:data:`TRAJECTORY_INTERVALS`) is by default the symmetric studentized
bootstrap (bootstrap-t; Efron & Tibshirani 1993, ch. 12; Hall 1988): each replicate's deviation is divided by its own
standard error, from the delta method over episodes (the estimator's gradient in its summed terms, ``gradient``,
against the episodes' second moments, :class:`EpisodeMoments`), and the interval is value -/+ c x se, c the
``level`` quantile of the replicates' |t|. Why: with 10-20-step sessions a few episodes carry the importance weight
(ESS 1-112 of ~1,250), the estimate's spread grows with the weight those episodes happen to get, and the percentile
interval, which does not see that, held the truth in only ~80-90% of the repeats (bench_ope; BC, BCa, basic and
normal intervals did no better). Studentizing makes the pivot scale-free, so a replicate that drops a heavy episode
widens the interval instead of narrowing it. The equal-tailed bootstrap-t (``"studentized"``) follows the replicates'
skew, which there points the wrong way (a replicate without the heavy episode is far below with a small standard
error, so the interval stretches up while a log that caught a heavy episode errs up): on bench_ope's 10k repeats it
covered ~8-12 points less than the percentile interval for weighted DR; the symmetric form 2-5 points more (DR 5-9).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from bundlerl.evaluation.ope.estimators import DECISION_TERMS, DirectMethod, OPEError, SwitchDR
from bundlerl.evaluation.stats import Estimate

__all__ = ["INTERVALS", "TRAJECTORY_INTERVALS", "MODEL_INTERVAL_ESTIMATORS", "percentile_estimate", "studentized_estimate", "decision_replicates",
           "EpisodeMoments"]

INTERVALS = ("logged", "population")
MODEL_INTERVAL_ESTIMATORS = (DirectMethod, SwitchDR)
"""Per-decision estimators that lean on the reward model where no logged reward corrects it: their interval is
always the population one (module docstring)."""
"""Estimands of the per-decision intervals (see the module docstring); the first is the default."""


def percentile_estimate(value: float, reps: np.ndarray, level: float, n: int) -> Estimate:
    """``value`` with the percentile interval of the finite bootstrap replicates ``reps`` (B,) at ``level``;
    NaN bounds when ``value`` is undefined or fewer than 2 replicates are finite. ``n``: the units behind it."""
    reps = np.asarray(reps, np.float64)
    reps = reps[np.isfinite(reps)]
    if not np.isfinite(value) or reps.size < 2:
        return Estimate(float(value), float("nan"), float("nan"), int(n))
    lo, hi = np.percentile(reps, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return Estimate(float(value), float(lo), float(hi), int(n))


TRAJECTORY_INTERVALS = ("symmetric", "studentized", "percentile")
"""Forms of the per-trajectory intervals (see the module docstring); the first is the default."""


def studentized_estimate(value: float, se: float, reps: np.ndarray, se_reps: np.ndarray, level: float, n: int,
                         symmetric: bool = False) -> Estimate:
    """``value`` with the bootstrap-t interval [value - t_hi se, value - t_lo se], t the quantiles of
    (reps - value) / se_reps over the replicates with a finite, positive standard error; ``symmetric``:
    value -/+ c se with c the ``level`` quantile of |t| (Hall 1988: the symmetric interval's coverage error is of a
    smaller order, and it does not follow the skew of replicates that dropped a heavy episode to one side).

    :param se: the full log's standard error. :param reps: (B,) replicate values. :param se_reps: (B,) their
        standard errors. Falls back to :func:`percentile_estimate` where ``se`` is 0 or undefined, or fewer than 2
        replicates are usable.
    """
    reps, se_reps = np.asarray(reps, np.float64), np.asarray(se_reps, np.float64)
    ok = np.isfinite(reps) & np.isfinite(se_reps) & (se_reps > 0)
    if not (np.isfinite(value) and np.isfinite(se) and se > 0) or ok.sum() < 2:
        return percentile_estimate(value, reps, level, n)
    t = (reps[ok] - value) / se_reps[ok]
    if symmetric:
        c = float(np.percentile(np.abs(t), 100 * level))
        return Estimate(float(value), float(value - c * se), float(value + c * se), int(n))
    lo, hi = np.percentile(t, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return Estimate(float(value), float(value - hi * se), float(value - lo * se), int(n))


class EpisodeMoments:
    """sum_i c_i x_i x_i^T over episodes i of x_i = (the episode's per-trajectory terms (4, H) flattened, 1), for the
    full log (c = 1, index 0) and each of ``B`` bootstrap replicates (c the Poisson weights), streamed part by part.
    With an estimator's ``gradient`` g, g^T M g is its delta-method variance (the influences g . x_i are centred:
    the estimators are homogeneous of degree 0). Memory: (B + 1) (4 H + 1)^2 floats.
    """

    def __init__(self, B: int, chunk: int = 256):
        self.B, self.H, self.chunk = int(B), 0, int(chunk)
        self.M = np.zeros((B + 1, 1, 1))

    def grow(self, H: int) -> None:
        """Extend to H steps. Episodes already added have ended: their terms at the new steps are 0 but for the
        normaliser row W, which carries each ended episode's last weight (as ``trajectory_terms`` does)."""
        H0 = self.H
        if H <= H0:
            return
        src = np.full(4 * H + 1, -1)
        for r in range(4):
            src[r * H:r * H + H0] = np.arange(r * H0, r * H0 + H0)
        if H0:
            src[H + H0:2 * H] = H0 + H0 - 1  # W at the new steps = W at the last old step
        src[4 * H] = 4 * H0
        new, old = np.flatnonzero(src >= 0), src[src >= 0]
        M = np.zeros((self.B + 1, 4 * H + 1, 4 * H + 1))
        M[:, new[:, None], new[None, :]] = self.M[:, old[:, None], old[None, :]]
        self.M, self.H = M, H

    def add(self, terms: np.ndarray, boot: np.ndarray) -> None:
        """Add the episodes of one part: ``terms`` (E, 4, H) (``trajectory_terms``; H = the current horizon after
        :meth:`grow`), ``boot`` (B, E) their replicate weights."""
        E, _, H = terms.shape
        self.grow(H)
        if H != self.H:
            raise OPEError(f"terms have {H} steps; the moments hold {self.H} (grow first)")
        X = np.concatenate([terms.reshape(E, 4 * H), np.ones((E, 1))], axis=1)
        wts = np.concatenate([np.ones((1, E)), np.asarray(boot, np.float64)])
        D = X.shape[1]
        for lo in range(0, E, self.chunk):
            x = X[lo:lo + self.chunk]
            self.M += (wts[:, lo:lo + self.chunk] @ (x[:, :, None] * x[:, None, :]).reshape(len(x), D * D)
                       ).reshape(-1, D, D)

    def se(self, b: int, gradient: np.ndarray) -> float:
        """sqrt(g^T M_b g) for replicate ``b`` (0: the full log)."""
        g = np.asarray(gradient, np.float64)
        return float(np.sqrt(max(g @ self.M[b] @ g, 0.0)))


def decision_replicates(est, full: np.ndarray, boot: np.ndarray, interval: str = "logged") -> np.ndarray:
    """(B,) bootstrap replicates of the per-decision estimator ``est`` whose percentiles form its interval.

    :param est: a per-decision estimator (``value(dict)`` of summed :data:`DECISION_TERMS`).
    :param full: (len(DECISION_TERMS),) the full log's sums. :param boot: (B, len(DECISION_TERMS)) the replicates'
        sums (extra trailing columns are ignored). :param interval: one of :data:`INTERVALS`.
    :raises OPEError: an unknown ``interval``.
    """
    if interval not in INTERVALS:
        raise OPEError(f"interval={interval!r}; it must be one of {', '.join(INTERVALS)}")
    T = len(DECISION_TERMS)
    rows: Sequence[dict] = [dict(zip(DECISION_TERMS, b[:T])) for b in np.asarray(boot)]
    reps = np.array([est.value(s) for s in rows])
    if interval == "population" or isinstance(est, MODEL_INTERVAL_ESTIMATORS):
        return reps
    dm = DirectMethod()
    base = dm.value(dict(zip(DECISION_TERMS, np.asarray(full)[:T])))
    return reps - np.array([dm.value(s) for s in rows]) + base
