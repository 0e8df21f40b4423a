"""The built-in taxonomy: size, directed complement graph, validation of bad files."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from bundlerl.sim_data.taxonomy import BUILTIN_PATH, Taxonomy, TaxonomyError, UnknownCategoryError, load_taxonomy


@pytest.fixture(scope="module")
def tax() -> Taxonomy:
    return load_taxonomy()


@pytest.fixture(scope="module")
def raw() -> dict:
    return json.loads(BUILTIN_PATH.read_text())


def test_counts(tax):
    assert tax.n_departments >= 12
    assert tax.n_categories >= 80
    assert len(tax.complements) >= 150
    # every department is used and every category has a usable vocabulary
    assert set(c.department for c in tax.categories) == set(tax.departments)
    for c in tax.categories:
        assert 4 <= len(c.brands) <= 8, c.name
        assert c.product_types and c.attributes.get("spec") and c.attributes.get("size"), c.name
        lo, hi = c.price_range
        assert 0 < lo < hi


def test_complement_matrix_shape_and_values(tax):
    G = tax.complement_matrix()
    C = tax.n_categories
    assert G.shape == (C, C) and G.dtype == np.float32
    assert np.all(np.diag(G) == 0)
    assert ((G >= 0) & (G <= 1)).all()
    assert (G > 0).sum() == len(tax.complements)
    assert not np.allclose(G, G.T)  # directed


@pytest.mark.parametrize(
    "strong, weak",
    [
        ("digital cameras", "memory cards"),
        ("smartphones", "phone cases"),
        ("printers", "printer ink"),
        ("coffee makers", "coffee beans"),
        ("tents", "sleeping bags"),
        ("video game consoles", "video games"),
        ("electric toothbrushes", "toothbrush heads"),
    ],
)
def test_directed_asymmetry(tax, strong, weak):
    G = tax.complement_matrix()
    a, b = tax.category_index(strong), tax.category_index(weak)
    assert G[a, b] >= 0.7
    assert G[b, a] < G[a, b] / 2


def test_unknown_category_in_edge_is_rejected(raw):
    bad = copy.deepcopy(raw)
    bad["complements"].append(["digital cameras", "flux capacitors", 0.5])
    with pytest.raises(TaxonomyError, match="flux capacitors"):
        Taxonomy.from_dict(bad)


@pytest.mark.parametrize("rng_", [[10.0, 5.0], [0.0, 5.0], [-1.0, 3.0]])
def test_bad_price_range_is_rejected(raw, rng_):
    bad = copy.deepcopy(raw)
    bad["categories"][0]["price_range"] = rng_
    with pytest.raises(TaxonomyError, match="price range"):
        Taxonomy.from_dict(bad)


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda d: d["complements"].append(["tents", "tents", 0.5]), "self-loop"),
        (lambda d: d["complements"].append(["tents", "memory cards", 1.5]), "strength"),
        (lambda d: d["complements"].append(list(d["complements"][0])), "twice"),
        (lambda d: d["categories"].append(dict(d["categories"][0])), "twice"),
        (lambda d: d["categories"][0].update(department="space"), "unknown department"),
        (lambda d: d["categories"][0].update(brands=[]), "brand"),
        (lambda d: d["categories"][0].pop("price_range"), "malformed"),
    ],
)
def test_other_bad_entries_are_rejected(raw, edit, match):
    bad = copy.deepcopy(raw)
    edit(bad)
    with pytest.raises(TaxonomyError, match=match):
        Taxonomy.from_dict(bad)


def test_load_from_file_and_errors(tmp_path, raw):
    p = tmp_path / "t.json"
    small = copy.deepcopy(raw)
    small["categories"] = small["categories"][:5]
    names = {c["name"] for c in small["categories"]}
    small["complements"] = [e for e in small["complements"] if e[0] in names and e[1] in names]
    p.write_text(json.dumps(small))
    t = load_taxonomy(p)
    assert t.n_categories == 5
    with pytest.raises(FileNotFoundError):
        load_taxonomy(tmp_path / "missing.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(TaxonomyError, match="not valid JSON"):
        load_taxonomy(tmp_path / "broken.json")


def test_category_index_unknown(tax):
    with pytest.raises(UnknownCategoryError, match="camera"):
        tax.category_index("camera")
