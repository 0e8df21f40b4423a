"""Damaged run-directory files (a truncated model zip, a corrupt latest.json or config.yaml, ...) never show as a raw
traceback: the newest intact file is used instead with a RunDirWarning naming the damaged one, or a RunDirError names
the damaged file and what to do. A property test over damage kinds (truncate, flip bytes, garbage, empty, missing)
and targets, on a run of the stand-in env (tests/_train_fakes.py)."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from _train_fakes import patch_training, tiny_cfg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bundlerl.experiment.run_dir import RunDir, RunDirError, RunDirWarning

KINDS = ("truncate", "flip", "garbage", "empty", "missing")
TARGETS = ("checkpoints/latest.json", "checkpoints/model_192.zip", "config.yaml", "best_model.zip", "final_model.zip",
           "every checkpoint")


def damage(path: Path, kind: str, rng: np.random.Generator) -> None:
    """Damage the file ``path`` the way a full disk, a copy cut short or a bad sector would."""
    data = path.read_bytes()
    if kind == "truncate":
        path.write_bytes(data[: int(rng.integers(0, len(data)))])
    elif kind == "flip":  # 1-8 bytes XOR a non-zero byte
        b = bytearray(data)
        for i in rng.integers(0, len(b), size=int(rng.integers(1, 9))):
            b[i] ^= int(rng.integers(1, 256))
        path.write_bytes(bytes(b))
    elif kind == "garbage":
        path.write_bytes(rng.bytes(int(rng.integers(1, 2 * len(data) + 2))))
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        path.unlink()


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A PPO run of 192 timesteps: checkpoints at 64, 128, 192, best and final models."""
    mp = pytest.MonkeyPatch()
    patch_training(mp.setattr)
    try:
        from bundlerl.experiment.training import train

        return train(tiny_cfg(timesteps=192, final_episodes=0), out=tmp_path_factory.mktemp("runs"),
                     log=lambda m: None).run_dir
    finally:
        mp.undo()


def _copy(run: Path, dest: Path) -> Path:
    if dest.exists():
        shutil.rmtree(dest)
    return Path(shutil.copytree(run, dest / run.name))


def _outcome(run: Path, target: str):
    """What the run directory gives for ``target``'s use: (checkpoint timesteps or model file name, warnings)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rd = RunDir.open(run)
        if target == "config.yaml":
            rd.env_config()
            got = rd.latest_checkpoint()["timesteps"]
        elif target in ("best_model.zip", "final_model.zip"):
            which = target.split("_")[0]
            rd.policy(which)  # loads it
            got = rd.model_path(which).name
        else:
            got = rd.latest_checkpoint()["timesteps"]
    return got, [str(w.message) for w in caught if issubclass(w.category, RunDirWarning)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=st.sampled_from(TARGETS), kind=st.sampled_from(KINDS), seed=st.integers(0, 2**32 - 1))
def test_damage_falls_back_to_an_intact_file_or_names_the_damaged_one(trained_run, tmp_path, target, kind, seed):
    rng = np.random.default_rng(seed)
    run = _copy(trained_run, tmp_path / "copy")
    files = sorted((run / "checkpoints").glob("model_*.zip")) if target == "every checkpoint" else [run / target]
    for f in files:
        damage(f, kind, rng)
    try:
        got, warned = _outcome(run, target)
    except RunDirError as exc:  # nothing intact left: the error names the damaged file
        msg = str(exc)
        assert target in ("config.yaml", "every checkpoint"), (target, kind, msg)
        assert any(f.name in msg for f in files), msg
        assert ("config.yaml" in msg) == (target == "config.yaml")
        return
    names = [f.name for f in files]
    if target == "checkpoints/latest.json":  # the newest checkpoint is intact: the run continues from it
        assert got == 192
    elif target == "checkpoints/model_192.zip":
        assert got == 192 and not warned or got == 128 and any("model_192.zip" in w for w in warned), (got, warned)
    elif target in ("best_model.zip", "final_model.zip"):  # the next model in line; a missing one is no damage
        fallback = "final_model.zip" if target == "best_model.zip" else "model_192.zip"
        assert got == target and not warned or got == fallback and (
            kind == "missing" and not warned or target in warned[0]), (got, warned)
    elif target == "every checkpoint":  # only a flip that hit no checked byte leaves one intact
        assert kind == "flip" and got in (64, 128, 192)
    else:  # config.yaml: only a flip that keeps it valid YAML of the same shape reads back
        assert kind == "flip" and got == 192
    assert all(any(n in w for n in names) for w in warned), warned  # a warning names a damaged file


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("target", ["checkpoints/latest.json", "checkpoints/model_192.zip", "config.yaml"])
def test_resume_of_a_damaged_run(monkeypatch, trained_run, tmp_path, kind, target):
    """``train(resume=...)`` on a damaged run: it continues from the newest intact checkpoint with a warning, or stops
    with a RunDirError naming config.yaml (the only copy of the run's settings)."""
    from bundlerl.experiment.training import train

    patch_training(monkeypatch.setattr)
    run = _copy(trained_run, tmp_path)
    damage(run / target, kind, np.random.default_rng(3))
    logs: list[str] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = train(tiny_cfg(timesteps=256, final_episodes=0), resume=run, log=logs.append)
    except RunDirError as exc:
        assert target == "config.yaml" and "config.yaml" in str(exc) and "damaged" in str(exc), str(exc)
        return
    assert res.timesteps == 256
    start = next(m for m in logs if "resumed from" in m)
    if target == "checkpoints/model_192.zip":
        assert "model_128.zip at 128" in start
        assert any("model_192.zip" in str(w.message) for w in caught if w.category is RunDirWarning)
    else:
        assert "model_192.zip at 192" in start


@pytest.mark.parametrize("kind", KINDS)
def test_a_damaged_replay_buffer_is_refilled(monkeypatch, tmp_path, kind):
    from bundlerl.experiment.training import train

    patch_training(monkeypatch.setattr)
    run = train(tiny_cfg("dqn", timesteps=64, save_replay=True), out=tmp_path, log=lambda m: None).run_dir
    (replay,) = (run / "checkpoints").glob("replay_*.pkl")
    damage(replay, kind, np.random.default_rng(5))
    logs: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = train(tiny_cfg("dqn", timesteps=128), resume=run, log=logs.append)
    assert res.timesteps == 128
    if kind != "missing":
        assert any(replay.name in str(w.message) for w in caught if w.category is RunDirWarning)
    assert any("refills an empty buffer" in m for m in logs)
