"""bundlerl.sim_data.loaders: real-format readers, their error messages, and the complement-graph calibration."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bundlerl.sim_data.baskets import Baskets
from bundlerl.sim_data.catalog import Catalog
from bundlerl.sim_data.loaders import (
    LoaderError,
    calibrate_complement_graph,
    impute_prices,
    load_baskets_csv,
    load_bundles_csv,
    load_groceries,
    load_instacart,
    load_instacart_orders,
    load_items_csv,
    load_steam_bundles,
)

FIX = Path(__file__).resolve().parent / "fixtures"
SHARED = Path(os.environ.get("BUNDLERL_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def shared(sub: str) -> Path:
    p = SHARED / sub
    if not p.exists():
        pytest.skip(f"shared data absent: {p} (set BUNDLERL_SHARED_DATA to the data folder)")
    return p


# ------------------------------------------------------------------------------------ Instacart
def test_instacart_fixture():
    cat, b = load_instacart(FIX / "instacart")
    assert cat.item_ids.tolist() == ["10", "7", "12", "5", "30"]  # products.csv order
    assert cat.titles[1] == "Bag of Organic Bananas, Large" and cat.titles[2] == 'Cheddar, "Sharp" Slices'
    assert cat.category_names.tolist() == ["energy granola bars", "packaged cheese", "fresh fruits"]  # aisle_id order
    assert cat.department_names.tolist() == ["produce", "dairy eggs", "snacks"]  # department_id order
    assert cat.category.tolist() == [2, 2, 1, 0, 2]
    assert cat.category_department.tolist() == [2, 1, 0]
    assert cat.price_imputed and np.isfinite(cat.price).all() and (cat.price > 0).all()
    assert cat.popularity.tolist() == [2, 1, 1, 1, 1]
    # orders by id, items in add-to-cart order: 100 = (5, 7, 30), 200 = (10, 12), 300 = (10,)
    assert b.basket_ids.tolist() == ["100", "200", "300"]
    assert [cat.item_ids[x].tolist() for x in b] == [["5", "7", "30"], ["10", "12"], ["10"]]
    assert b.user.tolist() == [1, 1, -1] and b.order_number.tolist() == [1, 2, 0]


def test_instacart_without_orders_file_has_no_users(tmp_path):
    shutil.copytree(FIX / "instacart", tmp_path / "ic")
    (tmp_path / "ic" / "orders.csv").unlink()
    _, b = load_instacart(tmp_path / "ic")
    assert b.user is None and b.order_number is None and len(b) == 3


def test_instacart_min_orders_trims_catalogue_and_baskets():
    cat, b = load_instacart(FIX / "instacart", min_orders=2)
    assert cat.item_ids.tolist() == ["10"]
    assert b.basket_ids.tolist() == ["200", "300"] and b.items.tolist() == [0, 0]


def test_imputed_prices_are_deterministic_and_order_free():
    a = impute_prices(["1", "2", "3"], np.array([0, 1, 0]), ["x", "y"])
    b = impute_prices(["3", "1"], np.array([0, 0]), ["x"])
    assert a[[2, 0]].tolist() == b.tolist()
    assert (a >= 0.49).all() and np.isfinite(a).all()


@settings(max_examples=30, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=30, unique=True))
def test_imputed_prices_finite_positive_cents(ids):
    p = impute_prices(ids, np.zeros(len(ids), np.int64), ["c"])
    assert np.isfinite(p).all() and (p >= 0.49).all()
    assert np.allclose(np.round(p.astype(np.float64) * 100), p.astype(np.float64) * 100, atol=1e-3)


def _bad_instacart(tmp_path: Path, file: str, text: str) -> Path:
    folder = tmp_path / "ic"
    shutil.copytree(FIX / "instacart", folder)
    (folder / file).write_text(text)
    return folder


@pytest.mark.parametrize("file,text,pattern", [
    ("products.csv", "product_id,product_name,aisle_id\n1,x,3\n",
     r"products\.csv: line 1.*missing column.*'department_id'.*add them"),
    ("products.csv", "", r"products\.csv: the file is empty"),
    ("products.csv", "product_id,product_name,aisle_id,department_id\n",
     r"products\.csv: the header is there but there are no data rows"),
    ("products.csv", "product_id,product_name,aisle_id,department_id\n10,A,24,4\n10,B,24,4\n",
     r"products\.csv: line 3, column 'product_id': duplicate id 10 \(first on line 2\)"),
    ("products.csv", "product_id,product_name,aisle_id,department_id\n10,A,24,4\n7,  ,24,4\n",
     r"products\.csv: line 3, column 'product_name': empty product_name"),
    ("products.csv", "product_id,product_name,aisle_id,department_id\n10,A,24,4\n7,B,99,4\n",
     r"products\.csv: line 3, column 'aisle_id': aisle_id 99 is not defined; add the aisle to aisles\.csv"),
    ("products.csv", "product_id,product_name,aisle_id,department_id\n10,A,24,4\nx7,B,24,4\n",
     r"products\.csv: line 3, column 'product_id': 'x7' is not an integer"),
    ("products.csv", "product_id,product_name,aisle_id,department_id\n10,Ban, ana,24,4\n",
     r"products\.csv: line 2: 5 fields but the header has 4; quote fields"),
    ("order_products.csv", "order_id,product_id,add_to_cart_order\n1,10,1\n1,999,2\n",
     r"order_products\.csv: line 3, column 'product_id': product_id 999 is not defined"),
    ("order_products.csv", "order_id,product_id,add_to_cart_order\n1,10,1\n2,7,1\n1,10,2\n",
     r"order_products\.csv: line 4, column 'product_id': product 10 appears twice in order 1"),
    ("aisles.csv", "aisle_id,aisle\n3,a\n3,b\n", r"aisles\.csv: line 3, column 'aisle_id': duplicate id 3"),
])
def test_instacart_errors_name_file_line_column(tmp_path, file, text, pattern):
    with pytest.raises(LoaderError, match=pattern):
        load_instacart(_bad_instacart(tmp_path, file, text))


def test_instacart_missing_file_and_folder(tmp_path):
    folder = tmp_path / "ic"
    shutil.copytree(FIX / "instacart", folder)
    (folder / "aisles.csv").unlink()
    with pytest.raises(LoaderError, match=r"aisles\.csv: file not found"):
        load_instacart(folder)
    with pytest.raises(LoaderError, match="not a folder"):
        load_instacart(tmp_path / "nowhere")
    assert issubclass(LoaderError, ValueError)


def test_real_instacart():
    cat, b = load_instacart(shared("instacart"))
    assert (cat.n_items, cat.n_categories, len(cat.department_names)) == (49_688, 134, 21)
    assert len(b) == 19_989 and b.items.size == 202_700
    assert (b.user >= 0).sum() > 12_000 and cat.popularity.sum() == 202_700
    assert any("," in t for t in cat.titles.tolist())
    G = calibrate_complement_graph(cat, b)
    names = cat.category_names.tolist()
    top, ice = names.index("ice cream toppings"), names.index("ice cream ice")
    assert G[top, ice] > G[ice, top]  # toppings make ice cream wanted far more than the reverse


# ------------------------------------------------------------------------------------ generic CSVs
def test_items_baskets_bundles_csv():
    cat = load_items_csv(FIX / "items.csv")
    assert cat.item_ids.tolist() == ["a1", "a2", "a3", "a4"] and not cat.price_imputed
    assert cat.category_names.tolist() == ["camera accessories", "cameras", "memory cards"]
    assert cat.category.tolist() == [1, 2, 0, 1] and cat.department_names.tolist() == ["electronics"]
    assert cat.descriptions[0] == "12 MP, night vision" and cat.price[3] == pytest.approx(549.0)
    b = load_baskets_csv(FIX / "baskets.csv", cat)
    assert b.basket_ids.tolist() == ["o1", "o2", "o3"]
    assert [x.tolist() for x in b] == [[0, 1], [3, 1, 2], [2]]  # the repeated a2 in o2 is kept once
    kits = load_bundles_csv(FIX / "bundles.csv", cat)
    assert kits.basket_ids.tolist() == ["kit"] and kits.basket(0).tolist() == [3, 1]


def test_items_csv_without_price_or_department(tmp_path):
    p = tmp_path / "items.csv"
    p.write_text("item_id,title,category\nx,Pen,office\ny,Ink,office\n")
    cat = load_items_csv(p)
    assert cat.price_imputed and (cat.price > 0).all() and cat.department_names.tolist() == ["all"]


@pytest.mark.parametrize("body,pattern", [
    ("item_id,title\nx,Pen\n", r"missing column.*'category'"),
    ("item_id,title,category,price\nx,Pen,o,1\ny,Ink,o,nan\n", r"line 3, column 'price': price 'nan' is not finite"),
    ("item_id,title,category,price\nx,Pen,o,-2\n", r"line 2, column 'price': price '-2' is not finite and > 0"),
    ("item_id,title,category,price\nx,Pen,o,\n", r"line 2, column 'price': price '' is not a number"),
    ("item_id,title,category,price\nx,Pen,o,cheap\n", r"line 2, column 'price': price 'cheap' is not a number"),
    ("item_id,title,category\nx,Pen,o\nx,Ink,o\n", r"line 3, column 'item_id': duplicate id 'x'"),
    ("item_id,title,category\nx,,o\n", r"line 2, column 'title': empty title"),
    ("item_id,title,category,department\nx,Pen,o,A\ny,Ink,o,B\n",
     r"line 3, column 'department': category 'o' is in department 'B' here but in 'A' on line 2"),
    ("item_id,title,category\n", r"no data rows"),
])
def test_items_csv_errors(tmp_path, body, pattern):
    p = tmp_path / "items.csv"
    p.write_text(body)
    with pytest.raises(LoaderError, match=r"items\.csv: " + pattern if "line" in pattern else pattern):
        load_items_csv(p)


def test_baskets_csv_dangling_item(tmp_path):
    cat = load_items_csv(FIX / "items.csv")
    p = tmp_path / "b.csv"
    p.write_text("basket_id,item_id\n1,a1\n1,zz\n")
    with pytest.raises(LoaderError, match=r"b\.csv: line 3, column 'item_id': item 'zz' is not in catalogue"):
        load_baskets_csv(p, cat)


def test_baskets_and_bundles_csv_can_skip_and_count_unknown_items(tmp_path):
    cat = load_items_csv(FIX / "items.csv")
    p = tmp_path / "b.csv"
    p.write_text("basket_id,item_id\n1,a1\n1,zz\n2,zz\n2,yy\n3,a2\n3,a3\n")
    stats: dict = {}
    with pytest.warns(RuntimeWarning, match="skipped 3 row"):
        b = load_baskets_csv(p, cat, skip_unknown=True, stats=stats)
    assert [x.tolist() for x in b] == [[0], [1, 2]] and b.basket_ids.tolist() == ["1", "3"]
    assert stats == {"rows": 6, "skipped_rows": 3, "unknown_items": 2, "unknown_examples": ["yy", "zz"],
                     "dropped_empty": 1}
    q = tmp_path / "k.csv"
    q.write_text("bundle_id,item_id\nk,a4\nk,nope\n")
    with pytest.warns(RuntimeWarning):
        kits = load_bundles_csv(q, cat, skip_unknown=True)
    assert kits.basket(0).tolist() == [3]


def test_instacart_orders_against_a_catalogue_loaded_elsewhere(tmp_path):
    cat, b = load_instacart(FIX / "instacart")
    same = load_instacart_orders(FIX / "instacart", cat)
    assert np.array_equal(same.indptr, b.indptr) and np.array_equal(same.items, b.items)
    assert same.user.tolist() == b.user.tolist() and same.basket_ids.tolist() == b.basket_ids.tolist()
    small, _ = load_instacart(FIX / "instacart", min_orders=2)  # a catalogue of product 10 only
    with pytest.raises(LoaderError, match=r"order_products\.csv: line \d+, column 'product_id': product \d+ is not in"):
        load_instacart_orders(FIX / "instacart", small)
    stats: dict = {}
    with pytest.warns(RuntimeWarning, match="skipped"):
        o = load_instacart_orders(FIX / "instacart", small, skip_unknown=True, stats=stats)
    assert o.basket_ids.tolist() == ["200", "300"] and o.items.tolist() == [0, 0]
    assert stats["skipped_rows"] == 4 and stats["dropped_empty"] == 1


# ------------------------------------------------------------------------------------ Steam, Groceries
def test_steam_fixture():
    cat, bundles, prices = load_steam_bundles(FIX / "steam")
    assert cat.item_ids.tolist() == ["30", "55", "100", "220"]  # numeric order; the blank-id row skipped
    assert cat.meta["skipped_rows"] == 1
    assert bundles.basket_ids.tolist() == ["1", "2"]  # bundle 3 had only the blank-id item: dropped
    assert prices.tolist() == pytest.approx([24.0, 9.0])
    assert cat.category_names.tolist() == ["Action, RPG", "Indie", "unknown"]
    # 30: first valid price 2.99; 100: no price -> median of its genre's valid prices (only 220's 9.99)
    assert cat.price.tolist() == pytest.approx([2.99, 4.99, 9.99, 9.99])
    assert cat.meta["n_prices_imputed"] == 1
    assert [cat.item_ids[x].tolist() for x in bundles] == [["220", "100", "30"], ["30", "55"]]
    assert cat.popularity.tolist() == [2, 1, 1, 1]


def test_steam_bundle_missing_from_bundles_csv(tmp_path):
    shutil.copytree(FIX / "steam", tmp_path / "s")
    (tmp_path / "s" / "bundles.csv").write_text("bundle_id,bundle_final_price\n1,24.0\n2,9.0\n")
    with pytest.raises(LoaderError, match=r"bundle_items\.csv: line 7, column 'bundle_id': bundle '3' is not in bundles\.csv"):
        load_steam_bundles(tmp_path / "s")


def test_real_steam():
    cat, bundles, prices = load_steam_bundles(shared("steam_bundles"))
    assert cat.n_items == 2797 and len(bundles) == 613 and prices.shape == (613,)
    assert np.isfinite(prices).all() and (prices > 0).all()


def test_groceries_fixture_and_errors(tmp_path):
    cat, b = load_groceries(FIX / "groceries.csv")
    assert cat.n_categories == cat.n_items == 8 and "bread, rye" in cat.item_ids.tolist()
    assert b.sizes.tolist() == [3, 3, 1, 2]  # the repeated whole milk is kept once
    assert cat.popularity[cat.index_of(["whole milk"])[0]] == 2
    p = tmp_path / "g.csv"
    p.write_text("a,b\n\nc\n")
    with pytest.raises(LoaderError, match=r"g\.csv: line 2: a basket with no item"):
        load_groceries(p)
    p.write_text("a,,b\n")
    with pytest.raises(LoaderError, match=r"g\.csv: line 1, column 2: empty item name"):
        load_groceries(p)
    p.write_text("")
    with pytest.raises(LoaderError, match="the file is empty"):
        load_groceries(p)


def test_real_groceries():
    cat, b = load_groceries(shared("groceries") / "groceries.csv")
    assert cat.n_items == 169 and len(b) == 9835


# ------------------------------------------------------------------------------------ calibration
def _toy_catalog(C: int) -> Catalog:
    n = 2 * C
    return Catalog(item_ids=[str(i) for i in range(n)], titles=[f"t{i}" for i in range(n)], descriptions=[""] * n,
                   category=np.arange(n) % C, category_names=[f"c{c}" for c in range(C)],
                   category_department=np.zeros(C, np.int32), department_names=["d"], brand=[""] * n,
                   price=np.ones(n), popularity=np.zeros(n))


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 6).flatmap(lambda C: st.tuples(
    st.just(C), st.lists(st.lists(st.integers(0, 2 * C - 1), max_size=5), min_size=1, max_size=40))))
def test_calibrated_graph_range_and_diagonal(case):
    C, lists = case
    cat = _toy_catalog(C)
    G = calibrate_complement_graph(cat, Baskets.from_lists(lists, cat.n_items))
    assert G.shape == (C, C) and G.dtype == np.float32
    assert np.isfinite(G).all() and (G >= 0).all() and (G <= 1).all()
    assert (np.diag(G) == 0).all()


def test_calibrated_graph_is_directed_and_ranks_cobought_above_independent():
    """c0 ("camera") nearly always comes with c1 ("card"); c1 is also bought alone; c2 and c3 are independent."""
    cat = _toy_catalog(4)
    rng = np.random.default_rng(0)
    lists = []
    for _ in range(2000):
        b = []
        if rng.random() < 0.2:
            b += [0, 1]  # camera with card
        elif rng.random() < 0.4:
            b += [1]  # card alone
        b += [2] if rng.random() < 0.5 else []
        b += [3] if rng.random() < 0.5 else []
        lists.append(b)
    G = calibrate_complement_graph(cat, Baskets.from_lists(lists, cat.n_items), scale_quantile=None, min_strength=0)
    assert G[0, 1] > G[1, 0] + 0.2  # camera -> card strong, card -> camera weaker
    assert G[0, 1] > 0.4 and G[2, 3] < 0.05 and G[3, 2] < 0.05
    assert G[0, 1] > G[2, 3]


def test_scaling_saturates_strongest_and_thresholds_noise():
    cat = _toy_catalog(4)
    lists = [[0, 1]] * 30 + [[1]] * 30 + [[2]] * 20 + [[3]] * 20 + [[2, 3]] * 5
    b = Baskets.from_lists(lists, cat.n_items)
    raw = calibrate_complement_graph(cat, b, scale_quantile=None, min_strength=0)
    G = calibrate_complement_graph(cat, b)
    assert G.max() == pytest.approx(1.0)
    assert np.array_equal(G > 0, (raw / np.quantile(raw[raw > 0], 0.99)) >= 0.1)
    assert np.argmax(G) == np.argmax(raw)
