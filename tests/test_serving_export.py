"""bundlerl export and the exported model folder: ONNX policy vs SB3, manifest, hashes verified, tampering refused,
baselines, the command line."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from _cli import run_cli
from _serving import env_observations, small_model, small_run_dir

from bundlerl.serving.manifest import ModelFolderError


@pytest.fixture(scope="module")
def observations():
    return env_observations()


@pytest.mark.parametrize("algo", ["ppo", "maskable_ppo", "dqn"])
def test_onnx_policy_matches_sb3_on_env_observations(tmp_path, observations, algo):
    from bundlerl.agents.onnx_policy import OnnxPolicy, export_onnx
    from bundlerl.agents.sb3 import SB3Policy

    model = small_model(algo)
    kind = export_onnx(model, tmp_path / "p.onnx")
    assert kind == ("q" if algo == "dqn" else "logits")
    onnx, sb3 = OnnxPolicy(tmp_path / "p.onnx", kind), SB3Policy(model)
    p_onnx, p_sb3 = onnx.action_probabilities(observations), sb3.action_probabilities(observations)
    assert p_onnx.shape == p_sb3.shape == observations["action_mask"].shape
    np.testing.assert_allclose(p_onnx, p_sb3, atol=1e-5)
    # the same actions wherever the most probable one is clear (random init: near-ties are possible)
    top2 = np.sort(p_sb3, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 1e-4
    assert clear.sum() >= len(clear) // 2
    np.testing.assert_array_equal(onnx.act(observations)[0][clear], sb3.act(observations)[0][clear])
    # masked candidates never get mass
    assert (p_onnx[observations["action_mask"] == 0] == 0).all()


def test_exported_folder_loads_and_its_policy_is_the_runs(tmp_path, served_model, observations):
    from bundlerl.experiment.run_dir import RunDir
    from bundlerl.serving.artifacts import load_artifacts

    m = json.loads((served_model / "manifest.json").read_text())
    assert m["format"] == "bundlerl.model" and m["format_version"] == 1
    assert m["source"]["kind"] == "run" and m["source"]["model"] == "best"
    assert m["policy"] == {"kind": "onnx", "file": "policy.onnx", "output": "logits", "name": "ppo (best)"}
    assert {"torch", "numpy", "faiss"} <= set(m["versions"]) and m["encoder"]["name"] == "all-MiniLM-L6-v2"
    assert m["observation"]["K"] == 8 and m["env_config"]["name"] == "small"
    for f in ("policy.onnx", "complementarity.npz", "index.faiss", "index.faiss.json", "projection.npy",
              "catalog/manifest.json"):
        assert len(m["files"][f]["sha256"]) == 64
    art = load_artifacts(served_model)
    assert art.catalog.complement_graph is None  # never the simulator's truth
    run = RunDir.open(m["source"]["run_dir"])
    np.testing.assert_allclose(art.policy.action_probabilities(observations),
                               run.policy().action_probabilities(observations), atol=1e-5)


@pytest.mark.parametrize("victim", ["policy.onnx", "catalog/arrays.npz", "index.faiss", "complementarity.npz",
                                    "projection.npy"])
def test_a_tampered_file_is_refused_before_it_is_read(tmp_path, served_model, victim):
    from bundlerl.serving.artifacts import load_artifacts

    folder = tmp_path / "m"
    shutil.copytree(served_model, folder)
    f = folder / victim
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    f.write_bytes(bytes(data))
    with pytest.raises(ModelFolderError, match=rf"{victim}: its bytes differ from the SHA-256"):
        load_artifacts(folder)
    f.unlink()
    with pytest.raises(ModelFolderError, match="is missing"):
        load_artifacts(folder)


def test_an_edited_manifest_or_another_format_is_refused(tmp_path, served_model):
    from bundlerl.serving.artifacts import load_artifacts

    folder = tmp_path / "m"
    shutil.copytree(served_model, folder)
    m = json.loads((folder / "manifest.json").read_text())
    m["format_version"] = 99
    (folder / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ModelFolderError, match="format version 99"):
        load_artifacts(folder)
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(ModelFolderError, match="not valid JSON"):
        load_artifacts(folder)
    with pytest.raises(ModelFolderError, match="no manifest.json"):
        load_artifacts(tmp_path)


def test_baseline_export_serves_the_baseline(tmp_path, observations):
    from bundlerl.agents.baselines import make_baseline
    from bundlerl.serving.artifacts import load_artifacts
    from bundlerl.serving.export import export_model

    out = export_model(tmp_path / "cg", baseline="complement-greedy", preset="small", progress=False)
    m = json.loads((out / "manifest.json").read_text())
    assert m["policy"] == {"kind": "baseline", "name": "complement-greedy"} and not (out / "policy.onnx").exists()
    art = load_artifacts(out)
    np.testing.assert_array_equal(art.policy.action_probabilities(observations),
                                  make_baseline("complement-greedy").action_probabilities(observations))
    with pytest.raises(ModelFolderError, match="not empty"):
        export_model(out, baseline="random", preset="small")


def test_tuned_linear_exports_its_weights_as_json(tmp_path, observations):
    from bundlerl.agents.tuned_linear import TunedLinearPolicy, feature_names
    from bundlerl.serving.artifacts import load_artifacts
    from bundlerl.serving.export import export_model

    w = np.random.default_rng(0).normal(size=len(feature_names()))
    TunedLinearPolicy(w).save(tmp_path / "w.json")
    out = export_model(tmp_path / "tl", baseline="tuned-linear", weights=tmp_path / "w.json", progress=False)
    art = load_artifacts(out)
    assert art.manifest["policy"]["kind"] == "tuned-linear" and "tuned_linear.json" in art.manifest["files"]
    np.testing.assert_array_equal(art.policy.action_probabilities(observations),
                                  TunedLinearPolicy(w).action_probabilities(observations))
    with pytest.raises(ModelFolderError, match="--weights goes with"):
        export_model(tmp_path / "x", baseline="random", weights=tmp_path / "w.json")


@pytest.mark.slow
def test_cli_export_and_its_errors(tmp_path):
    run = small_run_dir(tmp_path / "runs", "dqn")
    r = run_cli("export", str(run), "--out", str(tmp_path / "m"), "--no-progress", timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "m" / "manifest.json").read_text())["policy"]["output"] == "q"
    r = run_cli("export", str(tmp_path / "nope"), "--out", str(tmp_path / "m2"))
    assert r.returncode == 2 and "RUN_DIR" in r.stderr and "no such folder" in r.stderr
    r = run_cli("export", "--out", str(tmp_path / "m3"))
    assert r.returncode == 2 and "RUN_DIR or --baseline" in r.stderr
    r = run_cli("export", str(run), "--out", str(tmp_path / "m"))
    assert r.returncode == 2 and "not empty" in r.stderr
