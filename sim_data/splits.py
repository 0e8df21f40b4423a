"""The held-out splits of bundle-completion evaluation, with fixed seeds (one definition for every user of them).

A :class:`RankingSplit` is training bundles/baskets, held-out bundles and the ranking pool; :meth:`RankingSplit.queries`
turns it into one query per (held-out bundle, given item): the given item is the seed, the bundle's other items are
the targets, and the seed is *seen* when it occurs in a training bundle or basket. The metrics of a ranking of the
pool are in :mod:`bundlerl.sim_data.ranking_metrics`.

The protocols (issue 16, section 2), each with its own fixed seed so that every command and benchmark sees the same
split:

- :func:`steam_splits`: Steam bundles, ``n_folds`` (5) folds **by bundle**; fold ``f`` holds out the bundles with
  ``fold == f`` and trains on the others; pool = the bundled items (every item of the Steam catalogue).
- :func:`instacart_split`: Instacart orders 80/20 **by order**; the held-out orders of 2-6 items are the bundles;
  pool = every catalogue item.
- :func:`groceries_split`: Groceries baskets 80/20; every held-out basket of >= 2 items is a bundle; pool = its items.

The general forms are :func:`kfold_splits` and :func:`holdout_split`. Random draws come from
``numpy.random.default_rng(SeedSequence(seed, spawn_key=(SPLIT_PURPOSE,)))``: the draws of a split never share a
stream with anything else seeded by the same integer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bundlerl.sim_data.baskets import BasketError, Baskets

__all__ = [
    "RankingSplit",
    "Queries",
    "SPLIT_PURPOSE",
    "STEAM_SEED",
    "INSTACART_SEED",
    "GROCERIES_SEED",
    "split_rng",
    "kfold_splits",
    "holdout_split",
    "steam_splits",
    "instacart_split",
    "groceries_split",
    "last_order_split",
]

#: The spawn-key tag of split streams (distinct from the env's purposes 1-6 in ``bundlerl.evaluation.seeds``).
SPLIT_PURPOSE = 16
#: Fixed seeds of the three protocols (changing one changes every recorded figure of that dataset).
STEAM_SEED, INSTACART_SEED, GROCERIES_SEED = 2017, 2017_05, 1_998


def split_rng(seed: int) -> np.random.Generator:
    """The generator of a split seeded by ``seed``: ``SeedSequence(seed, spawn_key=(SPLIT_PURPOSE,))``."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(SPLIT_PURPOSE,)))


@dataclass(frozen=True)
class Queries:
    """One query per (held-out bundle, given item), in bundle order then item order.

    ``seed`` (Q,) int64 the given item; ``bundle`` (Q,) int64 its row in the held-out bundles; ``target_indptr``
    (Q + 1,) int64 and ``target_items`` int64: CSR of the bundle's other items (the items to retrieve, >= 1 each);
    ``seen`` (Q,) bool: the seed occurs in a training bundle or basket.
    """

    seed: np.ndarray
    bundle: np.ndarray
    target_indptr: np.ndarray
    target_items: np.ndarray
    seen: np.ndarray

    def __len__(self) -> int:
        return int(self.seed.size)

    def targets(self, q: int) -> np.ndarray:
        """The targets of query ``q``: (t,) int64."""
        return self.target_items[self.target_indptr[q] : self.target_indptr[q + 1]]

    def subset(self, rows: np.ndarray) -> "Queries":
        """The queries at ``rows`` (int positions or a boolean mask), in that order."""
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        lens = np.diff(self.target_indptr)[rows]
        take = np.concatenate([np.arange(self.target_indptr[r], self.target_indptr[r + 1]) for r in rows]) if rows.size \
            else np.zeros(0, np.int64)
        return Queries(self.seed[rows], self.bundle[rows], np.r_[0, np.cumsum(lens)].astype(np.int64),
                       self.target_items[take], self.seen[rows])


@dataclass(frozen=True)
class RankingSplit:
    """Training baskets, held-out bundles and the ranking pool of one split (all over the same catalogue).

    ``train``: what a method may learn from; ``heldout``: the bundles queried (each >= 2 items);
    ``pool`` (n,) bool: the items a method ranks (the seed itself is always left out); ``name``: e.g.
    ``"steam fold 2/5"``.
    """

    name: str
    train: Baskets
    heldout: Baskets
    pool: np.ndarray

    def queries(self) -> Queries:
        """Every (held-out bundle, given item): :class:`Queries`; targets outside the pool are dropped (none are
        for the three protocols here, whose pools hold every item a bundle can contain)."""
        h = self.heldout
        sizes = h.sizes
        bundle = np.repeat(np.arange(len(h), dtype=np.int64), sizes)
        seed = h.items.astype(np.int64)
        # targets of the query at flat position p: the other items of its bundle (pool members only)
        t_ind, t_items = [0], []
        for p in range(seed.size):
            b = bundle[p]
            others = h.items[h.indptr[b] : h.indptr[b + 1]].astype(np.int64)
            others = others[(others != seed[p]) & self.pool[others]]
            t_items.append(others)
            t_ind.append(t_ind[-1] + others.size)
        indptr = np.asarray(t_ind, np.int64)
        items = np.concatenate(t_items) if t_items else np.zeros(0, np.int64)
        seen = self.train.item_counts()[seed] > 0
        q = Queries(seed, bundle, indptr, items, seen)
        keep = (np.diff(indptr) > 0) & self.pool[seed]
        return q if keep.all() else q.subset(keep)


def _check(baskets: Baskets) -> None:
    if not isinstance(baskets, Baskets):
        raise BasketError(f"expected bundlerl.sim_data.baskets.Baskets, got {type(baskets).__name__}")
    if len(baskets) < 2:
        raise BasketError(f"{len(baskets)} bundle(s); a split needs at least 2")


def kfold_splits(bundles: Baskets, n_folds: int, seed: int, name: str = "bundles") -> list[RankingSplit]:
    """``n_folds`` splits by bundle: bundle b is in fold ``perm[b] % n_folds`` (``perm`` a seeded permutation); fold f
    holds out its bundles of >= 2 items and trains on every other bundle. Pool = items occurring in any bundle.

    :raises BasketError: fewer than 2 bundles or ``n_folds`` not in [2, number of bundles].
    """
    _check(bundles)
    B = len(bundles)
    if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or not 2 <= n_folds <= B:
        raise BasketError(f"n_folds={n_folds!r}; use an int in [2, {B}] (the number of bundles)")
    fold = split_rng(seed).permutation(B) % n_folds
    pool = bundles.item_counts() > 0
    out = []
    for f in range(n_folds):
        test = (fold == f) & (bundles.sizes >= 2)
        out.append(RankingSplit(f"{name} fold {f + 1}/{n_folds}", bundles.subset(fold != f), bundles.subset(test), pool))
    return out


def holdout_split(baskets: Baskets, test_fraction: float, seed: int, *, min_items: int = 2, max_items: int | None = None,
                  pool: np.ndarray | None = None, name: str = "baskets") -> RankingSplit:
    """One split by basket: a seeded ``test_fraction`` of the baskets is held out (:meth:`Baskets.split`), and those
    of ``min_items``..``max_items`` items (None: no upper bound) are the held-out bundles; training = the rest.
    Pool = ``pool`` ((n,) bool) or every catalogue item.

    :raises BasketError: fewer than 2 baskets, ``test_fraction`` outside (0, 1), ``min_items`` < 2 or
        ``max_items`` < ``min_items``, or a pool of the wrong shape.
    """
    _check(baskets)
    if min_items < 2 or (max_items is not None and max_items < min_items):
        raise BasketError(f"min_items={min_items}, max_items={max_items}; a held-out bundle needs >= 2 items")
    train, test = baskets.split(test_fraction, split_rng(seed))
    keep = test.sizes >= min_items
    if max_items is not None:
        keep &= test.sizes <= max_items
    pool = np.ones(baskets.n_items, bool) if pool is None else np.asarray(pool, bool)
    if pool.shape != (baskets.n_items,):
        raise BasketError(f"pool has shape {pool.shape}; give one bool per catalogue item ({baskets.n_items},)")
    return RankingSplit(name, train, test.subset(keep), pool)


def steam_splits(bundles: Baskets, n_folds: int = 5) -> list[RankingSplit]:
    """The Steam protocol: :func:`kfold_splits` with :data:`STEAM_SEED` (pool = the bundled items)."""
    return kfold_splits(bundles, n_folds, STEAM_SEED, name="steam")


def instacart_split(orders: Baskets) -> RankingSplit:
    """The Instacart protocol: orders 80/20 with :data:`INSTACART_SEED`, held-out orders of 2-6 items as bundles,
    pool = every catalogue item."""
    return holdout_split(orders, 0.2, INSTACART_SEED, min_items=2, max_items=6, name="instacart")


def groceries_split(baskets: Baskets) -> RankingSplit:
    """The Groceries protocol: baskets 80/20 with :data:`GROCERIES_SEED`, held-out baskets of >= 2 items as bundles,
    pool = its items (all 169)."""
    return holdout_split(baskets, 0.2, GROCERIES_SEED, min_items=2, name="groceries")


def last_order_split(orders: Baskets, min_orders: int = 2, name: str = "last order") -> RankingSplit:
    """The next-basket protocol: each user with at least ``min_orders`` orders has the last of them (largest
    ``order_number``) held out; training = every other order (other users' included). Deterministic (no draw).
    Pool = every catalogue item. ``heldout.user`` says whose order each held-out basket is.

    :raises BasketError: baskets without users and order numbers (``orders.csv`` not loaded), ``min_orders`` < 2,
        or no user with enough orders.
    """
    _check(orders)
    if orders.user is None or orders.order_number is None:
        raise BasketError("a last-order split needs each order's user and order_number (load orders.csv with the "
                          "baskets)")
    if min_orders < 2:
        raise BasketError(f"min_orders={min_orders}; a user needs an earlier order to learn from and a last one")
    user, num = orders.user, orders.order_number
    known = user >= 0
    order = np.lexsort((num, user))  # by user, then order number: each user's last order ends its run
    last = np.zeros(len(orders), bool)
    run_end = np.r_[user[order][1:] != user[order][:-1], True]
    last[order[run_end]] = True
    _, inv = np.unique(user, return_inverse=True)
    n_orders = np.bincount(inv.reshape(-1))[inv.reshape(-1)]  # orders of each order's user
    test = last & known & (n_orders >= min_orders)
    if not test.any():
        raise BasketError(f"no user has {min_orders} or more orders: nothing to hold out")
    return RankingSplit(name, orders.subset(~test), orders.subset(test), np.ones(orders.n_items, bool))
