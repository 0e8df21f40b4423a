"""``bundlerl train``: train a PPO, MaskablePPO or DQN agent on a bundle-recommendation env preset.

Argument parsing only: the work is ``bundlerl.experiment.training.train``; flag defaults and choices come from
:class:`~bundlerl.experiment.training.TrainConfig` and the registries."""

from __future__ import annotations

import argparse

from bundlerl.agents.config import ALGOS, EXTRACTORS, AgentConfigError
from bundlerl.env import ConfigError
from bundlerl.env.observation import ACTION_MODES
from bundlerl.experiment.training import TrainConfig
from bundlerl.scripts.flags import (
    RUN_DIR,
    SEED,
    Assignment,
    Integer,
    OutputFolder,
    about,
    add_world_flags,
    default_of,
    world_from_args,
)

HELP = "train a PPO / MaskablePPO / DQN agent into a run directory"

DESCRIPTION = """\
Train an SB3 agent on the batched bundle-recommendation env and write a run directory
  {out}/{world}__{algo}__{seed}__{time}/
holding config.yaml (every setting, the world's whole EnvConfig included: 'bundlerl evaluate' and
--resume rebuild the world from it alone), versions.json (python, numpy, torch, SB3,
gymnasium, faiss, sentence-transformers, bundlerl, git commit + dirty flag), tb/ (tensorboard logs),
checkpoints/ (written atomically; the newest 3 kept; DQN's replay buffer with --save-replay),
eval.csv (periodic evaluation: mean return with 95% CI), baselines.json, best_model.zip,
final_model.zip, report.md and learning_curve.png.

The world is a preset (--preset), or any EnvConfig: a YAML file (--env-config) and / or field
overrides (--env-set FIELD=VALUE); the instacart preset reads its CSVs from --instacart-dir.
Hyperparameters come from agents/configs/<algo>.yaml (the key of the world's name, else
'default'); --extractor, --num-envs and --set override them.
"""

EPILOG = """\
examples:
  bundlerl train --algo ppo --preset small --timesteps 20000 --seed 0
  bundlerl train --algo ppo --preset small --env-set horizon=15 --env-set reward=revenue
  bundlerl train --algo ppo --env-config my_world.yaml
  bundlerl train --algo ppo --preset instacart --instacart-dir data/instacart
  bundlerl train --algo dqn --preset default --timesteps 300000 --extractor mlp
  bundlerl train --algo ppo --preset default --timesteps 300000 --myopic     # the same PPO with gamma = 0
  bundlerl train --algo maskable_ppo --preset small --action-mode compose --timesteps 20000
  bundlerl train --resume runs/small__ppo__0__20260101-120000 --timesteps 40000
  tensorboard --logdir runs/
"""


def _parse_set(items: list[str] | None) -> dict:
    """``--set KEY=VALUE`` items as algorithm-config overrides (values read as YAML; ``network.hidden=32`` nests)."""
    import yaml

    out: dict = {}
    for item in items or []:
        if "=" not in item:
            raise AgentConfigError(f"--set {item!r}: use KEY=VALUE, e.g. --set learning_rate=1e-3")
        k, v = item.split("=", 1)
        try:
            val = yaml.safe_load(v)
        except yaml.YAMLError as exc:
            raise AgentConfigError(f"--set {item!r}: the value is not valid YAML ({exc.problem})") from None
        if "." in k:  # network.hidden=32
            head, tail = k.split(".", 1)
            out.setdefault(head, {})[tail] = val
        else:
            out[k] = val
    return out


def _set_values(items: list[str] | None) -> dict:
    with about("--set"):
        return _parse_set(items)


def _hyperparameter_names() -> set[str]:
    """The fields of every algorithm's config (``--set`` names one; ``network.hidden`` one of the network's)."""
    import dataclasses

    from bundlerl.agents.config import CONFIG_CLASSES

    return {f.name for cls in CONFIG_CLASSES.values() for f in dataclasses.fields(cls)}


def add_parser(subparsers) -> None:
    d = lambda name: default_of(TrainConfig, name)  # noqa: E731
    p = subparsers.add_parser("train", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algo", choices=ALGOS, default=None,
                   help=f"learner (default: {d('algo')}). maskable_ppo masks invalid candidates out of the policy; "
                        "dqn masks them in Q")
    add_world_flags(p, f"default: {d('preset')}; with --resume: the run's own world")
    p.add_argument("--timesteps", type=Integer(1), default=None,
                   help=f"total env steps summed over users (default: {d('timesteps')}; with --resume: the saved "
                        "total, or this value when larger). PPO stops at the first whole rollout (n_steps x num_envs) "
                        "at or past it, DQN at the first vec-env step: the run says so when that passes it")
    p.add_argument("--seed", type=SEED, default=None, help=f"model and training-env seed (default: {d('seed')})")
    p.add_argument("--extractor", choices=EXTRACTORS, default=None,
                   help="network: 'set' = order-free candidate-set extractor with per-candidate scores, "
                        "'mlp' = SB3 MultiInputPolicy on the flattened observation (default: from the YAML)")
    p.add_argument("--num-envs", type=Integer(1), default=None,
                   help="users stepped together (default: from the YAML)")
    p.add_argument("--action-mode", choices=ACTION_MODES, default=None,
                   help="bundle: pick one of K candidate bundles; compose: build the bundle item by item "
                        f"(ppo / maskable_ppo) (default: {d('action_mode')})")
    p.add_argument("--myopic", action="store_true", default=None,
                   help="the myopic control: the same algorithm, network, hyperparameters and timesteps with the "
                        "discount gamma set to 0 (the learner maximises the immediate reward); recorded in the "
                        "run's config.yaml (train.myopic, algo.gamma). Same as --set gamma=0")
    p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                   type=Assignment("hyperparameter", _hyperparameter_names, "learning_rate=1e-3"),
                   help="override a hyperparameter of the algorithm config, e.g. --set learning_rate=1e-3 "
                        "--set network.hidden=32 (repeatable)")
    p.add_argument("--eval-freq", type=Integer(0), default=None,
                   help="timesteps between evaluations (default: timesteps/10)")
    p.add_argument("--eval-episodes", type=Integer(1), default=None,
                   help=f"episodes per evaluation (default: {d('eval_episodes')})")
    p.add_argument("--final-episodes", type=Integer(0), default=None,
                   help="episodes of the final evaluation of the best model vs the baselines (0 skips; "
                        f"default: {d('final_episodes')})")
    p.add_argument("--checkpoint-freq", type=Integer(0), default=None,
                   help="timesteps between checkpoints (default: eval freq)")
    p.add_argument("--out", default=None, type=OutputFolder(), help="parent folder of run directories (default: runs/)")
    p.add_argument("--resume", metavar="RUN_DIR", default=None, type=RUN_DIR,
                   help="continue a run from its newest intact checkpoint (timesteps restored; DQN's replay buffer "
                        "when it was saved with --save-replay, else DQN refills it before updating again). The run "
                        "keeps every setting recorded in its config.yaml: only --timesteps (a larger total), "
                        "--save-replay and --no-progress may be given with it; --algo, --seed, --set and the other "
                        "settings are refused when they differ from the recorded ones")
    p.add_argument("--save-replay", action="store_true",
                   help="DQN: save the replay buffer with every checkpoint so --resume continues with it. It costs "
                        "about 2 x the observation size per transition: ~1.9 KB on the default preset, so up to "
                        "~380 MB per checkpoint for 200,000 transitions (the buffer holds min(buffer_size, "
                        "timesteps); the run logs its own size) (default: off)")
    p.set_defaults(func=run, check=check)


#: Flags whose value a resumed run takes from its config.yaml: flag -> (where in config.yaml, the key).
RESUME_KEPT: dict[str, tuple[str, str]] = {
    "--algo": ("train", "algo"), "--seed": ("train", "seed"), "--action-mode": ("train", "action_mode"),
    "--extractor": ("algo_config", "network.extractor"), "--num-envs": ("algo_config", "num_envs"),
    "--eval-freq": ("train", "eval_freq"), "--eval-episodes": ("train", "eval_episodes"),
    "--final-episodes": ("train", "final_episodes"), "--checkpoint-freq": ("train", "checkpoint_freq"),
    "--myopic": ("train", "myopic"),
}


def _dest(flag: str) -> str:
    return flag.removeprefix("--").replace("-", "_")


def _check_resume(args) -> None:
    """Flags given with ``--resume`` must agree with the run's recorded settings (it keeps them all)."""
    from bundlerl.experiment.run_dir import RunDir

    if args.preset or args.env_config or args.env_set or args.instacart_dir:
        raise ConfigError("it continues the run on the world stored in its run directory; leave out "
                          "--preset, --env-config, --env-set and --instacart-dir")
    saved = RunDir.open(args.resume).config()  # RunDirError names a damaged config.yaml
    clashes = []
    for flag, (section, key) in RESUME_KEPT.items():
        given = getattr(args, _dest(flag))
        if given is None:
            continue
        recorded: object = saved.get(section) or {}
        for part in key.split("."):
            recorded = recorded.get(part) if isinstance(recorded, dict) else None
        if given != recorded:
            clashes.append(f"{flag} {given} (the run's: {recorded})")
    if args.overrides:
        clashes.append(f"--set {' '.join(args.overrides)} (the run's hyperparameters are in its config.yaml)")
    if args.out is not None:
        clashes.append(f"--out {args.out} (the run stays in {args.resume})")
    if clashes:
        raise ConfigError(f"it keeps the settings recorded in {args.resume}/config.yaml; these differ: "
                          f"{'; '.join(clashes)}. Leave them out, or start a new run")


def check(args) -> None:
    """The flags' joint checks, run right after parsing (``bundlerl.scripts.cli``): the world they name, the
    TrainConfig and the algorithm config (``--set`` values), and with ``--resume`` that nothing it keeps is changed.
    Stores the TrainConfig as ``args.train_config``.

    :raises BundlerlError: a bad world, hyperparameter or combination (one line, exit 2).
    """
    if args.resume:
        with about("--resume"):
            _check_resume(args)
    world = None if args.resume else world_from_args(args, default=default_of(TrainConfig, "preset"))
    d = lambda name: default_of(TrainConfig, name) if getattr(args, name) is None else getattr(args, name)  # noqa: E731
    timesteps = args.timesteps if args.timesteps is not None else (1 if args.resume else default_of(TrainConfig, "timesteps"))
    cfg = TrainConfig(
        algo=d("algo"), preset=world or default_of(TrainConfig, "preset"), timesteps=timesteps,
        seed=d("seed"), action_mode=d("action_mode"), extractor=args.extractor, num_envs=args.num_envs,
        hyperparams=_set_values(args.overrides), eval_freq=d("eval_freq"), eval_episodes=d("eval_episodes"),
        final_episodes=d("final_episodes"), checkpoint_freq=d("checkpoint_freq"), save_replay=args.save_replay,
        myopic=bool(args.myopic), progress=False if args.no_progress else None,
    )
    if not args.resume:
        with about("--set" if args.overrides else "--algo"):
            cfg.algo_config()  # the YAML with --set / --extractor / --num-envs: a bad value fails here, not after the world
    args.train_config = cfg


def run(args) -> int:
    from bundlerl.experiment.training import train

    if getattr(args, "train_config", None) is None:  # called without the command line's check
        check(args)
    result = train(args.train_config, out=args.out or "runs", resume=args.resume)
    print(f"run directory: {result.run_dir}")
    if result.overshoot_note:
        print(f"trained {result.timesteps:,} timesteps ({result.overshoot_note})")
    for name, est in result.final.items():
        print(f"  {name:<24} mean return {est['mean']:.3f}  [{est['low']:.3f}, {est['high']:.3f}]")
    return 0
