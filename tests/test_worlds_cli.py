"""Any EnvConfig is a first-class world: a run stores its whole env config, so that evaluation and --resume rebuild
the world from the run directory alone (in a new process, for a world that is no preset); the command line takes a
world from --preset, --env-config and --env-set, the instacart preset's folder from --instacart-dir; a --preset
that is not a run's world is a clear error naming the run's world."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from _cli import run_cli

from bundlerl.env import PRESETS, ConfigError, EnvConfig
from bundlerl.experiment.run_dir import RunDir, RunDirError
from bundlerl.scripts import cli
from bundlerl.scripts.flags import world_from_args

#: small with a shorter horizon: the same cached world (the horizon is not part of it), but no preset.
TINY = PRESETS["small"].replace(name="tiny", horizon=6)

TINY_HP = {"n_steps": 16, "batch_size": 32, "network": {"hidden": 8, "context_dim": 4, "net_arch": [8]}}


def _tiny_train_config(**kw):
    from bundlerl.experiment.training import TrainConfig

    base = dict(algo="ppo", preset=TINY, timesteps=64, num_envs=4, hyperparams=TINY_HP, eval_freq=64,
                eval_episodes=4, final_episodes=0, progress=False)
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A real (very short) PPO run on TINY, a world registered in this process only."""
    from bundlerl.experiment.training import train

    return train(_tiny_train_config(), out=tmp_path_factory.mktemp("runs"), log=lambda m: None).run_dir


def test_the_run_directory_stores_the_whole_env_config(tiny_run):
    assert tiny_run.name.startswith("tiny__ppo__0__")
    saved = yaml.safe_load((tiny_run / "config.yaml").read_text())
    assert saved["train"]["preset"] == "tiny"
    assert saved["env"] == TINY.to_dict() and RunDir.open(tiny_run).env_config() == TINY


def test_a_run_on_an_in_process_world_is_evaluated_and_resumed_by_a_new_process(tiny_run, tmp_path):
    ev = tmp_path / "ev"
    out = run_cli("evaluate", str(tiny_run), "--baselines", "random", "--episodes", "4", "--out", str(ev),
                  "--no-progress", timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads((ev / "results.json").read_text())
    assert set(res) == {tiny_run.name, "random"}
    assert all(0 < m["length"]["mean"] <= TINY.horizon for m in res.values())  # episodes of TINY, not of small
    assert "Evaluation on 'tiny'" in (ev / "results.md").read_text()

    system_tmp = tmp_path / "system-tmp"  # the command's temp dir: a run logs only inside its run directory
    system_tmp.mkdir()
    out = run_cli("train", "--resume", str(tiny_run), "--timesteps", "128", "--no-progress", timeout=300,
                  env={"TMPDIR": str(system_tmp)})
    assert out.returncode == 0, out.stderr[-3000:]
    assert list(system_tmp.iterdir()) == []
    assert "it/s" not in out.stderr and "%|" not in out.stderr  # --no-progress: no bar in any stage
    assert RunDir.open(tiny_run).latest_checkpoint()["timesteps"] == 128
    assert "building env 'tiny'" in out.stdout


@pytest.mark.parametrize("preset, differs", [("default", "K 8 vs 16"), ("small", "horizon 6 vs 10")])
def test_a_mismatched_preset_names_the_runs_world(tiny_run, tmp_path, preset, differs):
    out = run_cli("evaluate", str(tiny_run), "--preset", preset, "--out", str(tmp_path), timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert "trained on the world 'tiny'" in line and f"not on '{preset}'" in line and differs in line
    assert "leave --preset out" in line


def test_naming_the_runs_own_world_again_is_fine(tiny_run, tmp_path):
    from bundlerl.experiment.evaluate import evaluate_runs

    res = evaluate_runs([tiny_run], preset=TINY, episodes=2, out=tmp_path, progress=False, log=lambda m: None)
    assert list(res["table"]) == [tiny_run.name]


def test_runs_of_different_worlds_are_not_compared(tiny_run, tmp_path):
    from bundlerl.experiment.evaluate import evaluate_runs
    from bundlerl.utils.errors import BundlerlError

    other = RunDir.create(tmp_path, "small", "ppo", 0, {"train": {"algo": "ppo", "preset": "small"},
                                                        "env": PRESETS["small"].to_dict()})
    with pytest.raises(BundlerlError, match="different worlds.*'tiny'.*'small'.*horizon"):
        evaluate_runs([tiny_run, other.path], out=tmp_path / "ev")


def test_run_directories_without_an_env_section_use_their_preset_name(tmp_path):
    rd = RunDir.create(tmp_path, "small", "ppo", 0, {"train": {"algo": "ppo", "preset": "small"}})
    assert rd.env_config() == PRESETS["small"]
    bad = RunDir.create(tmp_path, "x", "ppo", 0, {"train": {"algo": "ppo"}, "env": {"horizon": "soon"}})
    with pytest.raises(RunDirError, match="config.yaml.*horizon"):
        bad.env_config()


def test_train_takes_an_env_config_file_and_field_overrides(tmp_path):
    """The real CLI (in process) on a world read from YAML, with a field changed on the command line."""
    world = tmp_path / "world.yaml"
    world.write_text(yaml.safe_dump({**PRESETS["small"].to_dict(), "name": "fromyaml"}))
    runs = tmp_path / "runs"
    rc = cli.main(["train", "--env-config", str(world), "--env-set", "horizon=7", "--env-set", "reward=revenue",
                   "--timesteps", "64", "--num-envs", "4", "--set", "n_steps=16", "--set", "batch_size=32",
                   "--eval-freq", "64", "--eval-episodes", "4", "--final-episodes", "0", "--out", str(runs),
                   "--no-progress"])
    assert rc == 0
    (run,) = runs.iterdir()
    assert run.name.startswith("fromyaml__ppo__")
    env = RunDir.open(run).env_config()
    assert env == PRESETS["small"].replace(name="fromyaml", horizon=7, reward="revenue")


def _world(*argv, default=None):
    return world_from_args(cli.build_parser().parse_args(["evaluate", *argv]), default=default)


def test_world_flags(tmp_path, monkeypatch):
    monkeypatch.delenv("BUNDLERL_INSTACART", raising=False)
    assert _world() is None and _world(default="small") == PRESETS["small"]
    assert _world("--preset", "small", "--env-set", "horizon=4") == PRESETS["small"].replace(horizon=4)
    folder = Path(__file__).parent / "fixtures" / "instacart"
    ic = _world("--instacart-dir", str(folder))  # implies --preset instacart
    assert ic.source == "instacart" and ic.name == "instacart" and Path(ic.instacart_path) == folder.resolve()
    assert Path(ic.instacart_path).is_absolute()
    with pytest.raises(ConfigError, match="--instacart-dir DIR"):
        _world("--preset", "instacart")
    with pytest.raises(ConfigError, match="--instacart-dir: goes with --preset instacart"):
        _world("--preset", "small", "--instacart-dir", str(folder))
    with pytest.raises(ConfigError, match="horizon"):
        _world("--preset", "small", "--env-set", "horizon=soon")
    with pytest.raises(ConfigError, match="--env-set: it changes a world"):
        _world("--env-set", "horizon=4")
    with pytest.raises(SystemExit):  # argparse: not allowed with
        _world("--preset", "small", "--env-config", str(tmp_path / "w.yaml"))
    assert isinstance(_world("--env-config", str(_write(tmp_path / "w.yaml", {"name": "w", "horizon": 3}))), EnvConfig)


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_bad_world_flags_are_one_line_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("BUNDLERL_INSTACART", raising=False)
    for argv in (["train", "--preset", "instacart", "--out", str(tmp_path)],
                 ["train", "--resume", str(tmp_path), "--preset", "small"],
                 ["train", "--env-config", str(tmp_path / "missing.yaml"), "--out", str(tmp_path)],
                 ["evaluate", "--env-set", "horizon=4", "--baselines", "random"]):
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and err.startswith(f"bundlerl {argv[0]}: error: "), err


def _make_paths_of(argv: list[str]) -> None:
    """Create, in the current folder, the files and folders an example names (the flags check they exist)."""
    for i, a in enumerate(argv):
        before = argv[i - 1] if i else ""
        if before == "--env-config":
            _write(Path(a), {"name": "mine"})
        elif before == "--instacart-dir":
            Path(a).mkdir(parents=True, exist_ok=True)
            (Path(a) / "products.csv").write_text("product_id\n")
        elif before == "--resume" or (argv[0] == "evaluate" and a.startswith("runs/") and not before.startswith("-")):
            Path(a).mkdir(parents=True, exist_ok=True)
            (Path(a) / "config.yaml").write_text("train: {algo: ppo}\n")


def test_every_example_in_the_help_parses_and_names_its_data(tmp_path, monkeypatch):
    """The examples of train / evaluate / quickstart --help are valid command lines (given the files they name), and
    an instacart one says where the data is (--preset instacart without a folder was a route that crashed)."""
    import shlex

    from bundlerl.scripts import evaluate, quickstart, train

    monkeypatch.chdir(tmp_path)
    examples = [line.split("#")[0].strip() for mod in (train, evaluate, quickstart) for line in mod.EPILOG.splitlines()
                if line.strip().startswith("bundlerl ")]
    assert len(examples) >= 10
    for ex in examples:
        argv = [a for a in shlex.split(ex)[1:] if "*" not in a]  # shell globs of run directories
        _make_paths_of(argv)
        cli.build_parser().parse_args(argv)  # SystemExit on a bad example
        if "instacart" in argv:
            assert "--instacart-dir" in argv, ex


def test_a_world_is_its_fields_not_its_name(tiny_run, tmp_path):
    from bundlerl.experiment.evaluate import evaluate_runs

    res = evaluate_runs([tiny_run], preset=TINY.replace(name="alias"), episodes=2, out=tmp_path, progress=False,
                        log=lambda m: None)
    assert list(res["table"]) == [tiny_run.name]
