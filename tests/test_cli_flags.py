"""Every flag of every command is checked while the command line is parsed: a bad value (negative seed, zero
episodes, not a number, a missing file, a file where a folder goes, an unknown override name, a value given to a
switch, ...) is exit status 2 and one line naming the flag, before any work and without a traceback.

The sweep introspects the argparse parsers, so a new flag must come with a validating type
(``bundlerl.scripts.flags.FlagType``, choices or a registry's names) or this test fails."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from _cli import run_cli

from bundlerl.scripts import cli
from bundlerl.scripts.flags import Assignment, ExistingFile, ExistingFolder, Integer, Number, OutputFolder


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
        return [str(t.minimum - 1), str(t.minimum - 1000), "abc", "1.5", "", "1e3", "nan"]
    if isinstance(t, Number):
        return ["abc", "nan", "inf", str(t.high + 1), str(t.low - 1), ""]
    if isinstance(t, ExistingFile):
        return [str(tmp / "missing.yaml"), str(tmp)]
    if isinstance(t, ExistingFolder):
        return [str(tmp / "missing"), str(a_file)] + ([str(tmp / "empty-folder")] if t.needs else [])
    if isinstance(t, OutputFolder):
        return [str(a_file), str(a_file / "sub"), ""]
    if isinstance(t, Assignment):
        return ["novalue", "=3", "no_such_field=1", ""]
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
            for value in _bad_values(action, tmp):
                yield cmd, name, ([action.option_strings[0], value] if action.option_strings else [value])


def test_every_flag_of_every_command_refuses_bad_values_in_one_line(tmp_path, capsys, monkeypatch):
    import bundlerl.experiment.evaluate
    import bundlerl.experiment.training

    def never(*a, **k):
        raise AssertionError("a bad flag value got past the parser")

    for mod, name in ((bundlerl.experiment.training, "train"), (bundlerl.experiment.evaluate, "evaluate_runs")):
        monkeypatch.setattr(mod, name, never)
    cases = list(_cases(tmp_path))
    flags = {(cmd, name) for cmd, name, _ in cases}
    assert len(flags) >= 30 and len(cases) >= 100, (len(flags), len(cases))
    for cmd, name, argv in cases:
        assert cli.main([cmd, *argv]) == 2, (cmd, argv)
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert len(lines) == 1, (cmd, argv, err)
        assert lines[0].startswith(f"bundlerl {cmd}: error: argument {name}: "), (cmd, argv, lines[0])
        assert "Traceback" not in err


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
