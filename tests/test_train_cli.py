"""``bundlerl train``: run directory contents, resume, the --help text, a real short run on the small preset.

The in-process tests swap the env for the stand-in env (tests/_train_fakes.py) through
``bundlerl.experiment.training._make_venv`` / ``_eval_policy`` so they test the training pipeline (callbacks,
checkpoints, resume, report) in seconds; the subprocess test runs the real CLI on the real env.
"""

from __future__ import annotations

import json

import pytest
import yaml
from _cli import run_cli as _cli
from _train_fakes import patch_training, tiny_cfg

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def fake_env(monkeypatch):
    patch_training(monkeypatch.setattr)


_cfg = tiny_cfg


def test_run_directory_contents(fake_env, tmp_path):
    from bundlerl.experiment.training import train

    res = train(_cfg(), out=tmp_path, log=lambda m: None)
    d = res.run_dir
    assert d.parent == tmp_path and d.name.startswith("small__ppo__0__")
    cfg = yaml.safe_load((d / "config.yaml").read_text())
    assert cfg["train"]["algo"] == "ppo" and cfg["train"]["timesteps"] == 128
    assert cfg["algo_config"]["num_envs"] == 4 and cfg["algo_config"]["network"]["hidden"] == 8
    versions = json.loads((d / "versions.json").read_text())
    assert "torch" in versions and "commit" in versions["git"] and "dirty" in versions["git"]
    assert list((d / "tb").rglob("events.out.tfevents.*")), "tensorboard logs missing"
    assert (d / "checkpoints" / "latest.json").is_file()
    for f in ("best_model.zip", "final_model.zip", "baselines.json", "final_eval.json", "eval.csv"):
        assert (d / f).is_file(), f
    rows = (d / "eval.csv").read_text().strip().splitlines()
    assert rows[0].startswith("timesteps,") and [int(r.split(",")[0]) for r in rows[1:]] == [64, 128]
    report = (d / "report.md").read_text()
    assert "## Final evaluation" in report and "complement-greedy" in report and "learning_curve.png" in report
    assert (d / "learning_curve.png").read_bytes()[:8] == PNG_MAGIC
    assert set(res.final) == {"ppo (best)", "random", "popularity", "relevance-greedy", "complement-greedy"}
    assert res.timesteps == 128


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_resume_continues_the_timestep_count(fake_env, tmp_path, algo):
    from bundlerl.agents.sb3 import load_model
    from bundlerl.experiment.training import train

    first = train(_cfg(algo, timesteps=64, save_replay=algo == "dqn"), out=tmp_path, log=lambda m: None)
    ck = json.loads((first.run_dir / "checkpoints" / "latest.json").read_text())
    assert ck["timesteps"] == 64
    if algo == "dqn":
        assert ck["replay"] is not None
    logs: list[str] = []
    again = train(_cfg(algo, timesteps=128), resume=first.run_dir, log=logs.append)
    assert again.run_dir == first.run_dir
    assert any("resumed from model_64.zip at 64 timesteps" in m for m in logs)
    assert again.timesteps == 128
    final = load_model(algo, first.run_dir / "final_model.zip")
    assert final.num_timesteps == 128
    if algo == "dqn":
        assert (first.run_dir / "checkpoints" / "replay_128.pkl").is_file()
    steps = [int(r.split(",")[0]) for r in (first.run_dir / "eval.csv").read_text().strip().splitlines()[1:]]
    assert steps == sorted(steps) and steps[-1] == 128 and 64 in steps
    assert yaml.safe_load((first.run_dir / "config.yaml").read_text())["train"]["timesteps"] == 64  # as created


def test_dqn_resume_restores_the_replay_buffer(fake_env, tmp_path, monkeypatch):
    from bundlerl.agents.sb3 import MaskedDQN
    from bundlerl.experiment.training import train

    first = train(_cfg("dqn", timesteps=64, save_replay=True), out=tmp_path, log=lambda m: None)
    sizes = []
    real_learn = MaskedDQN.learn

    def spy(self, *a, **k):
        sizes.append(self.replay_buffer.size() * self.n_envs)  # transitions held when learning resumes
        return real_learn(self, *a, **k)

    monkeypatch.setattr(MaskedDQN, "learn", spy)
    train(_cfg("dqn", timesteps=96), resume=first.run_dir, log=lambda m: None)
    assert sizes == [64], sizes  # the first run's 64 transitions were back in the buffer


def test_resume_needs_a_run_dir(fake_env, tmp_path):
    from bundlerl.experiment.run_dir import RunDirError
    from bundlerl.experiment.training import train

    with pytest.raises(RunDirError):
        train(_cfg(), resume=tmp_path)


def test_train_config_validation():
    from bundlerl.agents.config import AgentConfigError
    from bundlerl.experiment.training import TrainConfig

    for kw, field in [({"algo": "a2c"}, "algo"), ({"timesteps": 0}, "timesteps"), ({"extractor": "cnn"}, "extractor"),
                      ({"baselines": ("oracle",)}, "baselines"), ({"algo": "dqn", "action_mode": "compose"}, "action_mode")]:
        with pytest.raises(AgentConfigError, match=field):
            TrainConfig(**kw)




def test_train_help_explains_itself():
    out = _cli("train", "--help", timeout=60)
    assert out.returncode == 0, out.stderr
    for word in ("--algo", "maskable_ppo", "--resume", "--extractor", "run directory", "checkpoints", "versions.json",
                 "examples:"):
        assert word in out.stdout, word


def test_train_bad_flag_is_a_clear_error(tmp_path):
    out = _cli("train", "--algo", "ppo", "--preset", "small", "--set", "gamma=3", "--out", str(tmp_path), timeout=60)
    assert out.returncode == 2 and "gamma" in out.stderr and "Traceback" not in out.stderr
