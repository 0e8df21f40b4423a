"""Run directories survive faults and explain themselves: a failed start leaves no folder; Ctrl-C saves a checkpoint
and names the command that continues (exit 130); a kill at any file write never leaves eval.csv with a hole once the
run is resumed; killed writers' temporaries are swept; training writes nothing outside its run directory.

Each fault kind is tried over many cases (failure points, interrupt steps, kill points). The stand-in env
(tests/_train_fakes.py) keeps them fast; the real SIGINT test runs the real CLI on the small preset.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from _cli import ROOT
from _train_fakes import patch_training, tiny_cfg

TESTS = Path(__file__).resolve().parent


@pytest.fixture
def fake_env(monkeypatch):
    patch_training(monkeypatch.setattr)


def _quiet(m):
    pass


def _assert_no_holes(rows: list[dict], total: int, freq: int = 64, step: int = 4) -> None:
    """eval.csv of a complete run: one row per evaluation, in order: at each multiple of ``freq`` (the first step at or
    past it; the stand-in runs step 4 users at a time) and at the end, ``total``; nothing else."""
    ts = [r["timesteps"] for r in rows]
    assert ts == sorted(set(ts)) and ts and ts[-1] == total, ts
    for g in range(1, total // freq + 1):
        assert len([t for t in ts if g * freq <= t < g * freq + step]) == 1, (g, ts)
    assert all(t == total or t % freq < step for t in ts), ts


# ---------------------------------------------------------------------------------------------------- failed starts
def _instacart_without_orders(tmp_path):
    from bundlerl.env import PRESETS

    folder = tmp_path / "instacart"
    folder.mkdir()
    (folder / "products.csv").write_text("product_id,product_name,aisle_id,department_id\n1,milk,1,1\n")
    return PRESETS["default"].replace(name="ic", source="instacart", instacart_path=str(folder))


def _raise(exc):
    def f(*a, **k):
        raise exc

    return f


# (name, TrainConfig overrides, what to break, the error expected): configs are checked before anything, the world
# (its data) and the model before the folder is made, anything after it removes the folder again
FAILED_STARTS = [
    ("unknown preset", {"preset": "nope"}, None, "unknown preset"),
    ("bad hyperparameter", {"hyperparams": {"gamma": 3.0}}, None, "gamma"),
    ("unknown hyperparameter", {"hyperparams": {"learning_rat": 0.1}}, None, "learning_rat"),
    ("missing data", {}, "instacart", "file not found"),
    ("env fails", {}, ("_make_venv", RuntimeError("env broke")), "env broke"),
    ("model fails", {}, ("make_model", RuntimeError("model broke")), "model broke"),
    ("baselines fail", {}, ("_baseline_results", RuntimeError("baselines broke")), "baselines broke"),
    ("Ctrl-C in baselines", {}, ("_baseline_results", KeyboardInterrupt()), "before its first checkpoint"),
    ("first step fails", {}, ("step", RuntimeError("step broke")), "step broke"),
    ("learn fails", {}, ("learn", RuntimeError("learn broke")), "learn broke"),
    ("Ctrl-C in learn before a step", {}, ("learn", KeyboardInterrupt()), "before its first checkpoint"),
]


@pytest.mark.parametrize("name, over, breaks, message", FAILED_STARTS, ids=[c[0] for c in FAILED_STARTS])
@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_a_failed_start_leaves_nothing(fake_env, monkeypatch, tmp_path, name, over, breaks, message, algo):
    import bundlerl.agents.sb3
    import bundlerl.experiment.training as tr
    from bundlerl.utils.errors import BundlerlError

    out = tmp_path / "runs"
    if breaks == "instacart":
        monkeypatch.undo()  # the real env: the world is built (and fails) before the folder is made
        over = {"preset": _instacart_without_orders(tmp_path)}
    elif breaks is not None:
        where, exc = breaks
        if where == "learn":
            monkeypatch.setattr(bundlerl.agents.sb3.algo_class(algo), "learn", _raise(exc))
        elif where == "make_model":
            monkeypatch.setattr(bundlerl.agents.sb3, "make_model", _raise(exc))
        elif where == "step":  # a training callback's first step
            from bundlerl.experiment.callbacks import WallClockLimit

            monkeypatch.setattr(WallClockLimit, "_on_step", _raise(exc))
        else:
            monkeypatch.setattr(tr, where, _raise(exc))
    try:
        cfg = tiny_cfg(algo, **over)
    except BundlerlError as exc:  # refused by the config itself: nothing could be made
        assert message in str(exc)
    else:
        with pytest.raises((BundlerlError, RuntimeError, KeyboardInterrupt), match=message):
            tr.train(cfg, out=out, log=_quiet)
    assert not out.exists() or list(out.iterdir()) == [], list(out.iterdir())


def test_a_failure_after_the_first_checkpoint_keeps_the_resumable_run(fake_env, monkeypatch, tmp_path):
    import bundlerl.experiment.training as tr
    from bundlerl.experiment.run_dir import RunDir

    real, calls = tr._eval_policy, [0]

    def eval_policy(*a, **k):  # the baselines' four evaluations pass, the agent's second fails
        calls[0] += 1
        if calls[0] > 5:
            raise RuntimeError("eval broke")
        return real(*a, **k)

    monkeypatch.setattr(tr, "_eval_policy", eval_policy)
    with pytest.raises(RuntimeError, match="eval broke"):
        tr.train(tiny_cfg(timesteps=256), out=tmp_path, log=_quiet)
    (run,) = tmp_path.iterdir()
    assert RunDir.open(run).latest_checkpoint()["timesteps"] == 128  # saved before the failing evaluation


@pytest.mark.parametrize("seed", [-1, -5, 1.5, True, "0"])
def test_a_bad_seed_is_refused_before_anything(tmp_path, seed):
    from bundlerl.agents.config import AgentConfigError

    with pytest.raises(AgentConfigError, match="seed"):
        tiny_cfg(seed=seed)


# ------------------------------------------------------------------------------------------------------ Ctrl-C
def _interrupt_at(monkeypatch, timesteps: int):
    """Raise KeyboardInterrupt from a training callback at the first step at or past ``timesteps``."""
    from bundlerl.experiment.callbacks import WallClockLimit

    real = WallClockLimit._on_step

    def on_step(self):
        if self.num_timesteps >= timesteps:
            raise KeyboardInterrupt
        return real(self)

    monkeypatch.setattr(WallClockLimit, "_on_step", on_step)


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
@pytest.mark.parametrize("at", [4, 36, 64, 100, 128, 188])
def test_ctrl_c_saves_a_checkpoint_and_names_the_resume_command(fake_env, monkeypatch, tmp_path, algo, at):
    from bundlerl.experiment.run_dir import RunDir
    from bundlerl.experiment.training import TrainingInterrupted, train

    _interrupt_at(monkeypatch, at)
    logs: list[str] = []
    with pytest.raises(TrainingInterrupted) as stop:
        train(tiny_cfg(algo, timesteps=256), out=tmp_path, log=logs.append)
    (run,) = tmp_path.iterdir()
    assert stop.value.run_dir == run and stop.value.timesteps == at
    assert stop.value.resume_command == f"bundlerl train --resume {run} --timesteps 256"
    assert any(stop.value.resume_command in m for m in logs)
    assert RunDir.open(run).latest_checkpoint()["timesteps"] == at
    monkeypatch.undo()
    patch_training(monkeypatch.setattr)
    res = train(tiny_cfg(algo, timesteps=256), resume=run, log=_quiet)  # what the printed command does
    # PPO stopped mid-rollout continues on whole rollouts from there: it may pass 256, and says so
    assert res.timesteps == 256 or (algo == "ppo" and res.timesteps == 256 + at % 32 and res.overshoot_note)
    _assert_no_holes(RunDir.open(run).eval_rows(), res.timesteps)


def test_ctrl_c_in_the_cli_is_one_line_and_exit_130(fake_env, monkeypatch, tmp_path, capsys):
    from bundlerl.scripts import cli

    _interrupt_at(monkeypatch, 64)
    code = cli.main(["train", "--preset", "small", "--timesteps", "256", "--num-envs", "4", "--set", "n_steps=8",
                     "--set", "batch_size=16", "--eval-freq", "64", "--eval-episodes", "4", "--out", str(tmp_path),
                     "--no-progress"])
    err = capsys.readouterr().err
    assert code == 130 and "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert line.startswith("bundlerl train: interrupted; continue with: bundlerl train --resume ")


def test_a_real_sigint_to_bundlerl_train(tmp_path):
    """SIGINT (what Ctrl-C sends) to the real CLI training on the small preset: exit 130, no traceback, a checkpoint
    and the command that continues."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", BUNDLERL_PROGRESS="0")
    argv = ["bundlerl", "train", "--preset", "small", "--timesteps", "10000000", "--eval-freq", "512",
            "--eval-episodes", "8", "--out", str(tmp_path)]
    # Python keeps SIGINT ignored when it starts with it ignored, which it does under any background job of a
    # non-interactive shell (CI scripts, `cmd &`): the child restores Ctrl-C's handler, as a terminal user has it.
    child = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
             f"sys.argv = {argv!r}; runpy.run_module('bundlerl.scripts.cli', run_name='__main__')")
    proc = subprocess.Popen(
        [sys.executable, "-c", child],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    deadline = time.monotonic() + 240
    for line in proc.stdout:  # wait until training runs
        lines.append(line)
        if line.startswith("== training") or time.monotonic() > deadline:
            break
    time.sleep(3.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    out = "".join(lines) + out
    assert proc.returncode == 130, out[-2000:] + err[-3000:]
    assert "Traceback" not in err and "Traceback" not in out
    (run,) = tmp_path.iterdir()
    assert f"bundlerl train --resume {run} --timesteps 10000000" in out
    assert err.strip().splitlines()[-1].startswith("bundlerl train: interrupted; continue with:")
    ck = json.loads((run / "checkpoints" / "latest.json").read_text())
    assert ck["timesteps"] > 0 and (run / "checkpoints" / ck["model"]).is_file()


# ------------------------------------------------------------------------------------------------- kills (SIGKILL)
_KILLER = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from _train_fakes import patch_training, tiny_cfg
patch_training()
from bundlerl.experiment.training import train
# imported once: each kill point runs in a fork (torch has run nothing yet: no threads to inherit)
import torch._dynamo, stable_baselines3, bundlerl.agents.sb3, bundlerl.experiment.report, bundlerl.evaluation.report
bundlerl.evaluation.report.pyplot()
for algo, k in {kill_points!r}:
    pid = os.fork()
    if pid == 0:
        calls, real = [0], os.replace
        def replace(a, b):  # SIGKILL just before the k-th atomic file replace: anywhere between two writes
            calls[0] += 1
            if calls[0] == k:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(a, b)
        os.replace = replace
        train(tiny_cfg(algo, timesteps=256, final_episodes=0, save_replay=algo == "dqn"),
              out=os.path.join({out!r}, f"{{algo}}{{k}}"), log=lambda m: None)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    print(algo, k, os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, flush=True)
"""


def test_a_kill_at_any_write_never_leaves_a_hole_in_eval_csv(fake_env, tmp_path):
    """SIGKILL a training process (PPO, DQN with its replay buffer) just before a random one of its file writes
    (several seeds, every phase: between a checkpoint and its evaluation row, mid-save, during the report), then
    resume: eval.csv has every evaluation row, once, in order."""
    from bundlerl.experiment.run_dir import RunDir, RunDirError
    from bundlerl.experiment.training import train

    rng = np.random.default_rng(7)  # a full run makes about 27 atomic writes: a random one in each quarter
    kill_points = [(algo, int(rng.integers(lo, hi))) for algo in ("ppo", "dqn")
                   for lo, hi in ((4, 9), (9, 15), (15, 22), (22, 29))]
    code = _KILLER.format(tests=str(TESTS), kill_points=kill_points, out=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    killed = [line.split() for line in proc.stdout.splitlines()]
    assert [(a, int(k)) for a, k, _ in killed] == kill_points, proc.stdout + proc.stderr
    assert sum(w == "True" for *_, w in killed) >= 6, killed  # a kill point past the last write lets the run finish
    holes = 0
    for algo, k in kill_points:
        (run,) = (tmp_path / f"{algo}{k}").iterdir()
        ck = json.loads(p.read_text()) if (p := run / "checkpoints" / "latest.json").is_file() else {"timesteps": 0}
        holes += ck["timesteps"] not in {r["timesteps"] for r in RunDir(run).eval_rows()}
        try:
            res = train(tiny_cfg(algo, timesteps=256, final_episodes=0), resume=run, log=_quiet)
        except RunDirError as exc:  # killed before the first checkpoint: nothing to resume, and it says so
            assert "no checkpoint" in str(exc) and not list((run / "checkpoints").glob("model_*.zip")), k
            continue
        _assert_no_holes(RunDir.open(run).eval_rows(), res.timesteps)
        assert not [p for p in run.rglob("*") if ".tmp" in p.name and time.time() - p.stat().st_mtime > 60]
    assert holes >= 2, "no kill landed between a checkpoint and its row: pick other kill points"


# --------------------------------------------------------------------------------------------- temporaries, logs
def _plant_temporary(folder: Path, name: str, age_s: float = 3600.0) -> Path:
    """A temporary of ``bundlerl.utils.atomic.atomic_write`` left by a writer that died ``age_s`` ago."""
    dead_pid = 2**22 + 12345  # above Linux's pid_max default: never a running process
    p = folder / f".{name}.{dead_pid}.abcd1234.tmp{Path(name).suffix}"
    p.write_bytes(b"half-written")
    os.utime(p, (time.time() - age_s,) * 2)
    return p


def test_killed_writers_temporaries_are_swept_on_open_and_resume(fake_env, tmp_path):
    from bundlerl.experiment.run_dir import RunDir
    from bundlerl.experiment.training import train

    run = train(tiny_cfg(timesteps=64, final_episodes=0), out=tmp_path, log=_quiet).run_dir
    planted = [_plant_temporary(run, "eval.csv"), _plant_temporary(run / "checkpoints", "model_128.zip"),
               _plant_temporary(run / "checkpoints", "latest.json")]
    fresh = _plant_temporary(run, "report.md", age_s=1.0)  # its writer may be alive on another machine: kept
    RunDir.open(run)
    assert not any(p.exists() for p in planted) and fresh.exists()
    _plant_temporary(run / "checkpoints", "model_64.zip")
    train(tiny_cfg(timesteps=128, final_episodes=0), resume=run, log=_quiet)
    assert not [p for p in run.rglob(".*.tmp*") if p != fresh]


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_a_run_leaves_nothing_in_the_system_temp_dir(fake_env, monkeypatch, tmp_path, algo):
    """Every log of a run is in its run directory: SB3's default logger would add an SB3-<date> folder to the system
    temp dir at each learn (the same for a model made or loaded by the library and trained on its own)."""
    from _agents_fake_env import fake_vec_env

    from bundlerl.agents.sb3 import load_model, make_model
    from bundlerl.experiment.training import train

    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    monkeypatch.delenv("SB3_LOGDIR", raising=False)
    assert tempfile.gettempdir() == str(system_tmp)
    res = train(tiny_cfg(algo, timesteps=64), out=tmp_path / "runs", log=_quiet)
    train(tiny_cfg(algo, timesteps=128), resume=res.run_dir, log=_quiet)
    cfg = tiny_cfg(algo).algo_config()
    model = make_model(algo, fake_vec_env(4), cfg, seed=0)
    model.learn(32)
    load_model(algo, res.run_dir / "final_model.zip", env=fake_vec_env(4)).learn(32)
    assert list(system_tmp.iterdir()) == []
    assert list((res.run_dir / "tb").rglob("events.out.tfevents.*"))
