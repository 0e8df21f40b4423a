"""Compare policies on the same episodes: every policy rolled out on one world with one env seed, every metric
of :mod:`bundlerl.evaluation.metrics` estimated with its 95% CI, and the comparison written as results.md,
results.json and results.png.

    >>> cmp = compare(named_policies(baselines=BASELINES, oracles=["one-step"]), "small", EvalConfig(episodes=200))
    >>> print(cmp.markdown())

Policies come by name from the registries (``bundlerl.agents.baselines.BASELINES``,
``bundlerl.agents.oracles.ORACLES``; :func:`named_policies`) or as objects (trained runs: see
``bundlerl.experiment.evaluate.evaluate_runs``, which opens run directories).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from bundlerl.evaluation.metrics import COMPARISON_METRICS, COMPLEMENT_THRESHOLD, summarize
from bundlerl.evaluation.report import bar_chart, estimates_table, policy_label, table_json
from bundlerl.evaluation.stats import Estimate, EvaluationError
from bundlerl.utils.args import need_instance, need_int, need_names, need_path
from bundlerl.utils.config_io import check_field_types

__all__ = ["EvalConfig", "Comparison", "named_policies", "compare", "write_comparison"]


@dataclass(frozen=True)
class EvalConfig:
    """How policies are compared (``bundlerl evaluate``'s flags are its serialisation)."""

    episodes: int = 1000
    """Episodes per policy (>= 1); the same episodes for every policy."""
    seed: int = 0
    """Seed (>= 0) of the episodes: the ``EVALUATE`` stream of ``bundlerl.evaluation.seeds`` (never a stream
    training or a run's own evaluations use, whatever seeds they had), and of the random baseline's generator."""
    action_mode: str = "bundle"
    """Env action mode: ``bundle`` or ``compose`` (oracles need ``bundle``)."""
    complement_threshold: float = COMPLEMENT_THRESHOLD
    """A pair of items is a true complement when max(G[a, b], G[b, a]) >= this (G: the category graph)."""
    num_envs: int = 256
    """Users stepped together (at most ``episodes``)."""
    progress: bool | None = None
    """Show a progress bar per policy (None: unless ``$BUNDLERL_PROGRESS`` is off)."""

    def __post_init__(self) -> None:
        check_field_types(self, EvaluationError)  # None / a wrong type named, before the range checks
        from bundlerl.env.observation import ACTION_MODES

        for name, lo in (("episodes", 1), ("num_envs", 1), ("seed", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise EvaluationError(f"EvalConfig.{name}={v!r}; it must be an integer >= {lo}")
        if self.action_mode not in ACTION_MODES:
            raise EvaluationError(f"EvalConfig.action_mode={self.action_mode!r}; use one of {ACTION_MODES}")
        if not np.isfinite(self.complement_threshold):
            raise EvaluationError(f"EvalConfig.complement_threshold={self.complement_threshold}; it must be finite")


@dataclass
class Comparison:
    """The result of :func:`compare`."""

    table: dict[str, dict[str, Estimate]]
    """Policy name -> metric -> Estimate (every metric of :func:`bundlerl.evaluation.metrics.summarize`)."""
    labels: dict[str, str]
    """Policy name -> its label in tables (oracles marked as reading simulator truth)."""
    world: str
    """Name of the world (env config) the episodes ran on."""
    config: EvalConfig = field(default_factory=EvalConfig)
    kinds: dict[str, str] = field(default_factory=dict)
    """Policy name -> what it is (``bundlerl.evaluation.report.POLICY_KINDS``: trained, baseline or oracle)."""
    short_names: dict[str, str] = field(default_factory=dict)
    """Policy name -> its short name in charts (default: the name)."""

    def markdown(self, metrics: Sequence[str] = COMPARISON_METRICS) -> str:
        """The markdown table, a row per policy (:func:`bundlerl.evaluation.report.estimates_table`)."""
        return estimates_table(self.table, metrics, self.labels)


def named_policies(baselines: Sequence[str] = (), oracles: Sequence[str] = (), seed: int = 0,
                   tuned_weights: str | Path | None = None, tuned_budget=None,
                   log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Observable baselines and oracles by their registered names, in that order: hand-set baselines as Policies,
    ``tuned-linear`` and oracles as factories of the vec env (tuned-linear needs the world to be fitted on).

    Every name is checked first, so that a misspelt one fails before any episode runs. Oracles are keyed by
    their registered name (``oracle-one-step`` also for ``one-step``).

    :param baselines: names from ``bundlerl.agents.tuned_linear.OBSERVABLE_POLICIES`` (the hand-set baselines and
        ``tuned-linear``).
    :param tuned_weights: tuned-linear's weights JSON; None: the cached fit for the world, else a fit now
        (:func:`bundlerl.evaluation.tuning.tuned_linear`) with ``tuned_budget`` (None: the recorded budget).
    :raises PolicyError: an unknown name (the message lists the registry).
    """
    from bundlerl.agents.baselines import make_baseline
    from bundlerl.agents.oracles import make_oracle, oracle_name
    from bundlerl.agents.policy import PolicyError, check_name
    from bundlerl.agents.tuned_linear import OBSERVABLE_POLICIES, TUNED_LINEAR

    baselines = need_names(baselines, "baselines", "named_policies", error=PolicyError)
    oracles = need_names(oracles, "oracles", "named_policies", error=PolicyError)
    need_int(seed, "seed", "named_policies", minimum=0, error=PolicyError)
    for b in baselines:
        check_name(b, OBSERVABLE_POLICIES, "baseline")
    names = [oracle_name(o) for o in oracles]
    out: dict[str, Any] = {}
    for b in baselines:
        if b == TUNED_LINEAR:
            out[b] = partial(_tuned_linear_for, weights=tuned_weights, budget=tuned_budget, log=log)
        else:
            out[b] = make_baseline(b, np.random.default_rng([seed, 17]))
    out.update({o: partial(make_oracle, o) for o in names})
    return out


def _tuned_linear_for(vec_env, weights=None, budget=None, log=None):
    """tuned-linear for the world of ``vec_env`` (loaded, cached or fitted: :func:`bundlerl.evaluation.tuning.tuned_linear`)."""
    from bundlerl.evaluation.tuning import RECORDED_BUDGET, tuned_linear

    return tuned_linear(vec_env.config, weights=weights, budget=budget or RECORDED_BUDGET, log=log)


def compare(policies: Mapping[str, Any], world, config: EvalConfig | None = None,
            log: Callable[[str], None] = print, short_names: Mapping[str, str] | None = None) -> Comparison:
    """Roll out each policy on the same ``config.episodes`` episodes of ``world`` and estimate every metric.

    :param policies: name -> Policy, or a factory ``f(vec_env) -> Policy`` (oracles).
    :param world: preset name or EnvConfig.
    :param short_names: name -> a short name for charts (e.g. a run directory's ``ppo (seed 0)``).
    :raises EvaluationError: no policy.
    """
    from bundlerl.agents.tuned_linear import OBSERVABLE_POLICIES
    from bundlerl.env import get_config
    from bundlerl.env.world import build_world
    from bundlerl.evaluation.rollout import evaluate
    from bundlerl.evaluation.seeds import Purpose, env_stream

    config = config or EvalConfig()
    stream = env_stream(Purpose.EVALUATE, config.seed)
    if not policies:
        raise EvaluationError("nothing to evaluate: give run directories, baselines or oracles")
    env = get_config(world)
    catalog_world = build_world(env)
    table: dict[str, dict[str, Estimate]] = {}
    labels: dict[str, str] = {}
    kinds: dict[str, str] = {}
    for i, (name, pol) in enumerate(policies.items()):
        log(f"[{i + 1}/{len(policies)}] evaluating {name} on {config.episodes} episodes of '{env.name}'")
        res = evaluate(pol, env, n_episodes=config.episodes, seed=stream,
                       num_envs=min(config.episodes, config.num_envs), action_mode=config.action_mode,
                       progress=config.progress)
        table[name] = summarize(res, catalog_world, config.complement_threshold)
        labels[name] = policy_label(name, res.uses_simulator_truth)
        kinds[name] = "oracle" if res.uses_simulator_truth else "baseline" if name in OBSERVABLE_POLICIES else "trained"
    shorts = {n: (short_names or {}).get(n, _short(n, kinds[n])) for n in table}
    # a run's folder name alone does not say which row is the myopic control: tables lead with the short name
    labels |= {n: f"{shorts[n]}: {labels[n]}" for n in table if kinds[n] == "trained" and shorts[n] != n}
    return Comparison(table=table, labels=labels, world=env.name, config=config, kinds=kinds, short_names=shorts)


def _short(name: str, kind: str) -> str:
    """A chart's name of a policy: an oracle's without its prefix, marked; the rest as named."""
    from bundlerl.agents.oracles import ORACLE_PREFIX

    return f"{name.removeprefix(ORACLE_PREFIX)} (oracle)" if kind == "oracle" else name


def write_comparison(cmp: Comparison, out: str | Path) -> Path:
    """results.md (header, table, chart link), results.json and results.png in the folder ``out``; returns it."""
    from bundlerl.utils.atomic import write_text

    need_instance(cmp, "cmp", "write_comparison", Comparison, "a Comparison (compare)", error=EvaluationError)
    out = need_path(out, "out", "write_comparison", what="an output folder", error=EvaluationError)
    c = cmp.config
    header = (f"# Evaluation on '{cmp.world}' ({c.action_mode} mode), {c.episodes} episodes per policy, "
              f"seed {c.seed} (its evaluate stream: never a training episode)\n\n"
              "value ± 95% CI half-width; true-complement share and diversity computed by the evaluator from "
              f"the bundle log (complement threshold {c.complement_threshold}).\n\n")
    renamed = {n: s for n, s in cmp.short_names.items() if s != n and cmp.kinds.get(n) != "oracle"}
    names = "".join(f"- {s}: {n}\n" for n, s in renamed.items())
    write_text(out / "results.md", header + cmp.markdown() + "\n![metrics](results.png)\n"
               + (f"\nNames in the chart:\n\n{names}" if names else ""))
    write_text(out / "results.json", table_json(cmp.table))
    bar_chart(cmp.table, out / "results.png", title=f"Evaluation on '{cmp.world}' ({c.action_mode} mode)",
              labels=cmp.short_names, kinds=cmp.kinds,
              note=f"{c.episodes:,} episodes per policy,\nthe same for every policy\n(evaluate stream, seed {c.seed})")
    return out
