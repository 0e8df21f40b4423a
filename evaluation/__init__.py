"""Evaluation: rollouts of a policy on fresh seeded episodes, the metrics (per episode, with 95% confidence
intervals), comparisons of policies on the same episodes and their reports. Names load their modules lazily."""

from __future__ import annotations

from bundlerl.utils.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".rollout": "evaluate EvalResult",
    ".metrics": "METRICS BUNDLE_METRICS COMPARISON_METRICS LABELS bundle_metrics summarize",
    ".report": "markdown_table estimates_table bar_chart",
    ".compare": "EvalConfig Comparison compare named_policies write_comparison",
    ".stats": "Estimate EvaluationError mean_ci ratio_ci mean_ratio_ci",
})
