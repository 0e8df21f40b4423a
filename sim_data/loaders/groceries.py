"""The arules "Groceries" transactions (one basket per line of item names) → (Catalog, Baskets)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bundlerl.sim_data.baskets import Baskets
from bundlerl.sim_data.catalog import Catalog
from bundlerl.sim_data.loaders._csv import LoaderError, csv_rows, impute_prices, open_text
from bundlerl.utils.args import need_path

__all__ = ["load_groceries"]


def load_groceries(path: str | Path) -> tuple[Catalog, Baskets]:
    """Read a headerless file where each line is one basket: comma-separated item names (CSV quoting allowed).

    Catalogue: the distinct item names in sorted order; item_id = title = the name. The file has
    no taxonomy, so **each item is its own category** (category name = item name) in a single
    department ``"all"``; complementarity between such categories is item-level. Prices are
    imputed by the documented hash rule (``bundlerl.sim_data.loaders._csv.impute_prices``;
    ``price_imputed`` True); popularity = number of baskets holding the item.

    Baskets: one per line, in file order, items in line order (a repeated name kept once);
    ``basket_ids`` = the 1-based line number as text.

    :raises LoaderError: the file is missing or empty, or a line (named) has no item or an empty item name.
    """
    path = need_path(path, "path", "load_groceries", what="the Groceries CSV file", error=LoaderError)
    rows: list[list[str]] = []
    lines: list[str] = []
    fh = open_text(path, "give the transactions file (one basket of item names per line)")
    for start, row in csv_rows(path, fh):
        names = [x.strip() for x in row]
        if not names or not any(names):
            raise LoaderError(f"{path}: line {start}: a basket with no item; remove the blank line")
        if not all(names):
            raise LoaderError(f"{path}: line {start}, column {names.index('') + 1}: empty item name; "
                              "remove the stray comma")
        rows.append(names)
        lines.append(str(start))
    if not rows:
        raise LoaderError(f"{path}: the file is empty; it needs one basket (comma-separated item names) per line")
    names = sorted({x for r in rows for x in r})
    pos = {k: i for i, k in enumerate(names)}
    baskets = Baskets.from_lists([[pos[x] for x in r] for r in rows], len(names),
                                 basket_ids=np.asarray(lines, dtype=object))
    category = np.arange(len(names), dtype=np.int32)
    catalog = Catalog(
        item_ids=names,
        titles=names,
        descriptions=[""] * len(names),
        category=category,
        category_names=names,
        category_department=np.zeros(len(names), dtype=np.int32),
        department_names=["all"],
        brand=[""] * len(names),
        price=impute_prices(names, category, names),
        popularity=baskets.item_counts().astype(np.float32),
        price_imputed=True,
        name=path.stem,
        meta={"source": "groceries", "file": str(path.resolve())},
    )
    return catalog, baskets
