"""Run directories: provenance files, atomic checkpoints that survive a crash mid-save, model lookup."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from _agents_fake_env import fake_vec_env

from bundlerl.experiment.provenance import package_versions
from bundlerl.experiment.run_dir import RunDir, RunDirError, run_name


def test_run_name_format():
    name = run_name("small", "ppo", 3, when=0)
    assert re.fullmatch(r"small__ppo__3__\d{8}-\d{6}", name)


def test_create_writes_config_versions_git_and_never_reuses_a_folder(tmp_path):
    cfg = {"train": {"algo": "dqn", "preset": "small"}, "algo_config": {"gamma": 0.9}}
    a = RunDir.create(tmp_path, "small", "dqn", 0, cfg)
    b = RunDir.create(tmp_path, "small", "dqn", 0, cfg)  # same second: a new folder, not the same one
    assert a.path != b.path and a.path.is_dir() and b.path.is_dir()
    assert a.config() == cfg and a.algo == "dqn"
    v = a.read_json("versions.json")
    for key in ("python", "numpy", "torch", "stable_baselines3", "sb3_contrib", "gymnasium", "faiss",
                "sentence_transformers", "bundlerl"):
        assert key in v
    assert v["numpy"] == np.__version__
    assert set(v["git"]) == {"commit", "dirty"}
    if v["git"]["commit"] is not None:  # inside the repo
        assert re.fullmatch(r"[0-9a-f]{40}", v["git"]["commit"]) and isinstance(v["git"]["dirty"], bool)
    assert (a.path / "checkpoints").is_dir()


def test_open_rejects_non_run_dirs(tmp_path):
    with pytest.raises(RunDirError, match="config.yaml"):
        RunDir.open(tmp_path)


def _model():
    from bundlerl.agents.config import load_algo_config
    from bundlerl.agents.sb3 import make_model

    cfg = load_algo_config("dqn", "small", overrides={"num_envs": 2, "learning_starts": 4, "batch_size": 4,
                                                       "buffer_size": 100,
                                                       "network": {"hidden": 8, "context_dim": 4, "net_arch": [8]}})
    m = make_model("dqn", fake_vec_env(2), cfg, seed=0)
    m.learn(16)
    return m


def test_checkpoint_is_atomic_and_a_crash_mid_save_keeps_the_previous(tmp_path, monkeypatch):
    from bundlerl.agents.sb3 import load_model

    rd = RunDir.create(tmp_path, "small", "dqn", 0, {"train": {"algo": "dqn"}})
    model = _model()
    entry = rd.save_checkpoint(model, 16, save_replay=True)
    assert entry["replay"] is not None
    first = rd.latest_checkpoint()
    assert first["timesteps"] == 16 and first["model"].is_file() and first["replay"].is_file()

    real_save = type(model).save

    def crashing_save(self, path, *a, **k):
        real_save(self, path, *a, **k)
        Path(path).write_bytes(b"half a zip")  # the process dies half-way through writing
        raise KeyboardInterrupt("killed mid-save")

    monkeypatch.setattr(type(model), "save", crashing_save)
    with pytest.raises(KeyboardInterrupt):
        rd.save_checkpoint(model, 32)
    monkeypatch.undo()
    latest = rd.latest_checkpoint()
    assert latest["timesteps"] == 16                       # still points at the complete one
    assert not (rd.path / "checkpoints" / "model_32.zip").exists()
    assert not [p for p in (rd.path / "checkpoints").iterdir() if ".tmp" in p.name]  # temp cleaned
    again = load_model("dqn", latest["model"])
    assert again.num_timesteps == model.num_timesteps


def test_old_checkpoints_are_pruned_and_model_path_falls_back(tmp_path):
    rd = RunDir.create(tmp_path, "small", "dqn", 0, {"train": {"algo": "dqn"}})
    with pytest.raises(RunDirError, match="holds no model"):
        rd.model_path("best")
    model = _model()
    for t in (10, 20, 30, 40, 50):
        rd.save_checkpoint(model, t, save_replay=True)
    ck = rd.path / "checkpoints"
    assert sorted(p.name for p in ck.glob("model_*.zip")) == ["model_30.zip", "model_40.zip", "model_50.zip"]
    assert [p.name for p in ck.glob("replay_*.pkl")] == ["replay_50.pkl"]
    assert json.loads((ck / "latest.json").read_text())["timesteps"] == 50
    assert rd.model_path("best") == ck / "model_50.zip"    # no best/final yet: the latest checkpoint
    rd.save_model(model, "final_model.zip")
    assert rd.model_path("best") == rd.path / "final_model.zip"
    rd.save_model(model, "best_model.zip")
    assert rd.model_path("best") == rd.path / "best_model.zip"
    assert rd.model_path("final") == rd.path / "final_model.zip"


def test_package_versions_has_python():
    v = package_versions()
    assert v["python"].count(".") == 2
