"""``bundlerl log`` and ``bundlerl ope`` end to end in a subprocess: a log on the small preset, estimates of two
targets with a table and a PNG, and bad input as one line with exit status 2."""

from __future__ import annotations

import json

import numpy as np
from _cli import run_cli


def test_log_then_ope(tmp_path):
    log = tmp_path / "log"
    r = run_cli("log", "--policy", "complement-greedy", "--epsilon", "0.3", "--preset", "small", "--episodes", "60",
                "--num-envs", "16", "--out", str(log), "--no-progress", timeout=300)
    assert r.returncode == 0, r.stderr
    assert "logged" in r.stdout and (log / "truth" / "part-000000.parquet").is_file()
    info = json.loads((log / "log.json").read_text())
    assert info["policy"] == "complement-greedy+eps0.3" and info["stream"] == "logging stream, seed 0"
    r = run_cli("ope", "--logs", str(log), "--policy", "random", "--policy", "complement-greedy",
                "--bootstrap", "20", "--truth", "--ranking-k", "3", "--return-model", "fqe", "--out", str(tmp_path / "ope"),
                "--no-progress", timeout=300)
    assert r.returncode == 0, r.stderr
    assert "| WDR-traj |" in r.stdout and "| complement-greedy |" in r.stdout
    assert "ndcg@3" in r.stdout and (tmp_path / "ope" / "ranking.md").is_file()
    assert "| policy | precision@3 | recall@3 | ndcg@3 | hit@3 | sessions |" in r.stdout
    assert "sessions: the log's sessions, the units of the 95% intervals" in r.stdout
    written = r.stdout.strip().splitlines()[-1]
    assert all(f in written for f in ("ope.md", "ope.json", "ope.png", "ranking.md")), written
    assert (tmp_path / "ope" / "ope.png").stat().st_size > 1000
    res = json.loads((tmp_path / "ope" / "ope.json").read_text())["results"]
    assert {x["policy"] for x in res} == {"random", "complement-greedy"}
    assert res[0]["ranking"]["k"] == 3 and res[0]["ranking"]["ndcg"]["n"] == 60  # the cell: sessions, all 60
    assert "| random |" in r.stdout and "| 60 |" in r.stdout
    # studentized per-trajectory intervals, the percentile ones kept for comparison (fitted-Q DR / WDR: percentile;
    # RegDR reads the Monte-Carlo model's moments whatever the return model)
    assert set(res[0]["trajectory_percentile"]) == {"PDIS", "WPDIS", "RegDR-traj"}
    assert "| RegDR-traj |" in r.stdout


def test_bad_input_is_one_line(tmp_path):
    r = run_cli("log", "--policy", "complement-greedy", "--epsilon", "0.3", "--temperature", "1", "--episodes", "5",
                "--out", str(tmp_path))
    assert r.returncode == 2 and "not allowed with argument" in r.stderr
    r = run_cli("log", "--policy", "complement-greedy", "--epsilon", "1.5", "--episodes", "5", "--out", str(tmp_path))
    assert r.returncode == 2 and "--epsilon" in r.stderr
    r = run_cli("log", "--policy", "nosuch", "--preset", "small", "--episodes", "5", "--out", str(tmp_path))
    assert r.returncode == 2 and "neither a baseline" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    (tmp_path / "empty").mkdir()
    r = run_cli("ope", "--logs", str(tmp_path / "empty"), "--policy", "random")
    assert r.returncode == 2 and "no part-*.parquet" in r.stderr
    r = run_cli("ope", "--logs", str(tmp_path / "empty"), "--policy", "random", "--trajectory-interval", "bca")
    assert r.returncode == 2 and "invalid choice: 'bca'" in r.stderr


def test_policy_specs(tmp_path):
    import numpy as np
    import pytest

    from bundlerl.agents.policy import PolicyError
    from bundlerl.agents.tuned_linear import TunedLinearPolicy, feature_names
    from bundlerl.experiment.policy_spec import load_policy, policy_world

    w = tmp_path / "tl.json"
    TunedLinearPolicy(np.arange(len(feature_names()), dtype=float)).save(w)
    assert isinstance(load_policy(str(w)), TunedLinearPolicy)
    assert policy_world("random") is None
    with pytest.raises(PolicyError, match="neither a baseline"):
        load_policy(str(tmp_path / "missing"))


def test_greedy_applies_to_run_directories_only(tmp_path):
    """Issue 18: ':greedy' on random (a tie: its first valid candidate) or on an already greedy policy (a second copy
    of it) is refused, naming the valid forms; on a run directory it is the run's deterministic form."""
    import numpy as np
    import pytest

    from bundlerl.agents.policy import PolicyError
    from bundlerl.agents.tuned_linear import TunedLinearPolicy, feature_names
    from bundlerl.experiment.policy_spec import SPEC_FORMS, check_spec, load_policy

    w = tmp_path / "tl.json"
    TunedLinearPolicy(np.arange(len(feature_names()), dtype=float)).save(w)
    with pytest.raises(PolicyError, match=r"'random:greedy': ':greedy' applies to a run directory only and random is "
                                          r"uniform.*write 'random'"):
        load_policy("random:greedy")
    for spec in ("popularity:greedy", "complement-greedy:greedy", "tuned-linear:greedy", f"{w}:greedy"):
        with pytest.raises(PolicyError, match="already deterministic") as exc:
            check_spec(spec)
        assert SPEC_FORMS in str(exc.value)
    for spec in ("random:stochastic", "random:greedy:greedy", " popularity:eps0.1"):
        with pytest.raises(PolicyError, match="is not a modifier") as exc:
            check_spec(spec)
        assert "RUN_DIR:greedy" in str(exc.value)
    (tmp_path / "run").mkdir()
    assert check_spec(f"{tmp_path / 'run'}:greedy") == (str(tmp_path / "run"), "run", True)
    assert check_spec(f" {w} ") == (str(w), "weights", False) and check_spec("random") == ("random", "baseline", False)
    r = run_cli("ope", "--logs", str(tmp_path), "--policy", "random:greedy")  # refused at parse time, one line
    _one_line(r, "--policy", "applies to a run directory only", "RUN_DIR:greedy")
    r = run_cli("log", "--policy", "complement-greedy:greedy", "--episodes", "5", "--out", str(tmp_path / "x"))
    _one_line(r, "--policy", "already deterministic", "write 'complement-greedy'")


def _one_line(r, *words):
    """Bad input: exit 2, one line on stderr holding ``words``, no traceback."""
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    for w in words:
        assert w in r.stderr, (w, r.stderr)


def test_ope_refuses_bad_logs_in_one_line(tmp_path):
    """Issue 18: a non-finite reward, an incomplete log, a log.json of another log, a truth/ folder, --truth on a
    log without truth, --ranking-k over K, a repeated --policy, unsupported mass (the CLI's flag only)."""
    import shutil

    import numpy as np
    from _log_data import DIMS, rows, write

    args = ("--policy", "random", "--bootstrap", "2", "--no-progress")
    data = rows()
    data["reward"] = np.where(np.arange(12) == 7, np.nan, data["reward"])
    write(tmp_path / "nan", data)
    _one_line(run_cli("ope", "--logs", str(tmp_path / "nan"), *args), "part-000000.parquet: row 7, column 'reward'",
              "must be finite")
    good = write(tmp_path / "good", truth=True)
    shutil.copytree(good, tmp_path / "partial")
    (tmp_path / "partial" / "log.json").unlink()
    _one_line(run_cli("ope", "--logs", str(tmp_path / "partial"), *args), "incomplete log: no log.json")
    shutil.copytree(good, tmp_path / "k8")
    info = json.loads((good / "log.json").read_text())
    (tmp_path / "k8" / "log.json").write_text(json.dumps({**info, "dims": {**info["dims"], "K": 8}}))
    _one_line(run_cli("ope", "--logs", str(tmp_path / "k8"), *args), "says K=8 but the part files have K=3")
    _one_line(run_cli("ope", "--logs", str(good / "truth"), *args), "this is the truth/ folder", "pass its parent")
    _one_line(run_cli("ope", "--logs", str(tmp_path / "nan"), "--truth", *args), "drop --truth")
    _one_line(run_cli("ope", "--logs", str(good), "--ranking-k", str(DIMS.K + 2), *args),
              f"--ranking-k {DIMS.K + 2}", f"K={DIMS.K}")
    _one_line(run_cli("ope", "--logs", str(good), "--policy", "random", *args), "--policy random is given more than once",
              "drop the repeat")
    det = rows()  # a deterministic logger: always candidate 0
    det["action"][:] = 0
    det["action_prob"] = np.tile(np.eye(DIMS.K)[0], (12, 1))
    det["pscore"] = np.ones(12)
    write(tmp_path / "det", det)
    r = run_cli("ope", "--logs", str(tmp_path / "det"), *args)
    _one_line(r, "pass --allow-unsupported")
    assert "allow_unsupported" not in r.stderr


def test_help_and_deterministic_logger_warning(tmp_path):
    r = run_cli("ope", "--help")
    assert r.returncode == 0 and "RegDR-traj" in r.stdout
    r = run_cli("log", "--help")
    assert r.returncode == 0 and "Default (none of them): no exploration" in r.stdout
    r = run_cli("log", "--policy", "complement-greedy", "--preset", "small", "--episodes", "2", "--num-envs", "2",
                "--no-truth", "--out", str(tmp_path / "det"), "--no-progress", timeout=300)
    assert r.returncode == 0, r.stderr
    assert "warning: no exploration" in r.stderr and "supports only that policy" in r.stderr


def _interrupted_log(out):
    """Run 'bundlerl log' into ``out``, send it Ctrl-C (SIGINT) once a part file is written; returns (exit status,
    stderr)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from _cli import ROOT

    proc = subprocess.Popen([sys.executable, "-m", "bundlerl.scripts.cli", "log", "--policy", "random", "--preset",
                             "small", "--episodes", "1000000", "--num-envs", "8", "--rows-per-part", "50",
                             "--out", str(out), "--no-progress"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        deadline = time.monotonic() + 120
        while not any(out.glob("part-*.parquet")) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert any(out.glob("part-*.parquet")), "no part written"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err


def test_interrupted_log_leaves_nothing(tmp_path):
    """Ctrl-C during 'bundlerl log' into a folder it created: the folder is removed (no half log left)."""
    out = tmp_path / "log"
    rc, err = _interrupted_log(out)
    assert rc != 0 and "interrupted" in err, err
    assert not out.exists()


def test_ope_json_records_the_settings(tmp_path):
    """Issue 18: ope.json records the run's settings (log folder and log.json hash, policies, estimator settings,
    ranking k, versions and git commit as a run directory's versions.json); they read back to the same OPEConfig."""
    import subprocess

    from _cli import ROOT
    from _log_data import write

    from bundlerl.evaluation.ope.evaluate import OPEConfig
    from bundlerl.evaluation.ope.report import OPE_JSON_VERSION, config_from_settings, read_ope_json
    from bundlerl.experiment.provenance import package_versions
    from bundlerl.utils.hashing import file_sha256

    log = write(tmp_path / "log", truth=True)
    r = run_cli("ope", "--logs", str(log), "--policy", "random", "--policy", "popularity", "--clip", "40", "--tau", "3",
                "--gamma", "0.9", "--bootstrap", "7", "--seed", "5", "--interval", "population", "--ranking-k", "2",
                "--truth", "--allow-unsupported", "--no-progress")
    assert r.returncode == 0, r.stderr
    doc = read_ope_json(log / "ope")
    assert doc["version"] == OPE_JSON_VERSION and [x["policy"] for x in doc["results"]] == ["random", "popularity"]
    st = doc["settings"]
    assert st["logs"]["folder"] == str(log.resolve()) and st["logs"]["rows"] == 12
    assert st["logs"]["log_json_sha256"] == file_sha256(log / "log.json")
    baseline = {"kind": "baseline", "greedy": False}
    assert st["policies"] == [{"spec": "random", "name": "random", "source": baseline},
                              {"spec": "popularity", "name": "popularity", "source": baseline}]
    assert st["ranking_k"] == 2
    want = OPEConfig(clip=40.0, tau=3.0, gamma=0.9, n_boot=7, seed=5, interval="population", allow_unsupported=True,
                     truth=True)
    assert config_from_settings(st["estimator"]) == want  # progress, display only, is not a setting
    assert {k: st["versions"][k] for k in package_versions()} == package_versions()
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert st["versions"]["git"]["commit"] == head
    # no clipping is null in JSON and inf again when read back
    r = run_cli("ope", "--logs", str(log), "--policy", "random", "--bootstrap", "2", "--out", str(tmp_path / "o2"),
                "--no-progress")
    assert r.returncode == 0, r.stderr
    st = read_ope_json(tmp_path / "o2" / "ope.json")["settings"]
    assert st["estimator"]["clip"] is None and config_from_settings(st["estimator"]).clip == float("inf")
    assert st["ranking_k"] is None


def test_ope_out_is_not_overwritten_silently(tmp_path):
    """Issue 18: a non-empty --out (a previous report, or other files) is refused in one line before any work;
    --overwrite replaces the report's files only (an earlier ranking.md too), leaving the rest."""
    from _log_data import write

    log = write(tmp_path / "log")
    args = ("ope", "--logs", str(log), "--policy", "random", "--bootstrap", "2", "--no-progress")
    assert run_cli(*args, "--ranking-k", "2").returncode == 0  # default --out: LOGS/ope
    first = (log / "ope" / "ope.json").read_text()
    _one_line(run_cli(*args), f"--out {log / 'ope'}: holds a report already", "ope.json", "pass --overwrite")
    assert (log / "ope" / "ope.json").read_text() == first and (log / "ope" / "ranking.md").is_file()
    (log / "ope" / "notes.txt").write_text("mine")
    r = run_cli(*args, "--overwrite")
    assert r.returncode == 0, r.stderr
    assert not (log / "ope" / "ranking.md").exists(), "the earlier report's ranking.md is not this report's"
    assert (log / "ope" / "notes.txt").read_text() == "mine" and (log / "ope" / "ope.json").read_text() != first
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.csv").write_text("x")
    _one_line(run_cli(*args, "--out", str(other)), "not empty (a.csv) and not a report", "choose an empty or new folder")
    assert sorted(p.name for p in other.iterdir()) == ["a.csv"]
    (tmp_path / "empty").mkdir()
    assert run_cli(*args, "--out", str(tmp_path / "empty")).returncode == 0
    (tmp_path / "empty" / "ope.json").unlink()  # as an overwrite interrupted before its last file leaves it
    _one_line(run_cli(*args, "--out", str(tmp_path / "empty")), "holds an unfinished report (no ope.json",
              "pass --overwrite")


def test_enormous_reward_is_one_line(tmp_path):
    """Issue 18: the user's reward 1e300 in a log part: one line naming file, row, column, no overflow warnings."""
    from _log_data import rows, write

    data = rows()
    data["reward"][7] = 1e300
    write(tmp_path / "big", data)
    r = run_cli("ope", "--logs", str(tmp_path / "big"), "--policy", "random", "--bootstrap", "2", "--no-progress")
    _one_line(r, "part-000000.parquet: row 7, column 'reward': reward 1e+300 is too large", "rescale the column")
    assert "RuntimeWarning" not in r.stderr and "overflow encountered" not in r.stderr


def test_log_refuses_a_folder_holding_a_log_before_any_work(tmp_path):
    """'bundlerl log --out' into a folder holding a log is refused at parse time: before tuned-linear is fitted."""
    import time

    from _log_data import write

    log = write(tmp_path / "log")
    t0 = time.monotonic()
    r = run_cli("log", "--policy", "tuned-linear", "--episodes", "5", "--out", str(log), "--no-progress")
    _one_line(r, f"{log} already holds a log", "choose an empty folder")
    assert time.monotonic() - t0 < 60 and "fitting" not in r.stdout.lower()


def test_bad_revenue_observation_and_log_json_are_one_line(tmp_path):
    """Fresh user 7: an inf / 1e38 revenue (ope does not read revenue, it was never checked), a NaN profile value, a
    `{}` log.json: one line naming file, row, column or field, exit 2."""
    from _log_data import rows, write

    args = ("--policy", "random", "--bootstrap", "2", "--no-progress")
    for name, column, value, words in (("inf_rev", "revenue", np.inf, "revenue inf must be finite"),
                                       ("huge_rev", "revenue", 1e38, "revenue 1e+38 is too large"),
                                       ("nan_prof", "profile", np.nan, "profile[0] is nan: observations must be finite")):
        data = rows()
        data[column] = data[column].astype(float)
        data[column][7] = value
        write(tmp_path / name, data)
        _one_line(run_cli("ope", "--logs", str(tmp_path / name), *args, "--out", str(tmp_path / f"o_{name}")),
                  f"part-000000.parquet: row 7, column '{column}': {words}")
    (tmp_path / "nan_prof" / "log.json").write_text("{}")
    _one_line(run_cli("ope", "--logs", str(tmp_path / "nan_prof"), *args), "log.json: no 'parts' field")


def _report(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_interrupted_overwrite_keeps_the_old_report(tmp_path, monkeypatch, capsys):
    """Fresh user 7: Ctrl-C while --overwrite writes the new report (here: while its chart is drawn) leaves the old
    report whole (ope.md, ope.png, ope.json, ranking.md, and the user's own file) and no staging folder; a Ctrl-C
    (a real SIGINT) during the swap is held back until the new report is complete, and the command exits 0 saying
    so."""
    import os
    import signal

    from _log_data import write

    import bundlerl.evaluation.ope.report as report
    from bundlerl.scripts.cli import main

    log = write(tmp_path / "log")
    out = tmp_path / "o"
    args = ["ope", "--logs", str(log), "--policy", "random", "--bootstrap", "2", "--no-progress", "--out", str(out)]
    assert main([*args, "--ranking-k", "2"]) == 0
    (out / "notes.txt").write_text("mine")
    old = _report(out)

    def stopped(*a, **k):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(report, "ope_chart", stopped)
        assert main([*args, "--overwrite"]) == 130
    assert _report(out) == old
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], "a staging folder was left"

    real, calls = os.replace, []

    def replace_with_sigint(src, dst):
        if str(src).endswith(".tmp-report/" + os.path.basename(dst)):  # the swap's renames (others write caches)
            if not calls:
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C in the middle of the swap
            calls.append(dst)
        real(src, dst)

    capsys.readouterr()
    with monkeypatch.context() as m:
        m.setattr(report.os, "replace", replace_with_sigint)
        assert main([*args, "--overwrite"]) == 0
    assert "interrupted after the report was written" in capsys.readouterr().err
    new = _report(out)
    assert set(new) == {"ope.md", "ope.png", "ope.json", "notes.txt"} and new["ope.json"] != old["ope.json"]
    assert len(calls) == 3 and str(calls[-1]).endswith("ope.json")


def test_ctrl_c_after_the_report_is_written_exits_0(tmp_path):
    """Fresh user 7: a SIGINT once 'written:' is printed (the report complete; the process tearing down) is not a
    failure: exit 0, the report whole."""
    import os
    import signal
    import subprocess
    import sys

    from _cli import ROOT
    from _log_data import write

    log = write(tmp_path / "log")
    slow_exit = ("import atexit, sys, time; atexit.register(time.sleep, 2); sys.argv[0] = 'bundlerl'; "
                 "from bundlerl.scripts.cli import main; sys.exit(main())")  # a teardown long enough to be hit
    proc = subprocess.Popen([sys.executable, "-c", slow_exit, "ope", "--logs", str(log), "--policy",
                             "random", "--bootstrap", "2", "--no-progress", "--out", str(tmp_path / "o")], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        for line in proc.stdout:
            if line.startswith("written:"):
                proc.send_signal(signal.SIGINT)
                break
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert (tmp_path / "o" / "ope.json").is_file()


def test_ope_json_records_what_was_evaluated(tmp_path):
    """Fresh user 7: ope.json records, per policy, the model file actually evaluated (a damaged best_model.zip is
    passed over for final_model.zip), its SHA-256 and the run's own versions.json; a weights file's path and SHA-256;
    ope.md names the evaluated model."""
    import shutil
    import warnings

    from _serving import small_run_dir

    from bundlerl.agents.tuned_linear import TunedLinearPolicy, feature_names
    from bundlerl.utils.hashing import file_sha256

    run = small_run_dir(tmp_path / "runs", "ppo")
    shutil.copy(run / "best_model.zip", run / "final_model.zip")
    (run / "best_model.zip").write_bytes(b"damaged")
    versions = json.loads((run / "versions.json").read_text())
    (run / "versions.json").write_text(json.dumps({**versions, "marker": "trained here"}))
    w = tmp_path / "tl.json"
    TunedLinearPolicy(np.arange(len(feature_names()), dtype=float)).save(w)
    log = tmp_path / "log"
    r = run_cli("log", "--policy", "random", "--preset", "small", "--episodes", "20", "--num-envs", "8", "--out",
                str(log), "--no-progress", timeout=300)
    assert r.returncode == 0, r.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = run_cli("ope", "--logs", str(log), "--policy", str(run), "--policy", str(w), "--bootstrap", "2",
                    "--no-progress", "--out", str(tmp_path / "o"), timeout=300)
    assert r.returncode == 0, r.stderr
    policies = json.loads((tmp_path / "o" / "ope.json").read_text())["settings"]["policies"]
    src = {p["spec"]: p["source"] for p in policies}
    assert src[str(run)]["model"] == "final_model.zip" and src[str(run)]["kind"] == "run"
    assert src[str(run)]["sha256"] == file_sha256(run / "final_model.zip")
    assert src[str(run)]["versions"]["marker"] == "trained here"
    assert src[str(w)] == {"kind": "weights", "greedy": False, "file": str(w.resolve()), "sha256": file_sha256(w)}
    md = (tmp_path / "o" / "ope.md").read_text()
    assert f"{run.resolve()}/final_model.zip (sha256 {file_sha256(run / 'final_model.zip')[:16]}" in md


def test_fresh_user_leftovers_are_one_line(tmp_path):
    """Fresh user 7: an unknown flag points at the subcommand's --help; a missing run directory says so; --out the
    log folder (or its truth/) is refused."""
    from _log_data import write

    log = write(tmp_path / "log", truth=True)
    args = ("ope", "--logs", str(log), "--bootstrap", "2", "--no-progress")
    r = run_cli(*args, "--policy", "random", "--bogus")
    _one_line(r, "bundlerl ope: error: unrecognized arguments: --bogus", "see 'bundlerl ope --help'")
    _one_line(run_cli(*args, "--policy", str(tmp_path / "runs" / "nonexistent")), "no such file or folder")
    for out in (log, log / "truth"):
        _one_line(run_cli(*args, "--policy", "random", "--out", str(out), "--overwrite"), "itself; write the report "
                  f"elsewhere, e.g. --out {log / 'ope'}")
    assert not (log / "ope.json").exists() and not (log / "truth" / "ope.json").exists()


def test_interrupted_log_into_an_existing_folder_says_what_remains(tmp_path):
    """Ctrl-C during 'bundlerl log' into an empty folder that existed before: the folder is not removed, and the
    message says that the part files remain and what to do."""
    out = tmp_path / "log"
    out.mkdir()
    rc, err = _interrupted_log(out)
    assert rc == 130, err
    assert "the part files written so far remain in" in err and "delete its part-*.parquet" in err, err
    assert len(err.strip().splitlines()) == 1 and out.is_dir()
