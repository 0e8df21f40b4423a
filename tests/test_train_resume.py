"""What a resumed run continues with, and what a run says it did: DQN's replay buffer sized to the run and saved only
when asked (resized, or refilled, on resume), DQN's exploration schedule continued (not restarted by a larger
total), and the actual timestep count when the algorithm cannot stop at the requested one. On the stand-in env
(tests/_train_fakes.py)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from _agents_fake_env import fake_space
from _train_fakes import patch_training, tiny_cfg
from gymnasium import spaces
from hypothesis import given, settings
from hypothesis import strategies as st


@pytest.fixture
def fake_env(monkeypatch):
    patch_training(monkeypatch.setattr)


# ------------------------------------------------------------------------------------------------- replay buffer
@pytest.mark.parametrize("timesteps, buffer_size, held", [(64, 1000, 64), (128, 100, 100), (96, 96, 96)])
@pytest.mark.parametrize("save", [False, True])
def test_the_replay_buffer_is_sized_to_the_run_and_saved_only_when_asked(fake_env, tmp_path, timesteps, buffer_size,
                                                                         held, save):
    from bundlerl.experiment.training import train

    logs: list[str] = []
    cfg = tiny_cfg("dqn", timesteps=timesteps, save_replay=save, hyperparams={"buffer_size": buffer_size})
    run = train(cfg, out=tmp_path, log=logs.append).run_dir
    (line,) = [m for m in logs if "replay buffer:" in m]
    assert f"{held:,} transitions (min of buffer_size {buffer_size:,} and the run's {timesteps:,} timesteps)" in line
    replays = sorted((run / "checkpoints").glob("replay_*.pkl"))
    if save:
        assert "saved with every checkpoint" in line and [p.name for p in replays] == [f"replay_{timesteps}.pkl"]
        with open(replays[0], "rb") as fh:
            buf = pickle.load(fh)
        assert buf.buffer_size * buf.n_envs == held
    else:
        assert "--save-replay would write ~" in line and replays == []


def _buffer(capacity: int, n_envs: int = 2):
    from stable_baselines3.common.buffers import DictReplayBuffer

    return DictReplayBuffer(capacity, fake_space(), spaces.Discrete(5), device="cpu", n_envs=n_envs)


@settings(max_examples=40, deadline=None)
@given(capacity=st.integers(2, 40), added=st.integers(0, 90), new=st.integers(2, 60))
def test_resizing_a_replay_buffer_keeps_its_newest_transitions_in_order(capacity, added, new):
    from types import SimpleNamespace

    from bundlerl.experiment.segment import resize_replay_buffer

    buf = _buffer(capacity)
    obs = {k: np.zeros((2, *s.shape), np.float32) for k, s in fake_space().spaces.items()}
    for t in range(added):  # transition t: reward t, in both envs
        buf.add(obs, obs, np.zeros((2, 1)), np.full(2, float(t)), np.zeros(2), [{}, {}])
    model = SimpleNamespace(replay_buffer=buf, buffer_size=buf.buffer_size * 2)
    resize_replay_buffer(model, new)
    got = model.replay_buffer
    per_env = max(new // 2, 1)
    assert got.buffer_size == per_env and model.buffer_size == per_env * 2
    kept = list(range(added))[-min(added, buf.buffer_size, per_env):] if added else []
    n = got.buffer_size if got.full else got.pos
    oldest_first = (np.arange(n) + (got.pos if got.full else 0)) % got.buffer_size
    assert got.rewards[oldest_first, 0].tolist() == kept and n == len(kept)
    if not got.full:  # the next transition goes after the kept ones
        assert got.pos == len(kept)


def test_resume_with_a_larger_total_grows_the_saved_buffer(fake_env, tmp_path):
    from bundlerl.agents.sb3 import MaskedDQN
    from bundlerl.experiment.training import train

    run = train(tiny_cfg("dqn", timesteps=64, save_replay=True), out=tmp_path, log=lambda m: None).run_dir
    with open(run / "checkpoints" / "replay_64.pkl", "rb") as fh:
        before = pickle.load(fh)
    seen = []
    real = MaskedDQN.learn

    def spy(self, *a, **k):
        seen.append((self.replay_buffer.buffer_size * self.n_envs, self.replay_buffer.pos,
                     self.replay_buffer.rewards[: before.buffer_size].copy()))
        return real(self, *a, **k)

    mp = pytest.MonkeyPatch()
    mp.setattr(MaskedDQN, "learn", spy)
    try:
        logs: list[str] = []
        train(tiny_cfg("dqn", timesteps=256), resume=run, log=logs.append)
    finally:
        mp.undo()
    (capacity, pos, rewards), = seen
    assert capacity == 256 and pos == before.buffer_size  # the 64 saved transitions, then room for the rest
    np.testing.assert_array_equal(rewards, before.rewards)
    assert any("replay buffer restored: 64 transitions (capacity 256)" in m for m in logs)


def test_resume_without_a_saved_buffer_refills_it_before_updating(fake_env, tmp_path, monkeypatch):
    from bundlerl.agents.sb3 import MaskedDQN
    from bundlerl.experiment.training import train

    run = train(tiny_cfg("dqn", timesteps=64), out=tmp_path, log=lambda m: None).run_dir
    updates, actions = [], []
    real_train, real_sample = MaskedDQN.train, MaskedDQN._sample_action

    def spy_train(self, *a, **k):
        updates.append(self.num_timesteps)
        return real_train(self, *a, **k)

    def spy_sample(self, *a, **k):
        out = real_sample(self, *a, **k)
        actions.append((self.num_timesteps, self.random_until))
        return out

    monkeypatch.setattr(MaskedDQN, "train", spy_train)
    monkeypatch.setattr(MaskedDQN, "_sample_action", spy_sample)
    logs: list[str] = []
    train(tiny_cfg("dqn", timesteps=160), resume=run, log=logs.append)
    assert any("no replay buffer in the checkpoint" in m and "refills an empty buffer with 16 transitions" in m
               for m in logs), logs
    assert updates and min(updates) > 64 + 16  # learning_starts (16) new transitions first
    assert all(r is not None and r <= 64 for _, r in actions)  # acting with the policy, not at random


# ---------------------------------------------------------------------------------------------- exploration
def _epsilons(monkeypatch) -> list[tuple[int, float]]:
    """(timesteps, epsilon) after every vec-env step of every MaskedDQN."""
    from bundlerl.agents.sb3 import MaskedDQN

    seen: list[tuple[int, float]] = []
    real = MaskedDQN._on_step

    def on_step(self):
        real(self)
        seen.append((int(self.num_timesteps), float(self.exploration_rate)))

    monkeypatch.setattr(MaskedDQN, "_on_step", on_step)
    return seen


@pytest.mark.parametrize("stop_at, new_total", [(100, 256), (100, 512), (200, 384), (256, 512)])
def test_resume_continues_the_exploration_schedule(fake_env, monkeypatch, tmp_path, stop_at, new_total):
    """Epsilon right after a resume (with a larger total) equals epsilon before it, and follows the run's own
    schedule: the same as an uninterrupted run's at every timestep. Before the fix SB3 restarted the decay over the
    new total (0.05 back up to 0.67 in the issue's run)."""
    from bundlerl.experiment.callbacks import WallClockLimit
    from bundlerl.experiment.training import TrainingInterrupted, train

    hp = {"exploration_fraction": 0.8, "exploration_initial_eps": 1.0, "exploration_final_eps": 0.05}
    seen = _epsilons(monkeypatch)
    train(tiny_cfg("dqn", timesteps=256, hyperparams=hp, final_episodes=0), out=tmp_path / "whole", log=lambda m: None)
    whole = dict(seen)
    seen.clear()
    real = WallClockLimit._on_step
    monkeypatch.setattr(WallClockLimit, "_on_step",
                        lambda self: (_ for _ in ()).throw(KeyboardInterrupt) if self.num_timesteps >= stop_at else
                        real(self))
    try:
        train(tiny_cfg("dqn", timesteps=256, hyperparams=hp, final_episodes=0), out=tmp_path / "cut", log=lambda m: None)
    except TrainingInterrupted as stop:
        run = stop.run_dir
    else:  # the run ended before stop_at
        (run,) = (tmp_path / "cut").iterdir()
    before = seen[-1][1]
    seen.clear()
    monkeypatch.setattr(WallClockLimit, "_on_step", real)
    logs: list[str] = []
    train(tiny_cfg("dqn", timesteps=new_total, final_episodes=0), resume=run, log=logs.append)
    start = min(stop_at, 256)
    t0, first = seen[0]
    assert t0 == start + 4
    assert first == pytest.approx(whole.get(t0, 0.05))  # where the uninterrupted run was at that step
    if start >= 0.8 * 256:  # the decay was over: epsilon stays final (it went back up to ~1 before the fix)
        assert first == before == pytest.approx(0.05)
    for t, eps in seen:  # the run's own schedule: decays over 0.8 x 256 timesteps, then 0.05
        assert eps == pytest.approx(max(1.0 - 0.95 * t / (0.8 * 256), 0.05)), (t, eps)
    expected = max(1.0 - 0.95 * start / (0.8 * 256), 0.05)  # the schedule at the checkpoint, before and after
    assert any(f"epsilon {expected:.3f} at {start:,} timesteps, continuing its schedule" in m for m in logs), logs


# ------------------------------------------------------------------------------------------------- timestep counts
@pytest.mark.parametrize("algo, requested, done", [("ppo", 100, 128), ("ppo", 128, 128), ("ppo", 33, 64),
                                                   ("dqn", 102, 104), ("dqn", 128, 128)])
def test_the_actual_timestep_count_is_said_when_it_is_not_the_requested_one(fake_env, tmp_path, algo, requested, done):
    from bundlerl.experiment.training import train

    logs: list[str] = []
    res = train(tiny_cfg(algo, timesteps=requested, final_episodes=0), out=tmp_path, log=logs.append)
    assert res.timesteps == done and res.requested_timesteps == requested
    report = (res.run_dir / "report.md").read_text()
    if done == requested:
        assert res.overshoot_note == "" and "requested" not in report
    else:
        note = f"it stops at {done:,}, not at the {requested:,} requested"
        assert note in res.overshoot_note and any(note in m for m in logs)
        assert f"timesteps: {done:,} (requested {requested:,}: " in report
        assert ("whole rollouts of n_steps x num_envs = 8 x 4 = 32" if algo == "ppo" else "4 users") in report


def test_ctrl_c_inside_compiled_code_checkpoints_the_run(tmp_path):
    """A Ctrl-C that surfaces as numba's SystemError chained to the KeyboardInterrupt (it landed inside the bundle
    builder's compiled code) stops training like a plain Ctrl-C: a checkpoint, then TrainingInterrupted with the
    resume command; the run is not removed as a failed one. (A stand-in segment: only ``stopped`` is under test.)"""
    from types import SimpleNamespace

    from bundlerl.experiment.segment import stopped
    from bundlerl.experiment.training import TrainingInterrupted

    saved = []
    seg = SimpleNamespace(run_dir=SimpleNamespace(path=tmp_path, saved_timesteps=None), created=True,
                          model=SimpleNamespace(num_timesteps=128), cfg=SimpleNamespace(timesteps=1024),
                          checkpoint=lambda: saved.append(True))
    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as ki:
            raise SystemError("CPUDispatcher(greedy_complete) returned a result with an exception set") from ki
    except SystemError as exc:
        with pytest.raises(TrainingInterrupted, match="--resume"):
            stopped(seg, exc, lambda m: None)
    assert saved == [True] and tmp_path.is_dir()
