"""The off-policy validation's cached trajectory truth (``evaluation/ope/truth.py``), the world identity it shares with
tuned-linear's cache key, and bench_ope's process pool: repeats evaluated by ``--jobs 2`` equal ``--jobs 1``'s."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from bundlerl.agents.baselines import ComplementGreedyPolicy, RandomPolicy
from bundlerl.evaluation.ope.estimators import OPEError
from bundlerl.evaluation.ope.truth import trajectory_truth, truth_key, truth_path

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """The truths' cache in a private folder (the worlds' stay shared and warm)."""
    import bundlerl.evaluation.ope.truth as truth

    monkeypatch.setattr(truth, "cache_root", lambda: tmp_path / "cache")
    return tmp_path / "cache"


def test_cached_truth_equals_recomputed(cache):
    pol = ComplementGreedyPolicy()
    first = trajectory_truth(pol, "small", identity="complement-greedy", episodes=24, num_envs=8)
    path = truth_path(truth_key("small", "complement-greedy", 24))
    assert path.is_file() and path.parent.parent == cache
    again = trajectory_truth(pol, "small", identity="complement-greedy", episodes=24, num_envs=8, cache=False)
    assert again.mean == pytest.approx(first.mean, rel=1e-12) and again.se == pytest.approx(first.se, rel=1e-12)
    # a hit returns the stored value without rolling out (a changed entry shows it was read)
    path.write_text(json.dumps({**json.loads(path.read_text()), "mean": 123.0}))
    assert trajectory_truth(pol, "small", identity="complement-greedy", episodes=24, num_envs=8).mean == 123.0
    assert first.episodes == 24 and first.se > 0 and np.isfinite(first.mean)


def test_damaged_entry_is_a_warned_miss(cache):
    pol = RandomPolicy(np.random.default_rng(0))
    path = truth_path(truth_key("small", "random", 16))
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.warns(RuntimeWarning, match="unreadable"):
        got = trajectory_truth(pol, "small", identity="random", episodes=16, num_envs=8)
    assert json.loads(path.read_text())["mean"] == pytest.approx(got.mean)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert trajectory_truth(pol, "small", identity="random", episodes=16, num_envs=8) == got


def test_key_names_world_target_episodes_seed():
    base = truth_key("small", "a", 100)
    assert base == truth_key("small", "a", 100)
    others = {truth_key("small", "b", 100), truth_key("small", "a", 101), truth_key("small", "a", 100, seed=19),
              truth_key("default", "a", 100)}
    assert base not in others and len(others) == 4
    with pytest.raises(OPEError, match="identity"):
        trajectory_truth(ComplementGreedyPolicy(), "small", identity="", episodes=10)


def test_tuned_linear_key_is_the_shared_world_identity():
    from bundlerl.evaluation.tuning import RECORDED_BUDGET, cache_key
    from bundlerl.evaluation.world_identity import content_key, world_identity

    ident = world_identity("small")
    assert {"shopper", "world", "config", "observation", "complementarity_fit", "completion_fit"} <= set(ident)
    assert "name" not in ident["config"]
    assert cache_key("small") != cache_key("default")
    assert cache_key("small", RECORDED_BUDGET) == cache_key("small")
    assert content_key({"a": 1, "b": [1, 2]}) == content_key({"b": [1, 2], "a": 1})


def _bench(out: Path, jobs: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_ope.py"), "--preset", "small", "--loggers", "cg",
         "--steps", "300", "--repeats", "3", "--large-parts", "2", "--large-repeats", "1", "--log-parts", "2",
         "--truth-episodes", "20", "--mean-length", "4", "--tuned-budget", "1x4x8", "--jobs", str(jobs), "--out", str(out)],
        capture_output=True, text=True, timeout=600, env={**__import__("os").environ, "BUNDLERL_PROGRESS": "0"})


@pytest.mark.slow
def test_bench_jobs_equal_one_process(tmp_path):
    one, two = _bench(tmp_path / "one", 1), _bench(tmp_path / "two", 2)
    assert one.returncode == 0, one.stderr[-2000:]
    assert two.returncode == 0, two.stderr[-2000:]
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").glob("results-*/*.json"))
    assert len(files) == 4  # 3 small repeats + 1 large
    for f in files:
        a, b = json.loads((tmp_path / "one" / f).read_text()), json.loads((tmp_path / "two" / f).read_text())
        assert [r["policy"] for r in a] == [r["policy"] for r in b]
        for ra, rb in zip(a, b):
            for est, e in ra["estimates"].items():
                assert rb["estimates"][est]["mean"] == pytest.approx(e["mean"], rel=1e-9, abs=1e-12)
                assert rb["estimates"][est]["low"] == pytest.approx(e["low"], rel=1e-9, abs=1e-12, nan_ok=True)
    assert "--jobs 2" in two.stdout and "WDR-traj" in two.stdout
    # a rerun into the same folder resumes: nothing is logged or evaluated again
    again = _bench(tmp_path / "two", 2)
    assert again.returncode == 0 and "logged" not in again.stdout and "repeat" not in again.stdout.split("tasks done")[0]


def test_repeats_are_cut_from_the_finished_prefix_of_the_logs():
    """bench_ope numbers its repeats by log order, not by which worker finished first: a later log that is done
    before an earlier one waits (else repeat 0 would be its part now, and its parts two repeat numbers later)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_ope", ROOT / "benchmarks" / "bench_ope.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    logs = [(Path(f"log-s{j}"), j) for j in range(3)]
    assert bench.finished_logs(logs, {Path("log-s1")}, no_logging=False) == []
    assert bench.finished_logs(logs, {Path("log-s0"), Path("log-s2")}, no_logging=False) == logs[:1]
    assert bench.finished_logs(logs, {Path("log-s0"), Path("log-s2")}, no_logging=True) == [logs[0], logs[2]]
