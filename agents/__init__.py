"""Policies and learners: the policy protocol, observable baselines, truth-reading oracles (labelled), and the
SB3 PPO / MaskablePPO / DQN factories with the candidate-set network. Names load their modules lazily."""

from __future__ import annotations

from bundlerl.utils.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".policy": "Policy PolicyError",
    ".baselines": "BASELINES make_baseline",
    ".oracles": "ORACLES make_oracle",
    ".config": "ALGOS AgentConfigError load_algo_config",
    ".sb3": "SB3Policy make_model load_model",
})
