"""The recommender side shared by the env and serving: the FAISS item index, the complementarity model and
the bundle builder (K candidate bundles of 1..K_max items with features). Names load their modules lazily."""

from __future__ import annotations

from bundlerl.utils.lazy import lazy_exports

_EXPORTS = {
    "BundleBuilder": ".builder",
    "BuilderConfig": ".builder",
    "BuilderError": ".builder",
    "ItemIndex": ".index",
    "IndexConfig": ".index",
    "ComplementConfig": ".complementarity",
    "ComplementModel": ".complementarity",
    "CandidateSet": ".types",
    "CANDIDATE_FEATURES": ".features",
    "FeatureIndex": ".features",
}
__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
