"""``bundlerl log``: log an exploring policy's decisions on simulated shoppers, for off-policy evaluation.

Argument parsing only: the work is ``bundlerl.evaluation.logs.collect.collect_logs``."""

from __future__ import annotations

import argparse

from bundlerl.agents.baselines import BASELINES
from bundlerl.scripts.flags import (
    SEED,
    Integer,
    Number,
    OutputFolder,
    PolicySpec,
    add_world_flags,
    world_from_args,
)

HELP = "log an exploring policy on simulated shoppers (Parquet, with propensities) for 'bundlerl ope'"

DESCRIPTION = """\
Play --episodes episodes of simulated shoppers (the 'logging' seed stream: never the shoppers of
training or evaluation) with the policy, its actions sampled from its distribution, and write every
decision to --out as Parquet part files in the versioned log schema (bundlerl.evaluation.logs.schema):
the full observation, the candidates' item ids, the chosen action, the logging policy's whole
distribution and propensity, click, items bought, revenue, reward, terminated / truncated.
The simulator's ground truth (the expected reward of every candidate under the shopper's true
hidden state) goes to --out/truth/, for validating estimators only.

Exploration (off-policy estimators need every action a target may take to have a propensity > 0):
  --epsilon E      with probability E a uniform valid candidate, else the policy's best
  --temperature T  softmax over the policy's scores / T (its log-probabilities when it has no scores)
  --floor P        mix the result with P uniform over the valid candidates
Default (none of them): no exploration - the policy's own distribution, one-hot for a deterministic
policy (complement-greedy, popularity, ...): such a log supports only the logging policy itself
(most targets are refused by 'bundlerl ope' as unsupported); a warning says so.

The folder gets log.json last: a log interrupted (Ctrl-C) before it is removed when this command
created the folder, else refused by 'bundlerl ope' as incomplete.
"""

EPILOG = """\
examples:
  bundlerl log --policy complement-greedy --epsilon 0.3 --preset default --episodes 2000 --out logs/cg-eps
  bundlerl log --policy runs/default__ppo__0__20260101-120000 --floor 0.05 --episodes 1000 --out logs/ppo
  bundlerl log --policy tuned-linear --temperature 0.5 --floor 0.05 --episodes 2000 --out logs/tl-soft
"""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("log", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--policy", required=True, metavar="NAME|RUN_DIR", type=PolicySpec(),
                   help=f"the logging policy: a baseline ({', '.join(BASELINES)}), tuned-linear (its cached fit, else "
                        "fitted now: minutes), a tuned-linear weights .json, or a run directory")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--epsilon", type=Number(0.0, 1.0), default=None, help="epsilon-greedy exploration, in [0, 1] (default: none)")
    g.add_argument("--temperature", type=Number(1e-6, 1e6), default=None, help="softmax temperature, > 0 (default: none)")
    p.add_argument("--floor", type=Number(0.0, 1.0), default=None,
                   help="share of uniform over the valid candidates mixed in (a propensity floor), in [0, 1] "
                        "(default: none)")
    add_world_flags(p, "default: a run's own world, else 'default'")
    p.add_argument("--episodes", type=Integer(1), required=True, help="episodes to log")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the logging stream (default: 0)")
    p.add_argument("--num-envs", type=Integer(1), default=256, help="sessions stepped together (default: 256)")
    p.add_argument("--rows-per-part", type=Integer(1), default=50_000,
                   help="decisions per Parquet part file (default: 50,000)")
    p.add_argument("--no-truth", action="store_true", help="do not write the simulator's ground truth")
    p.add_argument("--out", required=True, type=OutputFolder(), help="log folder to write (must hold no log yet)")
    p.set_defaults(func=run, check=check)


def check(args) -> None:
    """The flags' joint checks, right after parsing (``bundlerl.scripts.cli``): --out holds no log yet (before a
    policy is loaded, which for tuned-linear may mean minutes of fitting).

    :raises LogError: --out holds part files (one line, exit 2)."""
    from bundlerl.evaluation.logs.collect import check_log_folder

    check_log_folder(args.out)


def run(args) -> int:
    import shutil
    import sys
    from pathlib import Path

    from bundlerl.agents.exploration import exploring
    from bundlerl.evaluation.logs.collect import collect_logs
    from bundlerl.experiment.policy_spec import load_policy, policy_world
    from bundlerl.utils.errors import keyboard_interrupt_in
    from bundlerl.utils.threads import torch_threads

    world = world_from_args(args) or policy_world(args.policy) or "default"
    out = Path(args.out)
    created = not out.exists()  # only a folder this run made is removed on an interrupt
    with torch_threads(1):
        base = load_policy(args.policy, seed=args.seed, world=world)
        if not any((args.epsilon, args.temperature, args.floor)) and base.name != "random":
            print(f"bundlerl log: warning: no exploration (--epsilon, --temperature, --floor): the log follows "
                  f"{base.name}'s own distribution (one-hot when it is deterministic) and supports only that policy "
                  "itself; 'bundlerl ope' refuses most other targets as unsupported", file=sys.stderr)
        policy = exploring(base, epsilon=args.epsilon, temperature=args.temperature, floor=args.floor)
        try:
            info = collect_logs(policy, world, args.episodes, out, seed=args.seed, num_envs=args.num_envs,
                                truth=not args.no_truth, rows_per_part=args.rows_per_part,
                                progress=False if args.no_progress else None)
        except BaseException as exc:  # Ctrl-C or a failure: no half log left behind (it has no log.json: ope refuses it)
            if created:
                shutil.rmtree(out, ignore_errors=True)
            elif keyboard_interrupt_in(exc) is not None and any(out.glob("part-*.parquet")):
                raise KeyboardInterrupt(f"the part files written so far remain in {out}, a folder this run did not "
                                        "create (no log.json: 'bundlerl ope' refuses them); delete its part-*.parquet "
                                        "files and truth/ before logging into it again") from None
            raise
    print(f"logged {info['rows']:,} decisions of {info['episodes']:,} episodes ({info['policy']}, {info['preset']}, "
          f"{info['stream']}) in {info['parts']} part(s) to {args.out} ({info['seconds']:.1f} s)")
    return 0
