"""The recommender side shared by the env and serving: the FAISS item index, the complementarity model and
the bundle builder (K candidate bundles of 1..K_max items with features). Names load their modules lazily.

Modules (each owns one thing): ``types`` (the CandidateSet contract), ``features`` (the ten candidate
features: names, columns, formulas), ``builder`` (BundleBuilder) with ``builder_config`` (its config,
errors, input checks), ``kernels`` (its compiled loops) and ``completion`` (single-bundle completion);
``index`` (ItemIndex over FAISS) with ``index_config`` and ``index_file`` (its saved files); ``projection``
(PCA projections, centred or not); ``ragged`` (per-row item sets); ``complementarity`` (the estimated
complementarity model, a package) with ``cooccurrence``, ``text_comp`` and ``comp_eval`` (its counts, text
model and evaluation).
"""

from __future__ import annotations

from bundlerl.utils.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".builder": "BundleBuilder",
    ".builder_config": "BuilderConfig BuilderError",
    ".index": "ItemIndex",
    ".index_config": "IndexConfig",
    ".complementarity": "ComplementConfig ComplementModel",
    ".types": "CandidateSet",
    ".features": "CANDIDATE_FEATURES FeatureIndex",
})
