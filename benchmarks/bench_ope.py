"""Off-policy evaluation validated against the simulator (issue 18, section 3), and its scale.

Validation: for each logger (complement-greedy with epsilon 0.3; a softmax over tuned-linear's scores mixed with 5%
uniform over the valid candidates) logs are written on the ``LOGGING`` stream, one per seed (``--seed``, ``--seed`` +
1, ...), each of ``--log-parts`` full part files of ~``--steps`` decisions (one more part of episodes is logged and its
short tail dropped), and cut into disjoint repeats of whole episodes: a 10k repeat is one part (the first
``--repeats`` parts in log order), a 100k repeat ``--large-parts`` consecutive parts of one log. Every estimator of
``bundlerl ope`` is run on each repeat for every target, and compared with its own ground truth:

- per decision: the mean over the repeat's logged decisions of sum_a pi(a|x) E[r|x, a] (the log's ``truth/`` files);
- per trajectory: the target's on-policy mean return over ``--truth-episodes`` fresh episodes of an ``EVALUATE``
  stream (disjoint from the logs' by purpose), computed once per (world, target) and cached on disk by content
  (``bundlerl.evaluation.ope.truth``).

Affordability (issue 18's full size: 100 repeats at 10k and 20 at 100k per logger, 2 loggers, 9 targets): the work
is cut into tasks, one log, one truth or one repeat's evaluation each, each with its own seeds (a repeat's bootstrap
and regressors seed = its index; a log's stream = its seed), run by ``--jobs`` worker processes of one thread each
(10k repeats and their logs first, then the truths, then the 100k repeats), so ``--jobs 2`` gives the same numbers
as ``--jobs 1`` on two cores. Every task writes its own file (logs, ``results-<logger>-<size>/repeat-*.json``, the
truth cache), so an interrupted run resumes where it stopped; ``identity.json`` ties ``--out`` to one world and one
identity per target name (model file hashes, tuned-linear's weights).

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

    # the issue's full size (100 repeats at 10k, 20 at 100k per logger: 20 logs of 10 parts per logger), two workers
    python benchmarks/bench_ope.py --repeats 100 --large-repeats 20 --jobs 2 --ppo RUN --dqn RUN --myopic RUN
    # the 10k repeats only (coverage; 10 logs per logger)
    python benchmarks/bench_ope.py --repeats 100 --large-repeats 0 --jobs 2 --ppo RUN --dqn RUN --myopic RUN
    python benchmarks/bench_ope.py --scale 1000000 --scale-only --out DIR        # scale only
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def targets(args, world):
    """The target policies (label -> Policy), the tuned-linear policy, and each target's identity (label -> str: what
    makes its behaviour, the key of its cached trajectory truth)."""
    from bundlerl.agents.baselines import ComplementGreedyPolicy, RandomPolicy
    from bundlerl.agents.exploration import Greedy
    from bundlerl.agents.sb3 import SB3Policy
    from bundlerl.evaluation.tuning import CEMBudget, tuned_linear
    from bundlerl.evaluation.world_identity import content_key
    from bundlerl.experiment.run_dir import RunDir
    from bundlerl.utils.hashing import file_sha256

    tl = tuned_linear(world, budget=CEMBudget.parse(args.tuned_budget), log=print)
    out = {"random": RandomPolicy(np.random.default_rng(0)), "complement-greedy": ComplementGreedyPolicy(),
           "tuned-linear": tl}
    ident = {"random": "random", "complement-greedy": "complement-greedy",
             "tuned-linear": "tuned-linear " + content_key({"weights": np.asarray(tl.weights).tolist(),
                                                            "features": list(tl.names)})}
    for label, path in (("myopic", args.myopic), ("ppo", args.ppo), ("dqn", args.dqn)):
        if not path:
            continue
        run = RunDir.open(path)
        model = run.load_model("best")
        digest = file_sha256(run.model_path("best"))
        base = SB3Policy(model, name=label)
        out[f"{label}:greedy"] = Greedy(base)
        ident[f"{label}:greedy"] = f"{label}:greedy sb3 {digest}"
        out[f"{label}:stochastic"] = SB3Policy(model, name=f"{label}:stochastic", epsilon=0.1) if base.is_dqn else base
        ident[f"{label}:stochastic"] = f"{label}:stochastic sb3 {digest}" + (" epsilon 0.1" if base.is_dqn else "")
    return out, tl, ident


def loggers(tl, temperature: float):
    from bundlerl.agents.baselines import ComplementGreedyPolicy
    from bundlerl.agents.exploration import exploring

    return {"cg-eps0.3": exploring(ComplementGreedyPolicy(), epsilon=0.3),
            f"tl-softmax{temperature:g}+floor0.05": exploring(tl, temperature=temperature, floor=0.05)}


# ---------------------------------------------------------------------- the plan: logs, repeats, tasks
def plan_logs(args, lnames) -> dict[str, list[tuple[Path, int]]]:
    """Per logger, its logs (folder, logging seed): ``--log-parts`` full parts each (one more part of episodes is
    logged, its short tail dropped), as many as the repeats need; seeds ``--seed``, ``--seed`` + 1, ..."""
    per_log_large = args.log_parts // args.large_parts if args.large_parts <= args.log_parts else 0
    need = -(-args.repeats // args.log_parts)
    if args.large_repeats:
        if not per_log_large:
            raise SystemExit(f"--log-parts {args.log_parts} < --large-parts {args.large_parts}: a large repeat "
                             "would span logs")
        need = max(need, -(-args.large_repeats // per_log_large))
    out = Path(args.out)
    return {ln: [(out / f"log-{ln}-s{args.seed + j}", args.seed + j) for j in range(need)] for ln in lnames}


def repeats_of(args, logs: list[tuple[Path, int]]) -> dict[str, list[tuple[Path, list[str]]]]:
    """The disjoint repeats cut from a logger's finished logs: ``small`` (one part each, the first ``--repeats``
    parts in log order) and ``large`` (``--large-parts`` consecutive parts of one log); each (folder, part names)."""
    from bundlerl.evaluation.logs import LogDataset

    small, large = [], []
    for folder, _ in logs:
        if not (folder / "log.json").is_file():
            continue
        parts = [p.name for p in LogDataset.open(folder).part_paths[:-1]][: args.log_parts]  # the last may be short
        small += [(folder, [p]) for p in parts]
        large += [(folder, parts[i * args.large_parts:(i + 1) * args.large_parts])
                  for i in range(len(parts) // args.large_parts)]
    return {"small": small[: args.repeats], "large": large[: args.large_repeats]}


def finished_logs(logs: list[tuple[Path, int]], ready: set[Path], no_logging: bool) -> list[tuple[Path, int]]:
    """The logs repeats may be cut from now: the finished ones up to the first unfinished one, so repeat i is the same
    part whatever order the workers finish the logs in (cutting from all finished logs gave repeat 0 to whichever log
    finished first, and a part two repeat numbers); with ``no_logging`` none will come, so all finished ones."""
    if no_logging:
        return [lg for lg in logs if lg[0] in ready]
    return list(itertools.takewhile(lambda lg: lg[0] in ready, logs))


_STATE: dict = {}


def _state(args):
    """This process's world, targets and loggers (built once per process; a worker builds its own)."""
    if not _STATE:
        from bundlerl.env.config import get_config
        from bundlerl.utils.threads import torch_threads

        torch_threads(1).__enter__()  # one thread per process: --jobs processes share the cores
        world = get_config(args.preset)
        pols, tl, ident = targets(args, world)
        _STATE.update(world=world, pols=pols, ident=ident, loggers=loggers(tl, args.temperature))
    return _STATE


def task_log(args, lname: str, folder: str, seed: int) -> str:
    import shutil

    from bundlerl.evaluation.logs import collect_logs

    if (Path(folder) / "log.json").is_file():  # finished since the plan was made (another process, a rerun)
        return f"{Path(folder).name}: already logged"
    if Path(folder).is_dir():  # parts without log.json: a log task killed midway (an interrupted run) starts over
        shutil.rmtree(folder)
    st = _state(args)
    t, c = time.perf_counter(), time.process_time()
    episodes = int((args.log_parts + 1) * args.steps / args.mean_length)
    info = collect_logs(st["loggers"][lname], st["world"], episodes, Path(folder), seed=seed,
                        rows_per_part=args.steps, num_envs=args.log_envs, progress=False)
    return (f"logged {Path(folder).name}: {info['rows']:,} decisions, {info['parts']} parts, "
            f"{time.perf_counter() - t:.0f} s ({time.process_time() - c:.0f} CPU s)")


def task_truth(args, name: str) -> str:
    from bundlerl.evaluation.ope.truth import trajectory_truth

    st = _state(args)
    c = time.process_time()
    tr = trajectory_truth(st["pols"][name], st["world"], identity=st["ident"][name], episodes=args.truth_episodes)
    return (f"truth {name}: {tr.mean:.3f} ± {1.96 * tr.se:.3f} ({tr.episodes:,} episodes; computed in "
            f"{tr.seconds:.0f} s; {time.process_time() - c:.0f} CPU s now)")


def result_path(args, lname: str, size: str, i: int) -> Path:
    return Path(args.out) / f"results-{lname}-{size}" / f"repeat-{i:04d}.json"


def task_eval(args, lname: str, size: str, i: int, folder: str, parts: list[str]) -> str:
    """Every estimator for every target on repeat ``i`` (its own bootstrap seed ``i``); rows to its own file."""
    from bundlerl.utils.atomic import write_text

    st = _state(args)
    path = result_path(args, lname, size, i)
    rows = json.loads(path.read_text()) if path.is_file() else []
    todo = {k: v for k, v in st["pols"].items() if k not in {r["policy"] for r in rows}}
    t, c = time.perf_counter(), time.process_time()
    if todo:
        rows += [{"repeat": i, **res.to_dict()} for res in
                 run_repeat(Path(folder), [Path(folder) / p for p in parts], todo, seed=i)]
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps(rows))
    return (f"{lname} {size} repeat {i} ({len(todo)} targets, {time.perf_counter() - t:.0f} s, "
            f"{time.process_time() - c:.0f} CPU s)")


class _Inline:
    """A one-process stand-in for the pool (``--jobs 1``): runs each task when submitted."""

    def submit(self, fn, *a):
        from concurrent.futures import Future

        f = Future()
        try:
            f.set_result(fn(*a))
        except BaseException as err:  # noqa: BLE001 - handed to the caller through the future
            f.set_exception(err)
        return f

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _pool(jobs: int):
    """``jobs`` worker processes (spawned; one BLAS / OpenMP / torch thread each), or in-process for 1."""
    import multiprocessing as mp
    import os
    from concurrent.futures import ProcessPoolExecutor

    if jobs <= 1:
        return _Inline()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = "1"  # inherited by the spawned workers
    return ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"))


def run_tasks(args, lnames: list[str], names: list[str]) -> None:
    """Logs, truths and repeat evaluations, at most ``--jobs`` at a time, in priority order: the 10k repeats (what
    coverage needs most) and their logs first, then the truths, then the 100k repeats and their logs. Every task
    writes its own files, so an interrupted run resumes where it stopped."""
    from concurrent.futures import FIRST_COMPLETED, wait

    logs = plan_logs(args, lnames)
    n_small_logs = -(-args.repeats // args.log_parts)
    queue: list[tuple[int, int, tuple]] = []  # (priority, order, task)
    order = iter(range(10**9))
    ready: set[Path] = set()
    for j in range(max((len(v) for v in logs.values()), default=0)):
        for ln in lnames:
            if j < len(logs[ln]):
                folder, seed = logs[ln][j]
                if (folder / "log.json").is_file():
                    ready.add(folder)
                elif not args.no_logging:
                    queue.append((1 if j < n_small_logs else 4, next(order), (task_log, ln, str(folder), seed)))
    if not args.log_only:
        queue += [(2, next(order), (task_truth, n)) for n in names]
    submitted: set[tuple] = set()

    def add_evals():
        if args.log_only:
            return
        for ln in lnames:
            cut = repeats_of(args, finished_logs(logs[ln], ready, args.no_logging))
            for size, groups in cut.items():
                for i, (folder, parts) in enumerate(groups):
                    key = (ln, size, i)
                    if key in submitted:
                        continue
                    submitted.add(key)
                    path = result_path(args, ln, size, i)
                    if path.is_file() and {r["policy"] for r in json.loads(path.read_text())} >= set(names):
                        continue
                    queue.append((0 if size == "small" else 3, next(order),
                                  (task_eval, ln, size, i, str(folder), parts)))

    add_evals()
    t0 = time.perf_counter()
    running: dict = {}
    with _pool(args.jobs) as pool:
        while queue or running:
            while queue and len(running) < max(args.jobs, 1):
                queue.sort()
                _, _, task = queue.pop(0)
                running[pool.submit(task[0], args, *task[1:])] = task
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for f in done:
                task = running.pop(f)
                print(f"[{time.perf_counter() - t0:6.0f} s] {f.result()}", flush=True)  # a failed task raises here
                if task[0] is task_log:
                    ready.add(Path(task[2]))
            add_evals()


def check_identity(args, world, ident: dict[str, str]) -> None:
    """``--out`` belongs to one world and one identity per target name: a folder of logs or results from another
    world (or a changed target under the same name) is an error, not a silent mix."""
    from bundlerl.evaluation.world_identity import content_key, world_identity
    from bundlerl.utils.atomic import write_text

    path = Path(args.out) / "identity.json"
    mine = {"world": content_key(world_identity(world)), "targets": ident,
            "logging": {"steps": args.steps, "log_parts": args.log_parts, "temperature": args.temperature,
                        "tuned_budget": args.tuned_budget}}
    if path.is_file():
        old = json.loads(path.read_text())
        clash = [k for k in ("world",) if old.get(k) != mine[k]]
        clash += [f"target {n}" for n, v in ident.items() if old.get("targets", {}).get(n, v) != v]
        clash += [f"logging {k}" for k, v in mine["logging"].items() if old.get("logging", {}).get(k, v) != v]
        if clash:
            raise SystemExit(f"{args.out} holds logs / results of another {', '.join(clash)}: choose another --out")
        mine["targets"] = {**old.get("targets", {}), **ident}
    write_text(path, json.dumps(mine, indent=1))


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
              f"- RegDR-traj, targets with episode ESS > {LOW_EPISODE_ESS:.0%}: {pooled('RegDR-traj', high)}",
              f"- RegDR-traj, the others: {pooled('RegDR-traj', lambda n: not high(n))}",
              f"- WPDIS, all targets: {pooled('WPDIS', lambda n: True)}",
              f"- DR-traj, all targets: {pooled('DR-traj', lambda n: True)}"]
    return "\n".join(lines)


def validate(args) -> None:
    from bundlerl.evaluation.ope.truth import trajectory_truth

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    st = _state(args)  # fits tuned-linear here first (cached), so the workers load it
    lnames = [ln for ln in st["loggers"] if not args.loggers or any(ln.startswith(w) for w in args.loggers.split(","))]
    names = list(st["pols"])
    check_identity(args, st["world"], st["ident"])
    t = time.perf_counter()
    run_tasks(args, lnames, names)
    print(f"tasks done in {time.perf_counter() - t:.0f} s (--jobs {args.jobs})", flush=True)
    if args.log_only:
        return
    truths = {n: trajectory_truth(st["pols"][n], st["world"], identity=st["ident"][n], episodes=args.truth_episodes)
              for n in names}  # from the cache the truth tasks filled
    (out / "trajectory_truth.json").write_text(json.dumps({n: vars(v) for n, v in truths.items()}, indent=1))
    truth = {n: v.mean for n, v in truths.items()}
    report = [f"# bench_ope: preset {args.preset}, {args.steps:,}-step repeats x {args.repeats}, "
              f"{args.steps * args.large_parts:,}-step repeats x {args.large_repeats}; trajectory truth from "
              f"{args.truth_episodes:,} on-policy episodes; tuned-linear budget {args.tuned_budget}\n",
              "truths: " + ", ".join(f"{n} {v.mean:.3f} ± {1.96 * v.se:.3f}" for n, v in truths.items()) + "\n",
              "cells: mean relative error / 95% CI coverage over repeats\n"]
    logs = plan_logs(args, lnames)
    for ln in lnames:
        for size, groups in repeats_of(args, logs[ln]).items():
            rows = [r for i in range(len(groups)) if result_path(args, ln, size, i).is_file()
                    for r in json.loads(result_path(args, ln, size, i).read_text())]
            if not rows:
                continue
            n_dec = np.mean([r["n_decisions"] for r in rows])
            n_rep = len({r["repeat"] for r in rows})
            report.append(f"\n## logger {ln}, {n_rep} repeats of ~{n_dec:,.0f} decisions ({size})\n")
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
    from bundlerl.evaluation.logs.writer import write_log_json
    from bundlerl.evaluation.ope.evaluate import ESTIMATOR_NAMES

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
        if not (folder / "log.json").is_file():  # the loader refuses a log without it (an unfinished writer)
            write_log_json(folder, {"source": "bench_ope scale: parts of the validation logs, context ids offset"})
        child = subprocess.run([sys.executable, "-c", _SCALE_CHILD, str(folder)], capture_output=True, text=True)
        if child.returncode:
            print(child.stderr)
            raise SystemExit(child.returncode)
        r = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"scale: {r['rows']:,} decisions, {len(ESTIMATOR_NAMES)} estimators x 3 targets: {r['seconds']:.0f} s, "
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
    p.add_argument("--log-parts", type=int, default=10,
                   help="full parts per log (each log is one logging seed and one task); default: one large repeat")
    p.add_argument("--log-envs", type=int, default=256, help="sessions stepped together while logging")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (one thread each): logs, truths and "
                   "repeats run side by side; results equal --jobs 1's (each task its own seeds)")
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
