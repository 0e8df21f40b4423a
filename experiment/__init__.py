"""Experiments: one training run top to bottom (:func:`train`), its callbacks, its run directory (config, seed,
versions, git commit, checkpoints, report), and the evaluation of trained runs (:func:`evaluate_runs`). Above
agents and evaluation, below the command line. Names load lazily."""

from __future__ import annotations

from bundlerl.utils.lazy import lazy_exports

_EXPORTS = {
    "TrainConfig": ".training",
    "TrainResult": ".training",
    "train": ".training",
    "evaluate_runs": ".evaluate",
    "RunDir": ".run_dir",
    "RunDirError": ".run_dir",
}
__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
