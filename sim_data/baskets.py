"""Historical baskets (orders) as a compact CSR structure, simulated or real.

Baskets are recommender-side data: the complementarity model is *estimated* from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from bundlerl.utils.args import need_array, need_int
from bundlerl.utils.errors import BundlerlError


class BasketError(BundlerlError):
    """Baskets violate their contract; the message names the basket and the fix."""


@dataclass(frozen=True)
class Baskets:
    """``B`` baskets over a catalogue of ``n_items`` items, stored as CSR.

    Items of basket ``b`` are ``items[indptr[b]:indptr[b + 1]]`` (catalogue row positions,
    in add-to-cart order, no repeats within a basket).
    """

    indptr: np.ndarray
    """(B + 1,) int64, non-decreasing, indptr[0] == 0, indptr[-1] == len(items)."""
    items: np.ndarray
    """(nnz,) int32 catalogue row positions in [0, n_items)."""
    n_items: int
    """Size of the catalogue the positions index into."""
    user: np.ndarray | None = None
    """(B,) int64 user of each basket, or None when unknown."""
    order_number: np.ndarray | None = None
    """(B,) int32 position of the basket in its user's history (1 = first), or None."""
    basket_ids: np.ndarray | None = None
    """(B,) str external basket ids (e.g. Instacart order_id), or None."""

    def __post_init__(self) -> None:
        need_int(self.n_items, "n_items", "Baskets", minimum=0, error=BasketError)
        for name, dtype in (("indptr", np.int64), ("items", np.int32), ("user", np.int64), ("order_number", np.int32),
                            ("basket_ids", object)):
            object.__setattr__(self, name, need_array(getattr(self, name), name, "Baskets", dtype, ndim=1,
                                                      optional=name not in ("indptr", "items"), error=BasketError))
        self.validate()

    def validate(self) -> None:
        p = self.indptr
        if p.ndim != 1 or p.size < 1 or p[0] != 0 or p[-1] != self.items.size:
            raise BasketError(
                f"indptr must start at 0 and end at len(items)={self.items.size}; got shape {p.shape}"
            )
        d = np.diff(p)
        if (d < 0).any():
            raise BasketError(f"indptr decreases at basket {int(np.flatnonzero(d < 0)[0])}; it must be non-decreasing")
        bad = np.flatnonzero((self.items < 0) | (self.items >= self.n_items))
        if bad.size:
            b = int(np.searchsorted(p, bad[0], side="right") - 1)
            raise BasketError(
                f"basket {b} holds item position {self.items[bad[0]]}, outside [0, n_items={self.n_items}); "
                "map external ids with Catalog.index_of first"
            )
        B = len(self)
        for name in ("user", "order_number", "basket_ids"):
            v = getattr(self, name)
            if v is not None and len(v) != B:
                raise BasketError(f"{name} has {len(v)} entries for {B} baskets; give one per basket")

    def __len__(self) -> int:
        return int(self.indptr.size - 1)

    def __repr__(self) -> str:
        """A summary (counts and sizes), not the arrays."""
        sizes = self.sizes
        mean = f", {float(sizes.mean()):.1f} items per basket on average" if sizes.size else ""
        users = f", {len(np.unique(self.user)):,} users" if self.user is not None else ""
        return f"Baskets({len(self):,} baskets over {self.n_items:,} items{mean}{users})"

    @property
    def sizes(self) -> np.ndarray:
        """(B,) int64 number of items per basket."""
        return np.diff(self.indptr)

    def basket(self, b: int) -> np.ndarray:
        """Items of basket ``b`` as an int32 array."""
        return self.items[self.indptr[b] : self.indptr[b + 1]]

    def __iter__(self) -> Iterable[np.ndarray]:
        for b in range(len(self)):
            yield self.basket(b)

    def item_counts(self) -> np.ndarray:
        """(n_items,) int64 number of baskets containing each item."""
        return np.bincount(self.items, minlength=self.n_items)

    def subset(self, rows: np.ndarray) -> "Baskets":
        """The baskets at positions ``rows`` (int array or boolean mask), in that order."""
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        sizes = self.sizes[rows]
        indptr = np.concatenate([[0], np.cumsum(sizes)])
        take = np.concatenate([np.arange(self.indptr[r], self.indptr[r + 1]) for r in rows]) if rows.size else np.zeros(0, np.int64)
        pick = lambda v: None if v is None else v[rows]  # noqa: E731
        return Baskets(indptr, self.items[take], self.n_items, pick(self.user), pick(self.order_number), pick(self.basket_ids))

    def split(self, test_fraction: float, rng: np.random.Generator) -> tuple["Baskets", "Baskets"]:
        """Random split by basket into (train, test); ``test_fraction`` in (0, 1)."""
        if not 0.0 < test_fraction < 1.0:
            raise BasketError(f"test_fraction={test_fraction}; it must be in (0, 1)")
        perm = rng.permutation(len(self))
        n_test = int(round(test_fraction * len(self)))
        test = np.sort(perm[:n_test])
        train = np.sort(perm[n_test:])
        return self.subset(train), self.subset(test)

    @classmethod
    def from_lists(cls, baskets: Sequence[Sequence[int]], n_items: int, **extra) -> "Baskets":
        """Build from a list of item-position lists; repeats within a basket are dropped (first kept)."""
        rows = []
        for b in baskets:
            seen: dict[int, None] = {}
            for i in b:
                seen.setdefault(int(i), None)
            rows.append(list(seen))
        sizes = np.array([len(r) for r in rows], dtype=np.int64)
        indptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        items = np.fromiter((i for r in rows for i in r), dtype=np.int64, count=int(sizes.sum()))
        return cls(indptr, items, n_items, **extra)
