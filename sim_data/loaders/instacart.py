"""Instacart Market Basket (Kaggle 2017 format) → (Catalog, Baskets)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bundlerl.sim_data.baskets import Baskets
from bundlerl.sim_data.catalog import Catalog
from bundlerl.sim_data.loaders._csv import (
    PRICE_BASE,
    PRICE_SIGMA_CAT,
    PRICE_SIGMA_ITEM,
    LoaderError,
    Table,
    check_skip_options,
    impute_prices,
    read_table,
)
from bundlerl.utils.args import need_instance, need_int, need_path

__all__ = ["load_instacart", "load_instacart_orders", "ORDER_PRODUCTS", "KAGGLE_ORDER_PRODUCTS", "order_products_files"]

ORDER_PRODUCTS = "order_products.csv"
"""The order lines file of an Instacart-format folder (one file)."""

KAGGLE_ORDER_PRODUCTS = ("order_products__prior.csv", "order_products__train.csv")
"""Kaggle's own names for the order lines, split in two disjoint sets of orders; read when ``order_products.csv`` is
absent (both when both are there, concatenated, prior first)."""


def order_products_files(folder: str | Path) -> list[Path]:
    """The order-line files :func:`load_instacart` reads in ``folder``: ``order_products.csv`` when present, else
    those of :data:`KAGGLE_ORDER_PRODUCTS` that are present (prior, then train).

    :raises LoaderError: none of them is there (the message names all three and what to do).
    """
    folder = Path(folder)
    if (folder / ORDER_PRODUCTS).is_file():
        return [folder / ORDER_PRODUCTS]
    found = [folder / name for name in KAGGLE_ORDER_PRODUCTS if (folder / name).is_file()]
    if not found:
        raise LoaderError(f"{folder}: no order lines: neither {ORDER_PRODUCTS} nor Kaggle's "
                          f"{' / '.join(KAGGLE_ORDER_PRODUCTS)}; put the order lines (order_id, product_id, "
                          "add_to_cart_order) in one of them")
    return found


def _id_table(folder: Path, file: str, id_col: str, name_col: str) -> tuple[Table, np.ndarray, list[str]]:
    t = read_table(folder / file, [id_col, name_col])
    ids = t.ints(id_col)
    t.unique_ids(id_col, ids)
    return t, ids, t.strings(name_col, nonempty=True, what=name_col)


def _positions(t: Table, column: str, values: np.ndarray, known: np.ndarray, what: str, fix: str) -> np.ndarray:
    """Positions of ``values`` in the sorted id array ``known``; the first unknown one raises naming its line."""
    pos = np.searchsorted(known, values)
    pos = np.minimum(pos, known.size - 1)
    bad = np.flatnonzero(known[pos] != values)
    if bad.size:
        r = int(bad[0])
        raise t.error(r, column, f"{what} {int(values[r])} is not defined", fix)
    return pos


class _OrderLines:
    """The order lines of a folder (``order_products.csv``, else Kaggle's prior / train files, concatenated):
    ``oid``, ``opid``, ``rank`` per line, and the file and line each row came from (for errors)."""

    def __init__(self, folder: Path):
        self.tables = [read_table(path, ["order_id", "product_id", "add_to_cart_order"])
                       for path in order_products_files(folder)]
        cols = [[t.ints(c) for c in ("order_id", "product_id", "add_to_cart_order")] for t in self.tables]
        self.oid, self.opid, self.rank = (np.concatenate([c[i] for c in cols]) for i in range(3))
        self.starts = np.cumsum([0] + [c[0].size for c in cols])  # row offset of each file in the concatenation

    def error(self, row: int, column: str, problem: str, fix: str) -> LoaderError:
        """The loader error of concatenated row ``row``, naming its own file and line."""
        f = int(np.searchsorted(self.starts, row, side="right")) - 1
        return self.tables[f].error(row - int(self.starts[f]), column, problem, fix)

    def no_repeats(self, oid: np.ndarray, item: np.ndarray, src: np.ndarray, n: int) -> None:
        """Raise naming the line of the first product repeated in one order (``oid`` / ``item`` the kept lines in
        order, ``src`` their rows in the concatenation)."""
        pair = oid * (np.int64(n) + 1) + item
        srt = np.argsort(pair, kind="stable")
        dup = np.flatnonzero(pair[srt][1:] == pair[srt][:-1])
        if dup.size:
            r = int(src[srt[dup[0] + 1]])
            raise self.error(r, "product_id", f"product {int(self.opid[r])} appears twice in order {int(self.oid[r])}",
                             "keep one line per (order_id, product_id)"
                             + (" (an order in both order_products files?)" if len(self.tables) > 1 else ""))


def _users(folder: Path, order_ids: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(user, order_number)`` of the orders ``order_ids`` from ``orders.csv`` (-1 / 0 for orders it lacks), or
    ``(None, None)`` without the file."""
    orders_file = folder / "orders.csv"
    if not orders_file.exists():
        return None, None
    tu = read_table(orders_file, ["order_id", "user_id", "order_number"], allow_empty=True)
    u_oid = tu.ints("order_id")
    tu.unique_ids("order_id", u_oid)
    u_user, u_num = tu.ints("user_id"), tu.ints("order_number")
    user = np.full(order_ids.size, -1, dtype=np.int64)
    order_number = np.zeros(order_ids.size, dtype=np.int32)
    if u_oid.size:
        s = np.argsort(u_oid, kind="stable")
        at = np.minimum(np.searchsorted(u_oid[s], order_ids), u_oid.size - 1)
        hit = u_oid[s][at] == order_ids
        user[hit], order_number[hit] = u_user[s][at[hit]], u_num[s][at[hit]]
    return user, order_number


def load_instacart_orders(folder: str | Path, catalog: Catalog, *, skip_unknown: bool = False,
                          stats: dict | None = None) -> Baskets:
    """The orders of an Instacart-format folder (``order_products.csv``, optional ``orders.csv``) against a catalogue
    loaded elsewhere (``catalog.item_ids`` holding product_id as text, as :func:`load_instacart` writes them; e.g. a
    catalogue saved with ``bundlerl.sim_data.io`` or loaded with a ``min_orders`` filter).

    Baskets as :func:`load_instacart`'s: one per order in ascending order_id, items in add_to_cart_order, user and
    order_number from ``orders.csv`` when present.

    :param skip_unknown: skip order lines naming a product the catalogue lacks (an order left empty is dropped)
        instead of raising; a RuntimeWarning says how many.
    :param stats: a dict filled with ``rows``, ``skipped_rows``, ``unknown_items`` (distinct product ids),
        ``unknown_examples`` and ``dropped_empty`` (orders left empty).
    :raises LoaderError: naming file, line and column for a missing file or column, a non-integer id, a product
        repeated in one order, or (unless ``skip_unknown``) a product the catalogue lacks.
    """
    folder = need_path(folder, "folder", "load_instacart_orders", what="an Instacart-format folder", error=LoaderError)
    need_instance(catalog, "catalog", "load_instacart_orders", Catalog, "a Catalog", error=LoaderError)
    check_skip_options(skip_unknown, stats, "load_instacart_orders")
    lines = _OrderLines(folder)
    oid, opid, rank = lines.oid, lines.opid, lines.rank
    lookup = catalog._id_lookup()
    item = np.fromiter((lookup.get(str(p), -1) for p in opid.tolist()), dtype=np.int64, count=opid.size)
    unknown = item < 0
    if unknown.any() and not skip_unknown:
        r = int(np.flatnonzero(unknown)[0])
        raise lines.error(r, "product_id", f"product {int(opid[r])} is not in catalogue {catalog.name!r} "
                       f"({catalog.n_items} items)", "load the matching catalogue, or pass skip_unknown=True to skip such lines")
    all_orders = np.unique(oid)
    order = np.lexsort((rank, oid))
    order = order[~unknown[order]]
    oid_k, item_k = oid[order], item[order]
    lines.no_repeats(oid_k, item_k, order, catalog.n_items)
    order_ids, starts = np.unique(oid_k, return_index=True)
    bad_ids = np.unique(opid[unknown])
    report = {"rows": int(oid.size), "skipped_rows": int(unknown.sum()), "unknown_items": int(bad_ids.size),
              "unknown_examples": [str(x) for x in bad_ids[:5].tolist()],
              "dropped_empty": int(all_orders.size - order_ids.size)}
    if stats is not None:
        stats.update(report)
    if unknown.any():
        import warnings

        where = " + ".join(str(t.path) for t in lines.tables)
        warnings.warn(f"{where}: skipped {report['skipped_rows']} line(s) naming {bad_ids.size} product(s) not in "
                      f"catalogue {catalog.name!r}; {report['dropped_empty']} order(s) left empty were dropped",
                      RuntimeWarning, stacklevel=2)
    user, order_number = _users(folder, order_ids)
    return Baskets(np.append(starts, oid_k.size).astype(np.int64), item_k, catalog.n_items, user=user,
                   order_number=order_number, basket_ids=np.asarray([str(o) for o in order_ids.tolist()], dtype=object))


def load_instacart(folder: str | Path, *, min_orders: int = 0) -> tuple[Catalog, Baskets]:
    """Read an Instacart-format folder into a catalogue and its baskets.

    Files: ``products.csv`` (product_id, product_name, aisle_id, department_id), ``aisles.csv``
    (aisle_id, aisle), ``departments.csv`` (department_id, department), ``order_products.csv``
    (order_id, product_id, add_to_cart_order; or, as Kaggle names them, ``order_products__prior.csv`` and / or
    ``order_products__train.csv``, read together: :func:`order_products_files`) and, optionally, ``orders.csv`` (order_id, user_id,
    order_number; other columns ignored).

    Catalogue: one item per product in ``products.csv`` order; ``item_ids`` = product_id as text;
    title = product_name; description and brand empty (Instacart has neither); category = aisle
    (categories in aisle_id order), department = department (in department_id order), an aisle's
    department being the one its products name (the most common one if they disagree; department
    0 for an aisle with no products); popularity = number of orders containing the product.

    Prices: Instacart has none, so they are imputed and ``price_imputed`` is True. The rule
    (:func:`bundlerl.sim_data.loaders._csv.impute_prices`): each aisle gets a lognormal median price
    ``3.5 · exp(0.5 · z(aisle name))`` and each product ``median · exp(0.35 · z(product_id))``,
    rounded to cents, floored at 0.49, where ``z`` is a standard normal derived from a BLAKE2b
    hash of the key: deterministic, finite, > 0, independent of row order or any RNG.

    Baskets: one per order, orders in ascending order_id, items in add_to_cart_order;
    ``basket_ids`` = order_id as text. With ``orders.csv``: ``user`` = user_id and
    ``order_number`` = order_number, and orders absent from it get user -1 and order_number 0;
    without it both are None.

    :param min_orders: drop products contained in fewer than this many orders (from the catalogue
        and the baskets; baskets left empty are dropped). 0 keeps every product.
    :raises LoaderError: naming file, line and column for a missing file or column, an empty file,
        a non-integer id, a duplicate id, an empty name, a product in an undefined aisle or
        department, an order line naming an unknown product, or a product repeated in one order.
    """
    folder = need_path(folder, "folder", "load_instacart", what="the Instacart folder", error=LoaderError)
    need_int(min_orders, "min_orders", "load_instacart", minimum=0, error=LoaderError)
    if not folder.is_dir():
        raise LoaderError(f"{folder}: not a folder ({'nothing at that path' if not folder.exists() else 'a file'}); point at "
                          "the folder holding products.csv, aisles.csv, departments.csv, orders.csv and "
                          "order_products.csv (or Kaggle's order_products__prior.csv / order_products__train.csv)")
    if min_orders < 0:
        raise LoaderError(f"min_orders={min_orders}; give 0 (keep all products) or a positive count")
    ta, aisle_ids, aisle_names = _id_table(folder, "aisles.csv", "aisle_id", "aisle")
    td, dept_ids, dept_names = _id_table(folder, "departments.csv", "department_id", "department")
    a_order, d_order = np.argsort(aisle_ids, kind="stable"), np.argsort(dept_ids, kind="stable")
    aisle_sorted, dept_sorted = aisle_ids[a_order], dept_ids[d_order]

    tp = read_table(folder / "products.csv", ["product_id", "product_name", "aisle_id", "department_id"])
    pid = tp.ints("product_id")
    tp.unique_ids("product_id", pid)
    titles = tp.strings("product_name", nonempty=True, what="product_name")
    cat = _positions(tp, "aisle_id", tp.ints("aisle_id"), aisle_sorted, "aisle_id",
                     "add the aisle to aisles.csv or correct the product's aisle_id")
    dept = _positions(tp, "department_id", tp.ints("department_id"), dept_sorted, "department_id",
                      "add the department to departments.csv or correct the product's department_id")
    C, D = aisle_sorted.size, dept_sorted.size
    votes = np.zeros((C, D), dtype=np.int64)
    np.add.at(votes, (cat, dept), 1)
    cat_dept = votes.argmax(axis=1)  # all-zero rows (aisles without products) → department 0

    p_order = np.argsort(pid, kind="stable")
    lines = _OrderLines(folder)
    oid_raw, opid, rank = lines.oid, lines.opid, lines.rank
    item = np.empty(opid.size, dtype=np.int64)
    for f, t in enumerate(lines.tables):  # each file's unknown product is reported at its own line
        rows = slice(int(lines.starts[f]), int(lines.starts[f + 1]))
        item[rows] = p_order[_positions(t, "product_id", opid[rows], pid[p_order], "product_id",
                                        "add the product to products.csv or drop the order line")]
    order = np.lexsort((rank, oid_raw))
    oid, item = oid_raw[order], item[order]
    lines.no_repeats(oid, item, order, pid.size)

    n = pid.size
    popularity = np.bincount(item, minlength=n)
    keep_items = popularity >= min_orders
    if not keep_items.all():
        new_pos = np.cumsum(keep_items) - 1
        on = keep_items[item]
        oid, item = oid[on], new_pos[item[on]]
        if oid.size == 0:
            raise LoaderError(f"{folder}: min_orders={min_orders} leaves no ordered product; lower it")
    idx = np.flatnonzero(keep_items)
    order_ids, starts = np.unique(oid, return_index=True)
    indptr = np.append(starts, oid.size).astype(np.int64)

    user, order_number = _users(folder, order_ids)

    item_ids = [str(p) for p in pid[idx].tolist()]
    category_names = [aisle_names[i] for i in a_order.tolist()]
    catalog = Catalog(
        item_ids=item_ids,
        titles=[titles[i] for i in idx.tolist()],
        descriptions=[""] * idx.size,
        category=cat[idx],
        category_names=category_names,
        category_department=cat_dept,
        department_names=[dept_names[i] for i in d_order.tolist()],
        brand=[""] * idx.size,
        price=impute_prices(item_ids, cat[idx], category_names),
        popularity=popularity[idx].astype(np.float32),
        price_imputed=True,
        name="instacart",
        meta={
            "source": "instacart",
            "folder": str(folder.resolve()),
            "min_orders": int(min_orders),
            "price_rule": f"aisle median {PRICE_BASE}*exp({PRICE_SIGMA_CAT}*z(aisle)), "
                          f"item median*exp({PRICE_SIGMA_ITEM}*z(product_id)), z = BLAKE2b-hashed normal",
        },
    )
    baskets = Baskets(indptr, item, idx.size, user=user, order_number=order_number,
                      basket_ids=np.asarray([str(o) for o in order_ids.tolist()], dtype=object))
    return catalog, baskets
