"""The bundle builder's configuration (:class:`BuilderConfig`), its error class, what it needs from a
complementarity model (:class:`ComplementModelLike`) and its check of user vectors (:func:`check_rows`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from bundlerl.candidates.features import discount_for_sizes
from bundlerl.candidates.index import IndexError_, check_vectors
from bundlerl.utils.args import shown
from bundlerl.utils.config_io import check_field_types
from bundlerl.utils.errors import BundlerlError

__all__ = ["BuilderConfig", "BuilderError", "ComplementModelLike", "check_rows"]


class BuilderError(BundlerlError):
    """Bad builder configuration or input; the message says what is wrong and how to fix it."""


class ComplementModelLike(Protocol):
    """What the builder needs from a complementarity model (``bundlerl.candidates.complementarity``)."""

    top_items: np.ndarray
    """(n, C_top) int32 top complements of each item, best first, -1 padded."""
    top_scores: np.ndarray
    """(n, C_top) float32 in [0, 1], their scores comp(i -> top_items[i, c])."""

    def score(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """(m,) float32 in [0, 1]: directed complementarity i -> j."""


@dataclass(frozen=True)
class BuilderConfig:
    """How many candidate bundles to build and how to rank them."""

    n_candidates: int = 32
    """K: candidate bundles per user (fixed; unused slots are masked). >= 1."""
    max_bundle_size: int = 3
    """K_max: largest bundle. >= 1."""
    pool_size: int = 64
    """Nearest items fetched from the index per user; anchors are taken from it. >= n_anchors."""
    n_anchors: int = 16
    """Anchors per user, each completed into bundles of sizes 1..K_max. >= 1."""
    n_complements: int = 10
    """C: complements per anchor considered for completion (head of the model's top list). >= 1."""
    n_cross_sell_seeds: int = 4
    """Most recently bought items whose complements form cross-sell bundles. >= 0.
    Constraint: (n_anchors + n_cross_sell_seeds) * max_bundle_size <= 64 (MMR uses 64-bit item sets)."""
    cross_sell_share: float = 0.25
    """Share of the K slots given first to cross-sell bundles when a user has any. In [0, 1]."""
    history_weight: float = 0.3
    """Weight a of the history vector in the query (1 - a for the profile). In [0, 1]."""
    w_rel: float = 1.0
    """Weight of relevance (cosine to the query). >= 0."""
    w_comp: float = 1.0
    """Weight of estimated complementarity. >= 0."""
    w_sub: float = 1.0
    """Weight of the substitute penalty. >= 0."""
    mmr_lambda: float = 0.7
    """MMR trade-off: 1 = pure score, 0 = pure diversity. In [0, 1]."""
    rel_dim: int | None = 32
    """PCA dimension used for relevance while completing bundles (speed); None = exact. >= 1."""
    price_cap: float | None = None
    """Global cap on a bundle's discounted price (currency units); combined with the per-call cap by min. > 0 or None."""
    discounts: dict = field(default_factory=lambda: {2: 0.10, 3: 0.15})
    """Bundle discount by size: key k applies to sizes >= k up to the next key (default: 10% for 2, 15% for 3+).
    Keys >= 2, values in [0, 1)."""

    def __post_init__(self) -> None:
        check_field_types(self, BuilderError)  # None / a wrong type named, before the range checks
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise BuilderError(f"BuilderConfig: {msg}")

        need(self.n_candidates >= 1, f"n_candidates={self.n_candidates}; use >= 1")
        need(self.max_bundle_size >= 1, f"max_bundle_size={self.max_bundle_size}; use >= 1")
        need(self.n_anchors >= 1, f"n_anchors={self.n_anchors}; use >= 1")
        need(self.pool_size >= self.n_anchors, f"pool_size={self.pool_size} < n_anchors={self.n_anchors}; raise pool_size")
        need(self.n_complements >= 1, f"n_complements={self.n_complements}; use >= 1")
        need(self.n_cross_sell_seeds >= 0, f"n_cross_sell_seeds={self.n_cross_sell_seeds}; use >= 0")
        need(
            (self.n_anchors + self.n_cross_sell_seeds) * self.max_bundle_size <= 64,
            f"(n_anchors + n_cross_sell_seeds) * max_bundle_size = "
            f"{(self.n_anchors + self.n_cross_sell_seeds) * self.max_bundle_size} > 64; lower n_anchors or n_cross_sell_seeds",
        )
        for name in ("cross_sell_share", "history_weight", "mmr_lambda"):
            v = getattr(self, name)
            need(0.0 <= v <= 1.0, f"{name}={v}; use a value in [0, 1]")
        for name in ("w_rel", "w_comp", "w_sub"):
            v = getattr(self, name)
            need(np.isfinite(v) and v >= 0, f"{name}={v}; use a finite weight >= 0")
        need(self.rel_dim is None or self.rel_dim >= 1, f"rel_dim={self.rel_dim}; use >= 1 or None")
        need(
            self.price_cap is None or (np.isfinite(self.price_cap) and self.price_cap > 0),
            f"price_cap={self.price_cap}; use a positive number or None",
        )
        need(isinstance(self.discounts, dict), f"discounts={shown(self.discounts)}; give a mapping bundle size -> "
                                               "discount fraction, e.g. {2: 0.1, 3: 0.15}")
        for k, v in dict(self.discounts).items():
            need(isinstance(k, (int, np.integer)) and isinstance(v, (int, float, np.number)) and not isinstance(v, bool),
                 f"discounts[{k!r}]={v!r}; keys are bundle sizes (int), values discount fractions (float)")
            need(int(k) == k and k >= 2, f"discounts key {k!r}; keys are bundle sizes >= 2")
            need(0.0 <= v < 1.0, f"discounts[{k}]={v}; use a fraction in [0, 1)")

    def discount_table(self) -> np.ndarray:
        """(K_max + 1,) float64: discount fraction for each size 0..K_max (0 for sizes 0 and 1)."""
        return discount_for_sizes(np.arange(self.max_bundle_size + 1), self.discounts)


def check_rows(x, N: int | None, d: int, name: str, allow_zero: bool = False) -> np.ndarray:
    """:func:`bundlerl.candidates.index.check_vectors` plus a row count, raising :class:`BuilderError`."""
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != d or (N is not None and x.shape[0] != N):
        want = f"({N if N is not None else 'N'}, {d})"
        raise BuilderError(f"{name} has shape {x.shape}; expected {want} float32 unit rows")
    try:
        return check_vectors(x, d, name, allow_zero)
    except IndexError_ as err:
        hint = " (a zero row means 'no history')" if allow_zero else ""
        raise BuilderError(f"{err}{hint}") from None
