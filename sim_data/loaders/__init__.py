"""Real-data loaders: Instacart, Steam bundles, Groceries and a user's own CSVs, plus the calibration of
the true complement graph from real baskets.

Every loader returns validated :class:`~bundlerl.sim_data.catalog.Catalog` / :class:`~bundlerl.sim_data.baskets.Baskets`
objects and raises :class:`LoaderError` (a ``ValueError``) naming the file, the 1-based line, the
column and the fix for bad input. Only the standard ``csv`` module and numpy are used.
"""

from __future__ import annotations

from bundlerl.sim_data.loaders._csv import LoaderError, impute_prices
from bundlerl.sim_data.loaders.calibrate import calibrate_complement_graph, category_cooccurrence
from bundlerl.sim_data.loaders.generic_csv import load_baskets_csv, load_bundles_csv, load_items_csv
from bundlerl.sim_data.loaders.groceries import load_groceries
from bundlerl.sim_data.loaders.instacart import load_instacart, load_instacart_orders
from bundlerl.sim_data.loaders.steam import load_steam_bundles

__all__ = [
    "LoaderError",
    "impute_prices",
    "load_instacart",
    "load_instacart_orders",
    "load_items_csv",
    "load_baskets_csv",
    "load_bundles_csv",
    "load_steam_bundles",
    "load_groceries",
    "calibrate_complement_graph",
    "category_cooccurrence",
]
