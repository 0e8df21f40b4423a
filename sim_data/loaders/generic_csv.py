"""A user's own catalogue, baskets and bundles as plain CSV files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bundlerl.sim_data.baskets import Baskets
from bundlerl.sim_data.catalog import Catalog
from bundlerl.sim_data.loaders._csv import LoaderError, check_skip_options, impute_prices, read_table
from bundlerl.utils.args import need_instance, need_path, need_str

__all__ = ["load_items_csv", "load_baskets_csv", "load_bundles_csv"]


def load_items_csv(path: str | Path, *, name: str | None = None) -> Catalog:
    """A catalogue from ``item_id,title,category[,price,description,department,brand,popularity]``.

    One item per row, in file order. Categories are the distinct ``category`` values in sorted
    order. Departments: the optional ``department`` column (each category must name one
    department throughout), else a single department ``"all"``. Without a ``price`` column prices
    are imputed by the documented hash rule (``bundlerl.sim_data.loaders._csv.impute_prices``) and
    ``price_imputed`` is True. ``popularity`` defaults to 0 (fill it from baskets with
    ``Baskets.item_counts`` if needed). No complement graph (use ``calibrate_complement_graph``).

    :raises LoaderError: naming file, line and column for a missing column, empty id, title or
        category, a duplicate id, a bad price (blank, non-numeric, NaN, inf, <= 0), a bad popularity,
        or a category listed under two departments.
    """
    path = need_path(path, "path", "load_items_csv", what="the items CSV file", error=LoaderError)
    need_str(name, "name", "load_items_csv", optional=True, error=LoaderError)
    t = read_table(path, ["item_id", "title", "category"], ["price", "description", "department", "brand", "popularity"])
    ids = t.strings("item_id", nonempty=True, what="item_id")
    t.unique_ids("item_id", ids)
    titles = t.strings("title", nonempty=True, what="title")
    cats = t.strings("category", nonempty=True, what="category")
    names = sorted(set(cats))
    cpos = {c: k for k, c in enumerate(names)}
    category = np.fromiter((cpos[c] for c in cats), dtype=np.int32, count=len(cats))
    if "department" in t.columns:
        depts = t.strings("department", nonempty=True, what="department")
        dnames = sorted(set(depts))
        dpos = {d: k for k, d in enumerate(dnames)}
        cat_dept = np.full(len(names), -1, dtype=np.int32)
        first_row: dict[int, int] = {}
        for r, (c, d) in enumerate(zip(category.tolist(), depts)):
            if cat_dept[c] < 0:
                cat_dept[c], first_row[c] = dpos[d], r
            elif cat_dept[c] != dpos[d]:
                raise t.error(r, "department", f"category {names[c]!r} is in department {d!r} here but in "
                              f"{dnames[cat_dept[c]]!r} on line {int(t.lines[first_row[c]])}",
                              "give each category one department")
    else:
        dnames, cat_dept = ["all"], np.zeros(len(names), dtype=np.int32)
    imputed = "price" not in t.columns
    price = impute_prices(ids, category, names) if imputed else t.prices("price")
    popularity = np.zeros(len(ids), dtype=np.float32)
    if "popularity" in t.columns:
        for r, v in enumerate(t.columns["popularity"]):
            try:
                popularity[r] = x = float(v)
            except ValueError:
                raise t.error(r, "popularity", f"{v!r} is not a number", "write a count such as 12 or leave the column out") from None
            if not np.isfinite(x) or x < 0:
                raise t.error(r, "popularity", f"{v!r} is not finite and >= 0", "write a count such as 12")
    return Catalog(
        item_ids=ids,
        titles=titles,
        descriptions=t.strings("description") if "description" in t.columns else [""] * len(ids),
        category=category,
        category_names=names,
        category_department=cat_dept,
        department_names=dnames,
        brand=t.strings("brand") if "brand" in t.columns else [""] * len(ids),
        price=price,
        popularity=popularity,
        price_imputed=imputed,
        name=name or path.stem,
        meta={"source": "items_csv", "file": str(path.resolve())},
    )


def _grouped(path: str | Path, catalog: Catalog, group: str, skip_unknown: bool = False,
             stats: dict | None = None) -> Baskets:
    """Rows ``<group>,item_id`` → CSR, groups in order of first appearance, items in row order.

    ``skip_unknown``: rows naming an item the catalogue lacks are skipped (and a group left empty dropped) instead
    of raising; counted in ``stats`` (when given) and in one RuntimeWarning."""
    t = read_table(path, [group, "item_id"])
    gids = t.strings(group, nonempty=True, what=group)
    iids = t.strings("item_id", nonempty=True, what="item_id")
    lookup = catalog._id_lookup()
    members: dict[str, dict[int, None]] = {}
    unknown: dict[str, int] = {}
    for r, (g, i) in enumerate(zip(gids, iids)):
        pos = lookup.get(i)
        if pos is None:
            if not skip_unknown:
                raise t.error(r, "item_id", f"item {i!r} is not in catalogue {catalog.name!r} ({catalog.n_items} items)",
                              "add it to the items file, drop the row, or pass skip_unknown=True to skip such rows")
            unknown[i] = unknown.get(i, 0) + 1
            continue
        members.setdefault(g, {}).setdefault(pos, None)  # a repeat within one group is a quantity: kept once
    n_groups = len(dict.fromkeys(gids))
    rows = [list(m) for m in members.values()]
    report = {"rows": len(gids), "skipped_rows": sum(unknown.values()), "unknown_items": len(unknown),
              "unknown_examples": sorted(unknown)[:5], "dropped_empty": n_groups - len(rows)}
    if stats is not None:
        stats.update(report)
    if unknown:
        import warnings

        warnings.warn(f"{path}: skipped {report['skipped_rows']} row(s) naming {len(unknown)} item id(s) not in "
                      f"catalogue {catalog.name!r} (e.g. {', '.join(map(repr, report['unknown_examples']))}); "
                      f"{report['dropped_empty']} {group}(s) left empty were dropped", RuntimeWarning, stacklevel=3)
    sizes = np.fromiter((len(m) for m in rows), dtype=np.int64, count=len(rows))
    return Baskets(np.concatenate([[0], np.cumsum(sizes)]), np.fromiter((i for m in rows for i in m), dtype=np.int64,
                                                                         count=int(sizes.sum())),
                   catalog.n_items, basket_ids=np.asarray(list(members), dtype=object))


def load_baskets_csv(path: str | Path, catalog: Catalog, *, skip_unknown: bool = False,
                     stats: dict | None = None) -> Baskets:
    """Baskets from ``basket_id,item_id`` rows (one row per item of a basket).

    Baskets appear in order of their first row, items in row order; an item repeated within a
    basket is kept once (first position). ``basket_ids`` = the basket_id values; user and
    order_number are None.

    :param skip_unknown: skip rows whose item_id is not in ``catalog`` (a basket left empty is dropped) instead of
        raising; a RuntimeWarning says how many.
    :param stats: a dict filled with ``rows``, ``skipped_rows``, ``unknown_items`` (distinct ids),
        ``unknown_examples`` and ``dropped_empty`` (baskets left empty).
    :raises LoaderError: naming file, line and column for a missing column, an empty cell, or (unless
        ``skip_unknown``) an item_id that is not in ``catalog``.
    """
    path = need_path(path, "path", "load_baskets_csv", what="the baskets CSV file", error=LoaderError)
    need_instance(catalog, "catalog", "load_baskets_csv", Catalog, "a Catalog (load_items_csv)", error=LoaderError)
    check_skip_options(skip_unknown, stats, "load_baskets_csv")
    return _grouped(path, catalog, "basket_id", skip_unknown, stats)


def load_bundles_csv(path: str | Path, catalog: Catalog, *, skip_unknown: bool = False,
                     stats: dict | None = None) -> Baskets:
    """Bundles from ``bundle_id,item_id`` rows, as a :class:`Baskets` CSR (one row per bundle).

    Same contract as :func:`load_baskets_csv` with ``bundle_id`` in place of ``basket_id``;
    ``basket_ids`` holds the bundle ids (``stats["dropped_empty"]``: bundles left empty).
    """
    path = need_path(path, "path", "load_bundles_csv", what="the bundles CSV file", error=LoaderError)
    need_instance(catalog, "catalog", "load_bundles_csv", Catalog, "a Catalog (load_items_csv)", error=LoaderError)
    check_skip_options(skip_unknown, stats, "load_bundles_csv")
    return _grouped(path, catalog, "bundle_id", skip_unknown, stats)
