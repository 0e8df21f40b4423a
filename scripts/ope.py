"""``bundlerl ope``: estimate target policies' values from a log (off-policy evaluation), with bootstrap CIs.

Argument parsing only: the work is ``bundlerl.evaluation.ope.evaluate.off_policy_evaluate``."""

from __future__ import annotations

import argparse

from bundlerl.agents.baselines import BASELINES
from bundlerl.evaluation.ope.fitted_q import RETURN_MODELS
from bundlerl.evaluation.ope.intervals import INTERVALS, TRAJECTORY_INTERVALS
from bundlerl.scripts.flags import SEED, ExistingFolder, Integer, Number, OutputFolder, PolicySpec

MAX_BOOTSTRAP = 100_000
"""Most --bootstrap replicates (checked at parse time): the bootstrap keeps per-replicate sums in memory for each
policy, so 1e9 replicates ran out of memory (a numpy MemoryError); 100,000 pins a 95% interval's ends far more
finely than the estimates' own noise needs."""

_PYTHON_NAME = "allow_unsupported=True"
"""The Python argument as the estimators' messages name it; the CLI says its flag instead."""

HELP = "estimate policies' values from a log (IPS, DR, ... with bootstrap CIs; table + chart)"

DESCRIPTION = """\
Off-policy evaluation: estimate what each --policy would earn from a log written by 'bundlerl log'
(or by serving), without running it. Per decision (mean reward per decision): DM, IPS, SNIPS, DR,
SNDR, Switch-DR; per trajectory (mean episode return): PDIS, weighted PDIS, DR, weighted DR, and
RegDR (DR with the weight means as control variates) - PDIS-traj, WPDIS-traj, DR-traj, WDR-traj,
RegDR-traj in the table.
Intervals: 95% Poisson bootstrap over episodes; per decision they cover the policy's value on the
logged contexts (--interval logged, the default) or on the traffic they came from (--interval
population: wider, the contexts' own spread enters); per trajectory, the mean return of new
episodes. Also reported: effective sample sizes of the
importance weights, and the share of the policy's mass on candidates the logger never showed (an
error unless --allow-unsupported). The log is streamed part by part: memory stays flat.

A policy is a baseline name, tuned-linear, a tuned-linear weights .json or a run directory;
RUN_DIR:greedy is a run's deterministic form (one-hot on its most probable candidate), e.g.
runs/ppo_run:greedy (run directories only: the other policies are greedy already, random has none).

Writes ope.md, ope.png and ope.json into --out (with --ranking-k also ranking.md, its figures in ope.json too);
ope.json also records the run's settings: the log folder and its log.json's SHA-256, the policies (and
what each is: a run's model file actually loaded, its SHA-256 and the run's own versions; a weights or
tuned-linear cache file and its SHA-256), the estimator settings, --ranking-k, package versions and git
commit. The report is written to a temporary sibling folder and swapped in at the end. --out must be missing or empty, or
--overwrite given (a previous report is never replaced silently).
The log must be complete (its log.json written last by 'bundlerl log') and match it.
"""

EPILOG = """\
examples:
  bundlerl ope --logs logs/cg-eps --policy random --policy complement-greedy --policy runs/ppo_run:greedy
  bundlerl ope --logs logs/cg-eps --policy popularity --clip 50 --out results/ope
"""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("ope", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--logs", required=True, type=ExistingFolder(what="log folder written by 'bundlerl log'"),
                   help="the log folder")
    p.add_argument("--policy", required=True, action="append", metavar="NAME|RUN_DIR[:greedy]", type=PolicySpec(),
                   help=f"a target policy (repeatable): a baseline ({', '.join(BASELINES)}), tuned-linear, a "
                        "tuned-linear weights .json, or a run directory (RUN_DIR:greedy: its deterministic form)")
    p.add_argument("--clip", type=Number(1e-9, 1e12), default=None,
                   help="largest importance weight (default: no clipping)")
    p.add_argument("--tau", type=Number(0.0, 1e12), default=10.0, help="Switch-DR threshold (default: 10)")
    p.add_argument("--gamma", type=Number(0.0, 1.0), default=1.0, help="discount per trajectory (default: 1)")
    p.add_argument("--bootstrap", type=Integer(2, MAX_BOOTSTRAP), default=200,
                   help=f"bootstrap replicates, at most {MAX_BOOTSTRAP:,} (default: 200)")
    p.add_argument("--interval", choices=INTERVALS, default=INTERVALS[0],
                   help="per-decision intervals for the value on the logged contexts, or on the traffic they were "
                        f"drawn from (default: {INTERVALS[0]})")
    p.add_argument("--return-model", choices=RETURN_MODELS, default=RETURN_MODELS[0],
                   help="return model of the per-trajectory DR / WDR: the logger's Monte-Carlo return regressor, or "
                        "each target's fitted-Q evaluation (linear LSTD-Q, refitted per bootstrap replicate) "
                        f"(default: {RETURN_MODELS[0]})")
    p.add_argument("--trajectory-interval", choices=TRAJECTORY_INTERVALS, default=TRAJECTORY_INTERVALS[0],
                   help="per-trajectory intervals: symmetric or equal-tailed studentized bootstrap (bootstrap-t), or "
                        "percentile "
                        f"(default: {TRAJECTORY_INTERVALS[0]})")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the bootstrap and the reward models (default: 0)")
    p.add_argument("--allow-unsupported", action="store_true",
                   help="estimate even where a policy puts mass on candidates the logger never showed (biased)")
    p.add_argument("--truth", action="store_true",
                   help="also report the simulator's per-decision ground truth (simulated logs only)")
    p.add_argument("--ranking-k", type=Integer(1), default=None, metavar="K",
                   help="also rank each decision's logged candidates by each policy and report precision / recall / "
                        "NDCG / hit rate @K against the items bought in the session (works on logs of real traffic); at most the "
                        "log's K candidates per decision")
    p.add_argument("--out", default=None, type=OutputFolder(),
                   help="output folder, missing or empty (default: LOGS/ope)")
    p.add_argument("--overwrite", action="store_true",
                   help="write into a non-empty --out: replace a previous report's files (ope.md, ranking.md, ope.png, "
                        "ope.json; nothing else in the folder is touched)")
    p.set_defaults(func=run, check=check)


def _out(args):
    from pathlib import Path

    return Path(args.out) if args.out else Path(args.logs) / "ope"


def check(args) -> None:
    """The flags' joint checks, right after parsing (``bundlerl.scripts.cli``): --out (default LOGS/ope) missing or
    empty, or --overwrite (a previous report is not replaced silently; ``bundlerl log`` likewise refuses a folder
    holding a log).

    :raises OPEError: a non-empty --out without --overwrite, or --out the log folder (or its truth/) itself (one
        line, exit 2)."""
    from pathlib import Path

    from bundlerl.evaluation.logs.schema import TRUTH_DIR
    from bundlerl.evaluation.ope.estimators import OPEError
    from bundlerl.evaluation.ope.report import check_report_folder

    out, logs = _out(args).resolve(), Path(args.logs).resolve()
    if out in (logs, logs / TRUTH_DIR):
        which = "the log folder" if out == logs else f"the log's {TRUTH_DIR}/ folder"
        raise OPEError(f"--out {args.out}: that is {which} itself; write the report elsewhere, e.g. --out "
                       f"{Path(args.logs) / 'ope'} (the default)")
    check_report_folder(_out(args), overwrite=args.overwrite, out_name="--out", overwrite_name="--overwrite")


def run(args) -> int:
    import sys

    from bundlerl.env.observation import observation_spec
    from bundlerl.evaluation.logs.loader import LogDataset
    from bundlerl.evaluation.logs.schema import TRUTH_DIR, LogError
    from bundlerl.evaluation.ope.estimators import OPEError
    from bundlerl.evaluation.ope.evaluate import OPEConfig, off_policy_evaluate
    from bundlerl.evaluation.ope.report import (
        ReportWrittenInterrupt,
        ope_markdown,
        ranking_markdown,
        write_ope_report,
    )
    from bundlerl.experiment.policy_spec import load_policy, policy_world
    from bundlerl.utils.atomic import interrupts_deferred
    from bundlerl.utils.threads import torch_threads

    logs = LogDataset.open(args.logs)
    if args.truth and not logs.has_truth:
        raise LogError(f"{args.logs}: this log has no ground truth ({TRUTH_DIR}/: logs written with --no-truth and "
                       "logs of real traffic have none): drop --truth")
    if args.ranking_k is not None and args.ranking_k > logs.dims.K:
        raise LogError(f"--ranking-k {args.ranking_k}: the log has K={logs.dims.K} candidates per decision; pass "
                       f"--ranking-k {logs.dims.K} or less")
    repeated = sorted({spec for spec in args.policy if args.policy.count(spec) > 1})
    if repeated:
        raise OPEError(f"--policy {repeated[0]} is given more than once; each policy is estimated once: drop the repeat")
    for spec in args.policy:  # a trained policy must see the observation it was trained on
        world = policy_world(spec)
        if world is not None:
            from bundlerl.env.vec_env import BundleRecVecEnv

            space = BundleRecVecEnv(world, num_envs=1).observation_space.spaces
            K, F = space["candidates"].shape
            logs.check_spec(observation_spec(space["profile"].shape[0], K, F))
    config = OPEConfig(clip=float("inf") if args.clip is None else args.clip, tau=args.tau, gamma=args.gamma, n_boot=args.bootstrap, seed=args.seed,
                       interval=args.interval, return_model=args.return_model,
                       trajectory_interval=args.trajectory_interval,
                       allow_unsupported=args.allow_unsupported, truth=args.truth,
                       progress=False if args.no_progress else None)
    with torch_threads(1):
        policies = {}
        for spec in args.policy:
            pol = load_policy(spec, seed=args.seed, world=logs.info.get("preset"))
            policies[pol.name if pol.name not in policies else spec] = pol
        try:
            results = off_policy_evaluate(logs, policies, config)
        except OPEError as exc:  # the CLI's flag, not the Python argument, in the CLI's message
            raise OPEError(str(exc).replace(_PYTHON_NAME, "--allow-unsupported")) from None
        ranking = None
        if args.ranking_k:
            from bundlerl.evaluation.ranking import log_ranking_metrics

            ranking = log_ranking_metrics(logs, policies, args.ranking_k)
    out = _out(args)
    check(args)  # again: another run may have written there since the flags were checked
    settings = _settings(args, logs, config, [(spec, name) for spec, name in zip(args.policy, policies)])
    try:
        paths = write_ope_report(results, out, f"off-policy estimates from {args.logs} ({logs.n_rows:,} decisions)",
                                 ranking=ranking, ranking_k=args.ranking_k, settings=settings, overwrite=True,
                                 notes=_evaluated(settings["policies"]))
    except ReportWrittenInterrupt as exc:  # the report is complete: not a failure
        print(f"bundlerl ope: {exc}", file=sys.stderr)
        return 0
    done = f"bundlerl ope: interrupted after the report was written to {out}"
    if getattr(args, "whole_process", False):  # the report is complete: a Ctrl-C from now to the process's exit
        _report_interrupts_after_the_report(done)  # (its teardown too) is said, not a failure (exit 0)
    with interrupts_deferred() as late:
        print(ope_markdown(results))
        if ranking is not None:
            print(ranking_markdown(ranking, args.ranking_k))
        print("written: " + ", ".join(str(p) for p in paths.values()))
    if late.interrupted:
        print(done, file=sys.stderr)
    if getattr(args, "whole_process", False):  # Python's teardown resets its own handlers: ignore Ctrl-C outright
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return 0


def _report_interrupts_after_the_report(message: str) -> None:
    """From now on, a Ctrl-C (SIGINT) prints ``message`` instead of stopping the process (it is about to exit 0)."""
    import signal
    import sys
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, lambda signum, frame: print(message, file=sys.stderr))


def _evaluated(policies: list[dict]) -> str:
    """ope.md's lines on what each policy is (the model file and hash behind a run directory or tuned-linear)."""
    lines = []
    for p in policies:
        src = p["source"]
        if src.get("sha256") or src.get("file"):
            what = f"{src['run_dir']}/{src['model']}" if src["kind"] == "run" else src["file"]
            commit = ((src.get("versions") or {}).get("git") or {}).get("commit") if src["kind"] == "run" else None
            lines.append(f"- {p['name']}: {what} (sha256 {str(src.get('sha256'))[:16]}"
                         + (f"; trained at commit {str(commit)[:12]}" if commit else "") + ")")
    return "evaluated models:\n\n" + "\n".join(lines) if lines else ""


def _settings(args, logs, config, policies: list[tuple[str, str]]) -> dict:
    """What ``ope.json`` records of this run (``write_ope_report``'s ``settings``): the log (folder, its
    ``log.json``'s SHA-256 and what wrote it), the policies (spec as given, name in the table, and what was evaluated:
    ``bundlerl.experiment.policy_source`` - a run's model file, its SHA-256 and the run's own versions, a weights
    or tuned-linear cache file and its SHA-256), the estimator settings
    (``config_settings``), --ranking-k, and the provenance a run directory records (``bundlerl.experiment.provenance``:
    python and package versions, git commit and dirty flag)."""
    from pathlib import Path

    from bundlerl.evaluation.logs.schema import LOG_JSON
    from bundlerl.evaluation.ope.report import config_settings
    from bundlerl.experiment.policy_spec import policy_source
    from bundlerl.experiment.provenance import git_info, package_versions
    from bundlerl.utils.hashing import file_sha256

    log_json = Path(args.logs) / LOG_JSON
    return {
        "command": "bundlerl ope",
        "logs": {"folder": str(Path(args.logs).resolve()), "log_json_sha256": file_sha256(log_json),
                 "rows": logs.n_rows, **{k: logs.info[k] for k in ("policy", "preset", "stream", "episodes")
                                         if k in logs.info}},
        "policies": [{"spec": spec, "name": name,
                      "source": policy_source(spec, world=logs.info.get("preset"))} for spec, name in policies],
        "estimator": config_settings(config),
        "ranking_k": args.ranking_k,
        "versions": {**package_versions(), "git": git_info()},
    }
