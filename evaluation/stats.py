"""Confidence intervals for evaluation summaries (numpy only).

Episodes are the independent units: per-episode means get a normal-approximation interval on
the sample mean; rates pooled over episodes (clicks / steps, purchases / clicks, ...) are ratios
of per-episode sums and get a delta-method interval (the ratio estimator's standard error with
episodes as clusters).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bundlerl.utils.args import need_number, shown
from bundlerl.utils.errors import BundlerlError

__all__ = ["Estimate", "EvaluationError", "mean_ci", "ratio_ci", "mean_ratio_ci", "Z95"]

Z95 = 1.959963984540054
"""Two-sided 95% normal quantile."""


class EvaluationError(BundlerlError):
    """Bad input to an evaluation: counts, per-episode arrays, policy names, runs that cannot be compared."""


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a confidence interval [low, high] and the number of episodes n."""

    value: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def format(self, digits: int = 3) -> str:
        """``"value ± half_width"``; ``"n/a"`` when undefined (NaN)."""
        if not np.isfinite(self.value):
            return "n/a"
        return f"{self.value:.{digits}f} ± {self.half_width:.{digits}f}"

    def to_dict(self) -> dict[str, float | int]:
        """``{"mean", "low", "high", "n"}``: the JSON form (results.json, baselines.json, final_eval.json)."""
        return {"mean": float(self.value), "low": float(self.low), "high": float(self.high), "n": int(self.n)}


def _check(x: np.ndarray, name: str) -> np.ndarray:
    try:
        x = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise EvaluationError(f"{name}={shown(x)}: {name} must be numbers, one per episode") from None
    if x.ndim != 1:
        raise EvaluationError(f"{name} must be 1-d (one value per episode); got shape {x.shape}")
    if not np.isfinite(x).all():
        raise EvaluationError(f"{name} contains NaN or inf; pass finite per-episode values")
    return x


def _z(z) -> float:
    return need_number(z, "z", "a confidence interval", low=0.0, error=EvaluationError)


def mean_ci(x, z: float = Z95) -> Estimate:
    """Mean of ``x`` (n,) with a normal-approximation interval mean ± z·sd/√n (sd with ddof=1).

    n = 0 gives NaNs; n = 1 a zero-width interval. Raises EvaluationError on non-finite or non-1-d input.
    """
    x, z = _check(x, "x"), _z(z)
    n = x.size
    if n == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    m = float(x.mean())
    se = float(x.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0
    return Estimate(m, m - z * se, m + z * se, n)


def ratio_ci(num, den, z: float = Z95) -> Estimate:
    """Ratio of totals R = Σnum / Σden over episodes, with a delta-method interval.

    se(R) = sqrt(Σ (num_i − R·den_i)² / (n (n−1))) / mean(den). NaN when Σden = 0.
    """
    num, den, z = _check(num, "num"), _check(den, "den"), _z(z)
    if num.shape != den.shape:
        raise EvaluationError(f"num {num.shape} and den {den.shape} must have the same shape")
    n = num.size
    if n == 0 or den.sum() == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), n)
    r = float(num.sum() / den.sum())
    if n == 1:
        return Estimate(r, r, r, 1)
    resid = num - r * den
    se = float(np.sqrt((resid ** 2).sum() / (n * (n - 1))) / den.mean())
    return Estimate(r, r - z * se, r + z * se, n)


def mean_ratio_ci(a, b, z: float = Z95) -> Estimate:
    """Ratio of the means of two *independent* samples, mean(a) / mean(b), with a delta-method interval.

    se(R) = sqrt(var(a) / n_a + R² var(b) / n_b) / |mean(b)| (sample variances; 0 for a sample of one).
    NaN when mean(b) = 0. Use :func:`ratio_ci` for paired per-episode ratios of totals instead.
    """
    a, b, z = _check(a, "a"), _check(b, "b"), _z(z)
    n = min(a.size, b.size)
    if n == 0 or b.mean() == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), n)
    mb = float(b.mean())
    r = float(a.mean()) / mb
    var = lambda x: float(x.var(ddof=1)) / x.size if x.size > 1 else 0.0  # noqa: E731
    se = float(np.sqrt(var(a) + r * r * var(b))) / abs(mb)
    return Estimate(r, r - z * se, r + z * se, n)
