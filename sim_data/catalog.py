"""The catalogue: items, their categories, prices, texts and (optionally) embeddings.

A :class:`Catalog` is an immutable bundle of parallel arrays, one row per item. It is the
single structure that the encoders, candidate generation, the simulator and serving share.

Two parts are *simulator truth* and must never be read by the recommender side
(policies, non-oracle baselines, candidate generation, serving):

- ``complement_graph``: the true directed category complement matrix ``G`` (C, C).

Everything else is observable: ids, texts, categories, departments, brands, prices,
popularity, embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

from bundlerl.utils.args import need_array, need_sequence
from bundlerl.utils.errors import BundlerlError


class CatalogError(BundlerlError):
    """A catalogue violates its contract; the message says which field and what to do."""


class UnknownItemError(CatalogError, KeyError):
    """An item id that is not in the catalogue (also a ``KeyError``, as a lookup miss)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def _as_str_array(values: Sequence[str], name: str) -> np.ndarray:
    arr = np.asarray(need_sequence(values, name, "Catalog", "a list of str", error=CatalogError), dtype=object)
    for i, v in enumerate(arr):
        if not isinstance(v, str):
            raise CatalogError(f"{name}[{i}] is {type(v).__name__} {v!r}; every {name} must be a string")
    return arr


@dataclass(frozen=True)
class Catalog:
    """Items of a store as parallel arrays; ``n`` items, ``C`` categories, ``D`` departments.

    Validated on construction: a bad field raises :class:`CatalogError` naming the field,
    the first offending row and the fix.
    """

    item_ids: np.ndarray
    """(n,) str, unique, non-empty. External ids (e.g. Instacart ``product_id`` as text)."""
    titles: np.ndarray
    """(n,) str, non-empty after stripping. Short product titles."""
    descriptions: np.ndarray
    """(n,) str, may be empty. Longer product text."""
    category: np.ndarray
    """(n,) int32 in [0, C). Index into ``category_names``."""
    category_names: np.ndarray
    """(C,) str, unique. Category names (Instacart: aisle names)."""
    category_department: np.ndarray
    """(C,) int32 in [0, D). Department of each category."""
    department_names: np.ndarray
    """(D,) str. Department names."""
    brand: np.ndarray
    """(n,) str; empty string when unknown."""
    price: np.ndarray
    """(n,) float32, finite and > 0, in the catalogue's currency unit."""
    popularity: np.ndarray
    """(n,) float32, finite and >= 0. Relative popularity (e.g. order counts); larger = more popular."""
    embeddings: np.ndarray | None = None
    """(n, d) float32 unit-norm rows, or None until encoded."""
    complement_graph: np.ndarray | None = None
    """SIMULATOR TRUTH. (C, C) float32 in [0, 1]; G[a, b] = how much owning an `a` makes a `b`
    more wanted. None for catalogues whose true graph is unknown (real data)."""
    price_imputed: bool = False
    """True when prices were not in the source data and were filled in (documented by the loader)."""
    name: str = "catalog"
    """Human-readable name, recorded in manifests and run directories."""
    meta: dict = field(default_factory=dict)
    """JSON-serialisable provenance (generator config, source files, seed)."""

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 - frozen dataclass normalisation
        set_("item_ids", _as_str_array(self.item_ids, "item_ids"))
        set_("titles", _as_str_array(self.titles, "titles"))
        set_("descriptions", _as_str_array(self.descriptions, "descriptions"))
        set_("brand", _as_str_array(self.brand, "brand"))
        set_("category_names", _as_str_array(self.category_names, "category_names"))
        set_("department_names", _as_str_array(self.department_names, "department_names"))
        for name, dtype, ndim in (("category", np.int32, 1), ("category_department", np.int32, 1),
                                  ("price", np.float32, 1), ("popularity", np.float32, 1),
                                  ("embeddings", np.float32, 2), ("complement_graph", np.float32, 2)):
            arr = need_array(getattr(self, name), name, "Catalog", dtype, ndim=ndim,
                             optional=name in ("embeddings", "complement_graph"), error=CatalogError)
            set_(name, None if arr is None else np.ascontiguousarray(arr))
        self.validate()

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise :class:`CatalogError` on the first violated contract."""
        n = len(self.item_ids)
        if n == 0:
            raise CatalogError("catalogue is empty; give at least one item")
        for name in ("titles", "descriptions", "brand", "category", "price", "popularity"):
            got = len(getattr(self, name))
            if got != n:
                raise CatalogError(f"{name} has {got} rows but item_ids has {n}; all item fields must be parallel")
        ids, counts = np.unique(self.item_ids, return_counts=True)
        if (counts > 1).any():
            dup = ids[counts > 1][0]
            rows = np.flatnonzero(self.item_ids == dup)[:3].tolist()
            raise CatalogError(f"duplicate item id {dup!r} at rows {rows}; item ids must be unique")
        empty = [i for i, t in enumerate(self.item_ids) if not t.strip()]
        if empty:
            raise CatalogError(f"item_ids[{empty[0]}] is empty; every item needs an id")
        empty = [i for i, t in enumerate(self.titles) if not t.strip()]
        if empty:
            raise CatalogError(
                f"titles[{empty[0]}] (item {self.item_ids[empty[0]]!r}) is empty; every item needs a title to embed"
            )
        C = len(self.category_names)
        if C == 0:
            raise CatalogError("category_names is empty; give at least one category")
        if len(set(self.category_names.tolist())) != C:
            raise CatalogError("category_names has duplicates; category names must be unique")
        bad = np.flatnonzero((self.category < 0) | (self.category >= C))
        if bad.size:
            raise CatalogError(
                f"category[{bad[0]}] = {self.category[bad[0]]} is outside [0, {C}); use an index into category_names"
            )
        if len(self.category_department) != C:
            raise CatalogError(
                f"category_department has {len(self.category_department)} entries for {C} categories; give one per category"
            )
        D = len(self.department_names)
        bad = np.flatnonzero((self.category_department < 0) | (self.category_department >= D))
        if bad.size:
            raise CatalogError(f"category_department[{bad[0]}] is outside [0, {D}); use an index into department_names")
        bad = np.flatnonzero(~np.isfinite(self.price) | (self.price <= 0))
        if bad.size:
            i = bad[0]
            raise CatalogError(
                f"price[{i}] (item {self.item_ids[i]!r}) = {self.price[i]}; prices must be finite and > 0"
            )
        bad = np.flatnonzero(~np.isfinite(self.popularity) | (self.popularity < 0))
        if bad.size:
            raise CatalogError(f"popularity[{bad[0]}] = {self.popularity[bad[0]]}; popularity must be finite and >= 0")
        if self.embeddings is not None:
            e = self.embeddings
            if e.ndim != 2 or e.shape[0] != n:
                raise CatalogError(f"embeddings have shape {e.shape}; expected ({n}, d), one row per item")
            if not np.isfinite(e).all():
                raise CatalogError("embeddings contain NaN or inf; re-encode the catalogue")
            norms = np.linalg.norm(e, axis=1)
            if np.abs(norms - 1).max() > 1e-3:
                i = int(np.argmax(np.abs(norms - 1)))
                raise CatalogError(f"embeddings[{i}] has norm {norms[i]:.4f}; rows must be unit-norm")
        if self.complement_graph is not None:
            g = self.complement_graph
            if g.shape != (C, C):
                raise CatalogError(f"complement_graph has shape {g.shape}; expected ({C}, {C})")
            if not np.isfinite(g).all() or (g < 0).any() or (g > 1).any():
                raise CatalogError("complement_graph must be finite and in [0, 1]")

    def __repr__(self) -> str:
        """A summary (``print(catalog)`` should read at a glance, not dump arrays)."""
        p = np.asarray(self.price, dtype=np.float64)
        parts = [f"{self.n_items:,} items", f"{self.n_categories} categories", f"{len(self.department_names)} departments",
                 f"price {p.min():.2f}-{p.max():.2f} (median {np.median(p):.2f}{', imputed' if self.price_imputed else ''})"
                 if p.size else "no prices",
                 f"embeddings {self.embeddings.shape[0]}x{self.embeddings.shape[1]}" if self.embeddings is not None
                 else "not encoded",
                 "true complement graph" if self.complement_graph is not None else "no complement graph"]
        return f"Catalog({self.name!r}: {', '.join(parts)})"

    # ------------------------------------------------------------------ derived views
    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_categories(self) -> int:
        return len(self.category_names)

    @property
    def dim(self) -> int | None:
        """Embedding dimension, or None if not encoded."""
        return None if self.embeddings is None else int(self.embeddings.shape[1])

    def item_texts(self) -> list[str]:
        """The text that is embedded per item: ``"title. description"`` (title alone if no description)."""
        return [f"{t}. {d}" if d.strip() else t for t, d in zip(self.titles.tolist(), self.descriptions.tolist())]

    def category_mean_price(self) -> np.ndarray:
        """(C,) float32 mean price per category (p̄_c in SIMULATOR.md); categories with no items get the global mean."""
        C = self.n_categories
        sums = np.bincount(self.category, weights=self.price, minlength=C)
        counts = np.bincount(self.category, minlength=C)
        out = np.full(C, float(self.price.mean()), dtype=np.float64)
        has = counts > 0
        out[has] = sums[has] / counts[has]
        return out.astype(np.float32)

    def price_tier(self, n_tiers: int = 3) -> np.ndarray:
        """(n,) int8 price tier within the item's category: 0 = cheapest third ... n_tiers-1 = dearest."""
        rel = np.log(self.price / self.category_mean_price()[self.category])
        tier = np.zeros(self.n_items, dtype=np.int8)
        for c in np.unique(self.category):
            idx = np.flatnonzero(self.category == c)
            if idx.size < n_tiers:
                continue
            ranks = np.argsort(np.argsort(rel[idx], kind="stable"), kind="stable")
            tier[idx] = (ranks * n_tiers // idx.size).astype(np.int8)
        return tier

    def index_of(self, ids: Sequence[str]) -> np.ndarray:
        """(len(ids),) int64 row positions of external ids; raises :class:`UnknownItemError` (a KeyError) naming
        the first unknown id."""
        lookup = self._id_lookup()
        out = np.empty(len(ids), dtype=np.int64)
        for k, i in enumerate(ids):
            try:
                out[k] = lookup[str(i)]
            except KeyError:
                raise UnknownItemError(f"unknown item id {i!r}; it is not in catalogue {self.name!r} ({self.n_items} "
                                       "items)") from None
        return out

    def _id_lookup(self) -> dict[str, int]:
        cached = self.__dict__.get("_lookup")
        if cached is None:
            cached = {k: i for i, k in enumerate(self.item_ids.tolist())}
            object.__setattr__(self, "_lookup", cached)
        return cached

    def with_embeddings(self, embeddings: np.ndarray) -> "Catalog":
        """A copy carrying ``embeddings`` (n, d), validated."""
        return replace(self, embeddings=embeddings)

    def observable(self) -> "Catalog":
        """A copy with the simulator truth removed (what the recommender side may hold)."""
        return replace(self, complement_graph=None)
