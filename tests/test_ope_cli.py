"""``bundlerl log`` and ``bundlerl ope`` end to end in a subprocess: a log on the small preset, estimates of two
targets with a table and a PNG, and bad input as one line with exit status 2."""

from __future__ import annotations

import json

from _cli import run_cli


def test_log_then_ope(tmp_path):
    log = tmp_path / "log"
    r = run_cli("log", "--policy", "complement-greedy", "--epsilon", "0.3", "--preset", "small", "--episodes", "60",
                "--num-envs", "16", "--out", str(log), "--no-progress", timeout=300)
    assert r.returncode == 0, r.stderr
    assert "logged" in r.stdout and (log / "truth" / "part-000000.parquet").is_file()
    info = json.loads((log / "log.json").read_text())
    assert info["policy"] == "complement-greedy+eps0.3" and info["stream"] == "logging stream, seed 0"
    r = run_cli("ope", "--logs", str(log), "--policy", "random", "--policy", "complement-greedy:greedy",
                "--bootstrap", "20", "--truth", "--ranking-k", "3", "--return-model", "fqe", "--out", str(tmp_path / "ope"),
                "--no-progress", timeout=300)
    assert r.returncode == 0, r.stderr
    assert "| WDR-traj |" in r.stdout and "complement-greedy:greedy" in r.stdout
    assert "ndcg@3" in r.stdout and (tmp_path / "ope" / "ranking.md").is_file()
    assert (tmp_path / "ope" / "ope.png").stat().st_size > 1000
    res = json.loads((tmp_path / "ope" / "ope.json").read_text())
    assert {x["policy"] for x in res} == {"random", "complement-greedy:greedy"}
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
    greedy = load_policy(f"{w}:greedy")
    assert greedy.name == "tuned-linear:greedy"
    assert load_policy("random:greedy").name == "random:greedy" and policy_world("random") is None
    with pytest.raises(PolicyError, match="neither a baseline"):
        load_policy(str(tmp_path / "missing"))
