"""Experiments: one training run top to bottom (:func:`train`), its run directory (config, seed, versions, git
commit, checkpoints, report). Above agents and evaluation, below the command line. Names load lazily."""

from __future__ import annotations

from bundlerl.utils.lazy import lazy_exports

_EXPORTS = {
    "TrainConfig": ".training",
    "TrainResult": ".training",
    "train": ".training",
    "RunDir": ".run_dir",
    "RunDirError": ".run_dir",
}
__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
