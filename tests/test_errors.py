"""One error type for bad input or configuration: every error class bundlerl defines derives from
:class:`bundlerl.BundlerlError` (itself a ValueError, so older ``except ValueError`` code keeps working)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import bundlerl
from bundlerl.utils.errors import BundlerlError

#: Modules importable without optional extras (every module of the package, today).
SKIP: set[str] = set()


def _bundlerl_modules():
    for info in pkgutil.walk_packages(bundlerl.__path__, "bundlerl."):
        name = info.name
        if name.split(".")[1] in {"tests", "benchmarks"} or name in SKIP:
            continue
        yield importlib.import_module(name)


def test_every_error_class_derives_from_bundlerl_error():
    found, bad = [], []
    for mod in _bundlerl_modules():
        for name, obj in vars(mod).items():
            if (inspect.isclass(obj) and issubclass(obj, Exception) and not issubclass(obj, Warning)  # warnings: no errors
                    and obj.__module__ == mod.__name__):
                found.append(f"{mod.__name__}.{name}")
                if not issubclass(obj, BundlerlError):
                    bad.append(f"{mod.__name__}.{name}")
    assert len(found) >= 15, found  # the walk saw the package's error classes
    assert not bad, f"error classes outside the BundlerlError hierarchy: {bad}"
    assert bundlerl.BundlerlError is BundlerlError and issubclass(BundlerlError, ValueError)


def test_lookup_misses_are_bundlerl_errors_and_key_errors_with_plain_messages():
    import pytest

    from bundlerl.sim_data import CatalogConfig, generate_catalog, load_taxonomy
    from bundlerl.sim_data.catalog import UnknownItemError
    from bundlerl.sim_data.taxonomy import UnknownCategoryError

    cat = generate_catalog(CatalogConfig(n_items=50, seed=0))
    with pytest.raises(UnknownItemError) as err:
        cat.index_of([cat.item_ids[0], "no-such-id"])
    assert isinstance(err.value, KeyError) and isinstance(err.value, BundlerlError)
    assert str(err.value).startswith("unknown item id 'no-such-id'")  # not repr-quoted as KeyError would
    with pytest.raises(UnknownCategoryError) as err:
        load_taxonomy().category_index("camerass")
    assert isinstance(err.value, KeyError) and str(err.value).startswith("unknown category 'camerass'")
