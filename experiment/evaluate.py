"""Evaluate trained runs: open their run directories, check that they can be compared (one world, one action
mode), and compare their models with baselines and oracles on the same episodes
(:mod:`bundlerl.evaluation.compare`). What ``bundlerl evaluate`` and ``bundlerl quickstart`` call.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from bundlerl.evaluation.compare import EvalConfig, compare, named_policies, write_comparison
from bundlerl.evaluation.metrics import COMPLEMENT_THRESHOLD
from bundlerl.evaluation.stats import EvaluationError
from bundlerl.experiment.run_dir import MODEL_CHOICES, RunDir
from bundlerl.utils.args import (
    need_callable,
    need_int,
    need_names,
    need_number,
    need_optional_bool,
    need_path,
    shown,
)

__all__ = ["evaluate_runs"]

_DEFAULT = EvalConfig()


def evaluate_runs(run_dirs: Sequence[str | Path], *, baselines: Sequence[str] = (), oracles: Sequence[str] = (),
                  preset=None, episodes: int = _DEFAULT.episodes, seed: int = _DEFAULT.seed,
                  which: str = MODEL_CHOICES[0], complement_threshold: float = COMPLEMENT_THRESHOLD,
                  out: str | Path | None = None, progress: bool | None = None,
                  log: Callable[[str], None] = print, tuned_weights: str | Path | None = None,
                  tuned_budget=None) -> dict[str, Any]:
    """Evaluate runs, baselines and oracles on the same episodes; write results.md/.json/.png into ``out``.

    :param run_dirs: folders made by ``bundlerl train`` (all of one world and action mode).
    :param baselines: names from ``bundlerl.agents.tuned_linear.OBSERVABLE_POLICIES`` (hand-set baselines and
        ``tuned-linear``).
    :param tuned_weights: tuned-linear's weights JSON; None: its cached fit for the world, or a fit now with
        ``tuned_budget`` (a ``bundlerl.evaluation.tuning.CEMBudget``; None: the recorded 12 x 24 x 200).
    :param oracles: names from ``bundlerl.agents.oracles.ORACLES`` (or without their ``oracle-`` prefix).
    :param preset: the world (preset name or EnvConfig); default and only choice with runs: the runs' own world
        (stored in their run directories). Required without runs.
    :param which: which model of each run: ``best`` (falls back to final), ``final`` or ``latest``.
    :param out: output folder (default ``evaluations/{world}__{time}``).
    Torch runs on one intra-op thread meanwhile (restored after; see ``TrainConfig.torch_threads``: one
    thread is much faster on the shared 2-core machine).
    :returns: ``{"table": {name: {metric: Estimate}}, "markdown": str, "out": Path}``.
    :raises BundlerlError: unknown names, runs of different worlds / action modes, a ``preset`` that is not the
        runs' world, no world, nothing to evaluate, an ``out`` that cannot be written (EvaluationError, PolicyError,
        RunDirError, ConfigError, OutputPathError).
    """
    from bundlerl.utils.paths import check_output_folder
    from bundlerl.utils.threads import torch_threads

    where = "evaluate_runs"
    if isinstance(run_dirs, (str, os.PathLike)):
        run_dirs = [run_dirs]
    if not isinstance(run_dirs, (list, tuple)):
        raise EvaluationError(f"{where}(run_dirs={shown(run_dirs)}): run_dirs must be a list of run directories")
    run_dirs = [need_path(r, "run_dirs", where, what="a run directory", error=EvaluationError) for r in run_dirs]
    baselines = need_names(baselines, "baselines", where, error=EvaluationError)
    oracles = need_names(oracles, "oracles", where, error=EvaluationError)
    need_int(seed, "seed", where, minimum=0, error=EvaluationError)
    need_callable(log, "log", where, "a function of one str (e.g. print)", error=EvaluationError)
    if not isinstance(which, str) or which not in MODEL_CHOICES:
        raise EvaluationError(f"{where}(which={shown(which)}): which must be one of {', '.join(MODEL_CHOICES)}")
    need_int(episodes, "episodes", where, minimum=1, error=EvaluationError)
    need_number(complement_threshold, "complement_threshold", where, low=0.0, high=1.0, error=EvaluationError)
    need_optional_bool(progress, "progress", where, error=EvaluationError)
    if out is not None:
        check_output_folder(out, "evaluate_runs(out=...)")  # before the rollouts, not after them
    # unknown names fail before anything runs
    policies = named_policies(baselines, oracles, seed, tuned_weights=tuned_weights, tuned_budget=tuned_budget, log=log)
    runs = [RunDir.open(r) for r in run_dirs]
    modes = {r.config()["train"].get("action_mode", "bundle") for r in runs}
    if len(modes) > 1:
        raise EvaluationError(f"runs use different action modes {sorted(modes)}; evaluate them separately")
    world = _world(runs, preset)
    if not runs and not policies:
        raise EvaluationError("nothing to evaluate: give run directories, --baselines or --oracles")
    config = EvalConfig(episodes=episodes, seed=seed, action_mode=modes.pop() if modes else "bundle",
                        complement_threshold=complement_threshold, progress=progress)
    with torch_threads(1):
        named = {key: r.policy(which, name=key) for key, r in zip(run_keys(runs), runs)} | policies
        cmp = compare(named, world, config, log=log, short_names=_short_names(runs))
    out = Path(out) if out else Path("evaluations") / f"{world.name}__{time.strftime('%Y%m%d-%H%M%S')}"
    write_comparison(cmp, out)
    return {"table": cmp.table, "markdown": cmp.markdown(), "out": out}


def run_keys(runs: list[RunDir]) -> list[str]:
    """The names runs go by in tables: their folder's name, with its parent's where two folders share one."""
    names = [r.path.name for r in runs]
    return [n if names.count(n) == 1 else f"{r.path.parent.name}/{n}" for n, r in zip(names, runs)]


def _short_names(runs: list[RunDir]) -> dict[str, str]:
    """Chart names of runs (keyed by :func:`run_keys`): ``ppo (seed 0)`` (``ppo myopic (seed 0)`` for the myopic
    control) from their config.yaml, numbered ``#1``,
    ``#2`` where two runs would share one (results.md lists which is which)."""
    keys = run_keys(runs)
    base = [f"{r.algo}{' myopic' if r.config()['train'].get('myopic') else ''} (seed {r.config()['train'].get('seed', '?')})"
            for r in runs]
    seen: dict[str, int] = {}
    out = {}
    for key, short in zip(keys, base):
        if base.count(short) > 1:
            seen[short] = seen.get(short, 0) + 1
            short = f"{short} #{seen[short]}"
        out[key] = short
    return out


def _world(runs: list[RunDir], preset):
    """The EnvConfig to evaluate on: the runs' own world (stored in their run directories), which ``preset`` may
    name again but not change; ``preset`` alone without runs.

    :raises EvaluationError: runs of different worlds, a ``preset`` that is not the runs' world, no world at all.
    """
    from bundlerl.env import get_config

    asked = None if preset is None else get_config(preset)
    if not runs:
        if asked is None:
            raise EvaluationError("no run given: pass --preset to evaluate baselines only")
        return asked
    world = runs[0].env_config()
    plain = world.to_dict()
    for r in runs[1:]:
        other = r.env_config()
        if diff := _differences(plain, other.to_dict()):
            raise EvaluationError(f"runs were trained on different worlds: {runs[0].path.name} on '{world.name}', "
                                  f"{r.path.name} on '{other.name}' ({diff}); evaluate them separately")
    if asked is not None and (diff := _differences(plain, asked.to_dict())):
        raise EvaluationError(f"the runs were trained on the world '{world.name}' (stored in their config.yaml), not "
                              f"on '{asked.name}' ({diff}); leave --preset out to evaluate them on their own world")
    return world


def _differences(a: dict, b: dict) -> str:
    """``"K 8 vs 16, horizon 10 vs 20"``: the fields where two EnvConfig dicts differ (a nested config by its
    name only); "" for the same world. Names are labels, not part of the world: they are not compared."""
    diff = [k for k in a if k != "name" and a[k] != b.get(k)]
    shown = ", ".join(f"{k} {a[k]!r} vs {b.get(k)!r}" if not isinstance(a[k], dict) else k for k in diff[:8])
    return shown + (f" and {len(diff) - 8} more" if len(diff) > 8 else "")
