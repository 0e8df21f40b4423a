"""Model zips saved before the package moved to the ``bundlerl.`` namespace pickled their classes as
``agents.networks.CandidateActorCriticPolicy``; they load now (bundlerl.agents.sb3.renamed_objects), or give a BundlerlError that
says what happened and what to do. The old zips are made here by saving a model while the network classes are
named as they were (module ``agents.networks``), and checked to fail with ModuleNotFoundError in SB3's own load."""

from __future__ import annotations

import base64
import contextlib
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from _agents_fake_env import fake_vec_env

import bundlerl.agents.networks as networks


@contextlib.contextmanager
def old_class_paths(extra: dict | None = None):
    """While inside, bundlerl.agents.networks' classes are pickled as ``agents.networks.<Class>`` (as before the
    namespace): their ``__module__`` renamed and the old module names mapped to the same module."""
    classes = [c for c in vars(networks).values() if isinstance(c, type) and c.__module__ == networks.__name__]
    for name, obj in (extra or {}).items():
        setattr(networks, name, obj)
        classes.append(obj)
    old = {c: c.__module__ for c in classes}
    sys.modules["agents"], sys.modules["agents.networks"] = sys.modules["bundlerl.agents"], networks
    try:
        for c in classes:
            c.__module__ = "agents.networks"
        yield
    finally:
        for c, m in old.items():
            c.__module__ = m
        for name in extra or {}:
            delattr(networks, name)
        del sys.modules["agents"], sys.modules["agents.networks"]


@contextlib.contextmanager
def _without_top_level_rooms():
    """sys.path without the folders from which 'agents' imports as a top-level package (the checkout's root, or ''
    when the suite runs from it): as for a user's installed bundlerl."""
    import importlib
    from pathlib import Path

    saved = list(sys.path)
    sys.path[:] = [p for p in sys.path if not (Path(p or ".") / "agents" / "__init__.py").is_file()]
    importlib.invalidate_caches()
    try:
        yield
    finally:
        sys.path[:] = saved
        for name in [m for m in sys.modules if m.split(".")[0] == "agents"]:  # never left behind
            del sys.modules[name]


def _model(algo):
    from bundlerl.agents.config import load_algo_config
    from bundlerl.agents.sb3 import make_model

    over = {"num_envs": 4, "network": {"hidden": 8, "context_dim": 4, "net_arch": [8]}}
    over.update({"learning_starts": 8, "batch_size": 8, "buffer_size": 64} if algo == "dqn" else
                {"n_steps": 8, "batch_size": 16})
    model = make_model(algo, fake_vec_env(4), load_algo_config(algo, "small", overrides=over), seed=0)
    model.learn(32)
    return model


def _pickled_modules(path) -> str:
    with zipfile.ZipFile(path) as zf:
        data = json.loads(zf.read("data"))
    return " ".join(base64.b64decode(v[":serialized:"]).decode("latin-1") for v in data.values()
                    if isinstance(v, dict) and ":serialized:" in v)


@pytest.mark.parametrize("algo, extractor", [("ppo", "set"), ("maskable_ppo", "set"), ("dqn", "set"), ("ppo", "mlp")])
def test_a_model_saved_under_the_old_class_paths_loads(tmp_path, algo, extractor):
    from bundlerl.agents.sb3 import SB3Policy, algo_class, load_model

    model = _model(algo) if extractor == "set" else _mlp_with_set_extractor(algo)
    with old_class_paths():
        model.save(tmp_path / "old.zip")
    pickled = _pickled_modules(tmp_path / "old.zip")
    assert "agents.networks" in pickled and "bundlerl.agents.networks" not in pickled  # as the old runs wrote it
    with pytest.raises(ModuleNotFoundError, match="agents"), _without_top_level_rooms():  # what SB3's load said
        algo_class(algo).load(str(tmp_path / "old.zip"))
    again = load_model(algo, tmp_path / "old.zip")
    assert type(again.policy) is type(model.policy) and again.num_timesteps == model.num_timesteps
    obs = fake_vec_env(6, seed=3).reset()
    np.testing.assert_allclose(SB3Policy(again).action_probabilities(obs), SB3Policy(model).action_probabilities(obs),
                               atol=1e-6)
    assert "agents" not in sys.modules  # nothing was registered under the old names to load it


def _mlp_with_set_extractor(algo):
    """A PPO whose policy class is SB3's (MultiInputPolicy) but whose extractor is ours: only policy_kwargs is old."""
    from bundlerl.agents.config import load_algo_config
    from bundlerl.agents.sb3 import make_model

    cfg = load_algo_config(algo, "small", overrides={"num_envs": 4, "n_steps": 8, "batch_size": 16, "network": {
        "extractor": "set", "candidate_head": False, "hidden": 8, "context_dim": 4, "net_arch": [8]}})
    model = make_model(algo, fake_vec_env(4), cfg, seed=0)
    model.learn(32)
    return model


def test_an_old_run_directory_is_evaluated(tmp_path, monkeypatch):
    from _train_fakes import patch_training, tiny_cfg

    from bundlerl.experiment.run_dir import RunDir
    from bundlerl.experiment.training import train

    patch_training(monkeypatch.setattr)
    run = train(tiny_cfg(timesteps=64, final_episodes=0), out=tmp_path, log=lambda m: None).run_dir
    model = RunDir.open(run).load_model("best")
    with old_class_paths():
        for name in ("best_model.zip", "final_model.zip"):
            model.save(run / name)
    policy = RunDir.open(run).policy("best")
    assert policy.name == run.name and type(policy.model.policy).__name__ == "CandidateActorCriticPolicy"


def test_a_class_that_no_longer_exists_is_a_clear_error(tmp_path):
    from bundlerl.agents.sb3 import ModelFileError, load_model
    from bundlerl.utils.errors import BundlerlError

    class RetiredPolicy(networks.CandidateActorCriticPolicy):
        pass

    RetiredPolicy.__qualname__ = "RetiredPolicy"  # a module-level class of the old agents.networks
    model = _model("ppo")
    model.policy_class = RetiredPolicy
    with old_class_paths({"RetiredPolicy": RetiredPolicy}):
        model.save(tmp_path / "old.zip")
    with pytest.raises(ModelFileError) as err:
        load_model("ppo", tmp_path / "old.zip")
    msg = str(err.value)
    assert isinstance(err.value, BundlerlError) and str(tmp_path / "old.zip") in msg
    assert "agents.networks" in msg and "bundlerl." in msg and "RetiredPolicy" in msg and "versions.json" in msg


def test_old_names_are_never_imported_from_a_checkout(tmp_path, monkeypatch):
    """Run from the repository's root, 'agents' would import as a second copy of bundlerl.agents; the old zip's
    classes are bundlerl's own all the same."""
    from bundlerl.agents.sb3 import load_model

    model = _model("ppo")
    with old_class_paths():
        model.save(tmp_path / "old.zip")
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))
    again = load_model("ppo", tmp_path / "old.zip")
    assert type(again.policy) is networks.CandidateActorCriticPolicy and "agents" not in sys.modules


def test_a_missing_dependency_is_named(tmp_path, monkeypatch):
    from bundlerl.agents.sb3 import ModelFileError, load_model

    model = _model("ppo")
    model.save(tmp_path / "m.zip")
    import stable_baselines3.common.save_util as su

    def missing(*a, **k):
        raise ModuleNotFoundError("No module named 'somelib'", name="somelib")

    monkeypatch.setattr(su.cloudpickle, "loads", missing)
    with pytest.raises(ModelFileError, match="needs the module 'somelib'"):
        load_model("ppo", tmp_path / "m.zip")
