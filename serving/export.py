"""``bundlerl export``: a trained run (or a hand-set baseline) and its world as a self-contained model folder.

Layout of ``MODEL_DIR`` (every file listed with its SHA-256 in ``manifest.json``, :mod:`bundlerl.serving.manifest`)::

    manifest.json         written last: format, created, source, versions, env config, observation spec, encoder,
                          policy, files
    catalog/              the observable catalogue (ids, titles, prices, categories, popularity, embeddings):
                          ``bundlerl.sim_data.io.save_catalog``'s folder of arrays (never the simulator's truth)
    complementarity.npz   the estimated complementarity model's tables and text factors (``ComplementModel.save``)
    completion.npz        the learned bundle completion the env's builder uses (``CompletionModel.save``; arrays + JSON)
    index.faiss(.json)    the FAISS item index and its sidecar (``bundlerl.candidates.index_file``)
    projection.npy        (d, P) float32: the observation's projection of embeddings
    policy.onnx           the policy (``bundlerl.agents.onnx_policy``); absent for a baseline, named in the manifest

The world is rebuilt from the run's own config (``build_world``: cached, so this is quick after training); the
policy is the run's ``best`` model by default.
"""

from __future__ import annotations

import datetime
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from bundlerl.serving.manifest import ModelFolderError, write_manifest

__all__ = ["export_model", "model_observation_spec"]


def model_observation_spec(config) -> dict[str, Any]:
    """The observation a model of EnvConfig ``config`` reads (``bundlerl.env.observation.observation_spec``)."""
    from bundlerl.candidates.features import CANDIDATE_FEATURES
    from bundlerl.env.observation import observation_spec

    return observation_spec(config.profile_dim, config.K, len(CANDIDATE_FEATURES))


def _prepare(out: Path, overwrite: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ModelFolderError(f"{out} exists and is not empty; pass another --out or --overwrite")
        if not (out / "manifest.json").is_file():
            raise ModelFolderError(f"{out} is not an exported model folder; refusing to overwrite it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def export_model(out: str | os.PathLike, *, run_dir: str | os.PathLike | None = None, which: str = "best",
                 baseline: str | None = None, preset="small", weights: str | os.PathLike | None = None,
                 overwrite: bool = False, progress: bool | None = None) -> Path:
    """Export a run's policy (``run_dir``, model ``which``) or an observable baseline (``baseline`` on world
    ``preset``, a preset name or EnvConfig) with its world to the folder ``out``; returns ``out``.

    ``baseline="tuned-linear"`` exports tuned-linear's weights as ``tuned_linear.json``: those of the file
    ``weights`` when given, else the world's cached fit (fitted now with the recorded budget when there is none).

    :raises ModelFolderError: both or neither of ``run_dir`` / ``baseline``, or ``out`` not empty (without
        ``overwrite``). Run-directory, world and policy errors propagate (all BundlerlError).
    """
    from bundlerl.agents.policy import check_name
    from bundlerl.agents.tuned_linear import OBSERVABLE_POLICIES, TUNED_LINEAR
    from bundlerl.encoders import SentenceEncoder
    from bundlerl.env.config import get_config
    from bundlerl.env.world import build_world
    from bundlerl.experiment.provenance import git_info, package_versions
    from bundlerl.sim_data.io import save_catalog

    if (run_dir is None) == (baseline is None):
        raise ModelFolderError("export needs exactly one source: a run directory, or --baseline NAME")
    source: dict[str, Any]
    if run_dir is not None:
        from bundlerl.experiment.run_dir import RunDir

        rd = RunDir.open(run_dir)
        mode = rd.config().get("train", {}).get("action_mode", "bundle")
        if mode != "bundle":
            raise ModelFolderError(f"{run_dir} was trained in {mode!r} action mode; serving shows one of K candidate "
                                   "bundles: export a run trained with --action-mode bundle")
        config = rd.env_config()
        model_path = rd.model_path(which)
        model = rd.load_model(which)
        source = {"kind": "run", "run_dir": str(Path(run_dir).resolve()), "model": which,
                  "model_file": model_path.name, "algo": rd.algo}
    else:
        check_name(baseline, OBSERVABLE_POLICIES, "baseline")
        if weights is not None and baseline != TUNED_LINEAR:
            raise ModelFolderError(f"--weights goes with --baseline {TUNED_LINEAR}, not {baseline}")
        config, model = get_config(preset), None
        source = {"kind": "baseline", "baseline": baseline, "preset": config.name}
    world = build_world(config, progress=progress)
    out = Path(out)
    _prepare(out, overwrite)
    save_catalog(world.observable_catalog, out / "catalog")
    world.comp_model.save(out / "complementarity.npz")
    if getattr(world, "completion", None) is not None:  # the env's builder completes bundles with it (issue 16)
        world.completion.save(out / "completion.npz")
    world.index.save(out / "index.faiss")
    with open(out / "projection.npy", "wb") as fh:
        np.save(fh, np.ascontiguousarray(world.projection, np.float32), allow_pickle=False)
    if model is not None:
        from bundlerl.agents.onnx_policy import export_onnx

        kind = export_onnx(model, out / "policy.onnx")
        policy = {"kind": "onnx", "file": "policy.onnx", "output": kind, "name": f"{rd.algo} ({which})"}
    elif baseline == TUNED_LINEAR:
        from bundlerl.agents.tuned_linear import TunedLinearPolicy

        if weights is not None:
            tuned = TunedLinearPolicy.load(weights)
        else:
            from bundlerl.evaluation.tuning import tuned_linear

            tuned = tuned_linear(config, log=lambda m: None)
        tuned.save(out / "tuned_linear.json")
        policy = {"kind": "tuned-linear", "file": "tuned_linear.json", "name": TUNED_LINEAR}
    else:
        policy = {"kind": "baseline", "name": baseline}
    enc = SentenceEncoder()
    files = [str(p.relative_to(out)) for p in sorted(out.rglob("*")) if p.is_file()]
    manifest = {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "source": source,
        "versions": {**package_versions(), "git": git_info()},
        "env_config": config.to_dict(),
        "observation": model_observation_spec(config),
        "encoder": {"name": enc.name, "identity": enc.identity, "dim": int(world.observable_catalog.embeddings.shape[1])},
        "policy": policy,
        "mean_price": float(world.mean_price),
    }
    write_manifest(out, manifest, files)
    return out
