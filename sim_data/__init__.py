"""Catalogues and shoppers: the contracts (Catalog, Baskets, Personas), the built-in taxonomy and
the synthetic generators. Light: numpy only (the encoder is imported lazily where needed).

    >>> import numpy as np
    >>> from sim_data import CatalogConfig, generate_catalog, sample_personas, generate_baskets
    >>> cat = generate_catalog(CatalogConfig(n_items=5000, seed=0))
    >>> rng = np.random.default_rng(0)
    >>> personas = sample_personas(cat, 1000, rng)
    >>> baskets = generate_baskets(cat, personas, 20_000, rng)

File I/O (``save_catalog``, ``load_catalog``) lives in :mod:`bundlerl.sim_data.io` and is re-exported lazily.
"""

from __future__ import annotations

from bundlerl.sim_data.basket_gen import BasketConfig, generate_baskets
from bundlerl.sim_data.baskets import BasketError, Baskets
from bundlerl.sim_data.catalog import Catalog, CatalogError
from bundlerl.sim_data.personas import Personas
from bundlerl.sim_data.personas_gen import PersonaConfig, sample_personas
from bundlerl.sim_data.synthetic import CatalogConfig, category_centroid_accuracy, generate_catalog
from bundlerl.sim_data.taxonomy import CategorySpec, Taxonomy, TaxonomyError, load_taxonomy

__all__ = [
    "Catalog",
    "CatalogError",
    "Baskets",
    "BasketError",
    "Personas",
    "Taxonomy",
    "CategorySpec",
    "TaxonomyError",
    "load_taxonomy",
    "CatalogConfig",
    "generate_catalog",
    "category_centroid_accuracy",
    "PersonaConfig",
    "sample_personas",
    "BasketConfig",
    "generate_baskets",
]


def __getattr__(name: str):
    # io helpers are owned by sim_data/io.py; resolved on first use so a missing one fails clearly
    if name in ("save_catalog", "load_catalog"):
        from bundlerl.sim_data import io

        try:
            return getattr(io, name)
        except AttributeError:
            raise AttributeError(f"bundlerl.sim_data.io has no {name!r} yet") from None
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
