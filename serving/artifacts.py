"""An exported model folder loaded for serving: :class:`ModelArtifacts` and :func:`load_artifacts`.

Loading checks the manifest first (every file's SHA-256, :func:`bundlerl.serving.manifest.read_manifest`), then the
observation version and the text encoder against this installation, then reads each part with its own loader
(none unpickles): the observable catalogue, the complementarity model, the FAISS index, the projection and the
policy (ONNX, or a baseline by name). The candidate builder is rebuilt from them with the world's BuilderConfig,
exactly as ``bundlerl.env.world.build_world`` builds it. Cold-start items of the folder's item store
(:mod:`bundlerl.serving.item_store`) are appended by :meth:`ModelArtifacts.with_items`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bundlerl.serving.manifest import ModelFolderError, read_manifest

__all__ = ["ModelArtifacts", "load_artifacts", "default_profile"]


def default_profile(embeddings: np.ndarray, popularity: np.ndarray) -> np.ndarray:
    """(d,) float32 unit vector: the popularity-weighted mean item embedding, the profile of a user who told us
    nothing (no text, no events): retrieval then starts from what most shoppers buy. Uniform weights when
    popularity is all zero."""
    w = np.maximum(np.asarray(popularity, np.float64), 0.0)
    w = w / w.sum() if w.sum() > 0 else np.full(len(w), 1.0 / len(w))
    v = (w[:, None] * embeddings).sum(axis=0)
    return (v / max(np.linalg.norm(v), 1e-12)).astype(np.float32)


@dataclass
class ModelArtifacts:
    """The parts of an exported model, as the recommender uses them (recommender side only).

    ``catalog`` (observable Catalog with embeddings (n, d)), ``comp`` (ComplementModel), ``index`` (ItemIndex),
    ``builder`` (BundleBuilder), ``projection`` (d, P), ``item_proj`` (n, P), ``emb_z`` / ``proj_z`` (n + 1, ·)
    zero-padded tables, ``config`` (EnvConfig), ``policy`` (a ``bundlerl.agents.policy.Policy``), ``manifest``.
    """

    folder: Path
    manifest: dict[str, Any]
    config: Any
    catalog: Any
    comp: Any
    index: Any
    builder: Any
    projection: np.ndarray
    policy: Any
    mean_price: float
    n_base_items: int
    item_proj: np.ndarray = field(init=False)
    emb_z: np.ndarray = field(init=False)
    proj_z: np.ndarray = field(init=False)
    position: dict[str, int] = field(init=False)
    """item id -> catalogue position."""
    profile0: np.ndarray = field(init=False)
    """(d,) the profile of a user with no text (:func:`default_profile`)."""

    def __post_init__(self):
        from bundlerl.utils.arrays import zero_padded

        emb = self.catalog.embeddings
        self.item_proj = np.ascontiguousarray(emb @ self.projection, dtype=np.float32)
        self.emb_z = zero_padded(emb)
        self.proj_z = zero_padded(self.item_proj)
        self.position = {str(k): i for i, k in enumerate(self.catalog.item_ids.tolist())}
        self.profile0 = default_profile(emb[: self.n_base_items], self.catalog.popularity[: self.n_base_items])

    @property
    def version(self) -> str:
        """The model version shown to clients: the first 12 hex of the manifest's policy (or catalogue) hash."""
        files = self.manifest["files"]
        key = self.manifest["policy"].get("file") or "catalog/manifest.json"
        return f"{self.manifest['source'].get('kind')}-{files[key]['sha256'][:12]}"

    def with_items(self, items) -> "ModelArtifacts":
        """A copy whose catalogue, index and builder also hold the cold-start ``items`` (an ``ItemBatch`` of
        :mod:`bundlerl.serving.item_store`); ``self`` when there are none."""
        if items is None or len(items) == 0:
            return self
        from bundlerl.candidates.builder import BundleBuilder
        from bundlerl.serving.item_store import ProxyComplements, extend_parts

        catalog, proxy, index = extend_parts(self, items)

        def proxied(model):
            return ProxyComplements(model.base if isinstance(model, ProxyComplements) else model, proxy)

        # the builder keeps completing with its own model (the learned completion when there is one), proxied
        comp = proxied(self.comp)
        builder = BundleBuilder(catalog, index, proxied(self.builder.comp), self.config.builder_config())
        return ModelArtifacts(self.folder, self.manifest, self.config, catalog, comp, index, builder,
                              self.projection, self.policy, self.mean_price, self.n_base_items)


def _policy(folder: Path, spec: dict[str, Any]):
    from bundlerl.agents.baselines import make_baseline

    kind = spec.get("kind")
    if kind == "onnx":
        from bundlerl.agents.onnx_policy import OnnxPolicy

        return OnnxPolicy(folder / spec["file"], spec["output"], name=spec.get("name", "onnx"))
    if kind == "baseline":
        return make_baseline(spec["name"], np.random.default_rng(0))
    if kind == "tuned-linear":
        from bundlerl.agents.tuned_linear import TunedLinearPolicy

        return TunedLinearPolicy.load(folder / spec["file"])
    raise ModelFolderError(f"{folder}/manifest.json: unknown policy kind {kind!r}; export the model again")


def load_artifacts(folder: str | os.PathLike, *, check_encoder: bool = True) -> ModelArtifacts:
    """The model folder ``folder`` loaded (see the module docstring).

    :param check_encoder: compare the packaged text encoder's identity with the one the model was exported with.
    :raises ModelFolderError: a damaged, tampered or incompatible folder (the message names the file or field);
        the parts' own loader errors (CatalogError, ComplementError, IndexError_, PolicyError) name their file.
    """
    from bundlerl.candidates.builder import BundleBuilder
    from bundlerl.candidates.complementarity.model import ComplementModel
    from bundlerl.candidates.index import ItemIndex
    from bundlerl.env.config import EnvConfig
    from bundlerl.serving.export import model_observation_spec
    from bundlerl.sim_data.io import load_catalog

    folder = Path(folder)
    manifest = read_manifest(folder)
    try:
        spec = manifest["observation"]
        config = EnvConfig.from_dict(manifest["env_config"])
        encoder = manifest["encoder"]
        policy_spec = manifest["policy"]
        mean_price = float(manifest["mean_price"])
    except (KeyError, TypeError, ValueError) as err:
        raise ModelFolderError(f"{folder}/manifest.json: a field is missing or invalid ({err}); export the model "
                               "again") from None
    here = model_observation_spec(config)
    if spec != here:
        raise ModelFolderError(f"{folder}: the model reads observations of spec {spec}, but this bundlerl builds "
                               f"{here} for its world; export it again with this version")
    if check_encoder:
        from bundlerl.encoders import SentenceEncoder

        here = SentenceEncoder(encoder["name"]).identity
        if here != encoder["identity"]:
            raise ModelFolderError(f"{folder}: exported with text encoder {encoder['identity']}, but this "
                                   f"installation has {here}; install the encoder it was exported with")
    catalog = load_catalog(folder / "catalog")
    comp = ComplementModel.load(folder / "complementarity.npz")
    index = ItemIndex.load(folder / "index.faiss")
    with open(folder / "projection.npy", "rb") as fh:
        projection = np.load(fh, allow_pickle=False)
    if catalog.embeddings is None or catalog.embeddings.shape[1] != projection.shape[0]:
        raise ModelFolderError(f"{folder}: the catalogue's embeddings and projection.npy disagree; export again")
    builder_model = comp
    if (folder / "completion.npz").is_file():  # as the env: the builder completes with the learned completion
        from bundlerl.candidates.learned import CompletionModel

        builder_model = CompletionModel.load(folder / "completion.npz", catalog.embeddings)
    builder = BundleBuilder(catalog, index, builder_model, config.builder_config())
    policy = _policy(folder, policy_spec)
    return ModelArtifacts(folder, manifest, config, catalog, comp, index, builder, projection, policy, mean_price,
                          catalog.n_items)
