"""Sequential value (issue 17, section 2; docs/SIMULATOR.md property H2): do PPO / DQN beat the best *myopic* policy?

Per world (``--presets``; a world nobody tuned on: ``--set n_items=...`` / ``catalog_seed=...``):

1. the myopic controls and the references, on the same ``--episodes`` evaluation episodes (the ``EVALUATE`` stream of
   ``--eval-seed``): the hand-set baselines, ``tuned-linear`` (its cached fit at ``--tuned-budget``, else fitted
   now on its own training streams), the one-step and lookahead oracles (they read simulator truth; the lookahead's
   rollouts follow each of ``--lookahead-bases``: the one-step oracle and/or tuned-linear);
2. per algorithm and training seed: the RL agent (its YAML discount) and its myopic twin (the same algorithm,
   network, hyper-parameters and timesteps with gamma = 0), trained for ``--timesteps`` on their TRAIN streams,
   their best models evaluated on the same episodes;
3. the table: mean return and revenue per episode (95% CIs) for every policy; best myopic control = the best mean
   return among the hand-set baselines, tuned-linear and the myopic learners (each learner's seeds pooled);
   per RL algorithm (seeds pooled): ratio to the best myopic control with the 95% CI of a ratio of independent means
   (``bundlerl.evaluation.stats.mean_ratio_ci``; "paired": the tighter CI over the common episodes,
   ``ratio_ci``), the target (>= 1.10 and CI low > 1), the share of headroom
   closed ``(RL - best myopic) / (lookahead - best myopic)``, and the learning curve's rise (final periodic
   evaluation over the first, "CIs apart" when the intervals do not overlap); lookahead / best myopic (the
   first milestone, >= 1.25).

    python benchmarks/bench_sequential.py --presets default,revenue --seeds 0,1,2 --timesteps 300000   # the full run
    python benchmarks/bench_sequential.py --presets default --seeds 0 --timesteps 30000 --episodes 2000 \\
        --tuned-budget 12x24x200                                                                    # a short run
    python benchmarks/bench_sequential.py --no-train --presets default,revenue                      # controls only
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np


def _parse(argv=None):
    from bundlerl.scripts.flags import Integer

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", default="default,revenue", help="comma-separated env presets (default: default,revenue)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a field of every preset's EnvConfig (a world nobody tuned on), e.g. --set catalog_seed=5")
    p.add_argument("--algos", default="ppo,dqn", help="comma-separated algorithms (default: ppo,dqn)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds (default: 0,1,2)")
    p.add_argument("--timesteps", type=int, default=300_000, help="training timesteps per run (default: 300000)")
    p.add_argument("--eval-episodes", type=int, default=200, help="episodes per periodic evaluation (default: 200)")
    p.add_argument("--evals", type=int, default=10, help="periodic evaluations per run (default: 10)")
    p.add_argument("--episodes", type=int, default=2000, help="common evaluation episodes per policy (default: 2000)")
    p.add_argument("--lookahead-episodes", type=int, default=None, help="episodes of the lookahead oracle (default: --episodes)")
    p.add_argument("--lookahead-bases", default="one-step,tuned-linear",
                   help="base policies of the lookahead oracle's rollouts, comma-separated: one-step (the one-step "
                        "oracle) and/or tuned-linear (default: both); a '~budget' suffix (e.g. tuned-linear~budget) "
                        "is the ablation whose planner does not know the shopper's budget")
    p.add_argument("--lookahead-depth", type=Integer(1), default=5,
                   help="steps each simulated future of the lookahead oracle runs, the first included (default: 5)")
    p.add_argument("--lookahead-top-m", type=Integer(1), default=5,
                   help="candidates the lookahead oracle plans per step (default: 5)")
    p.add_argument("--lookahead-rollouts", type=Integer(1), default=8,
                   help="simulated futures per planned candidate (default: 8)")
    p.add_argument("--eval-seed", type=int, default=7, help="seed of the EVALUATE stream (default: 7)")
    p.add_argument("--tuned-budget", default="12x24x200", help="tuned-linear's search budget (default: 12x24x200)")
    p.add_argument("--no-train", action="store_true", help="only the controls and the oracles (no RL training)")
    p.add_argument("--out", default="benchmarks/results/sequential", help="output folder")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def _paired(a, b) -> str:
    """' (paired [lo, hi])': the 95% CI of the ratio over common episodes (episode i of both samples is the same
    shopper with the same response streams: common random numbers, ``evaluation.stats.ratio_ci``); '' otherwise."""
    from bundlerl.evaluation.stats import ratio_ci

    if len(a) != len(b):
        return ""
    e = ratio_ci(a, b)
    return f" (paired [{e.low:.3f}, {e.high:.3f}])"


def _ratio(a, b) -> "tuple[float, float, float]":
    from bundlerl.evaluation.stats import mean_ratio_ci

    e = mean_ratio_ci(a, b)
    return e.value, e.low, e.high


def _curve(run_dir: Path) -> dict:
    """First and final periodic evaluations of a run (eval.csv): means, CIs, the rise and whether the CIs are apart."""
    rows = list(csv.DictReader(open(run_dir / "eval.csv")))
    if len(rows) < 2:
        return {"n": len(rows)}
    f, z = rows[0], rows[-1]
    first, final = float(f["mean_return"]), float(z["mean_return"])
    return {"n": len(rows), "first": first, "final": final, "rise": final / first if first else float("nan"),
            "apart": float(z["ci_low"]) > float(f["ci_high"])}


def run_world(config, args, out: Path, log=print) -> str:
    from bundlerl.agents.baselines import BASELINES, make_baseline
    from bundlerl.agents.oracles import LookaheadOracle, OneStepOracle
    from bundlerl.agents.tuned_linear import TUNED_LINEAR
    from bundlerl.evaluation.rollout import evaluate
    from bundlerl.evaluation.seeds import Purpose, env_stream
    from bundlerl.evaluation.stats import mean_ci
    from bundlerl.evaluation.tuning import CEMBudget, tuned_linear
    from bundlerl.experiment.run_dir import RunDir
    from bundlerl.experiment.training import TrainConfig, train
    from bundlerl.utils.threads import torch_threads

    stream = env_stream(Purpose.EVALUATE, args.eval_seed)
    progress = False if args.no_progress else None
    budget = CEMBudget.parse(args.tuned_budget)
    ev = lambda pol, n=args.episodes: evaluate(pol, config, n_episodes=n, seed=stream, progress=progress,  # noqa: E731
                                                keep_log=False)
    res, kind, secs = {}, {}, {}

    def timed(name, k, f):
        t = time.perf_counter()
        res[name], kind[name] = f(), k
        secs[name] = time.perf_counter() - t
        log(f"   {name}: mean return {res[name].returns.mean():.3f} ({secs[name]:.0f} s)")

    log(f"== {config.name}: controls and oracles on {args.episodes} episodes")
    for b in BASELINES:
        timed(b, "hand-set", lambda b=b: ev(make_baseline(b, np.random.default_rng(args.eval_seed))))
    timed(TUNED_LINEAR, "tuned", lambda: ev(tuned_linear(config, budget=budget, progress=progress, log=log)))
    timed(OneStepOracle.name, "oracle", lambda: ev(OneStepOracle))
    # the lookahead oracle, its rollouts following the one-step oracle or tuned-linear (the stronger base: by
    # policy improvement it earns at least what tuned-linear earns)
    la_n = args.lookahead_episodes or args.episodes
    for b in [b for b in args.lookahead_bases.split(",") if b]:
        blind = b.endswith("~budget")  # ablation: the planner does not know the budget
        base = None if b.removesuffix("~budget") == "one-step" else tuned_linear(config, budget=budget,
                                                                                progress=progress, log=lambda m: None)
        name = (LookaheadOracle.name if base is None else f"{LookaheadOracle.name}[{TUNED_LINEAR}]") + \
            ("~budget" if blind else "")
        timed(name, "oracle", lambda base=base, blind=blind: ev(
            lambda v: LookaheadOracle(v, seed=args.eval_seed, base=base, blind_budget=blind, depth=args.lookahead_depth,
                                      top_m=args.lookahead_top_m, n_rollouts=args.lookahead_rollouts), la_n))
    curves: dict[str, list] = {}
    pooled: dict[str, list] = {}
    if not args.no_train:
        algos = [a for a in args.algos.split(",") if a]
        seeds = [int(s) for s in args.seeds.split(",") if s]
        for algo in algos:
            for myopic in (False, True):
                label = f"{algo} myopic" if myopic else algo
                for seed in seeds:
                    log(f"== {config.name}: training {label}, seed {seed}, {args.timesteps} timesteps")
                    cfg = TrainConfig(algo=algo, preset=config, timesteps=args.timesteps, seed=seed, myopic=myopic,
                                      eval_freq=max(1, args.timesteps // args.evals), eval_episodes=args.eval_episodes,
                                      final_episodes=0, progress=progress)
                    tr = train(cfg, out=out / "runs", log=lambda m: None)
                    with torch_threads(1):
                        r = ev(RunDir.open(tr.run_dir).policy("best", name=f"{label} (seed {seed})"))
                    res[f"{label} (seed {seed})"], kind[f"{label} (seed {seed})"] = r, "rl-myopic" if myopic else "rl"
                    pooled.setdefault(label, []).append(r)
                    curves.setdefault(label, []).append(_curve(tr.run_dir))
                    log(f"   {label} seed {seed}: mean return {r.returns.mean():.3f} ({tr.wall_s:.0f} s training)")
    # pooled learners: every seed's episodes
    pool = {k: (np.concatenate([r.returns for r in v]), np.concatenate([r.revenue for r in v])) for k, v in pooled.items()}
    returns = {n: (r.returns, r.revenue) for n, r in res.items()}
    myopic_names = [n for n, k in kind.items() if k in ("hand-set", "tuned")] + [k for k in pool if k.endswith("myopic")]
    allr = {**returns, **pool}
    best = max(myopic_names, key=lambda n: allr[n][0].mean())
    lookaheads = [n for n in res if n.startswith(LookaheadOracle.name)]
    la_best = max(lookaheads, key=lambda n: allr[n][0].mean()) if lookaheads else None
    la = allr[la_best][0] if la_best else np.full(1, np.nan)
    bm = allr[best][0]
    lines = [f"### {config.name}" + (f" ({', '.join(args.set)})" if args.set else ""), "",
             f"{args.episodes} common evaluation episodes per policy (EVALUATE stream, seed {args.eval_seed}); "
             f"tuned-linear budget {budget.label}; lookahead depth {args.lookahead_depth}, top {args.lookahead_top_m}, "
             f"{args.lookahead_rollouts} rollouts; " + ("no RL training" if args.no_train else
                                                         f"RL: {args.timesteps} timesteps, seeds {args.seeds}"), "",
             "| policy | kind | mean return (95% CI) | revenue / episode (95% CI) | / best myopic (95% CI) |",
             "|---|---|---|---|---|"]
    for n in list(returns) + list(pool):
        r, v = allr[n]
        k = kind.get(n, "rl-myopic (seeds pooled)" if n.endswith("myopic") else "rl (seeds pooled)")
        m, rv = mean_ci(r), mean_ci(v)
        q = _ratio(r, bm)
        lines.append(f"| {n} | {k} | {m.value:.3f} [{m.low:.3f}, {m.high:.3f}] | {rv.value:.1f} [{rv.low:.1f}, "
                     f"{rv.high:.1f}] | {q[0]:.3f} [{q[1]:.3f}, {q[2]:.3f}]{_paired(r, bm)} |")
    lines += ["", f"- best myopic control: **{best}** ({bm.mean():.3f})"]
    for n in lookaheads:
        q = _ratio(allr[n][0], bm)
        lines.append(f"- first milestone, {n} / best myopic: {q[0]:.3f} [{q[1]:.3f}, {q[2]:.3f}]{_paired(allr[n][0], bm)} "
                     f"({'met' if q[0] >= 1.25 else 'NOT met'}: target >= 1.25)")
    for label in pool:
        if label.endswith("myopic"):
            continue
        r = pool[label][0]
        q = _ratio(r, bm)
        share = (r.mean() - bm.mean()) / (la.mean() - bm.mean()) if la.mean() != bm.mean() else float("nan")
        c = curves.get(label, [])
        rise = ", ".join(f"{x['first']:.2f} -> {x['final']:.2f} (x{x['rise']:.2f}, {'CIs apart' if x['apart'] else 'CIs overlap'})"
                         for x in c if "first" in x)
        ok = q[0] >= 1.10 and q[1] > 1.0
        lines.append(f"- {label} (seeds pooled) / best myopic: {q[0]:.3f} [{q[1]:.3f}, {q[2]:.3f}] "
                     f"({'met' if ok else 'NOT met'}: target >= 1.10, CI above 1); share of headroom closed "
                     f"{100 * share:.0f}%; learning curves (first -> final periodic evaluation): {rise or 'n/a'}")
    lines += ["- seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in secs.items()), ""]
    # per-episode returns and revenue of every policy, so runs split over processes can be combined
    np.savez(out / f"episodes-{config.name}.npz", **{f"{n}|{w}": a for n, (r, v) in allr.items()
                                                      for w, a in (("return", r), ("revenue", v))})
    return "\n".join(lines)


def main(argv=None) -> int:
    args = _parse(argv)
    from bundlerl.env.config import env_config_overrides, get_config
    from bundlerl.utils.atomic import write_text

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    parts = []
    for preset in [p for p in args.presets.split(",") if p]:
        config = get_config(preset)
        if args.set:
            config = env_config_overrides(config, args.set).replace(name=f"{preset}-untuned")
        parts.append(run_world(config, args, out))
        print(parts[-1], flush=True)
    text = "\n".join(parts) + f"\ntotal wall time {time.perf_counter() - t0:.0f} s\n"
    write_text(out / "results.md", text)
    write_text(out / "args.json", json.dumps(vars(args), indent=2))
    print(f"written: {out / 'results.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
