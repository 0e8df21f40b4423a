"""Instacart folders as Kaggle ships them: the order lines in ``order_products__prior.csv`` and / or
``order_products__train.csv`` instead of one ``order_products.csv``. Every split of the fixture's orders between the
two files (and either file alone) loads the same catalogue and baskets as the one-file folder; a folder with no
order-line file names all three names."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bundlerl.sim_data.loaders import LoaderError, load_instacart
from bundlerl.sim_data.loaders.instacart import KAGGLE_ORDER_PRODUCTS, ORDER_PRODUCTS, order_products_files

FIX = Path(__file__).resolve().parent / "fixtures" / "instacart"
HEADER, *LINES = (FIX / ORDER_PRODUCTS).read_text().splitlines()
ORDERS = sorted({line.split(",")[0] for line in LINES})


def _same(a, b) -> None:
    (ca, ba), (cb, bb) = a, b
    assert ca.item_ids.tolist() == cb.item_ids.tolist() and ca.popularity.tolist() == cb.popularity.tolist()
    assert ba.basket_ids.tolist() == bb.basket_ids.tolist()
    np.testing.assert_array_equal(ba.items, bb.items)
    np.testing.assert_array_equal(ba.indptr, bb.indptr)
    np.testing.assert_array_equal(ba.user, bb.user)


@settings(max_examples=40, deadline=None)
@given(where=st.lists(st.sampled_from(KAGGLE_ORDER_PRODUCTS), min_size=len(ORDERS), max_size=len(ORDERS)),
       order=st.permutations(range(len(LINES))), keep_single=st.booleans())
def test_kaggle_order_files_load_like_one_file(tmp_path_factory, where, order, keep_single):
    folder = tmp_path_factory.mktemp("kaggle")
    shutil.copytree(FIX, folder, dirs_exist_ok=True)
    if not keep_single:
        (folder / ORDER_PRODUCTS).unlink()
    by_file = {name: [] for name in KAGGLE_ORDER_PRODUCTS}
    for i in order:  # each order's lines go to the file drawn for it, lines in any order
        by_file[where[ORDERS.index(LINES[i].split(",")[0])]].append(LINES[i])
    for name, lines in by_file.items():
        if lines:
            (folder / name).write_text("\n".join([HEADER, *lines]) + "\n")
    expected = [folder / ORDER_PRODUCTS] if keep_single else [folder / n for n in KAGGLE_ORDER_PRODUCTS if by_file[n]]
    assert order_products_files(folder) == expected  # order_products.csv wins when it is there
    _same(load_instacart(folder), load_instacart(FIX))


def test_a_folder_without_order_lines_names_every_accepted_file(tmp_path):
    shutil.copytree(FIX, tmp_path / "ic")
    (tmp_path / "ic" / ORDER_PRODUCTS).unlink()
    with pytest.raises(LoaderError) as err:
        load_instacart(tmp_path / "ic")
    for name in (ORDER_PRODUCTS, *KAGGLE_ORDER_PRODUCTS):
        assert name in str(err.value)
    assert str(tmp_path / "ic") in str(err.value)


def test_an_order_in_both_kaggle_files_names_the_file_and_line(tmp_path):
    folder = tmp_path / "ic"
    shutil.copytree(FIX, folder)
    (folder / ORDER_PRODUCTS).unlink()
    (folder / KAGGLE_ORDER_PRODUCTS[0]).write_text("\n".join([HEADER, *LINES]) + "\n")
    (folder / KAGGLE_ORDER_PRODUCTS[1]).write_text("\n".join([HEADER, "300,10,1"]) + "\n")
    with pytest.raises(LoaderError, match=r"order_products__train\.csv: line 2, column 'product_id': product 10 "
                                          r"appears twice in order 300"):
        load_instacart(folder)
