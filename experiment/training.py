"""One training run, top to bottom: config -> run directory -> SB3 learn with callbacks -> report.

:func:`train` is what ``bundlerl train`` and ``bundlerl quickstart`` call. Read it in order:

1. build the :class:`bundlerl.env.vec_env.BundleRecVecEnv` (N users stepped together) and the model
   (:func:`bundlerl.agents.sb3.make_model`), then make the run directory; or, with ``resume``, load the newest
   intact checkpoint of a run directory (:mod:`bundlerl.experiment.segment`: the start and stop of a segment);
2. evaluate the observable baselines once (``bundlerl.evaluation.rollout.evaluate``, the periodic-evaluation
   stream);
3. ``model.learn`` with the callbacks of :mod:`bundlerl.experiment.callbacks`: periodic evaluation (mean return
   with 95% CI on the same eval episodes; best model saved; tensorboard scalars; each row of eval.csv after a
   checkpoint of its step, so a resumed run evaluates a step whose row a kill cut off), periodic atomic
   checkpoints, a wall-time limit and a progress bar;
4. a final evaluation of the best model and the baselines on fresh episodes, ``report.md`` and
   ``learning_curve.png`` (:mod:`bundlerl.experiment.report`).

Every env stream is purpose-tagged (:mod:`bundlerl.evaluation.seeds`): training (a segment per ``resume``), periodic
evaluation and final evaluation never share a shopper, whatever the seed.
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
    load_algo_config,
)
from bundlerl.agents.policy import PolicyError, check_name
from bundlerl.agents.tuned_linear import OBSERVABLE_POLICIES
from bundlerl.env.observation import ACTION_MODES
from bundlerl.evaluation.seeds import EVAL_SEED, FINAL_EVAL_SEED, Purpose, env_stream
from bundlerl.utils.args import need_callable, need_instance, need_names, need_path
from bundlerl.utils.config_io import check_field_types

if TYPE_CHECKING:
    from bundlerl.env import EnvConfig

__all__ = ["TrainConfig", "TrainResult", "TrainingInterrupted", "train", "train_stream"]



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
    """Seed (>= 0) of the model and of the training envs (their ``TRAIN`` stream, ``bundlerl.evaluation.seeds``)."""
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
    myopic: bool = False
    """The myopic control: the algorithm config's discount ``gamma`` set to 0, everything else (algorithm, network,
    hyperparameters, timesteps) unchanged, so the learner maximises the immediate reward. Recorded in config.yaml
    (``train.myopic`` and the algorithm's ``gamma: 0.0``); a ``hyperparams`` gamma other than 0 is an error."""
    baselines: tuple = BASELINES
    """Observable baselines evaluated for comparison (names from ``bundlerl.agents.tuned_linear.OBSERVABLE_POLICIES``:
    the hand-set ones by default; ``tuned-linear`` uses its cached fit for the world, or fits it first)."""
    max_wall_s: float = 0.0
    """Stop training after this many seconds of this invocation's training wall time (0 = no limit); the
    benchmark's time budget. ``timesteps`` still caps the run."""
    progress: bool | None = None
    """Show a progress bar while training; None: yes unless ``$BUNDLERL_PROGRESS`` is off
    (``bundlerl.utils.progress``)."""
    save_replay: bool = False
    """DQN: save the replay buffer with every checkpoint, so that ``resume`` continues with it. Its cost: about
    2 x the observation size per transition (~1.9 KB on the default preset: ~380 MB for 200,000 transitions; the
    buffer holds min(buffer_size, timesteps) transitions, and the run logs its own figure). Without it a resumed
    DQN refills an empty buffer (``learning_starts`` transitions, acting with its policy) before it updates again."""
    device: str = "cpu"
    """Torch device."""
    torch_threads: int = 1
    """Torch intra-op threads. 1 by default: on the shared 2-core machine two threads made a PPO minibatch
    update ~25-100x slower than one (thread contention; see BENCHMARKS.md, Agents)."""

    def __post_init__(self) -> None:
        def bad(name: str, msg: str) -> AgentConfigError:
            return AgentConfigError(f"TrainConfig.{name}: {msg}")

        check_field_types(self, AgentConfigError)  # None / a wrong type named, before the range checks

        if self.algo not in ALGOS:
            raise bad("algo", f"{self.algo!r}; use one of {ALGOS}")
        if self.action_mode not in ACTION_MODES:
            raise bad("action_mode", f"{self.action_mode!r}; use one of {ACTION_MODES}")
        if self.action_mode == "compose" and self.algo == "dqn":
            raise bad("action_mode", "compose mode is supported for ppo and maskable_ppo; use --algo ppo")
        if self.extractor is not None and self.extractor not in EXTRACTORS:
            raise bad("extractor", f"{self.extractor!r}; use one of {EXTRACTORS}")
        for name, lo in (("timesteps", 1), ("seed", 0), ("eval_freq", 0), ("eval_episodes", 1), ("final_episodes", 0),
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
        if not isinstance(self.myopic, bool):
            raise bad("myopic", f"{self.myopic!r}; use true or false")
        if self.myopic and self.hyperparams.get("gamma", 0) != 0:
            raise bad("myopic", f"myopic sets gamma to 0, but hyperparams set gamma={self.hyperparams['gamma']!r}; "
                                "drop one of them")
        for name in ("save_replay", "progress"):
            if not isinstance(getattr(self, name), bool) and not (name == "progress" and self.progress is None):
                raise bad(name, f"{getattr(self, name)!r}; use true or false")
        self.baselines = need_names(self.baselines, "baselines", "TrainConfig", error=AgentConfigError)
        try:
            for b in self.baselines:
                check_name(b, OBSERVABLE_POLICIES, "baseline")
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
        if self.myopic:
            over["gamma"] = 0.0
        if self.extractor is not None:
            over["network"] = {**dict(over.get("network") or {}), "extractor": self.extractor}
        return load_algo_config(self.algo, self.world_name, overrides=over)


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    run_dir: Path
    timesteps: int
    """Model timesteps at the end (the algorithm may pass ``requested_timesteps``: see :attr:`overshoot_note`)."""
    best_mean_return: float
    final: dict[str, Any]
    """Final evaluation: name -> {"mean": .., "low": .., "high": ..} (agent and baselines)."""
    wall_s: float
    """Wall time of this invocation (not counting a resumed run's earlier time)."""
    first_beat_s: float | None
    """Training wall time (cumulative over resumes) when an evaluation first beat the best baseline by 10%."""
    requested_timesteps: int = 0
    """The total asked for (``TrainConfig.timesteps``)."""
    overshoot_note: str = ""
    """Why :attr:`timesteps` differs from :attr:`requested_timesteps` ("" when it does not)."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training was interrupted (Ctrl-C); a checkpoint was saved first when training had started.

    :ivar run_dir: the run directory (None: interrupted before the first checkpoint, the new folder removed).
    :ivar timesteps: the saved checkpoint's timesteps (0 without one).
    :ivar resume_command: the command line that continues the run ("" without a checkpoint).
    """

    def __init__(self, run_dir: Path | None, timesteps: int = 0, resume_command: str = ""):
        self.run_dir, self.timesteps, self.resume_command = run_dir, int(timesteps), resume_command
        super().__init__(f"training interrupted at {self.timesteps:,} timesteps; continue with: {resume_command}"
                         if resume_command else "training interrupted before its first checkpoint; nothing was saved")


def train_stream(cfg: TrainConfig, start: int):
    """The env stream of the training segment starting at ``start`` timesteps (fresh shoppers after a resume)."""
    return env_stream(Purpose.TRAIN, cfg.seed, segment=start)


def _make_venv(cfg: TrainConfig, num_envs: int, seed):
    """The training VecEnv: the batched BundleRecVecEnv (an SB3 VecEnv) seeded with the stream ``seed``."""
    from bundlerl.env.vec_env import BundleRecVecEnv

    return BundleRecVecEnv(cfg.preset, num_envs=num_envs, seed=seed, action_mode=cfg.action_mode)


def _eval_policy(policy, cfg: TrainConfig, n: int, seed):
    """EvalResult of ``policy`` on ``n`` episodes of the run's world from the env stream ``seed``."""
    from bundlerl.evaluation.rollout import evaluate

    return evaluate(policy, cfg.preset, n_episodes=n, seed=seed, num_envs=min(n, 128),
                    action_mode=cfg.action_mode, progress=False)


def _baseline_results(cfg: TrainConfig, n: int, stream) -> dict[str, Any]:
    from bundlerl.evaluation.compare import named_policies

    pols = named_policies(cfg.baselines, seed=int(stream.generate_state(1)[0]))  # the random baseline's generator
    return {b: _eval_policy(pol, cfg, n, stream) for b, pol in pols.items()}


def train(cfg: TrainConfig, out: str | Path = "runs", resume: str | Path | None = None,
          log=print) -> TrainResult:
    """Train per ``cfg`` into a new run directory under ``out`` (or continue ``resume``); see the module docstring.

    With ``resume``, ``cfg`` is read from the run's config.yaml (the world from its ``env`` section) except
    ``timesteps`` (the new total when larger than the saved one), ``progress``, ``device`` and ``torch_threads``;
    the model, its timestep count and (DQN, when saved) its replay buffer come from the newest intact checkpoint.

    A new run checks everything (config, world and its data, model) before it makes its folder, and removes the
    folder again when it fails before its first checkpoint. Ctrl-C (KeyboardInterrupt) during training saves a
    checkpoint and raises :class:`TrainingInterrupted` naming the command that continues the run.

    :raises AgentConfigError: invalid configuration.  :raises ConfigError: an unknown preset or bad world.
    :raises OutputPathError: ``out`` cannot be written (checked first, before any work).
    :raises RunDirError: ``resume`` is not a run directory, holds no intact checkpoint, or a damaged config.yaml.
    :raises TrainingInterrupted: Ctrl-C.
    """
    from bundlerl.experiment import segment
    from bundlerl.utils.paths import check_output_folder
    from bundlerl.utils.threads import torch_threads

    need_instance(cfg, "cfg", "train", TrainConfig, "a bundlerl.experiment.TrainConfig", error=AgentConfigError)
    need_callable(log, "log", "train", "a function of one str (e.g. print)", error=AgentConfigError)
    need_path(resume, "resume", "train", optional=True, what="a run directory", error=AgentConfigError)
    if resume is None:
        check_output_folder(out, "train(out=...)")  # before the world and the model are built, not after
    t_start = time.perf_counter()
    # torch's thread count for this run only (restored on exit): setting it for the process is the CLI's job
    with torch_threads(cfg.torch_threads):
        seg = segment.start_new(cfg, out, log) if resume is None else segment.start_resumed(cfg, resume, log)
        try:
            return _run(seg, log, t_start)
        except BaseException as exc:
            segment.stopped(seg, exc, log)  # Ctrl-C: checkpoint, then TrainingInterrupted; else clean up
            raise


def _run(seg, log, t_start: float) -> TrainResult:
    """Steps 2-4 of the module docstring on a started segment (``bundlerl.experiment.segment.Segment``)."""
    from bundlerl.agents.sb3 import SB3Policy
    from bundlerl.experiment.callbacks import PeriodicCheckpoint, PeriodicEvaluation, ProgressBar, WallClockLimit
    from bundlerl.experiment.report import write_report
    from bundlerl.utils.progress import progress_enabled

    rd, cfg, algo_cfg, model = seg.run_dir, seg.cfg, seg.algo_cfg, seg.model
    periodic, final_stream = env_stream(Purpose.PERIODIC_EVAL, EVAL_SEED), env_stream(Purpose.FINAL_EVAL, FINAL_EVAL_SEED)

    # 2. baselines (once per run)
    base = rd.read_json("baselines.json", default={}) or None
    if base is None:
        log(f"== evaluating baselines {', '.join(cfg.baselines)} ({cfg.eval_episodes} episodes each)")
        base = {k: v.summary()["return"].to_dict()
                for k, v in _baseline_results(cfg, cfg.eval_episodes, periodic).items()}
        rd.write_json("baselines.json", base)
    best_base = max(base.items(), key=lambda kv: kv[1]["mean"]) if base else None
    if best_base:
        log(f"   best baseline: {best_base[0]} mean return {best_base[1]['mean']:.3f}")

    # 3. learn
    eval_freq = cfg.eval_freq or max(cfg.timesteps // 10, 1)
    evaluation = PeriodicEvaluation(
        lambda m: _eval_policy(SB3Policy(m, name=cfg.algo), cfg, cfg.eval_episodes, periodic), rd, eval_freq,
        beat_target=1.1 * best_base[1]["mean"] if best_base and best_base[1]["mean"] > 0 else None,
        checkpoint=seg.checkpoint, end=seg.total)
    if dropped := evaluation.continue_from(model):
        log(f"   eval.csv: dropped {dropped} row(s) after {seg.start:,} timesteps (their checkpoint was damaged: "
            "that part of training is redone)")
    remaining = seg.total - seg.start
    if remaining > 0:
        log(f"== training {cfg.algo} for {remaining:,} timesteps" + (f" ({seg.overshoot_note})" if seg.overshoot_note else ""))
        callbacks = [PeriodicCheckpoint(rd, cfg.checkpoint_freq or eval_freq, save=seg.checkpoint),
                     evaluation, WallClockLimit(cfg.max_wall_s)]
        if progress_enabled(cfg.progress):
            callbacks.insert(0, ProgressBar(seg.total, f"train {cfg.algo}", cfg.max_wall_s, evaluation))
        model.learn(remaining, callback=callbacks, reset_num_timesteps=seg.start == 0, tb_log_name=cfg.algo,
                    progress_bar=False)
    seg.checkpoint(model)  # the state after learn's last update (a no-op when the final evaluation saved it)
    rd.save_model(model, "final_model.zip")

    # 4. final evaluation and report
    final: dict[str, Any] = {}
    results = {}
    if cfg.final_episodes:
        log(f"== final evaluation: best model and baselines on {cfg.final_episodes} fresh episodes")
        best_model = rd.load_model("best", device=cfg.device)
        results = {f"{cfg.algo} (best)": _eval_policy(SB3Policy(best_model, name=cfg.algo), cfg, cfg.final_episodes,
                                                      final_stream)}
        results.update(_baseline_results(cfg, cfg.final_episodes, final_stream))
        final = {k: v.summary()["return"].to_dict() for k, v in results.items()}
        rd.write_json("final_eval.json", final)
    done = int(model.num_timesteps)
    if done < cfg.timesteps:
        note = f"stopped by the wall-time limit of {cfg.max_wall_s:g} s" if cfg.max_wall_s else ""
    else:
        note = "" if done == cfg.timesteps else seg.overshoot_note or f"{cfg.algo} stopped at {done:,}"
    write_report(rd, cfg, algo_cfg, evaluation, base, results, periodic, final_stream, timesteps_note=note)
    wall = time.perf_counter() - t_start
    log(f"== done in {wall:.0f} s: {done:,} timesteps" + (f" ({note})" if note else "") + f"; {rd.path / 'report.md'}")
    return TrainResult(run_dir=rd.path, timesteps=done, best_mean_return=float(evaluation.best), final=final,
                       wall_s=wall, first_beat_s=evaluation.first_beat_s, requested_timesteps=cfg.timesteps,
                       overshoot_note=note)


def train_dict(cfg: TrainConfig) -> dict[str, Any]:
    """``cfg`` as the ``train`` section of config.yaml (the world by name: its whole config is the ``env`` section)."""
    d = dataclasses.asdict(cfg)
    d["preset"] = cfg.world_name
    d["baselines"] = list(cfg.baselines)
    return d
