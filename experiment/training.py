"""One training run, top to bottom: config -> run directory -> SB3 learn with callbacks -> report.

:func:`train` is what ``bundlerl train`` and ``bundlerl quickstart`` call. Read it in order:

1. build the :class:`bundlerl.env.vec_env.BundleRecVecEnv` (N users stepped together) and the model
   (:func:`bundlerl.agents.sb3.make_model`) or, with ``resume``, load the last checkpoint of a run directory;
2. evaluate the observable baselines once (``bundlerl.evaluation.rollout.evaluate``, fixed eval seed);
3. ``model.learn`` with the callbacks of :mod:`bundlerl.experiment.callbacks`: periodic evaluation (mean return
   with 95% CI on the same eval episodes; best model saved; tensorboard scalars), periodic atomic checkpoints, a
   wall-time limit and a progress bar;
4. a final evaluation of the best model and the baselines on fresh episodes, ``report.md`` and
   ``learning_curve.png`` (:mod:`bundlerl.experiment.report`).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bundlerl.agents.baselines import BASELINES
from bundlerl.agents.config import (
    ALGOS,
    EXTRACTORS,
    AgentConfigError,
    config_from_dict,
    config_to_dict,
    load_algo_config,
)
from bundlerl.agents.policy import PolicyError, check_name
from bundlerl.env.observation import ACTION_MODES

if TYPE_CHECKING:
    from bundlerl.env import EnvConfig

__all__ = ["TrainConfig", "TrainResult", "train", "EVAL_SEED", "FINAL_EVAL_SEED"]

EVAL_SEED = 1_000_003
"""Env seed of the periodic evaluations (disjoint from training seeds, identical episodes every time)."""
FINAL_EVAL_SEED = 2_000_003
"""Env seed of the final evaluation (fresh episodes: the best model was selected on EVAL_SEED's)."""


@dataclass
class TrainConfig:
    """What one ``bundlerl train`` run does (the algorithm's hyperparameters live in its own config)."""

    algo: str = ALGOS[0]
    """Learner, one of ``bundlerl.agents.config.ALGOS`` (ppo, maskable_ppo, dqn)."""
    preset: "str | EnvConfig" = "default"
    """The world: an env preset name (``bundlerl.env.PRESETS``, or ``instacart``) or any ``EnvConfig``. :func:`train`
    resolves a name once and stores the whole config in the run directory, so that evaluation and ``resume``
    rebuild the same world from the run directory alone."""
    timesteps: int = 100_000
    """Total environment steps (summed over the N users) to train for."""
    seed: int = 0
    """Seed of the model and of the training envs (row i uses seed + i)."""
    action_mode: str = ACTION_MODES[0]
    """Env action mode (``bundlerl.env.observation.ACTION_MODES``): ``bundle`` (pick one of K bundles) or ``compose``
    (item by item; PPO / MaskablePPO)."""
    extractor: str | None = None
    """Override of the network's extractor (``set`` or ``mlp``); None keeps the YAML's."""
    num_envs: int | None = None
    """Override of the algorithm config's num_envs; None keeps the YAML's."""
    hyperparams: dict = field(default_factory=dict)
    """Overrides of the algorithm config's fields (e.g. ``{"learning_rate": 1e-3}``)."""
    eval_freq: int = 0
    """Timesteps between evaluations; 0 = timesteps / 10 (at least one rollout)."""
    eval_episodes: int = 200
    """Episodes per periodic evaluation (and for the baselines)."""
    final_episodes: int = 500
    """Episodes of the final evaluation (best model and baselines, fresh episodes); 0 skips it."""
    checkpoint_freq: int = 0
    """Timesteps between checkpoints; 0 = same as eval_freq."""
    baselines: tuple = BASELINES
    """Observable baselines evaluated for comparison (names from ``bundlerl.agents.baselines.BASELINES``)."""
    max_wall_s: float = 0.0
    """Stop training after this many seconds of this invocation's training wall time (0 = no limit); the
    benchmark's time budget. ``timesteps`` still caps the run."""
    progress: bool = True
    """Show a progress bar while training."""
    device: str = "cpu"
    """Torch device."""
    torch_threads: int = 1
    """Torch intra-op threads. 1 by default: on the shared 2-core machine two threads made a PPO minibatch
    update ~25-100x slower than one (thread contention; see BENCHMARKS.md, Agents)."""

    def __post_init__(self) -> None:
        def bad(name: str, msg: str) -> AgentConfigError:
            return AgentConfigError(f"TrainConfig.{name}: {msg}")

        if self.algo not in ALGOS:
            raise bad("algo", f"{self.algo!r}; use one of {ALGOS}")
        if self.action_mode not in ACTION_MODES:
            raise bad("action_mode", f"{self.action_mode!r}; use one of {ACTION_MODES}")
        if self.action_mode == "compose" and self.algo == "dqn":
            raise bad("action_mode", "compose mode is supported for ppo and maskable_ppo; use --algo ppo")
        if self.extractor is not None and self.extractor not in EXTRACTORS:
            raise bad("extractor", f"{self.extractor!r}; use one of {EXTRACTORS}")
        for name, lo in (("timesteps", 1), ("eval_freq", 0), ("eval_episodes", 1), ("final_episodes", 0),
                         ("checkpoint_freq", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise bad(name, f"{v!r}; it must be an integer >= {lo}")
        if not (isinstance(self.max_wall_s, (int, float)) and self.max_wall_s >= 0):
            raise bad("max_wall_s", f"{self.max_wall_s!r}; it must be a number >= 0")
        if isinstance(self.torch_threads, bool) or not isinstance(self.torch_threads, int) or self.torch_threads < 1:
            raise bad("torch_threads", f"{self.torch_threads!r}; it must be an integer >= 1")
        if self.num_envs is not None and (not isinstance(self.num_envs, int) or self.num_envs < 1):
            raise bad("num_envs", f"{self.num_envs!r}; it must be an integer >= 1")
        self.baselines = tuple(self.baselines)
        try:
            for b in self.baselines:
                check_name(b, BASELINES, "baseline")
        except PolicyError as exc:
            raise bad("baselines", str(exc)) from None

    @property
    def world_name(self) -> str:
        """The world's name: the preset name, or the EnvConfig's ``name`` (names the run directory)."""
        return self.preset if isinstance(self.preset, str) else self.preset.name

    def env_config(self) -> "EnvConfig":
        """The EnvConfig of :attr:`preset` (``bundlerl.env.get_config``; ConfigError for an unknown name)."""
        from bundlerl.env import get_config

        return get_config(self.preset)

    def algo_config(self):
        """The algorithm config: YAML for (algo, world name), then the extractor / num_envs / hyperparams overrides."""
        over: dict[str, Any] = dict(self.hyperparams)
        if self.num_envs is not None:
            over["num_envs"] = self.num_envs
        if self.extractor is not None:
            over["network"] = {**dict(over.get("network") or {}), "extractor": self.extractor}
        return load_algo_config(self.algo, self.world_name, overrides=over)


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    run_dir: Path
    timesteps: int
    """Model timesteps at the end."""
    best_mean_return: float
    final: dict[str, Any]
    """Final evaluation: name -> {"mean": .., "low": .., "high": ..} (agent and baselines)."""
    wall_s: float
    """Wall time of this invocation (not counting a resumed run's earlier time)."""
    first_beat_s: float | None
    """Training wall time (cumulative over resumes) when an evaluation first beat the best baseline by 10%."""




def _make_venv(cfg: TrainConfig, num_envs: int, seed: int):
    """The training VecEnv: the batched BundleRecVecEnv (an SB3 VecEnv)."""
    from bundlerl.env.vec_env import BundleRecVecEnv

    return BundleRecVecEnv(cfg.preset, num_envs=num_envs, seed=seed, action_mode=cfg.action_mode)


def _eval_policy(policy, cfg: TrainConfig, n: int, seed: int):
    """EvalResult of ``policy`` on ``n`` episodes of the run's world from env seed ``seed``."""
    from bundlerl.evaluation.rollout import evaluate

    return evaluate(policy, cfg.preset, n_episodes=n, seed=seed, num_envs=min(n, 128),
                    action_mode=cfg.action_mode, progress=False)


def _baseline_results(cfg: TrainConfig, n: int, seed: int) -> dict[str, Any]:
    from bundlerl.evaluation.compare import named_policies

    return {b: _eval_policy(pol, cfg, n, seed) for b, pol in named_policies(cfg.baselines, seed=seed).items()}


def _open_or_create(cfg: TrainConfig, out, resume):
    """(run dir, cfg, algo config, last checkpoint or None): a new run directory, or ``resume``'s with the configs
    it saved, its world included (``timesteps`` raised to ``cfg``'s when larger; this invocation's progress, device
    and threads)."""
    from bundlerl.experiment.run_dir import RunDir, RunDirError

    if resume is None:
        cfg = dataclasses.replace(cfg, preset=cfg.env_config())  # one world for every part of the run
        algo_cfg = cfg.algo_config()
        rd = RunDir.create(out, cfg.world_name, cfg.algo, cfg.seed, {
            "train": _train_dict(cfg), "env": cfg.preset.to_dict(), "algo_config": config_to_dict(algo_cfg)})
        return rd, cfg, algo_cfg, None
    rd = RunDir.open(resume)
    saved = rd.config()
    tr = dict(saved["train"])
    tr["preset"] = rd.env_config()
    tr["timesteps"] = max(int(tr["timesteps"]), int(cfg.timesteps)) if cfg.timesteps else int(tr["timesteps"])
    tr["progress"], tr["device"], tr["torch_threads"] = cfg.progress, cfg.device, cfg.torch_threads
    tr["baselines"] = tuple(tr.get("baselines") or ())
    ck = rd.latest_checkpoint()
    if ck is None:
        raise RunDirError(f"{rd.path} has no checkpoint to resume from (checkpoints/latest.json)")
    return rd, TrainConfig(**tr), config_from_dict(tr["algo"], saved["algo_config"]), ck


def train(cfg: TrainConfig, out: str | Path = "runs", resume: str | Path | None = None,
          log=print) -> TrainResult:
    """Train per ``cfg`` into a new run directory under ``out`` (or continue ``resume``); see the module docstring.

    With ``resume``, ``cfg`` is read from the run's config.yaml (the world from its ``env`` section) except
    ``timesteps`` (the new total when larger than the saved one), ``progress``, ``device`` and ``torch_threads``;
    the model, its timestep count and (DQN) its replay buffer come from the last checkpoint.

    :raises AgentConfigError: invalid configuration.  :raises ConfigError: an unknown preset or bad world.
    :raises RunDirError: ``resume`` is not a run directory (or holds no checkpoint).
    """
    import torch as th

    from bundlerl.agents.sb3 import SB3Policy, algo_class, make_model
    from bundlerl.experiment.callbacks import PeriodicCheckpoint, PeriodicEvaluation, ProgressBar, WallClockLimit
    from bundlerl.experiment.report import write_report
    from bundlerl.utils.threads import torch_threads

    t_start = time.perf_counter()
    rd, cfg, algo_cfg, ck = _open_or_create(cfg, out, resume)
    th.manual_seed(cfg.seed)
    # torch's thread count for this run only (restored on exit): setting it for the process is the CLI's job
    with torch_threads(cfg.torch_threads):
        log(f"== run directory: {rd.path}")

        # 1. env and model
        log(f"== building env '{cfg.world_name}' ({algo_cfg.num_envs} users, {cfg.action_mode} mode)")
        if ck is None:
            venv = _make_venv(cfg, algo_cfg.num_envs, cfg.seed)
            model = make_model(cfg.algo, venv, algo_cfg, seed=cfg.seed, tensorboard_log=str(rd.path / "tb"),
                               device=cfg.device)
            start = 0
        else:
            # Fresh episodes after a resume: shift the env seed by the timesteps already done.
            venv = _make_venv(cfg, algo_cfg.num_envs, cfg.seed + ck["timesteps"])
            model = algo_class(cfg.algo).load(str(ck["model"]), env=venv, device=cfg.device)
            model.tensorboard_log = str(rd.path / "tb")
            if ck["replay"] is not None and ck["replay"].is_file():
                model.load_replay_buffer(str(ck["replay"]))
            start = int(model.num_timesteps)
            log(f"== resumed from {ck['model'].name} at {start} timesteps")

        # 2. baselines (once per run)
        base = rd.read_json("baselines.json", default={}) or None
        if base is None:
            log(f"== evaluating baselines {', '.join(cfg.baselines)} ({cfg.eval_episodes} episodes each)")
            base = {k: v.summary()["return"].to_dict()
                    for k, v in _baseline_results(cfg, cfg.eval_episodes, EVAL_SEED).items()}
            rd.write_json("baselines.json", base)
        best_base = max(base.items(), key=lambda kv: kv[1]["mean"]) if base else None
        if best_base:
            log(f"   best baseline: {best_base[0]} mean return {best_base[1]['mean']:.3f}")

        # 3. learn
        eval_freq = cfg.eval_freq or max(cfg.timesteps // 10, 1)
        evaluation = PeriodicEvaluation(
            lambda m: _eval_policy(SB3Policy(m, name=cfg.algo), cfg, cfg.eval_episodes, EVAL_SEED), rd, eval_freq,
            beat_target=1.1 * best_base[1]["mean"] if best_base and best_base[1]["mean"] > 0 else None)
        remaining = cfg.timesteps - start
        if remaining > 0:
            log(f"== training {cfg.algo} for {remaining} timesteps")
            callbacks = [PeriodicCheckpoint(rd, cfg.checkpoint_freq or eval_freq, save_replay=cfg.algo == "dqn"),
                         evaluation, WallClockLimit(cfg.max_wall_s)]
            if cfg.progress:
                callbacks.insert(0, ProgressBar(cfg.timesteps, f"train {cfg.algo}", cfg.max_wall_s, evaluation))
            model.learn(remaining, callback=callbacks, reset_num_timesteps=start == 0, tb_log_name=cfg.algo,
                        progress_bar=False)
            rd.save_checkpoint(model, int(model.num_timesteps), save_replay=cfg.algo == "dqn")
        rd.save_model(model, "final_model.zip")

        # 4. final evaluation and report
        final: dict[str, Any] = {}
        results = {}
        if cfg.final_episodes:
            log(f"== final evaluation: best model and baselines on {cfg.final_episodes} fresh episodes")
            best_model = algo_class(cfg.algo).load(str(rd.model_path("best")), device=cfg.device)
            results = {f"{cfg.algo} (best)": _eval_policy(SB3Policy(best_model, name=cfg.algo), cfg, cfg.final_episodes,
                                                          FINAL_EVAL_SEED)}
            results.update(_baseline_results(cfg, cfg.final_episodes, FINAL_EVAL_SEED))
            final = {k: v.summary()["return"].to_dict() for k, v in results.items()}
            rd.write_json("final_eval.json", final)
        write_report(rd, cfg, algo_cfg, evaluation, base, results, EVAL_SEED, FINAL_EVAL_SEED)
        wall = time.perf_counter() - t_start
        log(f"== done in {wall:.0f} s: {rd.path / 'report.md'}")
        return TrainResult(run_dir=rd.path, timesteps=int(model.num_timesteps), best_mean_return=float(evaluation.best),
                           final=final, wall_s=wall, first_beat_s=evaluation.first_beat_s)


def _train_dict(cfg: TrainConfig) -> dict[str, Any]:
    d = dataclasses.asdict(cfg)
    d["preset"] = cfg.world_name
    d["baselines"] = list(cfg.baselines)
    return d
