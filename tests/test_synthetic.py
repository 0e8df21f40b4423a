"""Synthetic catalogue: determinism, ranges, text quality, centroid accuracy with the real encoder."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bundlerl.sim_data.catalog import Catalog, CatalogError
from bundlerl.sim_data.synthetic import CatalogConfig, category_centroid_accuracy, generate_catalog
from bundlerl.sim_data.taxonomy import load_taxonomy


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return generate_catalog(CatalogConfig(n_items=3000, seed=0))


def test_shapes_and_contract(cat):
    tax = load_taxonomy()
    assert isinstance(cat, Catalog) and cat.n_items == 3000
    assert cat.n_categories == tax.n_categories
    assert np.array_equal(cat.complement_graph, tax.complement_matrix())
    assert len(set(cat.item_ids.tolist())) == 3000
    # even spread: every category used, sizes differ by at most one
    counts = np.bincount(cat.category, minlength=cat.n_categories)
    assert counts.min() >= 1 and counts.max() - counts.min() <= 1
    cat.validate()
    assert cat.meta["config"]["seed"] == 0


def test_same_seed_same_catalog_other_seed_differs():
    a = generate_catalog(CatalogConfig(n_items=500, seed=3))
    b = generate_catalog(CatalogConfig(n_items=500, seed=3))
    c = generate_catalog(CatalogConfig(n_items=500, seed=4))
    for f in ("item_ids", "titles", "descriptions", "brand", "category", "price", "popularity"):
        assert np.array_equal(getattr(a, f), getattr(b, f)), f
    assert not np.array_equal(a.titles, c.titles)
    assert not np.array_equal(a.price, c.price)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 400), seed=st.integers(0, 2**31), noise=st.floats(0.05, 3.0),
       shift=st.floats(0.0, 3.0))
def test_prices_inside_category_ranges(n, seed, noise, shift):
    cat = generate_catalog(CatalogConfig(n_items=n, seed=seed, price_noise=noise, brand_tier_shift=shift))
    ranges = load_taxonomy().price_ranges()
    lo, hi = ranges[cat.category, 0], ranges[cat.category, 1]
    assert np.all(cat.price >= lo.astype(np.float32)) and np.all(cat.price <= hi.astype(np.float32))
    assert np.all(cat.popularity > 0)
    assert len(np.unique(cat.category)) == min(n, cat.n_categories)


def test_brand_tier_orders_prices(cat):
    # within a category, brand mean log-prices spread out more than with no tier shift
    flat = generate_catalog(CatalogConfig(n_items=3000, seed=0, brand_tier_shift=0.0))

    def brand_spread(c):
        rel = np.log(c.price / c.category_mean_price()[c.category])
        keys = np.char.add(c.category.astype(str), c.brand.astype(str))
        _, inv = np.unique(keys, return_inverse=True)
        means = np.bincount(inv, weights=rel) / np.bincount(inv)
        return means.std()

    assert brand_spread(cat) > 1.3 * brand_spread(flat)


def test_popularity_is_heavy_tailed(cat):
    p = np.sort(cat.popularity)[::-1]
    assert p[:30].sum() > 0.4 * p.sum()  # Zipf(1): the top 1% hold a large share


def test_titles_distinct_and_realistic(cat):
    titles = cat.titles.tolist()
    assert len(set(titles)) / len(titles) > 0.97
    assert all(5 <= len(t) <= 120 for t in titles)
    # a title names its brand and one of its category's product types
    tax = load_taxonomy()
    for i in range(0, 3000, 97):
        spec = tax.categories[cat.category[i]]
        assert cat.brand[i] in titles[i]
        assert any(p.lower() in titles[i].lower() for p in spec.product_types), titles[i]
        assert spec.name in cat.descriptions[i]


def test_config_validation():
    for bad in (dict(n_items=0), dict(seed=-1), dict(price_noise=0.0), dict(zipf_exponent=0),
                dict(model_code_prob=1.5), dict(id_prefix=" ")):
        with pytest.raises(ValueError):
            CatalogConfig(**bad)
    with pytest.raises(CatalogError, match=r"generate_catalog\(config=\{'n_items': 5\}\): config must be a CatalogConfig"):
        generate_catalog({"n_items": 5})


def test_centroid_accuracy_formula_on_toy_vectors():
    cat = generate_catalog(CatalogConfig(n_items=400, seed=1))
    C = cat.n_categories
    # perfectly separated: each item is its category's basis vector -> accuracy 1
    E = np.eye(C, dtype=np.float32)[cat.category]
    assert category_centroid_accuracy(cat, E) == 1.0
    # all items identical: leave-one-out ties everywhere; argmax takes the first category only
    same = np.ones((cat.n_items, 3), np.float32) / np.sqrt(3)
    acc = category_centroid_accuracy(cat, same)
    assert acc <= (cat.category == 0).sum() / cat.n_items + 1e-9
    # shuffling labels destroys accuracy on separated vectors
    rng = np.random.default_rng(0)
    E_shuf = E[rng.permutation(cat.n_items)]
    assert category_centroid_accuracy(cat, E_shuf) < 0.2
    with pytest.raises(CatalogError):
        category_centroid_accuracy(cat, E[:10])


def test_centroid_accuracy_real_encoder(minilm, tmp_path_factory):
    """Titles + descriptions embed by category: nearest (leave-one-out) centroid is the own one."""
    from bundlerl.encoders import CachedEncoder
    from bundlerl.utils.cache import cache_root

    cat = generate_catalog(CatalogConfig(n_items=1000, seed=0))
    enc = CachedEncoder(minilm, cache_dir=cache_root())  # repeat runs hit the disk cache
    acc = category_centroid_accuracy(cat, encoder=enc)
    assert acc >= 0.8, acc


def test_cli_catalog_summary(capsys):
    from bundlerl.scripts.cli import main

    assert main(["catalog", "--items", "300", "--seed", "2", "--samples", "1"]) == 0
    out = capsys.readouterr().out
    assert "300 items" in out and "161 categories" in out and "directed edges" in out
    assert "[electronics]" in out
    assert main(["catalog", "--items", "-5"]) == 2
    assert "argument --items" in capsys.readouterr().err  # refused while parsing (bundlerl.scripts.flags)
