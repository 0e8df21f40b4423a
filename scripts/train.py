"""``bundlerl train``: train a PPO, MaskablePPO or DQN agent on a bundle-recommendation env preset."""

from __future__ import annotations

import argparse

HELP = "train a PPO / MaskablePPO / DQN agent into a run directory"

DESCRIPTION = """\
Train an SB3 agent on the batched bundle-recommendation env and write a run directory
  {out}/{preset}__{algo}__{seed}__{time}/
holding config.yaml (every setting, re-read by --resume), versions.json (python, numpy, torch, SB3,
gymnasium, faiss, sentence-transformers, bundlerl, git commit + dirty flag), tb/ (tensorboard logs),
checkpoints/ (written atomically; the newest 3 kept; DQN also saves its replay buffer),
eval.csv (periodic evaluation: mean return with 95% CI), baselines.json, best_model.zip,
final_model.zip, report.md and learning_curve.png.

Hyperparameters come from agents/configs/<algo>.yaml (the key of the preset, else 'default');
--extractor, --num-envs and --set override them.
"""

EPILOG = """\
examples:
  bundlerl train --algo ppo --preset small --timesteps 20000 --seed 0
  bundlerl train --algo dqn --preset default --timesteps 300000 --extractor mlp
  bundlerl train --algo maskable_ppo --preset small --action-mode compose --timesteps 20000
  bundlerl train --resume runs/small__ppo__0__20260101-120000 --timesteps 40000
  tensorboard --logdir runs/
"""


def _parse_set(items: list[str]) -> dict:
    import yaml

    out: dict = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--set {item!r}: use KEY=VALUE, e.g. --set learning_rate=1e-3")
        k, v = item.split("=", 1)
        val = yaml.safe_load(v)
        if "." in k:  # network.hidden=32
            head, tail = k.split(".", 1)
            out.setdefault(head, {})[tail] = val
        else:
            out[k] = val
    return out


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("train", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algo", choices=("ppo", "maskable_ppo", "dqn"), default="ppo",
                   help="learner (default: ppo). maskable_ppo masks invalid candidates out of the policy; "
                        "dqn masks them in Q")
    p.add_argument("--preset", default="default", help="env preset: default, small, revenue, clicks, instacart "
                                                        "(default: default)")
    p.add_argument("--timesteps", type=int, default=None,
                   help="total env steps summed over users (default: 100000; with --resume: the saved total, "
                        "or this value when larger)")
    p.add_argument("--seed", type=int, default=0, help="model and training-env seed (default: 0)")
    p.add_argument("--extractor", choices=("set", "mlp"), default=None,
                   help="network: 'set' = order-free candidate-set extractor with per-candidate scores, "
                        "'mlp' = SB3 MultiInputPolicy on the flattened observation (default: from the YAML)")
    p.add_argument("--num-envs", type=int, default=None, help="users stepped together (default: from the YAML)")
    p.add_argument("--action-mode", choices=("bundle", "compose"), default="bundle",
                   help="bundle: pick one of K candidate bundles; compose: build the bundle item by item "
                        "(ppo / maskable_ppo)")
    p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                   help="override a hyperparameter of the algorithm config, e.g. --set learning_rate=1e-3 "
                        "--set network.hidden=32 (repeatable)")
    p.add_argument("--eval-freq", type=int, default=0, help="timesteps between evaluations (default: timesteps/10)")
    p.add_argument("--eval-episodes", type=int, default=200, help="episodes per evaluation (default: 200)")
    p.add_argument("--final-episodes", type=int, default=500,
                   help="episodes of the final evaluation of the best model vs the baselines (0 skips; default: 500)")
    p.add_argument("--checkpoint-freq", type=int, default=0, help="timesteps between checkpoints (default: eval freq)")
    p.add_argument("--out", default="runs", help="parent folder of run directories (default: runs/)")
    p.add_argument("--resume", metavar="RUN_DIR", default=None,
                   help="continue a run from its last checkpoint (timesteps and DQN replay buffer restored)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from bundlerl.experiment.training import TrainConfig, train

    cfg = TrainConfig(
        algo=args.algo, preset=args.preset,
        timesteps=args.timesteps if args.timesteps is not None else (0 if args.resume else 100_000) or 1,
        seed=args.seed, action_mode=args.action_mode, extractor=args.extractor, num_envs=args.num_envs,
        hyperparams=_parse_set(args.overrides), eval_freq=args.eval_freq, eval_episodes=args.eval_episodes,
        final_episodes=args.final_episodes, checkpoint_freq=args.checkpoint_freq, progress=not args.no_progress,
    )
    result = train(cfg, out=args.out, resume=args.resume)
    print(f"run directory: {result.run_dir}")
    for name, est in result.final.items():
        print(f"  {name:<24} mean return {est['mean']:.3f}  [{est['low']:.3f}, {est['high']:.3f}]")
    return 0
