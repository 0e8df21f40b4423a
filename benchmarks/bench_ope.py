"""Off-policy evaluation validated against the simulator (issue 18, section 3), and its scale.

Validation: for each logger (complement-greedy with epsilon 0.3; a softmax over tuned-linear's scores mixed with 5%
uniform over the valid candidates) one long log is written on the ``LOGGING`` stream and cut into disjoint repeats of
whole episodes (a part file of ~``--steps`` decisions each; ``--large-parts`` consecutive parts make a 10x larger
repeat). Every estimator of ``bundlerl ope`` is run on each repeat for every target, and compared with its own ground
truth:

- per decision: the mean over the repeat's logged decisions of sum_a pi(a|x) E[r|x, a] (the log's ``truth/`` files);
- per trajectory: the target's on-policy mean return over ``--truth-episodes`` fresh episodes of an ``EVALUATE``
  stream (disjoint from the logs' by purpose).

Printed per logger and repeat size: mean relative error |estimate - truth| / |truth| and 95% CI coverage (the share
of repeats whose bootstrap interval holds the truth) for every estimator x target, and the episode-weight ESS.
Then the issue's pooled figures: DR / SNDR coverage over every target's intervals (with the coverage's own
sampling interval), and weighted DR for the targets whose episode-weight ESS is above 1% of the episodes and for the
others. Per-decision intervals cover the value on the logged contexts (``OPEConfig.interval``'s default), the
estimand of the per-decision truth.

Targets: random, complement-greedy, tuned-linear (greedy), and the trained runs given with ``--ppo`` / ``--dqn`` /
``--myopic`` (each deterministic, ``:greedy``, and stochastic: PPO's own distribution, DQN epsilon-greedy 0.1).

Scale (``--scale N``): a log of N decisions (the validation logs' parts, repeated with fresh context ids when they are
shorter), all estimators, three targets, streamed in a fresh process: wall time and peak RSS, next to the same at N/4.

    # the recorded run (100 repeats at 10k, 10 at 100k; ~1 hour on the shared 2-core VM, two loggers side by side)
    python benchmarks/bench_ope.py --repeats 100 --large-repeats 10 --extra-logs 6 --ppo RUN --dqn RUN --myopic RUN
    # the issue's full size (100 at 10k, 20 at 100k: 16 more logs of 11 parts each)
    python benchmarks/bench_ope.py --repeats 100 --large-repeats 20 --extra-logs 16 --ppo RUN --dqn RUN --myopic RUN
    python benchmarks/bench_ope.py --scale 1000000 --scale-only --out DIR        # scale only
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def targets(args, world):
    from bundlerl.agents.baselines import ComplementGreedyPolicy, RandomPolicy
    from bundlerl.agents.exploration import Greedy
    from bundlerl.agents.sb3 import SB3Policy
    from bundlerl.evaluation.tuning import CEMBudget, tuned_linear
    from bundlerl.experiment.run_dir import RunDir

    tl = tuned_linear(world, budget=CEMBudget.parse(args.tuned_budget), log=print)
    out = {"random": RandomPolicy(np.random.default_rng(0)), "complement-greedy": ComplementGreedyPolicy(),
           "tuned-linear": tl}
    for label, path in (("myopic", args.myopic), ("ppo", args.ppo), ("dqn", args.dqn)):
        if not path:
            continue
        run = RunDir.open(path)
        model = run.load_model("best")
        base = SB3Policy(model, name=label)
        out[f"{label}:greedy"] = Greedy(base)
        out[f"{label}:stochastic"] = SB3Policy(model, name=f"{label}:stochastic", epsilon=0.1) if base.is_dqn else base
    return out, tl


def loggers(tl, temperature: float):
    from bundlerl.agents.baselines import ComplementGreedyPolicy
    from bundlerl.agents.exploration import exploring

    return {"cg-eps0.3": exploring(ComplementGreedyPolicy(), epsilon=0.3),
            f"tl-softmax{temperature:g}+floor0.05": exploring(tl, temperature=temperature, floor=0.05)}


def trajectory_truth(pols, world, episodes: int, cache: Path) -> dict[str, float]:
    from bundlerl.evaluation.rollout import evaluate
    from bundlerl.evaluation.seeds import Purpose, env_stream

    known = json.loads(cache.read_text()) if cache.is_file() else {}
    for name, pol in pols.items():
        if name in known:
            continue
        t = time.perf_counter()
        res = evaluate(pol, world, n_episodes=episodes, seed=env_stream(Purpose.EVALUATE, 18), deterministic=False,
                       keep_log=False, progress=False)
        se = res.returns.std(ddof=1) / np.sqrt(res.returns.size)
        known[name] = {"mean": float(res.returns.mean()), "se": float(se)}
        print(f"  truth {name}: {known[name]['mean']:.3f} ± {1.96 * se:.3f} ({episodes} episodes, "
              f"{time.perf_counter() - t:.0f} s)", flush=True)
        cache.write_text(json.dumps(known, indent=1))
    return {k: v["mean"] for k, v in known.items()}


def run_repeat(folder: Path, parts: list[Path], pols, seed: int):
    from bundlerl.evaluation.logs.loader import LogDataset
    from bundlerl.evaluation.ope.evaluate import OPEConfig, off_policy_evaluate

    full = LogDataset.open(folder)
    sub = LogDataset(full.folder, parts, full.dims, full.obs_spec, 0, full.info)
    return off_policy_evaluate(sub, pols, OPEConfig(truth=True, seed=seed, progress=False, keep_replicates=True))


def _forms(value: float, kept: dict | None) -> dict:
    """The per-trajectory interval forms (``bundlerl.evaluation.ope.intervals``) from kept replicates: name ->
    (low, high); {} without replicates."""
    from bundlerl.evaluation.ope.intervals import percentile_estimate, studentized_estimate

    if not kept:
        return {}
    reps, se, ser = np.asarray(kept["reps"]), kept["se"], np.asarray(kept["se_reps"])
    out = {"percentile": percentile_estimate(value, reps, 0.95, 1)}
    out["studentized"] = studentized_estimate(value, se, reps, ser, 0.95, 1)
    out["symmetric"] = studentized_estimate(value, se, reps, ser, 0.95, 1, symmetric=True)
    return {k: (e.low, e.high) for k, e in out.items()}


def summarise(rows: list[dict], traj_truth: dict[str, float]) -> str:
    """The estimator x target table (mean relative error / coverage), then the issue's pooled figures."""
    from bundlerl.evaluation.ope.estimators import DECISION_ESTIMATORS
    from bundlerl.evaluation.ope.evaluate import ESTIMATOR_NAMES
    from bundlerl.evaluation.ope.intervals import TRAJECTORY_INTERVALS
    from bundlerl.evaluation.ope.report import LOW_EPISODE_ESS
    from bundlerl.evaluation.stats import mean_ci

    per_decision = {c.name for c in DECISION_ESTIMATORS}
    names = list(dict.fromkeys(r["policy"] for r in rows))
    head = "| target | " + " | ".join(ESTIMATOR_NAMES) + " | ESS episodes (mean) |"
    lines = [head, "|" + "---|" * (len(ESTIMATOR_NAMES) + 2)]
    err: dict = {}
    cov: dict = {}
    ess_share = {}
    for name in names:
        rs = [r for r in rows if r["policy"] == name]
        cells = []
        for est in ESTIMATOR_NAMES:
            for r in rs:
                e = r["estimates"][est]
                truth = r["truth"] if est in per_decision else traj_truth[name]
                err.setdefault((name, est), []).append(abs(e["mean"] - truth) / abs(truth))
                forms = _forms(e["mean"], r.get("trajectory_replicates", {}).get(est))
                # the reported interval: the current default form, from the kept replicates where a result was
                # computed under another default (same estimate, replicates and standard errors)
                lo, hi = forms.get(TRAJECTORY_INTERVALS[0], (e["low"], e["high"]))
                cov.setdefault((name, est), []).append(lo <= truth <= hi)
                for form, (lo, hi) in forms.items():
                    cov.setdefault((name, f"{est}:{form}"), []).append(lo <= truth <= hi)
            cells.append(f"{np.mean(err[name, est]):.1%} / {np.mean(cov[name, est]):.0%}")
        ess_share[name] = float(np.mean([r["ess_episodes"] / r["n_episodes"] for r in rs]))
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {ess_share[name]:.2%} |")

    def pooled(est, keep):
        c = [x for n in names if keep(n) for x in cov[n, est]]
        e = [np.mean(err[n, est]) for n in names if keep(n)]
        if not c:
            return "none"
        ci = mean_ci(np.asarray(c, float))  # the coverage's own sampling error (targets share repeats: rough)
        alts = []
        for form in ("percentile", "studentized", "symmetric"):
            pc = [x for n in names if keep(n) for x in cov.get((n, f"{est}:{form}"), [])]
            if pc:
                alts.append(f"{form} {np.mean(pc):.1%}")
        alt = f" (interval forms on the same replicates: {', '.join(alts)})" if alts else ""
        return (f"coverage {ci.value:.1%} [{max(ci.low, 0):.1%}, {min(ci.high, 1):.1%}] of {len(c)} intervals{alt}; "
                f"mean relative error: worst target {max(e):.1%}, mean {np.mean(e):.1%}")

    high = lambda n: ess_share[n] > LOW_EPISODE_ESS  # noqa: E731
    lines += ["", f"- DR: {pooled('DR', lambda n: True)}", f"- SNDR: {pooled('SNDR', lambda n: True)}",
              f"- WDR-traj, targets with episode ESS > {LOW_EPISODE_ESS:.0%} "
              f"({', '.join(n for n in names if high(n)) or 'none'}): {pooled('WDR-traj', high)}",
              f"- WDR-traj, the others: {pooled('WDR-traj', lambda n: not high(n))}",
              f"- WPDIS, all targets: {pooled('WPDIS', lambda n: True)}",
              f"- DR-traj, all targets: {pooled('DR-traj', lambda n: True)}"]
    return "\n".join(lines)


def validate(args) -> None:
    from bundlerl.env.config import get_config
    from bundlerl.evaluation.logs import LogDataset, collect_logs
    from bundlerl.utils.threads import torch_threads

    world = get_config(args.preset)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with torch_threads(1):
        pols, tl = targets(args, world)
        truth = None  # computed (or read from its cache) only when the first results are summarised
        n_parts = max(args.repeats, args.large_repeats * args.large_parts) + 1  # + 1: the last part may be short
        report = [f"# bench_ope: preset {args.preset}, {args.steps:,}-step repeats x {args.repeats}, "
                  f"{args.steps * args.large_parts:,}-step repeats x {args.large_repeats}; trajectory truth from "
                  f"{args.truth_episodes:,} on-policy episodes; tuned-linear budget {args.tuned_budget}\n",
                  "cells: mean relative error / 95% CI coverage over repeats\n"]
        for lname, logger in loggers(tl, args.temperature).items():
            if args.loggers and not any(lname.startswith(w) for w in args.loggers.split(",")):
                continue
            # the log of --seed, then --extra-logs more of seeds --seed + 1, ... (other logging streams): their
            # parts (whole episodes, ~--steps decisions each) are the disjoint repeats
            folders = []
            for j in range(1 + args.extra_logs):
                folder = out / (f"log-{lname}" + (f"-s{args.seed + j}" if j else ""))
                if not (folder / "log.json").is_file() and args.no_logging:
                    print(f"no finished log {folder}: skipped (--no-logging)", flush=True)
                    continue
                if not (folder / "log.json").is_file():
                    t = time.perf_counter()
                    parts_wanted = n_parts if not j else args.large_parts + 1
                    episodes = int(parts_wanted * args.steps / args.mean_length)
                    info = collect_logs(logger, world, episodes, folder, seed=args.seed + j,
                                        rows_per_part=args.steps, progress=False)
                    print(f"logged {folder.name}: {info['rows']:,} decisions, {info['parts']} parts, "
                          f"{time.perf_counter() - t:.0f} s", flush=True)
                folders.append((folder, LogDataset.open(folder).part_paths[:-1]))  # the last part may be short
            if args.log_only:
                continue
            small = [(f, [p]) for f, parts in folders for p in parts][: args.repeats]
            large = [(f, parts[i * args.large_parts:(i + 1) * args.large_parts]) for f, parts in folders
                     for i in range(len(parts) // args.large_parts)][: args.large_repeats]
            for size, groups in (("small", small), ("large", large)):
                if not groups:  # e.g. --repeats 0: one process per size
                    continue
                cache = out / f"results-{lname}-{size}.json"
                rows = json.loads(cache.read_text()) if cache.is_file() else []
                t = time.perf_counter()
                for i, (folder, group) in enumerate(groups):
                    done = {r["policy"] for r in rows if r["repeat"] == i}
                    todo = {k: v for k, v in pols.items() if k not in done}
                    if not todo:
                        continue
                    for res in run_repeat(folder, group, todo, seed=i):
                        rows.append({"repeat": i, **res.to_dict()})
                    cache.write_text(json.dumps(rows))
                    print(f"  {lname} {size} repeat {i + 1}/{len(groups)} ({time.perf_counter() - t:.0f} s)",
                          flush=True)
                rows = [r for r in rows if r["repeat"] < len(groups)]
                if truth is None:
                    truth = trajectory_truth(pols, world, args.truth_episodes, out / "trajectory_truth.json")
                n_dec = np.mean([r["n_decisions"] for r in rows]) if rows else 0
                report.append(f"\n## logger {lname}, {len(groups)} repeats of ~{n_dec:,.0f} decisions\n")
                report.append(summarise(rows, truth))
    text = "\n".join(report) + "\n"
    (out / "bench_ope.md").write_text(text)
    print(text)


_SCALE_CHILD = """
import json, resource, sys, time
import numpy as np
from bundlerl.agents.baselines import ComplementGreedyPolicy, RandomPolicy, PopularityPolicy
from bundlerl.evaluation.ope.evaluate import OPEConfig, off_policy_evaluate
t = time.perf_counter()
res = off_policy_evaluate(sys.argv[1], {"random": RandomPolicy(np.random.default_rng(0)),
                          "complement-greedy": ComplementGreedyPolicy(), "popularity": PopularityPolicy()},
                          OPEConfig(progress=False))
print(json.dumps({"seconds": time.perf_counter() - t, "rows": res[0].n_decisions,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def scale(args) -> None:
    import pyarrow.parquet as pq

    from bundlerl.evaluation.logs import LogDataset

    src = sorted(Path(args.out).glob("log-*"))
    if not src:
        raise SystemExit("run the validation first (it writes the logs the scale run reuses)")
    parts = [p for d in src for p in LogDataset.open(d).part_paths]
    for n in (args.scale // 4, args.scale):
        folder = Path(args.out) / f"scale-{n}"
        if not (folder / "part-000000.parquet").is_file():
            folder.mkdir(parents=True, exist_ok=True)
            rows, i, offset = 0, 0, 0
            while rows < n:
                t = pq.read_table(parts[i % len(parts)])
                ids = t.column("context_id").to_numpy() + offset
                t = t.set_column(0, "context_id", __import__("pyarrow").array(ids))
                pq.write_table(t, folder / f"part-{i:06d}.parquet")
                offset = int(ids.max()) + 1
                rows += t.num_rows
                i += 1
        child = subprocess.run([sys.executable, "-c", _SCALE_CHILD, str(folder)], capture_output=True, text=True)
        if child.returncode:
            print(child.stderr)
            raise SystemExit(child.returncode)
        r = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"scale: {r['rows']:,} decisions, 10 estimators x 3 targets: {r['seconds']:.0f} s, "
              f"{r['rows'] / r['seconds']:,.0f} decisions/s, peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="default")
    p.add_argument("--steps", type=int, default=10_000, help="decisions per small repeat (one part file)")
    p.add_argument("--repeats", type=int, default=20, help="small repeats (the issue: >= 100)")
    p.add_argument("--large-parts", type=int, default=10, help="parts per large repeat (10: 100k decisions)")
    p.add_argument("--large-repeats", type=int, default=2, help="large repeats (the issue: >= 20)")
    p.add_argument("--truth-episodes", type=int, default=10_000)
    p.add_argument("--mean-length", type=float, default=8.0, help="decisions per episode, to size the logs")
    p.add_argument("--temperature", type=float, default=0.5, help="softmax temperature of the tuned-linear logger")
    p.add_argument("--tuned-budget", default="12x24x200", help="tuned-linear's CEM budget (default: the recorded one)")
    p.add_argument("--ppo"), p.add_argument("--dqn"), p.add_argument("--myopic")
    p.add_argument("--seed", type=int, default=0, help="logging stream seed")
    p.add_argument("--no-logging", action="store_true", help="use only the finished logs in --out")
    p.add_argument("--extra-logs", type=int, default=0,
                   help="more logs per logger (logging seeds --seed + 1, ...), each of --large-parts + 1 parts")
    p.add_argument("--log-only", action="store_true", help="write the logs, estimate nothing")
    p.add_argument("--loggers", default="", help="comma-separated name prefixes of the loggers to run "
                   "(cg, tl; default: both), e.g. one process per logger")
    p.add_argument("--scale", type=int, default=0, help="also the scale run on this many decisions")
    p.add_argument("--scale-only", action="store_true")
    p.add_argument("--out", default="bench-ope")
    args = p.parse_args(argv)
    t = time.perf_counter()
    if not args.scale_only:
        validate(args)
    if args.scale:
        scale(args)
    print(f"total {time.perf_counter() - t:.0f} s; peak RSS of this process "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
