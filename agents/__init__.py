"""Policies and learners: the policy protocol, observable baselines, truth-reading oracles (labelled), and the
SB3 PPO / MaskablePPO / DQN factories with the candidate-set network. Names load their modules lazily."""

from __future__ import annotations

from bundlerl.utils.lazy import lazy_exports

_EXPORTS = {
    "Policy": ".policy",
    "PolicyError": ".policy",
    "BASELINES": ".baselines",
    "make_baseline": ".baselines",
    "ORACLES": ".oracles",
    "make_oracle": ".oracles",
    "ALGOS": ".config",
    "AgentConfigError": ".config",
    "load_algo_config": ".config",
    "SB3Policy": ".sb3",
    "make_model": ".sb3",
    "load_model": ".sb3",
}
__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
