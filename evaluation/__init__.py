"""Evaluation: rollouts of a policy on fresh seeded episodes, the metrics (per episode, with 95% confidence
intervals), comparisons of policies on the same episodes and their reports. Names load their modules lazily."""

from __future__ import annotations

from bundlerl.utils.lazy import lazy_exports

_EXPORTS = {
    "evaluate": ".rollout",
    "EvalResult": ".rollout",
    "METRICS": ".metrics",
    "BUNDLE_METRICS": ".metrics",
    "COMPARISON_METRICS": ".metrics",
    "LABELS": ".metrics",
    "bundle_metrics": ".metrics",
    "summarize": ".metrics",
    "markdown_table": ".report",
    "estimates_table": ".report",
    "bar_chart": ".report",
    "EvalConfig": ".compare",
    "Comparison": ".compare",
    "compare": ".compare",
    "named_policies": ".compare",
    "write_comparison": ".compare",
    "Estimate": ".stats",
    "EvaluationError": ".stats",
    "mean_ci": ".stats",
    "ratio_ci": ".stats",
    "mean_ratio_ci": ".stats",
}
__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
