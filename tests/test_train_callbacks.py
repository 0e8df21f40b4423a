"""The training callbacks (bundlerl.experiment.callbacks), one at a time: each driven by hand through SB3's callback
protocol (init_callback, on_training_start, on_step, on_training_end) on a tiny model of the stand-in env, and the
set of them through a real ``learn``."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from _agents_fake_env import fake_vec_env

from bundlerl.evaluation.stats import mean_ci
from bundlerl.experiment.callbacks import (
    PeriodicCheckpoint,
    PeriodicEvaluation,
    ProgressBar,
    TimestepGrid,
    WallClockLimit,
)
from bundlerl.experiment.run_dir import EVAL_COLUMNS, RunDir


@pytest.fixture(scope="module")
def model():
    from bundlerl.agents.config import load_algo_config
    from bundlerl.agents.sb3 import make_model, quiet_logger

    cfg = load_algo_config("ppo", "small", overrides={"num_envs": 4, "n_steps": 8, "batch_size": 16,
                                                       "network": {"hidden": 8, "context_dim": 4, "net_arch": [8]}})
    m = make_model("ppo", fake_vec_env(4), cfg, seed=0)
    m.set_logger(quiet_logger())  # SB3's configure(None, ...) would make an SB3-<date> folder in the temp dir
    return m


@pytest.fixture
def run_dir(tmp_path):
    return RunDir.create(tmp_path, "small", "ppo", 0, {"train": {"algo": "ppo"}})


def _drive(cb, model, timesteps, start=0):
    """SB3's calls to a callback while the model's count goes from ``start`` through ``timesteps`` (one call per
    value: the grid logic must not depend on the step size)."""
    model.num_timesteps = start
    cb.init_callback(model)
    cb.on_training_start({}, {})
    alive = []
    for t in timesteps:
        model.num_timesteps = t
        alive.append(cb.on_step())
    cb.on_training_end()
    return alive


class _Events(TimestepGrid):
    def __init__(self, freq):
        super().__init__(freq)
        self.at = []

    def _on_event(self):
        self.at.append(self.num_timesteps)
        return super()._on_event()


def test_timestep_grid_fires_on_multiples_and_keeps_the_grid_after_a_resume(model):
    ev = _Events(64)
    assert all(_drive(ev, model, range(4, 260, 12)))
    assert ev.at == [64, 136, 196, 256]  # first step at or past 64, 128, 192, 256
    resumed = _Events(64)
    _drive(resumed, model, range(104, 200, 8), start=100)
    assert resumed.at == [128, 192]


def test_timestep_grid_runs_its_child_callback(model):
    child = _Events(1)
    ev = TimestepGrid(10, callback=child)
    _drive(ev, model, range(5, 35, 5))
    assert child.n_calls == 3  # the child's on_step runs once per event


def _fake_eval(values):
    """``f(model)`` returning results whose mean returns are ``values`` in turn."""
    it = iter(values)

    def evaluate(model):
        v = next(it)
        returns = np.full(4, v)
        return SimpleNamespace(summary=lambda: {"return": mean_ci(returns), "click_rate": mean_ci(returns / 10)})

    return evaluate


def test_periodic_evaluation_records_rows_best_model_and_first_beat(model, run_dir):
    cb = PeriodicEvaluation(_fake_eval([1.0, 3.0, 2.0, 4.0]), run_dir, freq=10, beat_target=2.5)
    _drive(cb, model, [10, 20, 30, 35])  # 10, 20, 30 on the grid, 35 at training end
    assert [r["timesteps"] for r in cb.rows] == [10, 20, 30, 35]
    assert [r["mean_return"] for r in cb.rows] == [1.0, 3.0, 2.0, 4.0] and cb.last_eval == 4.0
    assert cb.best == 4.0 and (run_dir.path / "best_model.zip").is_file()
    assert cb.first_beat_t == 20 and cb.first_beat_s is not None
    assert [r["timesteps"] for r in run_dir.eval_rows()] == [10, 20, 30, 35]
    assert list(run_dir.eval_rows()[0]) == list(EVAL_COLUMNS)
    prog = json.loads((run_dir.path / "progress.json").read_text())
    assert prog["best"] == 4.0 and prog["first_beat_t"] == 20 and prog["train_s"] >= 0
    # a new instance (a resumed run) starts from the run directory's files
    again = PeriodicEvaluation(_fake_eval([0.5]), run_dir, freq=10)
    assert again.best == 4.0 and len(again.rows) == 4 and again.first_beat_t == 20
    assert again.prev_train_s == prog["train_s"]


def test_periodic_evaluation_does_not_repeat_the_last_step_at_training_end(model, run_dir):
    cb = PeriodicEvaluation(_fake_eval([1.0, 2.0]), run_dir, freq=10)
    _drive(cb, model, [10, 20])
    assert [r["timesteps"] for r in cb.rows] == [10, 20]  # no third evaluation at 20


def test_periodic_checkpoint_saves_on_the_grid(model, run_dir):
    cb = PeriodicCheckpoint(run_dir, freq=16)
    _drive(cb, model, range(4, 52, 4))
    assert run_dir.latest_checkpoint()["timesteps"] == 48
    assert sorted(p.name for p in (run_dir.path / "checkpoints").glob("model_*.zip")) == \
        ["model_16.zip", "model_32.zip", "model_48.zip"]


def test_wall_clock_limit_stops_training(model):
    assert _drive(WallClockLimit(0), model, [1, 2, 3]) == [True, True, True]  # 0: no limit
    assert _drive(WallClockLimit(1e-9), model, [1]) == [False]


def test_progress_bar_counts_timesteps_and_shows_the_last_evaluation(model, run_dir):
    ev = PeriodicEvaluation(_fake_eval([1.5, 2.5]), run_dir, freq=8)
    bar = ProgressBar(total=16, desc="t", evaluation=ev)
    model.num_timesteps = 0
    for cb in (ev, bar):
        cb.init_callback(model)
        cb.on_training_start({}, {})
    for t in (8, 16):
        model.num_timesteps = t
        ev.on_step()
        bar.on_step()
    assert bar.bar.n == 16 and "eval_return=2.500" in str(bar.bar.postfix)
    bar.on_training_end()


def test_callbacks_in_a_real_learn(model, run_dir):
    ev = PeriodicEvaluation(_fake_eval([1.0] * 10), run_dir, freq=32)
    ck = PeriodicCheckpoint(run_dir, freq=32)
    model.learn(64, callback=[ck, ev, WallClockLimit(0)], reset_num_timesteps=True)
    assert [r["timesteps"] for r in ev.rows] == [32, 64]
    assert run_dir.latest_checkpoint()["timesteps"] == 64
