"""The command line's contract: bad input is one line on stderr and exit status 2 (the traceback only with
``--debug``), anything else is a bug that shows as one; names come from the registries (every registered baseline
and oracle works, an unknown one is refused with the list)."""

from __future__ import annotations

import json

import pytest
from _cli import run_cli

from bundlerl.agents.baselines import BASELINES
from bundlerl.agents.oracles import ORACLES
from bundlerl.agents.tuned_linear import OBSERVABLE_POLICIES
from bundlerl.scripts import cli
from bundlerl.utils.errors import BundlerlError


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    out = run_cli("evaluate", "--out", str(tmp_path), timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == ["bundlerl evaluate: error: no run given: pass --preset to evaluate "
                                               "baselines only"]


def test_debug_shows_the_traceback_of_bad_input(tmp_path):
    out = run_cli("--debug", "evaluate", "--out", str(tmp_path), timeout=60)
    assert out.returncode == 2
    assert "Traceback (most recent call last)" in out.stderr and "EvaluationError" in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("bundlerl evaluate: error: no run given")


def test_a_missing_run_directory_is_bad_input(tmp_path):
    out = run_cli("evaluate", str(tmp_path / "nope"), timeout=60)
    assert out.returncode == 2 and "argument RUN_DIR" in out.stderr and "no such folder" in out.stderr
    assert "Traceback" not in out.stderr
    out = run_cli("evaluate", str(tmp_path), timeout=60)  # a folder, but no run directory
    assert out.returncode == 2 and "no config.yaml in this folder; expected a run directory" in out.stderr


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyError("boom"), ValueError("boom"), TypeError("boom")])
def test_an_internal_error_is_not_swallowed(monkeypatch, exc):
    """A bug (any exception but BundlerlError / FileNotFoundError) propagates with its traceback, even a KeyError
    or a plain ValueError."""
    import bundlerl.experiment.evaluate

    def broken(*a, **k):
        raise exc

    monkeypatch.setattr(bundlerl.experiment.evaluate, "evaluate_runs", broken)
    with pytest.raises(type(exc), match="boom"):
        cli.main(["evaluate", "--preset", "small", "--baselines", "random"])


def test_bundlerl_errors_are_caught_in_process(monkeypatch, capsys):
    import bundlerl.experiment.evaluate

    def bad(*a, **k):
        raise BundlerlError("the input is wrong\nsecond line of detail")

    monkeypatch.setattr(bundlerl.experiment.evaluate, "evaluate_runs", bad)
    assert cli.main(["evaluate", "--preset", "small"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bundlerl evaluate: error: the input is wrong") and "Traceback" not in err


def _parse(*argv):
    return cli.build_parser().parse_args(["evaluate", *argv])


def test_name_flags_take_the_registries():
    assert _parse().baselines == list(OBSERVABLE_POLICIES) and _parse().oracles == []
    assert set(BASELINES) < set(OBSERVABLE_POLICIES) and "tuned-linear" in OBSERVABLE_POLICIES
    args = _parse("--baselines", "none", "--oracles", "all")
    assert args.baselines == [] and args.oracles == list(ORACLES)
    short = ",".join(o.removeprefix("oracle-") for o in ORACLES)
    assert _parse("--oracles", short).oracles == list(ORACLES)  # short forms name the same oracles
    assert _parse("--baselines", ",".join(BASELINES)).baselines == list(BASELINES)
    budget = _parse("--tuned-budget", "2x4x8").tuned_budget
    assert (budget.rounds, budget.candidates, budget.episodes) == (2, 4, 8)


@pytest.mark.parametrize("flag, value, listed", [("--baselines", "psychic", OBSERVABLE_POLICIES),
                                                 ("--oracles", "oracle-psychic", ORACLES)])
def test_an_unknown_name_is_a_usage_error_listing_the_valid_ones(capsys, flag, value, listed):
    with pytest.raises(SystemExit) as exit_:
        _parse(flag, value)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert repr(value) in err and all(name in err for name in listed)


def test_evaluate_runs_rejects_unknown_names_listing_the_registry(tmp_path):
    from bundlerl.experiment.evaluate import evaluate_runs

    for kw, listed in (({"oracles": ["psychic"]}, ORACLES), ({"baselines": ["psychic"]}, OBSERVABLE_POLICIES)):
        with pytest.raises(BundlerlError, match="unknown") as err:
            evaluate_runs([], preset="small", out=tmp_path, **kw)
        assert all(name in str(err.value) for name in listed)


def test_every_registered_name_works_in_evaluate_runs(tmp_path):
    from bundlerl.experiment.evaluate import evaluate_runs

    short = [o.removeprefix("oracle-") for o in ORACLES]
    for oracles in (list(ORACLES), short):
        res = evaluate_runs([], baselines=BASELINES, oracles=oracles, preset="small", episodes=3, out=tmp_path,
                            progress=False, log=lambda m: None)
        assert list(res["table"]) == [*BASELINES, *ORACLES]
        assert all(est["return"].n == 3 for est in res["table"].values())
    assert "oracle-one-step (oracle, reads simulator truth)" in res["markdown"]


def test_every_registered_name_works_in_the_cli(tmp_path):
    """All baselines (tuned-linear fitted with a tiny budget, or its cached fit) and oracles."""
    out = run_cli("evaluate", "--preset", "small", "--baselines", "all", "--oracles", "all", "--episodes", "3",
                  "--tuned-budget", "1x2x3", "--out", str(tmp_path), "--no-progress", timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert list(json.loads((tmp_path / "results.json").read_text())) == [*OBSERVABLE_POLICIES, *ORACLES]


def _chained(kind: str) -> BaseException:
    """A KeyboardInterrupt raised inside compiled code the way numba reports it: a SystemError chained to it."""
    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as ki:
            if kind == "cause":
                raise SystemError("returned a result with an exception set") from ki
            raise SystemError("returned a result with an exception set")  # __context__ only
    except SystemError as exc:
        return exc


@pytest.mark.parametrize("kind", ["cause", "context"])
def test_ctrl_c_inside_compiled_code_is_an_interrupt(kind, monkeypatch, capsys, tmp_path):
    """A Ctrl-C that surfaces as numba's chained SystemError exits 130 with the one 'interrupted' line, like a plain
    KeyboardInterrupt; a SystemError of any other origin stays a bug (raised)."""
    from bundlerl.scripts import cli, ope
    from bundlerl.utils.errors import keyboard_interrupt_in

    exc = _chained(kind)
    assert isinstance(keyboard_interrupt_in(exc), KeyboardInterrupt)
    assert keyboard_interrupt_in(SystemError("other")) is None and keyboard_interrupt_in(None) is None

    def run(args):
        raise exc

    monkeypatch.setattr(ope, "run", run)
    monkeypatch.setattr(ope, "check", lambda args: None)
    argv = ["ope", "--logs", str(tmp_path), "--policy", "random"]
    assert cli.main(argv) == cli.EXIT_INTERRUPTED
    assert capsys.readouterr().err.strip() == "bundlerl ope: interrupted"

    def bug(args):
        raise SystemError("a real bug")

    monkeypatch.setattr(ope, "run", bug)
    with pytest.raises(SystemError, match="a real bug"):
        cli.main(argv)


def test_keyboard_interrupt_in_survives_a_cycle():
    """An exception chain with a cycle (a context pointing back) ends, with no interrupt found."""
    from bundlerl.utils.errors import keyboard_interrupt_in

    a, b = ValueError("a"), ValueError("b")
    a.__context__, b.__context__ = b, a
    assert keyboard_interrupt_in(a) is None
