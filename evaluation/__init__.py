"""Evaluation: rollouts of a policy on fresh seeded episodes, per-episode metrics, means with 95% confidence
intervals. Names load their modules lazily."""

from __future__ import annotations

from bundlerl.utils.lazy import lazy_exports

_EXPORTS = {
    "evaluate": ".rollout",
    "EvalResult": ".rollout",
    "markdown_table": ".rollout",
    "METRICS": ".rollout",
    "Estimate": ".stats",
    "mean_ci": ".stats",
    "mean_ratio_ci": ".stats",
}
__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
