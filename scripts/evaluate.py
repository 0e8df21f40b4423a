"""``bundlerl evaluate``: trained runs and baselines on the same episodes, with 95% CIs, a table and a bar chart."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

HELP = "evaluate trained runs against the baselines (table + bar chart)"

DESCRIPTION = """\
Roll out each trained run's best model (else its final model) and the observable baselines on the
same episodes (same env seed) of the runs' preset, and report per policy, each with a 95% CI:

  mean return, click rate, conversion (purchases / clicks), revenue per episode,
  bundle size (items per shown bundle),
  complement share (share of shown bundles holding a TRUE complement pair: both directions of the
    simulator's category complement graph, max(G[a,b], G[b,a]) >= --complement-threshold; computed by
    the evaluator from the bundle log, never shown to the policies),
  diversity (mean 1 - cosine similarity between the items of a shown multi-item bundle).

Writes results.md, results.json and results.png into --out.
"""

EPILOG = """\
examples:
  bundlerl evaluate runs/small__ppo__0__20260101-120000
  bundlerl evaluate runs/default__ppo__* runs/default__dqn__* --episodes 2000 --out results/
  bundlerl evaluate --preset small --baselines all            # baselines only
"""

METRICS = ("return", "click_rate", "conversion", "revenue", "bundle_size", "complement_share", "diversity")
LABELS = {"return": "mean return", "click_rate": "click rate", "conversion": "conversion", "revenue": "revenue",
          "bundle_size": "bundle size", "complement_share": "true-complement share", "diversity": "diversity"}


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="*", metavar="RUN_DIR", help="run directories made by 'bundlerl train'")
    p.add_argument("--baselines", default="all",
                   help="comma-separated baselines (random, popularity, relevance-greedy, complement-greedy), "
                        "'all' or 'none' (default: all)")
    p.add_argument("--oracles", default="none",
                   help="comma-separated oracles from bundlerl.agents.oracles (one-step, lookahead), 'all' or 'none'; "
                        "labelled as reading simulator truth (default: none)")
    p.add_argument("--preset", default=None, help="env preset (default: the runs' preset; required without runs)")
    p.add_argument("--episodes", type=int, default=1000, help="episodes per policy (default: 1000)")
    p.add_argument("--seed", type=int, default=0, help="env seed of the evaluation episodes (default: 0)")
    p.add_argument("--which", choices=("best", "final", "latest"), default="best",
                   help="which model of each run (default: best, falling back to final)")
    p.add_argument("--complement-threshold", type=float, default=0.3,
                   help="a pair is a true complement when max(G[a,b], G[b,a]) >= this (default: 0.3)")
    p.add_argument("--out", default=None, help="output folder (default: evaluations/{preset}__{time})")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def _names(spec: str, allowed: Sequence[str], what: str) -> list[str]:
    if spec in ("none", ""):
        return []
    if spec == "all":
        return list(allowed)
    names = [s.strip() for s in spec.split(",") if s.strip()]
    bad = [n for n in names if n not in allowed]
    if bad:
        raise ValueError(f"unknown {what} {bad}; use {', '.join(allowed)}, 'all' or 'none'")
    return names


def bundle_metrics(res, world, complement_threshold: float = 0.3) -> dict[str, Any]:
    """Per-episode sums for bundle size, true-complement share and diversity from ``res``'s bundle log.

    Returns ``{metric: (numerator (n_episodes,), denominator (n_episodes,))}``; the metric is Σnum / Σden.
    Reads simulator truth (the complement graph) — evaluation only.
    """
    n = res.n_episodes
    items = np.asarray(res.log_items)
    ep = np.asarray(res.log_episode)
    valid = items >= 0
    sizes = valid.sum(axis=1)
    cat = world.catalog
    G = None if cat.complement_graph is None else np.asarray(cat.complement_graph)
    emb = np.asarray(cat.embeddings, dtype=np.float32)
    category = np.asarray(cat.category)
    kmax = items.shape[1] if items.ndim == 2 else 0
    has_comp = np.zeros(len(items), bool)
    div_sum = np.zeros(len(items))
    n_pairs = np.zeros(len(items))
    safe = np.where(valid, items, 0)
    for a in range(kmax):
        for b in range(a + 1, kmax):
            ok = valid[:, a] & valid[:, b]
            ia, ib = safe[:, a], safe[:, b]
            if G is not None:
                ca, cb = category[ia], category[ib]
                has_comp |= ok & (np.maximum(G[ca, cb], G[cb, ca]) >= complement_threshold)
            cos = np.einsum("ij,ij->i", emb[ia], emb[ib])
            div_sum += np.where(ok, 1.0 - cos, 0.0)
            n_pairs += ok
    multi = n_pairs > 0
    per_bundle_div = np.where(multi, div_sum / np.maximum(n_pairs, 1), 0.0)
    count = lambda w: np.bincount(ep, weights=w, minlength=n).astype(np.float64)  # noqa: E731
    out = {
        "bundle_size": (count(sizes.astype(float)), count(np.ones(len(items)))),
        "diversity": (count(per_bundle_div), count(multi.astype(float))),
    }
    if G is not None:
        out["complement_share"] = (count(has_comp.astype(float)), count(np.ones(len(items))))
    return out


def summarize(res, world, complement_threshold: float = 0.3) -> dict[str, Any]:
    """The :data:`METRICS` estimates (bundlerl.evaluation.stats.Estimate) of one EvalResult."""
    from bundlerl.evaluation.stats import ratio_ci

    s = res.summary()
    out = {"return": s["return"], "click_rate": s["click_rate"], "conversion": s["conversion"], "revenue": s["revenue"]}
    for k, (num, den) in bundle_metrics(res, world, complement_threshold).items():
        out[k] = ratio_ci(num, den)
    return out


def markdown(table: dict[str, dict[str, Any]], labels: dict[str, str], n_episodes: int) -> str:
    """Markdown table: one row per policy, value ± 95% CI half-width per metric."""
    head = "| policy | episodes | " + " | ".join(LABELS[m] for m in METRICS) + " |"
    rows = [head, "|" + "---|" * (len(METRICS) + 2)]
    for name, est in table.items():
        cells = [est[m].format(3) if m in est else "n/a" for m in METRICS]
        rows.append(f"| {labels.get(name, name)} | {n_episodes} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def bar_chart(table: dict[str, dict[str, Any]], path: Path, title: str = "") -> None:
    """One panel per metric, a bar per policy with its 95% CI; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bundlerl.utils.atomic import atomic_write

    names = list(table)
    fig, axes = plt.subplots(1, len(METRICS), figsize=(3.0 * len(METRICS), 3.8))
    for ax, m in zip(axes, METRICS):
        vals = np.array([table[n][m].value if m in table[n] else np.nan for n in names])
        err = np.array([table[n][m].half_width if m in table[n] else 0 for n in names])
        ax.bar(range(len(names)), np.nan_to_num(vals), yerr=np.nan_to_num(err), capsize=3,
               color=[f"C{i}" for i in range(len(names))])
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=60, ha="right", fontsize=7)
        ax.set_title(LABELS[m], fontsize=9)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def _oracle_factories(names: list[str]):
    if not names:
        return {}
    import bundlerl.agents.oracles as oracles  # F's module

    facts = {}
    for n in names:
        if n == "one-step":
            facts["oracle-one-step"] = oracles.OneStepOracle
        elif n == "lookahead":
            facts["oracle-lookahead"] = oracles.LookaheadOracle
    return facts


def evaluate_runs(run_dirs: Sequence[str | Path], *, baselines: Sequence[str] = (), oracles: Sequence[str] = (),
                  preset: str | None = None, episodes: int = 1000, seed: int = 0, which: str = "best",
                  complement_threshold: float = 0.3, out: str | Path | None = None, progress: bool = True,
                  log=print) -> dict[str, Any]:
    """Evaluate runs, baselines and oracles on the same episodes; write results.md/.json/.png into ``out``.

    Torch runs on one intra-op thread meanwhile (restored after; see ``TrainConfig.torch_threads``: one
    thread is much faster on the shared 2-core machine).
    Returns ``{"table": {name: {metric: Estimate}}, "markdown": str, "out": Path}``.
    :raises ValueError: runs of different presets / action modes, no preset, nothing to evaluate.
    """
    from bundlerl.utils.threads import torch_threads

    with torch_threads(1):
        return _evaluate_runs(run_dirs, baselines=baselines, oracles=oracles, preset=preset, episodes=episodes,
                              seed=seed, which=which, complement_threshold=complement_threshold, out=out,
                              progress=progress, log=log)


def _evaluate_runs(run_dirs, *, baselines, oracles, preset, episodes, seed, which, complement_threshold, out,
                   progress, log) -> dict[str, Any]:
    from bundlerl.agents.baselines import make_baseline
    from bundlerl.env.world import build_world
    from bundlerl.evaluation.rollout import evaluate
    from bundlerl.experiment.run_dir import RunDir
    from bundlerl.utils.atomic import write_text

    runs = [RunDir.open(r) for r in run_dirs]
    presets = {r.config()["train"]["preset"] for r in runs}
    modes = {r.config()["train"].get("action_mode", "bundle") for r in runs}
    if len(presets) > 1 or len(modes) > 1:
        raise ValueError(f"runs use different presets / action modes {sorted(presets)} {sorted(modes)}; "
                         "evaluate them separately")
    preset = preset or (presets.pop() if presets else None)
    if preset is None:
        raise ValueError("no run given: pass --preset to evaluate baselines only")
    action_mode = modes.pop() if modes else "bundle"
    if not runs and not baselines and not oracles:
        raise ValueError("nothing to evaluate: give run directories, --baselines or --oracles")
    if episodes < 1:
        raise ValueError(f"--episodes {episodes}; it must be >= 1")
    world = build_world(preset)
    out = Path(out) if out else Path("evaluations") / f"{preset}__{time.strftime('%Y%m%d-%H%M%S')}"
    policies: dict[str, Any] = {}
    labels: dict[str, str] = {}
    for r in runs:
        policies[r.path.name] = r.policy(which)
    for b in baselines:
        policies[b] = make_baseline(b, np.random.default_rng([seed, 17]))
    for name, fac in _oracle_factories(list(oracles)).items():
        policies[name] = fac
        labels[name] = f"{name} (oracle, reads simulator truth)"
    table: dict[str, dict[str, Any]] = {}
    for i, (name, pol) in enumerate(policies.items()):
        log(f"[{i + 1}/{len(policies)}] evaluating {name} on {episodes} episodes of '{preset}'")
        res = evaluate(pol, preset, n_episodes=episodes, seed=seed, num_envs=min(episodes, 256),
                       action_mode=action_mode, progress=progress)
        table[name] = summarize(res, world, complement_threshold)
    md = markdown(table, labels, episodes)
    header = (f"# Evaluation on '{preset}' ({action_mode} mode), {episodes} episodes per policy, env seed {seed}\n\n"
              "value ± 95% CI half-width; true-complement share and diversity computed by the evaluator from "
              f"the bundle log (complement threshold {complement_threshold}).\n\n")
    write_text(out / "results.md", header + md + "\n![metrics](results.png)\n")
    import json

    write_text(out / "results.json", json.dumps(
        {n: {m: {"mean": e.value, "low": e.low, "high": e.high, "n": e.n} for m, e in est.items()}
         for n, est in table.items()}, indent=2) + "\n")
    bar_chart(table, out / "results.png", title=f"{preset}: {episodes} episodes, seed {seed}")
    return {"table": table, "markdown": md, "out": out}


def run(args) -> int:
    from bundlerl.agents.baselines import BASELINES

    res = evaluate_runs(
        args.runs, baselines=_names(args.baselines, BASELINES, "baselines"),
        oracles=_names(args.oracles, ("one-step", "lookahead"), "oracles"), preset=args.preset,
        episodes=args.episodes, seed=args.seed, which=args.which, complement_threshold=args.complement_threshold,
        out=args.out, progress=not args.no_progress,
    )
    print(res["markdown"])
    print(f"written: {res['out'] / 'results.md'}, {res['out'] / 'results.png'}")
    return 0
