"""Steam bundles (Pathak, Gupta & McAuley, RecSys 2017) → (Catalog, bundles, bundle prices)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from bundlerl.sim_data.baskets import Baskets
from bundlerl.sim_data.catalog import Catalog
from bundlerl.sim_data.loaders._csv import LoaderError, read_table
from bundlerl.utils.args import need_path

__all__ = ["load_steam_bundles"]


def _id_key(x: str) -> tuple:
    # numeric ids in numeric order (the Steam app ids), any others after them in text order
    return (0, int(x), "") if x.isdigit() else (1, 0, x)


def load_steam_bundles(folder: str | Path) -> tuple[Catalog, Baskets, np.ndarray]:
    """Read ``bundle_items.csv`` (bundle_id, item_id, item_name, genre, discounted_price) and
    ``bundles.csv`` (bundle_id, bundle_final_price, ...) of the Steam bundle data.

    Catalogue: the distinct bundled items, ordered by numeric item_id; title = item_name (or
    ``"item <id>"`` when blank); description = the genre string; category = the genre string
    (``"unknown"`` when blank), one department ``"games"``; price = the item's first valid
    (finite, > 0) discounted_price, else the median valid price of its genre, else of all items
    (``meta["n_prices_imputed"]`` counts these); popularity = number of bundles holding the item.

    Bundles: a :class:`Baskets` CSR with one row per bundle in first-appearance order,
    ``basket_ids`` = bundle_id, items in row order (a repeat kept once). Rows with a blank
    item_id (a few in the real data: unjoinable items) are skipped and counted in
    ``meta["skipped_rows"]``; a bundle left with no item is dropped.

    :returns: ``(catalog, bundles, bundle_prices)``, ``bundle_prices`` (B,) float32 = the
        bundle's ``bundle_final_price``, aligned with the bundles.
    :raises LoaderError: naming file, line and column for missing files or columns, a bundle in
        bundle_items.csv that bundles.csv lacks, a duplicate bundle in bundles.csv, or a bad
        bundle_final_price.
    """
    folder = need_path(folder, "folder", "load_steam_bundles", what="the Steam bundles folder", error=LoaderError)
    ti = read_table(folder / "bundle_items.csv", ["bundle_id", "item_id", "item_name", "genre", "discounted_price"])
    tb = read_table(folder / "bundles.csv", ["bundle_id", "bundle_final_price"])
    b_ids = tb.strings("bundle_id", nonempty=True, what="bundle_id")
    tb.unique_ids("bundle_id", b_ids)
    b_price = dict(zip(b_ids, tb.prices("bundle_final_price").tolist()))

    bid = ti.strings("bundle_id", nonempty=True, what="bundle_id")
    iid, name = ti.strings("item_id"), ti.strings("item_name")
    genre = [g or "unknown" for g in ti.strings("genre")]
    first: dict[str, int] = {}
    price: dict[str, float] = {}
    members: dict[str, dict[str, None]] = {}
    skipped = 0
    for r, (b, i, p) in enumerate(zip(bid, iid, ti.columns["discounted_price"])):
        if b not in b_price:
            raise ti.error(r, "bundle_id", f"bundle {b!r} is not in bundles.csv", "add the bundle to bundles.csv or drop its rows")
        if not i:
            skipped += 1
            continue
        first.setdefault(i, r)
        try:
            x = float(p)
        except ValueError:
            x = math.nan
        if math.isfinite(x) and x > 0:
            price.setdefault(i, x)
        members.setdefault(b, {}).setdefault(i, None)
    if not first:
        raise LoaderError(f"{ti.path}: no row has an item_id; fill the item_id column")
    ids = sorted(first, key=_id_key)
    pos = {k: n for n, k in enumerate(ids)}
    item_genre = [genre[first[i]] for i in ids]
    genres = sorted(set(item_genre))
    gpos = {g: k for k, g in enumerate(genres)}
    category = np.fromiter((gpos[g] for g in item_genre), dtype=np.int32, count=len(ids))
    valid = np.array([price.get(i, math.nan) for i in ids])
    has = np.isfinite(valid)
    fallback = np.full(len(genres), np.median(valid[has]) if has.any() else 1.0)
    for g in range(len(genres)):
        in_g = has & (category == g)
        if in_g.any():
            fallback[g] = np.median(valid[in_g])
    prices = np.where(has, valid, fallback[category])

    rows = [[pos[i] for i in m] for m in members.values()]
    sizes = np.fromiter((len(m) for m in rows), dtype=np.int64, count=len(rows))
    items = np.fromiter((i for m in rows for i in m), dtype=np.int64, count=int(sizes.sum()))
    bundles = Baskets(np.concatenate([[0], np.cumsum(sizes)]), items, len(ids),
                      basket_ids=np.asarray(list(members), dtype=object))
    catalog = Catalog(
        item_ids=ids,
        titles=[name[first[i]] or f"item {i}" for i in ids],
        descriptions=item_genre,
        category=category,
        category_names=genres,
        category_department=np.zeros(len(genres), dtype=np.int32),
        department_names=["games"],
        brand=[""] * len(ids),
        price=prices,
        popularity=np.bincount(items, minlength=len(ids)).astype(np.float32),
        name="steam_bundles",
        meta={"source": "steam_bundles", "folder": str(folder.resolve()), "skipped_rows": skipped,
              "n_prices_imputed": int((~has).sum())},
    )
    return catalog, bundles, np.array([b_price[b] for b in members], dtype=np.float32)
