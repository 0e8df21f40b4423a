"""bundlerl.sim_data.io: catalogue and basket folders round-trip exactly and refuse damaged or partial saves."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from _cli import run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bundlerl.sim_data.baskets import BasketError, Baskets
from bundlerl.sim_data.catalog import Catalog, CatalogError
from bundlerl.sim_data.io import load_baskets, load_catalog, save_baskets, save_catalog
from bundlerl.sim_data.synthetic import CatalogConfig, generate_catalog


@pytest.fixture(scope="module")
def synth() -> Catalog:
    return generate_catalog(CatalogConfig(n_items=300, seed=3))


def _unit(n: int, d: int, seed: int) -> np.ndarray:
    e = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def assert_same_catalog(a: Catalog, b: Catalog) -> None:
    for name in ("item_ids", "titles", "descriptions", "brand", "category_names", "department_names"):
        assert getattr(b, name).dtype == object
        assert getattr(a, name).tolist() == getattr(b, name).tolist(), name
    for name in ("category", "category_department", "price", "popularity"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name
    for name in ("embeddings", "complement_graph"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert x.dtype == y.dtype and np.array_equal(x, y), name
    assert (a.name, a.meta, a.price_imputed) == (b.name, b.meta, b.price_imputed)


def test_synthetic_catalog_round_trips_with_graph_and_embeddings(synth, tmp_path):
    cat = synth.with_embeddings(_unit(synth.n_items, 16, 0))
    assert cat.complement_graph is not None
    out = save_catalog(cat, tmp_path / "cat")
    assert out == tmp_path / "cat"
    assert_same_catalog(cat, load_catalog(out))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"n_items": 300, "n_categories": cat.n_categories,
                                  "n_departments": len(cat.department_names), "dim": 16}
    assert set(manifest["files"]) == {"arrays.npz", "embeddings.npy", "complement_graph.npy"}
    assert manifest["arrays"]["embeddings"] == {"file": "embeddings.npy", "dtype": "float32", "shape": [300, 16]}


def test_without_embeddings_or_graph_round_trips_and_drops_stale_files(synth, tmp_path):
    save_catalog(synth.with_embeddings(_unit(synth.n_items, 8, 1)), tmp_path)
    bare = replace(synth, complement_graph=None)
    save_catalog(bare, tmp_path)  # re-save over a folder that had both optional arrays
    got = load_catalog(tmp_path)
    assert got.embeddings is None and got.complement_graph is None
    assert not (tmp_path / "embeddings.npy").exists() and not (tmp_path / "complement_graph.npy").exists()
    assert_same_catalog(bare, got)


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(titles=st.lists(_text.filter(lambda s: s.rstrip("\x00").strip()), min_size=1, max_size=6), descs=st.data())
def test_any_unicode_strings_round_trip_exactly(tmp_path_factory, titles, descs):
    """np.str_ / unicode-array inputs, empty strings, trailing NULs and non-BMP characters survive unchanged."""
    n = len(titles)  # (titles go through a numpy unicode array, which drops trailing NULs: keep them non-blank after that)
    descriptions = descs.draw(st.lists(_text, min_size=n, max_size=n))
    cat = Catalog(
        item_ids=np.array([f"id\u00e9{i}\x00" for i in range(n)]),  # numpy unicode array input
        titles=np.array(titles, dtype=np.str_), descriptions=descriptions, category=np.zeros(n, np.int32),
        category_names=["caf\u00e9 \U0001f600"], category_department=[0], department_names=[""],
        brand=[""] * n, price=np.full(n, 1.5), popularity=np.arange(n), meta={"k": [1, "z"]},
    )
    folder = tmp_path_factory.mktemp("uni")
    assert_same_catalog(cat, load_catalog(save_catalog(cat, folder)))


def test_arrays_are_loaded_without_pickle(synth, tmp_path):
    save_catalog(synth, tmp_path)
    with np.load(tmp_path / "arrays.npz", allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)


def test_meta_that_is_not_json_is_refused_before_writing(synth, tmp_path):
    with pytest.raises(CatalogError, match="JSON"):
        save_catalog(replace(synth, meta={"when": object()}), tmp_path / "x")
    assert not (tmp_path / "x").exists()


@pytest.fixture()
def saved(synth, tmp_path) -> Path:
    return save_catalog(synth.with_embeddings(_unit(synth.n_items, 4, 2)), tmp_path / "cat")


def test_missing_manifest_means_not_loadable(saved):
    (saved / "manifest.json").unlink()  # what an interrupted save leaves: arrays without a manifest
    with pytest.raises(CatalogError, match=r"manifest\.json: no manifest.*interrupted.*save the catalog again"):
        load_catalog(saved)


def test_interrupted_save_never_leaves_a_loadable_folder(synth, saved, monkeypatch):
    """A crash while writing the arrays of a new save leaves the old manifest removed, so nothing loads."""
    import bundlerl.sim_data.io as io
    def boom(path, arr):
        raise OSError("disk full")

    monkeypatch.setattr(io, "_write_npy", boom)
    with pytest.raises(OSError, match="disk full"):
        save_catalog(synth.with_embeddings(_unit(synth.n_items, 4, 9)), saved)
    with pytest.raises(CatalogError, match="interrupted"):
        load_catalog(saved)
    assert not [p for p in saved.iterdir() if p.name.endswith(".tmp.npz") or ".tmp" in p.name]


def test_missing_array_file_is_named(saved):
    (saved / "embeddings.npy").unlink()
    with pytest.raises(CatalogError, match=r"embeddings\.npy: missing.*save it again"):
        load_catalog(saved)


def test_checksum_mismatch_is_named(saved):
    p = saved / "embeddings.npy"
    raw = bytearray(p.read_bytes())
    raw[-1] ^= 0xFF
    p.write_bytes(bytes(raw))
    with pytest.raises(CatalogError, match=r"embeddings\.npy: checksum mismatch"):
        load_catalog(saved)


def test_version_and_format_mismatch(saved):
    m = json.loads((saved / "manifest.json").read_text())
    (saved / "manifest.json").write_text(json.dumps({**m, "version": 99}))
    with pytest.raises(CatalogError, match="version 99.*re-save"):
        load_catalog(saved)
    (saved / "manifest.json").write_text(json.dumps({**m, "format": "something.else"}))
    with pytest.raises(CatalogError, match="format 'something.else'"):
        load_catalog(saved)


def test_shape_mismatch_with_manifest(saved):
    """A consistent (re-checksummed) file whose array shape disagrees with the manifest is refused."""
    import bundlerl.sim_data.io as io
    m = json.loads((saved / "manifest.json").read_text())
    np.save(saved / "embeddings.npy", _unit(10, 4, 0))
    m["files"]["embeddings.npy"] = {"sha256": io.file_sha256(saved / "embeddings.npy"),
                                    "bytes": (saved / "embeddings.npy").stat().st_size}
    (saved / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(CatalogError, match=r"embeddings\.npy: array 'embeddings' is float32\[10, 4\].*\[300, 4\]"):
        load_catalog(saved)


# --------------------------------------------------------------------------------------- baskets
def _baskets(with_extra: bool) -> Baskets:
    extra = dict(user=[5, -1, 7], order_number=[1, 0, 2], basket_ids=np.array(["o1", "ö2", ""])) if with_extra else {}
    return Baskets.from_lists([[3, 1], [], [0, 2, 4]], 6, **extra)


@pytest.mark.parametrize("with_extra", [True, False])
@pytest.mark.parametrize("as_file", [True, False])
def test_baskets_round_trip(tmp_path, with_extra, as_file):
    b = _baskets(with_extra)
    where = tmp_path / ("b.npz" if as_file else "folder")
    npz = save_baskets(b, where)
    assert npz == (where if as_file else where / "baskets.npz")
    got = load_baskets(where)
    assert np.array_equal(got.indptr, b.indptr) and np.array_equal(got.items, b.items) and got.n_items == 6
    for name in ("user", "order_number", "basket_ids"):
        x, y = getattr(b, name), getattr(got, name)
        assert (x is None) == (y is None)
        if x is not None:
            assert x.tolist() == y.tolist() and x.dtype == y.dtype


def test_baskets_share_a_catalogue_folder(synth, tmp_path):
    save_catalog(synth, tmp_path)
    save_baskets(_baskets(True), tmp_path)
    assert load_catalog(tmp_path).n_items == synth.n_items
    assert len(load_baskets(tmp_path)) == 3


def test_baskets_damage_is_named(tmp_path):
    npz = save_baskets(_baskets(True), tmp_path / "b.npz")
    npz.write_bytes(npz.read_bytes()[:-10])
    with pytest.raises(BasketError, match=r"b\.npz: checksum mismatch with .*b\.json"):
        load_baskets(npz)
    npz.unlink()
    with pytest.raises(BasketError, match="missing"):
        load_baskets(npz)
    (tmp_path / "b.json").unlink()
    with pytest.raises(BasketError, match="no manifest"):
        load_baskets(npz)


# --------------------------------------------------------------------------------------- CLI
def test_catalog_cli_out_writes_a_loadable_folder(tmp_path):
    out = tmp_path / "cli_cat"
    r = run_cli("catalog", "--items", "300", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert str(out) in r.stdout
    cat = load_catalog(out)
    assert cat.n_items == 300 and cat.complement_graph is not None


def test_atomic_write_gives_the_usual_file_permissions(tmp_path):
    import os

    from bundlerl.utils.atomic import atomic_write

    with atomic_write(tmp_path / "x.txt") as tmp:
        tmp.write_text("hi")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "x.txt").stat().st_mode & 0o777 == 0o666 & ~mask


def test_print_of_data_objects_is_a_one_line_summary():
    """print(catalog) reads at a glance: counts and ranges, never the arrays (a 5k-item catalogue dumped pages)."""
    import numpy as np

    from bundlerl.sim_data import generate_baskets, sample_personas

    cat = generate_catalog(CatalogConfig(n_items=500, seed=0))
    rng = np.random.default_rng(0)
    personas = sample_personas(cat, 30, rng)
    baskets = generate_baskets(cat, personas, 200, rng)
    for obj, must in ((cat, "500 items"), (personas, "30 shoppers"), (baskets, "200 baskets over 500 items")):
        text = repr(obj)
        assert must in text and "\n" not in text and len(text) < 300 and "array(" not in text, text
