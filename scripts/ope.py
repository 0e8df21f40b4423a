"""``bundlerl ope``: estimate target policies' values from a log (off-policy evaluation), with bootstrap CIs.

Argument parsing only: the work is ``bundlerl.evaluation.ope.evaluate.off_policy_evaluate``."""

from __future__ import annotations

import argparse

from bundlerl.agents.baselines import BASELINES
from bundlerl.evaluation.ope.fitted_q import RETURN_MODELS
from bundlerl.evaluation.ope.intervals import INTERVALS, TRAJECTORY_INTERVALS
from bundlerl.scripts.flags import SEED, ExistingFolder, Integer, Number, OutputFolder, PolicySpec

HELP = "estimate policies' values from a log (IPS, DR, ... with bootstrap CIs; table + chart)"

DESCRIPTION = """\
Off-policy evaluation: estimate what each --policy would earn from a log written by 'bundlerl log'
(or by serving), without running it. Per decision (mean reward per decision): DM, IPS, SNIPS, DR,
SNDR, Switch-DR; per trajectory (mean episode return): PDIS, weighted PDIS, DR, weighted DR.
Intervals: 95% Poisson bootstrap over episodes; per decision they cover the policy's value on the
logged contexts (--interval logged, the default) or on the traffic they came from (--interval
population: wider, the contexts' own spread enters); per trajectory, the mean return of new
episodes. Also reported: effective sample sizes of the
importance weights, and the share of the policy's mass on candidates the logger never showed (an
error unless --allow-unsupported). The log is streamed part by part: memory stays flat.

A policy is a baseline name or a run directory; add ':greedy' for its deterministic form
(one-hot on its most probable candidate), e.g. runs/ppo_run:greedy.

Writes ope.md, ope.json and ope.png into --out.
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
                        "tuned-linear weights .json, or a run directory")
    p.add_argument("--clip", type=Number(1e-9, 1e12), default=None,
                   help="largest importance weight (default: no clipping)")
    p.add_argument("--tau", type=Number(0.0, 1e12), default=10.0, help="Switch-DR threshold (default: 10)")
    p.add_argument("--gamma", type=Number(0.0, 1.0), default=1.0, help="discount per trajectory (default: 1)")
    p.add_argument("--bootstrap", type=Integer(2), default=200, help="bootstrap replicates (default: 200)")
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
                        "NDCG / hit rate @K against the items bought in the session (works on logs of real traffic)")
    p.add_argument("--out", default=None, type=OutputFolder(), help="output folder (default: LOGS/ope)")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from bundlerl.env.observation import observation_spec
    from bundlerl.evaluation.logs.loader import LogDataset
    from bundlerl.evaluation.ope.evaluate import OPEConfig, off_policy_evaluate
    from bundlerl.evaluation.ope.report import ope_markdown, write_ope_report
    from bundlerl.experiment.policy_spec import load_policy, policy_world
    from bundlerl.utils.threads import torch_threads

    logs = LogDataset.open(args.logs)
    for spec in args.policy:  # a trained policy must see the observation it was trained on
        world = policy_world(spec)
        if world is not None:
            from bundlerl.env.vec_env import BundleRecVecEnv

            space = BundleRecVecEnv(world, num_envs=1).observation_space.spaces
            K, F = space["candidates"].shape
            LogDataset.open(args.logs, expect_spec=observation_spec(space["profile"].shape[0], K, F))
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
        results = off_policy_evaluate(logs, policies, config)
    paths = write_ope_report(results, args.out or Path(args.logs) / "ope",
                             f"off-policy estimates from {args.logs} ({logs.n_rows:,} decisions)")
    print(ope_markdown(results))
    if args.ranking_k:
        from bundlerl.evaluation.ranking import RANKING_METRICS, log_ranking_metrics
        from bundlerl.utils.atomic import write_text

        table = log_ranking_metrics(logs, policies, args.ranking_k)
        k = args.ranking_k
        lines = ["| policy | " + " | ".join(f"{m}@{k}" for m in RANKING_METRICS) + " | decisions with a purchase |",
                 "|" + "---|" * (len(RANKING_METRICS) + 2)]
        for name, row in table.items():
            lines.append(f"| {name} | " + " | ".join(row[m].format() for m in RANKING_METRICS) + " | "
                         f"sessions: {row['ndcg'].n:,} |")
        text = "\n".join(lines) + "\n"
        write_text(paths["md"].with_name("ranking.md"), text)
        print(text)
    print(f"written: {paths['md']}, {paths['png']}")
    return 0
