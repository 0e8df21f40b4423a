"""bundlerl.utils: scoped thread limits restore the caller's setting, the cache root, lazy re-exports."""

from __future__ import annotations

import sys
import types

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bundlerl.utils.cache import cache_root
from bundlerl.utils.lazy import lazy_exports
from bundlerl.utils.threads import torch_threads


@settings(max_examples=20, deadline=None)
@given(n=st.one_of(st.none(), st.integers(-2, 4)), inner=st.integers(1, 3))
def test_torch_threads_sets_inside_and_restores_even_after_inner_changes(n, inner):
    before = torch.get_num_threads()
    with torch_threads(n):
        assert torch.get_num_threads() == (before if n is None else max(1, n))
        torch.set_num_threads(inner)  # code inside may change it again
    assert torch.get_num_threads() == before


def test_torch_threads_restores_on_error():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError), torch_threads(before + 1):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before


def test_cache_root_reads_the_variable_at_each_call(monkeypatch, tmp_path):
    monkeypatch.setenv("BUNDLERL_CACHE", str(tmp_path))
    assert cache_root() == tmp_path
    monkeypatch.setenv("BUNDLERL_CACHE", "~/somewhere")
    assert cache_root() == cache_root().home() / "somewhere"  # ~ expanded
    monkeypatch.delenv("BUNDLERL_CACHE")
    assert cache_root().parts[-2:] == (".cache", "bundlerl")


def test_lazy_exports_import_on_first_use_only(monkeypatch):
    pkg = types.ModuleType("fake_pkg_for_lazy")
    monkeypatch.setitem(sys.modules, "fake_pkg_for_lazy", pkg)
    pkg.__getattr__, pkg.__dir__ = lazy_exports("fake_pkg_for_lazy", {"dumps": "json", "nothing": "json"})
    assert "dumps" in dir(pkg)
    assert pkg.dumps is __import__("json").dumps
    assert "dumps" in vars(pkg)  # resolved once, then an ordinary attribute
    with pytest.raises(AttributeError, match="no attribute 'other'"):
        pkg.other  # noqa: B018
    with pytest.raises(AttributeError):
        pkg.nothing  # noqa: B018  - listed, but the module lacks it
