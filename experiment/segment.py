"""The start and the stop of a training segment: one invocation of :func:`bundlerl.experiment.training.train` on a
run directory.

- :func:`start_new`: a new run. Everything is checked (config, world and its data, model) before its folder is
  made, so a failed start leaves no folder behind;
- :func:`start_resumed`: ``--resume``. The run directory is opened (killed writers' temporaries swept, config.yaml
  checked), the newest intact checkpoint loaded; DQN's replay buffer is restored when it was saved (``save_replay``)
  and sized to the run's total, else refilled before updates; DQN's exploration schedule continues where it was
  (``bundlerl.agents.sb3.MaskedDQN``);
- :func:`stopped`: what a failure leaves. A new run that fails before its first checkpoint removes its folder;
  Ctrl-C during training saves a checkpoint and raises ``TrainingInterrupted`` with the command that continues.

Both starts say how many timesteps the run will take when the algorithm cannot stop at the requested count (PPO
updates on whole rollouts: :func:`plan_timesteps`). DQN's replay buffer is resized here for a resumed run whose total
outgrew it (:func:`resize_replay_buffer`).
"""

from __future__ import annotations

import dataclasses
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from bundlerl.agents.config import config_from_dict, config_to_dict
from bundlerl.experiment.run_dir import RunDir, RunDirError, RunDirWarning
from bundlerl.experiment.training import TrainConfig, TrainingInterrupted, train_dict
from bundlerl.utils.atomic import interrupts_deferred
from bundlerl.utils.errors import BundlerlError, keyboard_interrupt_in

__all__ = ["Segment", "start_new", "start_resumed", "stopped", "plan_timesteps", "resume_command",
           "replay_buffer_bytes", "resize_replay_buffer"]


@dataclass
class Segment:
    """One invocation's training: the run directory, the configs, the model, where it starts and ends."""

    run_dir: RunDir
    cfg: TrainConfig
    algo_cfg: Any
    model: Any
    start: int
    """Timesteps of the model when the segment starts (0 for a new run)."""
    total: int
    """Timesteps when it ends: ``cfg.timesteps`` rounded up to the algorithm's step (:func:`plan_timesteps`)."""
    overshoot_note: str
    """Why ``total`` is not ``cfg.timesteps`` ("" when it is)."""
    created: bool
    """Whether this invocation made the run directory (so may remove it)."""
    saved_state: tuple | None = None
    """:meth:`state` of the model when its last checkpoint was saved (None before)."""

    def state(self, model=None) -> tuple:
        """What a checkpoint captures of the model: its timesteps, gradient updates and (when saved) replay position.
        A checkpoint taken inside ``learn`` (a callback's step) precedes the step's stored transition and updates."""
        model = self.model if model is None else model
        buf = getattr(model, "replay_buffer", None) if self.cfg.save_replay else None
        return (int(model.num_timesteps), int(getattr(model, "_n_updates", 0)),
                None if buf is None else (int(buf.pos), bool(buf.full)))

    def checkpoint(self, model=None) -> None:
        """Save a checkpoint of the model, unless the last one saved this very state (:meth:`state`)."""
        model = self.model if model is None else model
        now = self.state(model)
        if now != self.saved_state:
            self.run_dir.save_checkpoint(model, now[0], save_replay=self.cfg.save_replay)
            self.saved_state = now


def plan_timesteps(algo: str, algo_cfg, requested: int, start: int) -> tuple[int, str]:
    """(the count ``learn`` will stop at, why it is not ``requested``: "" when it is) for a segment from ``start``.

    ``learn`` advances the count by whole steps: PPO collects rollouts of ``n_steps * num_envs`` before it can
    update (it stops at the first whole rollout at or past its total), DQN ``train_freq`` vec-env steps of
    ``num_envs`` transitions."""
    if requested <= start:
        return start, ""
    step = int(algo_cfg.num_envs) * int(algo_cfg.train_freq if algo == "dqn" else algo_cfg.n_steps)
    total = start + -(-(requested - start) // step) * step
    if total == requested:
        return total, ""
    if algo == "dqn":
        why = f"DQN steps its {algo_cfg.num_envs} users {algo_cfg.train_freq} step(s) at a time"
    else:
        why = (f"{algo} updates on whole rollouts of n_steps x num_envs = {algo_cfg.n_steps} x {algo_cfg.num_envs} "
               f"= {step:,} timesteps")
    return total, f"{why}: it stops at {total:,}, not at the {requested:,} requested"


def resume_command(run_dir: Path, timesteps: int) -> str:
    """The command line that continues the run in ``run_dir`` to ``timesteps``."""
    return f"bundlerl train --resume {shlex.quote(str(run_dir))} --timesteps {int(timesteps)}"


def _tensorboard_logger(rd: RunDir, algo: str):
    """SB3's logger writing tensorboard events into ``tb/<algo>`` of the run directory, and nowhere else (SB3's own
    default would add a folder in the system temp dir without a ``tensorboard_log``)."""
    from stable_baselines3.common.logger import configure

    return configure(str(rd.path / "tb" / algo), ["tensorboard"])


def _replay_line(model, algo_cfg, total: int, save: bool) -> str:
    mb = replay_buffer_bytes(model) / 1e6
    held = f"{model.replay_buffer.buffer_size * model.replay_buffer.n_envs:,} transitions"
    where = ("saved with every checkpoint (save_replay)" if save else
             f"not saved with checkpoints (--save-replay would write ~{mb:,.0f} MB each)")
    return (f"   replay buffer: {held} (min of buffer_size {algo_cfg.buffer_size:,} and the run's {total:,} "
            f"timesteps), {mb:,.1f} MB; {where}")


def start_new(cfg: TrainConfig, out: str | Path, log: Callable[[str], None]) -> Segment:
    """A new run: the world (its data), the algorithm config and the model are built first, then the run directory
    ``out/{world}__{algo}__{seed}__{time}`` with config.yaml and versions.json."""
    import torch as th

    from bundlerl.agents.sb3 import make_model
    from bundlerl.experiment import training

    cfg = dataclasses.replace(cfg, preset=cfg.env_config())  # one world for every part of the run
    algo_cfg = cfg.algo_config()
    total, note = plan_timesteps(cfg.algo, algo_cfg, cfg.timesteps, 0)
    th.manual_seed(cfg.seed)
    log(f"== building env '{cfg.world_name}' ({algo_cfg.num_envs} users, {cfg.action_mode} mode)")
    stream = training.train_stream(cfg, 0)
    venv = training._make_venv(cfg, algo_cfg.num_envs, stream)  # builds the world: missing data fails here
    # DQN allocates its whole buffer up front: no more than the run can fill
    model_cfg = (dataclasses.replace(algo_cfg, buffer_size=min(algo_cfg.buffer_size, total)) if cfg.algo == "dqn"
                 else algo_cfg)
    model = make_model(cfg.algo, venv, model_cfg, seed=cfg.seed, device=cfg.device)
    venv.seed(stream)  # SB3 reseeded it with the model's integer seed (set_random_seed: row i = seed + i)
    rd = RunDir.create(out, cfg.world_name, cfg.algo, cfg.seed, {
        "train": train_dict(cfg), "env": cfg.preset.to_dict(), "algo_config": config_to_dict(algo_cfg)})
    try:
        model.set_logger(_tensorboard_logger(rd, cfg.algo))
        log(f"== run directory: {rd.path}")
        if cfg.algo == "dqn":
            log(_replay_line(model, algo_cfg, total, cfg.save_replay))
    except BaseException:
        shutil.rmtree(rd.path, ignore_errors=True)
        raise
    return Segment(rd, cfg, algo_cfg, model, 0, total, note, created=True)


def _resumed_config(rd: RunDir, cfg: TrainConfig):
    """(TrainConfig, algo config) of the run in ``rd``, with this invocation's total (when larger), progress,
    device, threads and save_replay (when asked)."""
    saved = rd.config()
    try:
        tr = dict(saved["train"])
        tr["preset"] = rd.env_config()
        tr["timesteps"] = max(int(tr["timesteps"]), int(cfg.timesteps))
        tr.update(progress=cfg.progress, device=cfg.device, torch_threads=cfg.torch_threads,
                  save_replay=bool(cfg.save_replay or tr.get("save_replay", False)))
        tr["baselines"] = tuple(tr.get("baselines") or ())
        run_cfg = TrainConfig(**tr)
        return run_cfg, config_from_dict(run_cfg.algo, saved["algo_config"])
    except RunDirError:
        raise
    except (BundlerlError, KeyError, TypeError, ValueError) as exc:
        raise RunDirError(f"{rd.path / 'config.yaml'} is damaged: {type(exc).__name__}: {exc}. Restore it from a "
                          "copy, or start a new run") from None


def start_resumed(cfg: TrainConfig, resume: str | Path, log: Callable[[str], None]) -> Segment:
    """``resume``'s run from its newest intact checkpoint (see the module docstring)."""
    import torch as th

    from bundlerl.agents.sb3 import ModelFileError, load_model
    from bundlerl.experiment import training

    rd = RunDir.open(resume)
    cfg, algo_cfg = _resumed_config(rd, cfg)
    ck = rd.latest_checkpoint()
    if ck is None:
        raise RunDirError(f"{rd.path} has no checkpoint to resume from (checkpoints/latest.json); start a new run")
    total, note = plan_timesteps(cfg.algo, algo_cfg, cfg.timesteps, ck["timesteps"])
    th.manual_seed(cfg.seed)
    log(f"== run directory: {rd.path}")
    log(f"== building env '{cfg.world_name}' ({algo_cfg.num_envs} users, {cfg.action_mode} mode)")
    # Fresh shoppers after a resume: the segment starting at this checkpoint has its own stream
    stream = training.train_stream(cfg, int(ck["timesteps"]))
    venv = training._make_venv(cfg, algo_cfg.num_envs, stream)
    extra = {"buffer_size": min(algo_cfg.buffer_size, total)} if cfg.algo == "dqn" else {}
    try:
        model = load_model(cfg.algo, ck["model"], env=venv, device=cfg.device, **extra)
    except ModelFileError as exc:
        raise RunDirError(f"{exc}; resume from another checkpoint by deleting this one") from None
    venv.seed(stream)  # SB3's load reseeded it with the model's integer seed (set_random_seed)
    rd.saved_timesteps = int(ck["timesteps"])
    model.set_logger(_tensorboard_logger(rd, cfg.algo))
    start = int(model.num_timesteps)
    log(f"== resumed from {ck['model'].name} at {start} timesteps")
    if cfg.algo == "dqn":
        _restore_replay(model, ck, algo_cfg, total, cfg.save_replay, log)
        span = int(model.schedule_timesteps or model._total_timesteps or 0)
        log(f"   exploration: epsilon {model.exploration_at(start):.3f} at {start:,} timesteps, continuing its "
            f"schedule (decays over the run's first {algo_cfg.exploration_fraction * span:,.0f} timesteps)")
    seg = Segment(rd, cfg, algo_cfg, model, start, total, note, created=False)
    seg.saved_state = seg.state()
    return seg


def _restore_replay(model, ck: dict, algo_cfg, total: int, save: bool, log: Callable[[str], None]) -> None:
    """Load the checkpoint's replay buffer into ``model`` (resized to the run), or arrange its refill."""
    import warnings

    want = min(algo_cfg.buffer_size, total)
    if ck["replay"] is not None:
        fresh = model.replay_buffer  # sized to the run by load_model(buffer_size=...)
        try:
            model.load_replay_buffer(str(ck["replay"]))
        except Exception as exc:  # noqa: BLE001 - whatever fails to unpickle is a damaged file; refilling is safe
            model.replay_buffer = fresh
            warnings.warn(f"{ck['replay']} is damaged ({type(exc).__name__}: {exc}); the run continues with an "
                          "empty replay buffer", RunDirWarning, stacklevel=2)
        else:
            held = model.replay_buffer.size() * model.replay_buffer.n_envs
            resize_replay_buffer(model, want)
            log(f"   replay buffer restored: {held:,} transitions (capacity {want:,})")
            return
    model.refill_before_updates(algo_cfg.learning_starts)
    log(f"   no replay buffer in the checkpoint (the run saves none without --save-replay): DQN refills an empty "
        f"buffer with {algo_cfg.learning_starts:,} transitions, acting with its policy, before it updates again")
    log(_replay_line(model, algo_cfg, total, save))


def replay_buffer_bytes(model) -> int:
    """Bytes of ``model``'s replay buffer arrays (what ``save_replay_buffer`` writes, about); 0 without one."""
    buf = getattr(model, "replay_buffer", None)
    if buf is None:
        return 0
    arrays = [v for v in vars(buf).values() if isinstance(v, np.ndarray)]
    arrays += [a for v in vars(buf).values() if isinstance(v, dict) for a in v.values() if isinstance(a, np.ndarray)]
    return int(sum(a.nbytes for a in arrays))


def resize_replay_buffer(model, transitions: int) -> None:
    """Give ``model`` (off-policy) a replay buffer of ``transitions`` capacity holding the newest transitions of its
    current one, oldest first (a resumed run whose total outgrew the buffer it was sized to)."""
    old = model.replay_buffer
    per_env = max(int(transitions) // old.n_envs, 1)
    if per_env == old.buffer_size:
        return
    new = type(old)(per_env * old.n_envs, old.observation_space, old.action_space, device=old.device,
                    n_envs=old.n_envs, handle_timeout_termination=old.handle_timeout_termination)
    held = old.buffer_size if old.full else old.pos
    order = (np.arange(old.pos, old.pos + held) % old.buffer_size) if old.full else np.arange(held)
    order = order[-per_env:]  # the newest ones when shrinking
    for name, value in vars(old).items():
        target = getattr(new, name, None)
        if isinstance(value, np.ndarray) and value.shape[:1] == (old.buffer_size,) and isinstance(target, np.ndarray):
            target[: order.size] = value[order]
        elif isinstance(value, dict) and isinstance(target, dict):
            for k, arr in value.items():
                if isinstance(arr, np.ndarray) and arr.shape[:1] == (old.buffer_size,):
                    target[k][: order.size] = arr[order]
    new.pos, new.full = order.size % per_env, order.size == per_env
    model.buffer_size = per_env * old.n_envs
    model.replay_buffer = new


def stopped(seg: Segment, exc: BaseException, log: Callable[[str], None]) -> None:
    """What ``exc`` (raised while ``seg`` ran) leaves behind; returns to let the caller re-raise ``exc``.

    Ctrl-C (KeyboardInterrupt) once the model trained: a checkpoint of it, then :class:`TrainingInterrupted` naming
    the command that continues the run. Any failure of a new run before its first checkpoint: its folder removed.

    :raises TrainingInterrupted: for a KeyboardInterrupt.
    """
    rd, t = seg.run_dir, int(seg.model.num_timesteps)
    interrupted = keyboard_interrupt_in(exc) is not None and not isinstance(exc, TrainingInterrupted)
    if interrupted and t > 0:
        with interrupts_deferred():  # a second Ctrl-C would leave no checkpoint; the run stops after it anyway
            seg.checkpoint()
        cmd = resume_command(rd.path, seg.cfg.timesteps)
        log(f"== interrupted at {t:,} timesteps: checkpoint saved; continue with:\n   {cmd}")
        raise TrainingInterrupted(rd.path, t, cmd) from None
    if seg.created and rd.saved_timesteps is None:
        shutil.rmtree(rd.path, ignore_errors=True)
        log(f"== {'interrupted' if interrupted else 'failed'} before the first checkpoint: removed {rd.path}")
    if interrupted:
        raise TrainingInterrupted(None) from None
