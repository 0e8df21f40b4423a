"""Experiments: one training run top to bottom (:func:`train`), its callbacks, its run directory (config, seed,
versions, git commit, checkpoints, report), and the evaluation of trained runs (:func:`evaluate_runs`). Above
agents and evaluation, below the command line. Names load lazily."""

from __future__ import annotations

from bundlerl.utils.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".training": "TrainConfig TrainResult TrainingInterrupted train",
    ".evaluate": "evaluate_runs",
    ".run_dir": "RunDir RunDirError",
})
