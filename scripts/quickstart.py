"""``bundlerl quickstart``: the first thing to run — train PPO briefly, compare it with the baselines, plot."""

from __future__ import annotations

import argparse
import time

from bundlerl.scripts.flags import SEED, Integer, OutputFolder, add_world_flags, world_from_args

HELP = ("train PPO briefly on the default preset and compare it with the baselines (2-5 minutes on 2 CPU cores "
        "once the world is built)")

DESCRIPTION = """\
The whole pipeline in one command, with a heading per stage and progress bars:

  1/4  build the default world (synthetic catalogue, sentence embeddings, FAISS index,
       complementarity model; cached on disk, so a second run skips this: the first build of
       the default world encodes ~7,000 texts, about 3 minutes on 2 CPU cores)
  2/4  train PPO with the candidate-set network (--timesteps env steps) into a run directory
       under --out
  3/4  evaluate the trained agent and the observable baselines on the same episodes
  4/4  print the table and write report.md, learning_curve.png, results.md and results.png

Measured with the world built, the default 60,000 timesteps: 5 min 06 s in all on the default
preset on 2 CPU cores shared at a load average of ~12 (92 s of CPU: nearer 2 minutes on an idle
machine). --preset small --timesteps 5000 --episodes 200 is a short smoke run.
"""

EPILOG = """\
examples:
  bundlerl quickstart
  bundlerl quickstart --timesteps 20000 --out /tmp/quick
  bundlerl quickstart --preset small --timesteps 5000 --episodes 200     # a short smoke run
"""

DEFAULT_TIMESTEPS = 60_000


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("quickstart", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--timesteps", type=Integer(1), default=DEFAULT_TIMESTEPS,
                   help=f"PPO training steps (default: {DEFAULT_TIMESTEPS})")
    add_world_flags(p, "default: default")
    p.add_argument("--episodes", type=Integer(1), default=500, help="evaluation episodes per policy (default: 500)")
    p.add_argument("--seed", type=SEED, default=0, help="training seed (default: 0)")
    p.add_argument("--out", default="runs", type=OutputFolder(), help="parent folder of the run directory (default: runs/)")
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

    _stage(2, f"training PPO for {args.timesteps} timesteps")
    from bundlerl.experiment.training import train

    result = train(args.train_config, out=args.out, log=lambda m: print("      " + m, flush=True))

    _stage(3, "evaluating PPO and the baselines on the same episodes")
    from bundlerl.agents.baselines import BASELINES
    from bundlerl.experiment.evaluate import evaluate_runs

    res = evaluate_runs([result.run_dir], baselines=BASELINES, episodes=args.episodes, seed=0,
                        out=result.run_dir / "evaluation", log=lambda m: print("      " + m, flush=True))

    _stage(4, "results")
    print(res["markdown"])
    print(f"run directory : {result.run_dir}")
    print(f"  report      : {result.run_dir / 'report.md'}  (learning curve: learning_curve.png)")
    print(f"  evaluation  : {res['out'] / 'results.md'}  (bar chart: results.png)")
    print(f"  tensorboard : tensorboard --logdir {result.run_dir / 'tb'}")
    print(f"total time {time.perf_counter() - t0:.0f} s")
    return 0
