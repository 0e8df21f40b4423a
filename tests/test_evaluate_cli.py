"""``bundlerl evaluate``: the bundle metrics (property test against a brute-force count), --help, and the
train -> evaluate end-to-end run of the real CLI on the small preset."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from _cli import run_cli as _cli
from hypothesis import given, settings
from hypothesis import strategies as st

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _world(rng, n_items, n_cat, d=6):
    emb = rng.normal(size=(n_items, d)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    G = rng.random((n_cat, n_cat)).astype(np.float32) * (rng.random((n_cat, n_cat)) < 0.5)
    cat = SimpleNamespace(embeddings=emb, complement_graph=G, category=rng.integers(n_cat, size=n_items))
    return SimpleNamespace(catalog=cat)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n_eps=st.integers(1, 5), n_log=st.integers(0, 30), kmax=st.integers(1, 4),
       thr=st.floats(0.0, 1.0))
def test_bundle_metrics_match_a_brute_force_count(seed, n_eps, n_log, kmax, thr):
    from bundlerl.evaluation.metrics import bundle_metrics

    rng = np.random.default_rng(seed)
    world = _world(rng, 20, 4)
    sizes = rng.integers(1, kmax + 1, size=n_log)
    items = np.full((n_log, kmax), -1, np.int32)
    for r, s in enumerate(sizes):
        items[r, :s] = rng.choice(20, size=s, replace=False)
    res = SimpleNamespace(n_episodes=n_eps, log_items=items, log_episode=rng.integers(n_eps, size=n_log))
    got = bundle_metrics(res, world, thr)
    c, G, E = world.catalog.category, world.catalog.complement_graph, world.catalog.embeddings
    exp = {k: (np.zeros(n_eps), np.zeros(n_eps)) for k in ("bundle_size", "complement_share", "diversity")}
    for row, ep in zip(items, res.log_episode):
        b = [int(i) for i in row if i >= 0]
        exp["bundle_size"][0][ep] += len(b)
        exp["bundle_size"][1][ep] += 1
        pairs = [(i, j) for x, i in enumerate(b) for j in b[x + 1:]]
        exp["complement_share"][0][ep] += any(max(G[c[i], c[j]], G[c[j], c[i]]) >= thr for i, j in pairs)
        exp["complement_share"][1][ep] += 1
        if pairs:
            exp["diversity"][0][ep] += np.mean([1 - float(E[i] @ E[j]) for i, j in pairs])
            exp["diversity"][1][ep] += 1
    for k, (num, den) in exp.items():
        np.testing.assert_allclose(got[k][0], num, atol=1e-5, err_msg=k)
        np.testing.assert_allclose(got[k][1], den, err_msg=k)




def test_evaluate_and_quickstart_help():
    out = _cli("evaluate", "--help", timeout=60)
    assert out.returncode == 0, out.stderr
    for word in ("RUN_DIR", "--baselines", "--episodes", "95% CI", "complement", "diversity", "results.png"):
        assert word in out.stdout, word
    out = _cli("quickstart", "--help", timeout=60)
    assert out.returncode == 0 and "1/4" in out.stdout and "--timesteps" in out.stdout


def test_evaluate_without_anything_is_a_clear_error(tmp_path):
    out = _cli("evaluate", "--out", str(tmp_path), timeout=60)
    assert out.returncode == 2 and "--preset" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("mode", ["bundle", "compose"])
def test_train_then_evaluate_end_to_end(tmp_path, mode):
    """The real CLI on the real small preset: a few hundred PPO steps (picking bundles, or composing them item by
    item), then evaluate against two baselines."""
    runs = tmp_path / "runs"
    out = _cli("train", "--algo", "maskable_ppo", "--preset", "small", "--timesteps", "256", "--seed", "1",
               "--action-mode", mode, "--num-envs", "8", "--set", "n_steps=16", "--set", "batch_size=64", "--eval-freq", "128",
               "--eval-episodes", "16", "--final-episodes", "16", "--out", str(runs), "--no-progress", timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    (run,) = list(runs.iterdir())
    for f in ("config.yaml", "versions.json", "best_model.zip", "report.md", "learning_curve.png", "eval.csv"):
        assert (run / f).is_file(), f
    ev = tmp_path / "ev"
    out = _cli("evaluate", str(run), "--baselines", "random,complement-greedy", "--episodes", "24", "--out", str(ev),
               "--no-progress", timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    res = json.loads((ev / "results.json").read_text())
    assert set(res) == {run.name, "random", "complement-greedy"}
    for name, metrics in res.items():
        for m in ("return", "click_rate", "conversion", "revenue", "bundle_size", "complement_share", "diversity"):
            assert m in metrics, (name, m)
        e = metrics["return"]
        assert e["low"] <= e["mean"] <= e["high"] and e["n"] == 24
        assert 1.0 <= metrics["bundle_size"]["mean"] <= 3.0
        assert 0.0 <= metrics["complement_share"]["mean"] <= 1.0
    table = (ev / "results.md").read_text()
    assert "| policy | episodes | mean return" in table and run.name in table
    assert (ev / "results.png").read_bytes()[:8] == PNG_MAGIC


def test_evaluate_runs_writes_table_json_and_chart(tmp_path, monkeypatch):
    """evaluate_runs over a trained run and baselines, on the stand-in env (fast; the real env is in the e2e test)."""
    import _agents_fake_env as fake

    import bundlerl.env.vec_env
    import bundlerl.env.world
    import bundlerl.experiment.training as tr
    from bundlerl.experiment.evaluate import evaluate_runs

    monkeypatch.setattr(tr, "_make_venv", lambda cfg, n, seed: fake.fake_vec_env(n, seed=seed))
    monkeypatch.setattr(tr, "_eval_policy", lambda pol, cfg, n, seed: _stand_in_eval(fake, pol, n, seed))
    monkeypatch.setattr(bundlerl.env.vec_env, "BundleRecVecEnv", fake.FakeBundleVecEnv)
    monkeypatch.setattr(bundlerl.env.world, "build_world", lambda preset: fake.fake_world())
    run, twin = (tr.train(tr.TrainConfig(algo="dqn", preset="small", timesteps=32, num_envs=4, eval_freq=32,
                                         eval_episodes=4, final_episodes=0, progress=False, myopic=myopic,
                                         hyperparams={"learning_starts": 8, "batch_size": 8, "buffer_size": 100,
                                                      "network": {"hidden": 8, "context_dim": 4, "net_arch": [8]}}),
                          out=tmp_path / "runs" / str(myopic), log=lambda m: None).run_dir for myopic in (False, True))
    res = evaluate_runs([run, twin], baselines=["random", "relevance-greedy"], episodes=12, seed=3,
                        out=tmp_path / "ev", progress=False, log=lambda m: None)
    assert len(res["table"]) == 4 and list(res["table"])[2:] == ["random", "relevance-greedy"]
    for est in res["table"].values():
        assert est["return"].n == 12 and 1.0 <= est["bundle_size"].value <= 3.0
        assert 0.0 <= est["complement_share"].value <= 1.0 and 0.0 <= est["diversity"].value <= 2.0
    md = (tmp_path / "ev" / "results.md").read_text()
    assert md.count("\n| ") == 5 and "true-complement share" in md
    rows = [line.split(" | ")[0] for line in md.splitlines() if line.startswith("| ")]
    # the runs' rows say which one is the myopic control, then name the run's folder (with its parent when both
    # runs started in the same second and so have the same folder name: 'False/small__dqn__0__<time>')
    assert "dqn (seed 0): " in rows[1] and rows[1].endswith(run.name)
    assert "dqn myopic (seed 0): " in rows[2] and rows[2].endswith(twin.name)
    assert (tmp_path / "ev" / "results.png").read_bytes()[:8] == PNG_MAGIC
    js = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert js["random"]["return"]["n"] == 12
    with pytest.raises(ValueError, match="--preset"):
        evaluate_runs([], baselines=["random"], out=tmp_path / "x")


def _stand_in_eval(fake, policy, n, seed):
    import bundlerl.env.vec_env
    from bundlerl.evaluation.rollout import evaluate
    assert bundlerl.env.vec_env.BundleRecVecEnv is fake.FakeBundleVecEnv
    return evaluate(policy, "small", n_episodes=n, seed=seed, num_envs=n, progress=False)
