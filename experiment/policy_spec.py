"""Policies named on the command line: ``NAME`` (an observable baseline, or ``tuned-linear``: its cached fit for the
world, else fitted now with the recorded budget), ``WEIGHTS.json`` (tuned-linear weights saved by
``TunedLinearPolicy.save``) or ``RUN_DIR`` (a trained run's best model), each optionally followed by ``:greedy`` for
its deterministic form (one-hot on its most probable candidate). What ``bundlerl log --policy`` and
``bundlerl ope --policy`` take.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bundlerl.agents.baselines import BASELINES, make_baseline
from bundlerl.agents.exploration import Greedy
from bundlerl.agents.policy import Policy, PolicyError
from bundlerl.experiment.run_dir import RunDir

__all__ = ["GREEDY_SUFFIX", "load_policy", "policy_world"]

GREEDY_SUFFIX = ":greedy"
"""Suffix of a policy spec asking for the deterministic form of the policy."""


def _split(spec: str) -> tuple[str, bool]:
    spec = str(spec).strip()
    if spec.endswith(GREEDY_SUFFIX):
        return spec[: -len(GREEDY_SUFFIX)], True
    return spec, False


def load_policy(spec: str, *, seed: int = 0, which: str = "best", world=None) -> Policy:
    """The policy of ``spec`` (see the module docstring); ``seed`` seeds ``random``'s generator, ``which`` picks a
    run's model (``best``, falling back to ``final``), ``world`` (an EnvConfig or preset name) is what
    ``tuned-linear`` is fitted on.

    :raises PolicyError: neither a baseline name nor a run directory (the message lists the baselines).
    :raises RunDirError: a damaged run directory.
    """
    from bundlerl.agents.tuned_linear import TUNED_LINEAR, TunedLinearPolicy

    name, greedy = _split(spec)
    if name in BASELINES:
        pol = make_baseline(name, np.random.default_rng(seed))
    elif name == TUNED_LINEAR:
        from bundlerl.env.config import get_config
        from bundlerl.evaluation.tuning import tuned_linear

        pol = tuned_linear(get_config(world or "default"), log=print)
    elif name.endswith(".json") and Path(name).is_file():
        pol = TunedLinearPolicy.load(name)
    elif Path(name).is_dir():
        run = RunDir.open(name)
        pol = run.policy(which, name=run.path.name)
    else:
        raise PolicyError(f"policy {spec!r}: neither a baseline ({', '.join(BASELINES)}, {TUNED_LINEAR}), a weights "
                          f"file (.json) nor a run directory; add '{GREEDY_SUFFIX}' for a policy's deterministic form")
    return Greedy(pol) if greedy else pol


def policy_world(spec: str):
    """The EnvConfig a run directory's policy was trained on; None for a baseline (it fits any world)."""
    name, _ = _split(spec)
    return RunDir.open(name).env_config() if Path(name).is_dir() else None
