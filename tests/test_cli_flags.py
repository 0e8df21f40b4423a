"""Every flag of every command is checked while the command line is parsed: a bad value (negative seed, zero
episodes, not a number, a missing file, a file where a folder goes, an unknown override name, a value given to a
switch, ...) is exit status 2 and one line naming the flag, before any work and without a traceback.

The sweep introspects the argparse parsers, so a new flag must come with a validating type
(``bundlerl.scripts.flags.FlagType``, choices or a registry's names) or this test fails."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest
from _cli import run_cli

from bundlerl.scripts import cli
from bundlerl.scripts.flags import (
    Assignment,
    ExistingFile,
    ExistingFolder,
    Integer,
    Number,
    OutputFolder,
    SearchBudget,
    Text,
)


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def _bad_values(action: argparse.Action, tmp: Path) -> list[str]:
    """Values the flag must refuse, from what its type accepts."""
    a_file = tmp / "a-file.txt"
    a_file.write_text("x")
    (tmp / "empty-folder").mkdir(exist_ok=True)
    t = action.type
    if action.nargs == 0:
        return []  # a switch: given a value below
    if action.choices is not None:
        return ["not-a-choice", ""]
    if isinstance(t, Integer):
        return [str(t.minimum - 1), str(t.minimum - 1000), "abc", "1.5", "", "1e3", "nan",
                *([] if t.maximum is None else [str(t.maximum + 1), str(10**9)])]
    if isinstance(t, Number):
        return ["abc", "nan", "inf", str(t.high + 1), str(t.low - 1), ""]
    if isinstance(t, ExistingFile):
        return [str(tmp / "missing.yaml"), str(tmp)]
    if isinstance(t, ExistingFolder):
        return [str(tmp / "missing"), str(a_file)] + ([str(tmp / "empty-folder")] if t.needs else [])
    if isinstance(t, OutputFolder):
        unwritable = [p for p in ("/proc/bundlerl-h15/out", "/sys/bundlerl-h15") if Path(p).parent.is_dir()]
        return [str(a_file), str(a_file / "sub"), "", *unwritable]
    if isinstance(t, SearchBudget):
        return ["12x24", "0x24x200", "12x24x0", "axbxc", "12x24x200x3", ""]
    if isinstance(t, Assignment):
        # names refused by the flag's type; values refused by the config the names belong to (right after parsing)
        values = {"EnvConfig field": ["horizon=-1", "K=abc", "horizon=nan", "reward=psychic", "shopper.tau_c=abc",
                                      "n_items=3", "K_max=0", "name=a__b"],
                  "hyperparameter": ["learning_rate=abc", "n_steps=-3", "network.hidden=0", "gamma=nan",
                                     "network=3", "batch_size=[1"]}[t.what]
        return ["novalue", "=3", "no_such_field=1", "", *values]
    if isinstance(t, Text):
        return ["", "   "]
    if getattr(t, "__qualname__", "").startswith("names_type."):
        return ["psychic", "random,psychic"]
    if getattr(t, "bad_examples", None):  # a FlagType that names the values it must refuse
        return list(t.bad_examples)
    pytest.fail(f"{'/'.join(action.option_strings) or action.metavar}: no validating type ({t!r}); give it a "
                "bundlerl.scripts.flags.FlagType, choices or names_type")


def _cases(tmp: Path):
    for cmd, parser in _commands().items():
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            name = "/".join(action.option_strings) or action.metavar
            if action.nargs == 0:
                for opt in action.option_strings:
                    yield cmd, name, [f"{opt}=yes"]
                continue
            required = any(a.required for a in parser._actions if a is not action)
            for value in _bad_values(action, tmp):
                argv = [action.option_strings[0], value] if action.option_strings else [value]
                if isinstance(action.type, Assignment) and "=" in value[1:]:
                    if required:
                        continue  # a value check runs after parsing: a command with required flags stops before
                    if cmd == "evaluate":
                        argv = ["--preset", "small", *argv]  # evaluate's --env-set needs a world
                yield cmd, name, argv


def _no_work(monkeypatch):
    """Any heavy step (a world build, training, an evaluation) fails the test: bad values stop before them."""
    import bundlerl.env
    import bundlerl.env.world
    import bundlerl.experiment.evaluate
    import bundlerl.experiment.training

    def never(*a, **k):
        raise AssertionError("a bad flag value got past the parser")

    for mod, name in ((bundlerl.experiment.training, "train"), (bundlerl.experiment.evaluate, "evaluate_runs"),
                      (bundlerl.env.world, "build_world"), (bundlerl.env, "build_world")):
        monkeypatch.setattr(mod, name, never)


def _assert_refused(cmd: str, argv: list[str], name: str, capsys) -> str:
    """Exit 2, one line naming the flag, no traceback, nothing on stdout. No heavy work: the fixture makes training,
    evaluation and world builds fail the test (no wall-clock limit here: a timed assertion flakes on a loaded
    machine)."""
    assert cli.main([cmd, *argv]) == 2, (cmd, argv)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1, (cmd, argv, err)
    assert lines[0].startswith(f"bundlerl {cmd}: error: argument {name}: "), (cmd, argv, lines[0])
    assert "Traceback" not in err and out == "", (cmd, argv, out)
    return lines[0]


def test_every_flag_of_every_command_refuses_bad_values_in_one_line(tmp_path, capsys, monkeypatch):
    _no_work(monkeypatch)
    cases = list(_cases(tmp_path))
    flags = {(cmd, name) for cmd, name, _ in cases}
    assert len(flags) >= 30 and len(cases) >= 100, (len(flags), len(cases))
    cli.main(["train", "--set", "gamma=x"])  # imports once, so that the timings below are the checks' own
    capsys.readouterr()
    for cmd, name, argv in cases:
        _assert_refused(cmd, argv, name, capsys)


def _recorded_run(tmp_path: Path) -> Path:
    """A run directory's config.yaml as 'bundlerl train' records it (ppo, seed 0, 64 envs, set extractor)."""
    import dataclasses

    import yaml

    from bundlerl.agents.config import config_to_dict, load_algo_config
    from bundlerl.experiment.training import TrainConfig, train_dict

    run = tmp_path / "small__ppo__0__20260101-000000"
    run.mkdir()
    cfg = TrainConfig(algo="ppo", preset="small", seed=0)
    (run / "config.yaml").write_text(yaml.safe_dump({
        "train": train_dict(cfg), "env": {"name": "small"},
        "algo_config": config_to_dict(load_algo_config("ppo", "small"))}))
    assert dataclasses.asdict(cfg)["eval_episodes"] == 200
    return run


@pytest.mark.parametrize("argv", [
    ["--algo", "dqn"], ["--seed", "3"], ["--action-mode", "compose"], ["--extractor", "mlp"], ["--num-envs", "3"],
    ["--eval-freq", "7"], ["--eval-episodes", "9"], ["--final-episodes", "11"], ["--checkpoint-freq", "13"],
    ["--set", "learning_rate=1e-3"], ["--out", "elsewhere"], ["--preset", "small"], ["--env-set", "horizon=5"],
    ["--algo", "maskable_ppo", "--seed", "5"],
])
def test_resume_refuses_what_it_would_ignore(tmp_path, capsys, monkeypatch, argv):
    """--resume keeps the run's recorded settings: a flag that would change one is refused in one line naming it,
    before any work; the same value as recorded, --timesteps, --save-replay and --no-progress are accepted."""
    _no_work(monkeypatch)
    run = _recorded_run(tmp_path)
    monkeypatch.chdir(tmp_path)
    line = _assert_refused("train", ["--resume", str(run), *argv], "--resume", capsys)
    assert argv[0] in line.split(": ", 3)[-1], line  # the message names the flag given
    args = cli.build_parser().parse_args(["train", "--resume", str(run), "--algo", "ppo", "--seed", "0",
                                          "--timesteps", "99", "--save-replay", "--no-progress"])
    args.check(args)  # the recorded values again: accepted
    assert args.train_config.timesteps == 99


def test_resume_error_names_each_differing_flag(tmp_path, capsys, monkeypatch):
    _no_work(monkeypatch)
    run = _recorded_run(tmp_path)
    assert cli.main(["train", "--resume", str(run), "--algo", "dqn", "--seed", "4"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "--algo dqn (the run's: ppo)" in line and "--seed 4 (the run's: 0)" in line


@pytest.mark.parametrize("where", ["before", "after"])
def test_shared_switches_go_before_or_after_the_subcommand(where):
    argv = ["--debug", "--no-progress", "catalog"] if where == "before" else ["catalog", "--debug", "--no-progress"]
    args = cli.build_parser().parse_args(argv)
    assert args.debug is True and args.no_progress is True
    args = cli.build_parser().parse_args(["catalog"])
    assert args.debug is False and args.no_progress is False


def test_debug_after_the_subcommand_shows_the_traceback(capsys, monkeypatch):
    _no_work(monkeypatch)
    assert cli.main(["train", "--set", "gamma=x", "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("bundlerl train: error: argument --set")


def test_top_level_switches_refuse_values(capsys):
    assert cli.main(["--debug=yes", "catalog"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("bundlerl: error: argument --debug")


@pytest.mark.parametrize("argv, flag", [
    (["train", "--preset", "small", "--seed", "-1"], "--seed"),
    (["evaluate", "--preset", "small", "--episodes", "0"], "--episodes"),
    (["quickstart", "--timesteps", "soon"], "--timesteps"),
    (["catalog", "--items", "0"], "--items"),
])
def test_the_real_command_line_exits_2_with_one_line(argv, flag):
    out = run_cli(*argv, timeout=60)
    assert out.returncode == 2 and out.stdout == "" and "Traceback" not in out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith(f"bundlerl {argv[0]}: error: argument {flag}: ") and f"'bundlerl {argv[0]} --help'" in line


def test_good_values_still_parse(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("train: {algo: ppo}\n")
    args = cli.build_parser().parse_args(["train", "--resume", str(run), "--timesteps", "1_000", "--seed", "0",
                                          "--set", "network.hidden=16", "--set", "gamma=0.9", "--out",
                                          str(tmp_path / "new" / "runs")])
    assert args.timesteps == 1000 and args.seed == 0 and args.overrides == ["network.hidden=16", "gamma=0.9"]
    args = cli.build_parser().parse_args(["evaluate", str(run), "--complement-threshold", "0", "--episodes", "1",
                                          "--env-set", "shopper.tau_c=2.5", "--preset", "small"])
    assert args.runs == [str(run)] and args.complement_threshold == 0.0 and args.env_set == ["shopper.tau_c=2.5"]


@pytest.mark.parametrize("argv", [
    ["quickstart", "--preset", "small"], ["train", "--preset", "small"], ["evaluate", "--preset", "small"],
])
@pytest.mark.parametrize("where", ["none", "before", "after"])
def test_no_progress_reaches_every_stage(monkeypatch, capsys, argv, where):
    """--no-progress (before or after the subcommand) turns off the bars of every stage, the world build's
    included: each stage's own default (bundlerl.utils.progress.progress_enabled(None)) is off while it runs."""
    import bundlerl.env
    import bundlerl.experiment.evaluate
    import bundlerl.experiment.training
    from bundlerl.utils.errors import BundlerlError
    from bundlerl.utils.progress import PROGRESS_ENV, progress_enabled

    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    seen = []

    def stage(*a, **k):
        seen.append(progress_enabled(None))
        raise BundlerlError("stage reached")

    for mod, name in ((bundlerl.env, "build_world"), (bundlerl.experiment.training, "train"),
                      (bundlerl.experiment.evaluate, "evaluate_runs")):
        monkeypatch.setattr(mod, name, stage)
    flag = ["--no-progress"]
    full = {"none": argv, "before": flag + argv, "after": argv + flag}[where]
    assert cli.main(full) == 2 and "stage reached" in capsys.readouterr().err
    assert seen == [where == "none"]
    assert PROGRESS_ENV not in os.environ  # restored after the command


def test_a_missing_path_names_the_flag_the_path_and_what_was_expected(tmp_path, capsys, monkeypatch):
    """Every flag that takes an existing file or folder, given a path that is not there (or a file where a folder
    goes): one line naming the flag, the path, and what the flag expected there."""
    _no_work(monkeypatch)
    a_file = tmp_path / "a-file.txt"
    a_file.write_text("x")
    seen = 0
    for cmd, parser in _commands().items():
        for action in parser._actions:
            if not isinstance(action.type, (ExistingFolder, ExistingFile)):
                continue
            name = "/".join(action.option_strings) or action.metavar
            bads = [tmp_path / "nowhere" / "x"] + ([a_file] if isinstance(action.type, ExistingFolder) else [])
            for bad in bads:
                argv = [action.option_strings[0], str(bad)] if action.option_strings else [str(bad)]
                line = _assert_refused(cmd, argv, name, capsys)
                assert str(bad) in line, line
                assert ("no such" in line or "is a file" in line) and f"expected a {action.type.what}" in line, line
                seen += 1
    assert seen >= 8, seen
