"""Off-policy evaluation: estimators (per decision and per trajectory), their cross-fitted reward models, the
streaming evaluator with bootstrap intervals, and its reports. Names load their modules lazily."""

from __future__ import annotations

from bundlerl.utils.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".estimators": "OPEError DirectMethod IPS SNIPS DoublyRobust SelfNormalizedDR SwitchDR PDIS WeightedPDIS "
                   "TrajectoryDR WeightedDR RegressionDR DECISION_ESTIMATORS TRAJECTORY_ESTIMATORS MOMENT_ESTIMATORS",
    ".evaluate": "OPEConfig OPEResult off_policy_evaluate",
    ".report": "ope_markdown ope_chart write_ope_report",
    ".truth": "TrajectoryTruth trajectory_truth",
})
