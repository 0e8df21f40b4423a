"""The learned completion's hyper-parameters (:class:`CompletionConfig`) and its error class."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from bundlerl.utils.config_io import from_mapping
from bundlerl.utils.errors import BundlerlError

__all__ = ["CompletionConfig", "CompletionError"]


class CompletionError(BundlerlError):
    """Bad input to the learned completion (a config field, shapes, a model file); the message names it and the fix."""


@dataclass(frozen=True)
class CompletionConfig:
    """How candidates are generated and how the ranking weights are fitted (``bundlerl.candidates.learned``)."""

    n_cooccurrence: int = 100
    """Co-occurrence partners of a seed taken as candidates (most co-purchased first), from basket-level and from
    user-level co-occurrence each. >= 0."""
    n_text: int = 100
    """Nearest items by text cosine taken as candidates. >= 1 (text keeps cold seeds rankable)."""
    n_popular: int = 50
    """Most popular items taken as candidates. >= 0."""
    n_complements: int = 50
    """Head of the complementarity model's top list taken as candidates (when a model is given). >= 0."""
    alpha: float = 1.0
    """Prior strength of the shrunk PMI ``log((n_ij + alpha) / (E_ij + alpha))`` (pseudo expected counts). > 0."""
    partner_alpha: float = 1.0
    """Prior strength (pseudo partner slots) shrinking ``log_partner_share`` toward the candidate's share of all
    partner slots (``bundlerl.candidates.learned.signals``). > 0."""
    category_alpha: float = 5.0
    """Prior strength shrinking the category lift toward 1. > 0."""
    max_user_items: int = 300
    """Distinct items kept per user for user-level co-occurrence (0 = all; as ``ComplementConfig.max_user_items``)."""
    svd_rank: int = 32
    """Rank of the PPMI embeddings (0 = no ``ppmi_cos`` signal). >= 0."""
    validation_fraction: float = 0.2
    """Share of the given bundles / baskets held out to fit the weights on (signals from the rest). In (0, 0.5]."""
    max_queries: int = 6000
    """Validation queries (seed item, its bundle's other items) sampled to fit on. >= 10."""
    max_query_items: int = 10
    """Validation bundles / baskets of more than this many items give no fitting queries (0 = no limit): the
    completion completes bundles of a few items (the env shows bundles of <= K_max items; Instacart's held-out
    orders hold 2-6), and queries from 40-item weekly shops taught the weights the wrong thing (Instacart: Recall@10
    0.147 fitted on every basket, 0.170 on baskets of <= 6 items; benchmarks/HISTORY.md). >= 0."""
    min_queries: int = 40
    """A regime (seen / unseen seed) with fewer validation queries holding a target among its candidates keeps its
    baseline weights (text cosine / co-occurrence). >= 2."""
    c_grid: tuple = (0.1, 1.0, 10.0, 100.0, 1000.0)
    """Inverse L2 strengths tried for the ranking fit; the best on the validation queries' other half is kept."""
    top_k: int = 50
    """Precomputed completions per item (the builder's top lists). >= 1."""
    top_list_scale: float = 0.5
    """The top lists' candidates: ``n_cooccurrence``, ``n_text`` and ``n_popular`` times this (in (0, 1]); the
    top lists are computed for every item, so their candidate count sets most of the fit's cost."""
    top_list_text_pool: int = 5000
    """The top lists' text neighbours are searched among the this-many most popular items (every item when the
    catalogue is no larger): an exact search of every item against 50k items costs ~1e12 flops. >= 1."""

    def __post_init__(self) -> None:
        ints = {"n_cooccurrence": 0, "n_text": 1, "n_popular": 0, "n_complements": 0, "svd_rank": 0, "max_user_items": 0,
                "max_queries": 10, "min_queries": 2, "max_query_items": 0,
                "top_k": 1, "top_list_text_pool": 1}
        for name, lo in ints.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise CompletionError(f"CompletionConfig.{name}={v!r}; it must be an int >= {lo}")
        if not (isinstance(self.top_list_scale, (int, float)) and 0.0 < self.top_list_scale <= 1.0):
            raise CompletionError(f"CompletionConfig.top_list_scale={self.top_list_scale!r}; it must be in (0, 1]")
        for name in ("alpha", "category_alpha", "partner_alpha"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and np.isfinite(v) and v > 0):
                raise CompletionError(f"CompletionConfig.{name}={v!r}; it must be a finite number > 0")
        if not (isinstance(self.validation_fraction, (int, float)) and 0.0 < self.validation_fraction <= 0.5):
            raise CompletionError(f"CompletionConfig.validation_fraction={self.validation_fraction!r}; it must be in (0, 0.5]")
        grid = tuple(self.c_grid)
        if not grid or not all(isinstance(c, (int, float)) and np.isfinite(c) and c > 0 for c in grid):
            raise CompletionError(f"CompletionConfig.c_grid={self.c_grid!r}; give one or more finite numbers > 0")
        object.__setattr__(self, "c_grid", tuple(float(c) for c in grid))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["c_grid"] = list(self.c_grid)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "CompletionConfig":
        return cls(**from_mapping(cls, d, "CompletionConfig", CompletionError, convert={"c_grid": tuple}))
