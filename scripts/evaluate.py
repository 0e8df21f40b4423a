"""``bundlerl evaluate``: trained runs and baselines on the same episodes, with 95% CIs, a table and a bar chart.

Argument parsing only: the work is ``bundlerl.experiment.evaluate.evaluate_runs``."""

from __future__ import annotations

import argparse

from bundlerl.agents.oracles import ORACLE_PREFIX, ORACLES, oracle_name
from bundlerl.agents.tuned_linear import OBSERVABLE_POLICIES, TUNED_LINEAR
from bundlerl.evaluation.compare import EvalConfig
from bundlerl.experiment.run_dir import MODEL_CHOICES
from bundlerl.scripts.flags import (
    RUN_DIR,
    SEED,
    ExistingFile,
    Integer,
    Number,
    OutputFolder,
    SearchBudget,
    add_world_flags,
    default_of,
    names_type,
    world_from_args,
)

HELP = "evaluate trained runs against the baselines (table + bar chart)"

DESCRIPTION = """\
Roll out each trained run's best model (else its final model) and the observable baselines on the
same episodes (same env seed) of the runs' world (rebuilt from their run directories), and report
per policy, each with a 95% CI:

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
  bundlerl evaluate --preset small --baselines all --oracles all     # baselines and oracles only
  bundlerl evaluate --preset default --baselines tuned-linear,complement-greedy --tuned-budget 4x12x100
"""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="*", metavar="RUN_DIR", type=RUN_DIR, help="run directories made by 'bundlerl train'")
    p.add_argument("--baselines", default="all", type=names_type(OBSERVABLE_POLICIES, "baseline"),
                   help=f"comma-separated observable baselines ({', '.join(OBSERVABLE_POLICIES)}), 'all' or 'none' "
                        f"(default: all). {TUNED_LINEAR}: greedy on a linear score of every observable feature, "
                        "weights from --tuned-weights, else from its cached fit for the world, else fitted now on "
                        "training episodes with --tuned-budget (minutes; cached)")
    p.add_argument("--tuned-weights", default=None, type=ExistingFile(),
                   help=f"{TUNED_LINEAR}'s weights JSON (written by a fit; see docs) instead of the cached fit")
    p.add_argument("--tuned-budget", default=None, type=SearchBudget(),
                   help=f"{TUNED_LINEAR}'s cross-entropy search budget ROUNDSxCANDIDATESxEPISODES when it is fitted "
                        "(default: the recorded 12x24x200)")
    short = ", ".join(o.removeprefix(ORACLE_PREFIX) for o in ORACLES)
    p.add_argument("--oracles", default="none", type=names_type(ORACLES, "oracle", oracle_name),
                   help=f"comma-separated oracles ({short}; also with the '{ORACLE_PREFIX}' prefix), 'all' or "
                        "'none'; labelled as reading simulator truth (default: none)")
    add_world_flags(p, "default: the runs' own world, stored in their run directories; required without runs")
    episodes, seed, threshold = (default_of(EvalConfig, f) for f in ("episodes", "seed", "complement_threshold"))
    p.add_argument("--episodes", type=Integer(1), default=episodes, help=f"episodes per policy (default: {episodes})")
    p.add_argument("--seed", type=SEED, default=seed, help=f"env seed of the evaluation episodes (default: {seed})")
    p.add_argument("--which", choices=MODEL_CHOICES, default=MODEL_CHOICES[0],
                   help=f"which model of each run (default: {MODEL_CHOICES[0]}, falling back to final)")
    p.add_argument("--complement-threshold", type=Number(0.0, 1.0), default=threshold,
                   help=f"a pair is a true complement when max(G[a,b], G[b,a]) >= this (default: {threshold})")
    p.add_argument("--out", default=None, type=OutputFolder(), help="output folder (default: evaluations/{preset}__{time})")
    p.set_defaults(func=run, check=check)


def check(args) -> None:
    """The world flags' joint check right after parsing (before any run is opened); stores ``args.world``."""
    args.world = world_from_args(args)


def run(args) -> int:
    from bundlerl.experiment.evaluate import evaluate_runs

    if not hasattr(args, "world"):  # called without the command line's check
        check(args)
    res = evaluate_runs(
        args.runs, baselines=args.baselines, oracles=args.oracles, preset=args.world, episodes=args.episodes,
        seed=args.seed, which=args.which, complement_threshold=args.complement_threshold, out=args.out,
        progress=False if args.no_progress else None, tuned_weights=args.tuned_weights, tuned_budget=args.tuned_budget,
    )
    print(res["markdown"])
    print(f"written: {res['out'] / 'results.md'}, {res['out'] / 'results.png'}")
    return 0
