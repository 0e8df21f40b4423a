"""``bundlerl quickstart``: the first thing to run — train PPO briefly, compare it with the baselines, plot."""

from __future__ import annotations

import argparse
import dataclasses
import time

from bundlerl.scripts.flags import SEED, Integer, OutputFolder, SearchBudget, add_world_flags, world_from_args

HELP = ("train PPO (and its myopic twin) briefly on the default preset and compare them with the baselines, "
        "tuned-linear included (a few minutes on 2 CPU cores once the world is built)")

DESCRIPTION = """\
The whole pipeline in one command, with a heading per stage and progress bars:

  1/4  build the default world (synthetic catalogue, sentence embeddings, FAISS index,
       complementarity model; cached on disk, so a second run skips this: the first build of
       the default world encodes ~7,000 texts, about 3 minutes on 2 CPU cores)
  2/4  train PPO with the candidate-set network (--timesteps env steps) into a run directory
       under --out, and its myopic twin (the same PPO with the discount gamma = 0: the control
       that shows whether planning pays; --no-myopic skips it)
  3/4  evaluate the trained agents and the observable baselines on the same episodes; the
       baselines include tuned-linear (greedy on a linear score of every observable feature):
       its cached full-budget fit (12x24x200) when there is one, else a quick fit with
       --tuned-budget (default 3x12x100, about a minute), labelled as such
  4/4  print the table and write report.md, learning_curve.png, results.md and results.png

Measured on 2 shared CPU cores with the world built, the default 60,000 timesteps: about
48 s per PPO run on the default preset, plus the quick tuned-linear fit when no fit is cached.
"""

EPILOG = """\
examples:
  bundlerl quickstart
  bundlerl quickstart --timesteps 20000 --out /tmp/quick
  bundlerl quickstart --preset small --timesteps 5000 --episodes 200     # a short smoke run
  bundlerl quickstart --tuned-budget 12x24x200                           # tuned-linear at the recorded budget
"""

DEFAULT_TIMESTEPS = 60_000
QUICK_BUDGET = "3x12x100"
"""tuned-linear's search budget in the quickstart when no fit at the recorded budget is cached (rounds x candidates
x episodes): about a minute on the default world, labelled "quick fit" in the table's note."""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("quickstart", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--timesteps", type=Integer(1), default=DEFAULT_TIMESTEPS,
                   help=f"PPO training steps (default: {DEFAULT_TIMESTEPS})")
    add_world_flags(p, "default: default")
    p.add_argument("--episodes", type=Integer(1), default=500, help="evaluation episodes per policy (default: 500)")
    p.add_argument("--seed", type=SEED, default=0, help="training seed (default: 0)")
    p.add_argument("--out", default="runs", type=OutputFolder(), help="parent folder of the run directory (default: runs/)")
    p.add_argument("--tuned-budget", default=None, type=SearchBudget(),
                   help="tuned-linear's search budget ROUNDSxCANDIDATESxEPISODES (default: the cached fit at the "
                        f"recorded 12x24x200 when there is one, else {QUICK_BUDGET})")
    p.add_argument("--no-myopic", action="store_true", help="skip the myopic PPO (gamma = 0) control")
    p.set_defaults(func=run, check=check)


def _stage(i: int, title: str) -> None:
    print(f"\n[{i}/4] {title}", flush=True)


def check(args) -> None:
    """The flags' joint checks right after parsing (the world, the training config), before the world is built;
    stores ``args.world`` and ``args.train_config``."""
    from bundlerl.experiment.training import TrainConfig

    args.world = world_from_args(args, default="default")
    args.train_config = TrainConfig(algo="ppo", preset=args.world, timesteps=args.timesteps, seed=args.seed,
                                    eval_episodes=min(200, args.episodes), final_episodes=0)
    args.train_config.algo_config()  # the YAML of the world: a damaged one fails here


def run(args) -> int:
    t0 = time.perf_counter()
    if getattr(args, "train_config", None) is None:  # called without the command line's check
        check(args)
    env = args.world
    _stage(1, f"building the '{env.name}' world (cached after the first run)")
    from bundlerl.env import build_world

    tw = time.perf_counter()
    world = build_world(env)
    print(f"      {world.n_items} items, K={world.config.K} candidate bundles of <= {world.config.K_max} items, "
          f"horizon {world.config.horizon} ({time.perf_counter() - tw:.0f} s)", flush=True)

    say = lambda m: print("      " + m, flush=True)  # noqa: E731
    twins = [False] if args.no_myopic else [False, True]
    _stage(2, f"training PPO for {args.timesteps} timesteps" + ("" if args.no_myopic else ", then its myopic twin (gamma = 0)"))
    from bundlerl.experiment.training import train

    results = [train(dataclasses.replace(args.train_config, myopic=myopic), out=args.out, log=say) for myopic in twins]
    result = results[0]

    _stage(3, "evaluating PPO" + ("" if args.no_myopic else " (and myopic PPO)") + " and the baselines on the same episodes")
    from bundlerl.agents.tuned_linear import OBSERVABLE_POLICIES
    from bundlerl.evaluation.tuning import RECORDED_BUDGET, CEMBudget, cache_key, cache_path, tuned_linear
    from bundlerl.experiment.evaluate import evaluate_runs

    budget = args.tuned_budget
    if budget is None:
        budget = RECORDED_BUDGET if cache_path(cache_key(env, RECORDED_BUDGET)).is_file() else CEMBudget.parse(QUICK_BUDGET)
    cached = cache_path(cache_key(env, budget)).is_file()
    tuned_note = (f"tuned-linear: {'cached' if cached else 'quick' if budget != RECORDED_BUDGET else 'full'} fit, "
                  f"budget {budget.label} (rounds x candidates x episodes; the recorded budget is {RECORDED_BUDGET.label})")
    weights = tuned_linear(env, budget=budget, log=say).save(result.run_dir / "tuned_linear.json")
    res = evaluate_runs([r.run_dir for r in results], baselines=OBSERVABLE_POLICIES, episodes=args.episodes, seed=0,
                        out=result.run_dir / "evaluation", log=say, tuned_weights=weights)

    _stage(4, "results")
    print(res["markdown"])
    print(tuned_note)
    print(f"run directory : {result.run_dir}")
    print(f"  report      : {result.run_dir / 'report.md'}  (learning curve: learning_curve.png)")
    print(f"  evaluation  : {res['out'] / 'results.md'}  (bar chart: results.png)")
    if len(results) > 1:
        print(f"  myopic twin : {results[1].run_dir}")
    print(f"  tensorboard : tensorboard --logdir {result.run_dir / 'tb'}")
    print(f"total time {time.perf_counter() - t0:.0f} s")
    return 0
