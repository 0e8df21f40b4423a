"""The built-in store taxonomy: departments, categories, vocabularies and the true complement graph.

The data lives in ``general_store.json`` next to this module (package data, hand-curated):
17 departments, 161 categories, each with a price range, product types (title nouns), an
attribute vocabulary (specs, sizes; colours, materials and features come from its department)
and 4-5 invented brand names, plus 268 directed complement edges ``a -> b`` with strengths in
(0, 1] (owning an ``a`` makes a ``b`` more wanted; asymmetric where the real world is:
camera -> memory card 0.9, memory card -> camera 0.15).

    >>> from bundlerl.sim_data.taxonomy import load_taxonomy
    >>> tax = load_taxonomy()                      # built-in, parsed once per process
    >>> G = tax.complement_matrix()                # (C, C) float32, diagonal 0

The graph is SIMULATOR TRUTH once it is put on a Catalog (``complement_graph``).
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from bundlerl.utils.args import MissingPathError, need_path, need_sequence
from bundlerl.utils.errors import BundlerlError

__all__ = ["Taxonomy", "CategorySpec", "TaxonomyError", "load_taxonomy", "BUILTIN_PATH"]

#: The built-in general e-commerce taxonomy shipped with the package.
BUILTIN_PATH = Path(__file__).with_name("general_store.json")


class TaxonomyError(BundlerlError):
    """A taxonomy file violates its contract; the message names the entry and the fix."""


class UnknownCategoryError(TaxonomyError, KeyError):
    """A category name that is not in the taxonomy (also a ``KeyError``, as a lookup miss)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class CategorySpec:
    """One category of the taxonomy (leaf of department -> category)."""

    name: str
    """Unique category name, lower case (e.g. ``"memory cards"``)."""
    department: str
    """Name of the department the category belongs to."""
    price_range: tuple[float, float]
    """(low, high) typical price in currency units, 0 < low < high; generated prices stay inside."""
    product_types: tuple[str, ...]
    """Title nouns / product types (e.g. ``"microSD Memory Card"``), at least one."""
    brands: tuple[str, ...]
    """Brand names (invented), at least one."""
    attributes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Attribute vocabulary: the category's own ``spec`` and ``size`` lists merged with its
    department's ``colour``, ``material`` and ``feature`` lists (any may be empty)."""


@dataclass(frozen=True)
class Taxonomy:
    """A store taxonomy with a directed category complement graph; validated on construction.

    Categories are indexed ``0..C-1`` in file order; departments ``0..D-1`` in file order.
    """

    name: str
    """Taxonomy name, recorded in catalogue metadata."""
    departments: tuple[str, ...]
    """(D,) unique department names."""
    categories: tuple[CategorySpec, ...]
    """(C,) categories; names unique, departments among ``departments``."""
    complements: tuple[tuple[str, str, float], ...]
    """Directed edges ``(a, b, strength)``: owning an ``a`` makes a ``b`` more wanted,
    strength in (0, 1]; no self-loops (same category = substitutes), no duplicate (a, b)."""
    department_attributes: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)
    """Per department: ``colour``, ``material``, ``feature`` vocabularies (already merged into each
    category's ``attributes``; kept for reference)."""

    def __post_init__(self) -> None:
        self._validate()

    # ------------------------------------------------------------------ validation
    def _validate(self) -> None:
        for name, what in (("departments", "a tuple of department names"), ("categories", "a tuple of CategorySpec"),
                           ("complements", "a tuple of (a, b, strength) edges")):
            need_sequence(getattr(self, name), name, "Taxonomy", what, error=TaxonomyError)
        if not self.departments:
            raise TaxonomyError("taxonomy has no departments; give at least one")
        if len(set(self.departments)) != len(self.departments):
            raise TaxonomyError("department names must be unique")
        if not self.categories:
            raise TaxonomyError("taxonomy has no categories; give at least one")
        depts = set(self.departments)
        seen: set[str] = set()
        for k, c in enumerate(self.categories):
            where = f"category #{k} {c.name!r}"
            if not c.name.strip():
                raise TaxonomyError(f"category #{k} has an empty name")
            if c.name in seen:
                raise TaxonomyError(f"{where} is listed twice; category names must be unique")
            seen.add(c.name)
            if c.department not in depts:
                raise TaxonomyError(
                    f"{where} names unknown department {c.department!r}; add it to 'departments' or fix the name"
                )
            lo, hi = c.price_range
            if not (np.isfinite(lo) and np.isfinite(hi) and 0 < lo < hi):
                raise TaxonomyError(f"{where} has price range ({lo}, {hi}); it must satisfy 0 < low < high")
            if not c.product_types or any(not p.strip() for p in c.product_types):
                raise TaxonomyError(f"{where} needs at least one non-empty product type (title noun)")
            if not c.brands or any(not b.strip() for b in c.brands):
                raise TaxonomyError(f"{where} needs at least one non-empty brand name")
        pairs: set[tuple[str, str]] = set()
        for k, e in enumerate(self.complements):
            if len(e) != 3:
                raise TaxonomyError(f"complement edge #{k} {e!r} must be [from, to, strength]")
            a, b, s = e
            for end in (a, b):
                if end not in seen:
                    raise TaxonomyError(
                        f"complement edge #{k} ({a!r} -> {b!r}) names unknown category {end!r}; "
                        "use a name from 'categories'"
                    )
            if a == b:
                raise TaxonomyError(
                    f"complement edge #{k} is a self-loop on {a!r}; same-category items are substitutes, not complements"
                )
            if not (isinstance(s, (int, float)) and 0 < s <= 1):
                raise TaxonomyError(f"complement edge #{k} ({a!r} -> {b!r}) has strength {s!r}; it must be in (0, 1]")
            if (a, b) in pairs:
                raise TaxonomyError(f"complement edge #{k} ({a!r} -> {b!r}) is listed twice; keep one")
            pairs.add((a, b))

    # ------------------------------------------------------------------ views
    @property
    def n_categories(self) -> int:
        return len(self.categories)

    @property
    def n_departments(self) -> int:
        return len(self.departments)

    @property
    def category_names(self) -> list[str]:
        """(C,) category names in index order."""
        return [c.name for c in self.categories]

    def category_department(self) -> np.ndarray:
        """(C,) int32 department index of each category."""
        pos = {d: i for i, d in enumerate(self.departments)}
        return np.array([pos[c.department] for c in self.categories], dtype=np.int32)

    def price_ranges(self) -> np.ndarray:
        """(C, 2) float64 (low, high) price range per category."""
        return np.array([c.price_range for c in self.categories], dtype=np.float64)

    def category_index(self, name: str) -> int:
        """Index of category ``name``; raises :class:`UnknownCategoryError` (a KeyError) naming close matches."""
        for i, c in enumerate(self.categories):
            if c.name == name:
                return i
        close = [c.name for c in self.categories if name.lower() in c.name or c.name in name.lower()][:5]
        raise UnknownCategoryError(f"unknown category {name!r}" + (f"; did you mean one of {close}?" if close else ""))

    def complement_matrix(self) -> np.ndarray:
        """(C, C) float32 G with G[a, b] = strength of edge a -> b, 0 elsewhere (diagonal 0).

        Directed: G is not symmetric in general (camera -> memory card > memory card -> camera).
        """
        idx = {c.name: i for i, c in enumerate(self.categories)}
        G = np.zeros((self.n_categories, self.n_categories), dtype=np.float32)
        for a, b, s in self.complements:
            G[idx[a], idx[b]] = s
        return G

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Taxonomy":
        """Build from the JSON layout of ``general_store.json``; raises TaxonomyError on a bad layout.

        Layout: ``{"name", "departments": [{"name", "attributes": {colour, material, feature}}],
        "categories": [{"name", "department", "price_range": [lo, hi], "product_types": [...],
        "brands": [...], "attributes": {"spec": [...], "size": [...]}}], "complements": [[a, b, s], ...]}``.
        """
        try:
            depts = data["departments"]
            cats = data["categories"]
            edges = data.get("complements", [])
        except (KeyError, TypeError) as exc:
            raise TaxonomyError(f"taxonomy data lacks {exc}; it needs 'departments' and 'categories'") from None
        dept_names: list[str] = []
        dept_attrs: dict[str, dict[str, tuple[str, ...]]] = {}
        for k, d in enumerate(depts):
            name = d["name"] if isinstance(d, Mapping) else d
            if not isinstance(name, str):
                raise TaxonomyError(f"department #{k} has no string name")
            dept_names.append(name)
            attrs = d.get("attributes", {}) if isinstance(d, Mapping) else {}
            dept_attrs[name] = {key: tuple(v) for key, v in attrs.items()}
        specs = []
        for k, c in enumerate(cats):
            try:
                lo, hi = (float(x) for x in c["price_range"])
                attrs = dict(dept_attrs.get(c["department"], {}))
                attrs.update({key: tuple(v) for key, v in c.get("attributes", {}).items()})
                specs.append(
                    CategorySpec(
                        name=str(c["name"]),
                        department=str(c["department"]),
                        price_range=(lo, hi),
                        product_types=tuple(c["product_types"]),
                        brands=tuple(c["brands"]),
                        attributes=attrs,
                    )
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise TaxonomyError(
                    f"category #{k} ({c.get('name', '?') if isinstance(c, Mapping) else c!r}) is malformed: {exc!r}; "
                    "it needs name, department, price_range [low, high], product_types and brands"
                ) from None
        complements = tuple((str(e[0]), str(e[1]), e[2]) if len(e) == 3 else tuple(e) for e in edges)
        return cls(
            name=str(data.get("name", "taxonomy")),
            departments=tuple(dept_names),
            categories=tuple(specs),
            complements=complements,  # type: ignore[arg-type]
            department_attributes=dept_attrs,
        )


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, mtime: float) -> Taxonomy:
    with open(path, encoding="utf-8") as fh:
        try:
            data = json.load(fh)
        except json.JSONDecodeError as exc:
            raise TaxonomyError(f"{path} is not valid JSON ({exc}); fix the file") from None
    return Taxonomy.from_dict(data)


def load_taxonomy(path: str | os.PathLike | None = None) -> Taxonomy:
    """The taxonomy in JSON file ``path`` (default: the built-in general store), parsed once per file version.

    Raises FileNotFoundError for a missing file and TaxonomyError for invalid content.
    """
    p = (need_path(path, "path", "load_taxonomy", what="a taxonomy JSON file", error=TaxonomyError)
         if path is not None else BUILTIN_PATH)
    if not p.is_file():
        raise MissingPathError(f"load_taxonomy(path={str(p)!r}): no such file; expected a taxonomy JSON file (as "
                               "the built-in general_store.json), or omit the path to use the built-in taxonomy")
    return _load_cached(str(p.resolve()), p.stat().st_mtime)
