"""bundlerl.utils: scoped thread limits restore the caller's setting, the cache root, lazy re-exports."""

from __future__ import annotations

import sys
import time
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
    pkg.__getattr__, pkg.__dir__, names = lazy_exports("fake_pkg_for_lazy", {"json": "dumps nothing"})
    assert names == ["dumps", "nothing"] and "dumps" in dir(pkg)
    assert pkg.dumps is __import__("json").dumps
    assert "dumps" in vars(pkg)  # resolved once, then an ordinary attribute
    with pytest.raises(AttributeError, match="no attribute 'other'"):
        pkg.other  # noqa: B018
    with pytest.raises(AttributeError):
        pkg.nothing  # noqa: B018  - listed, but the module lacks it


def test_a_killed_writers_temporary_file_is_swept_and_nothing_else(tmp_path):
    """kill -9 inside atomic_write leaves its temporary file (nothing can clean up); the sweep removes it once
    its writer is gone, and keeps the destination, other dotfiles and a live writer's temporary file."""
    import os
    import subprocess
    import textwrap

    from bundlerl.utils.atomic import atomic_write, sweep_temporaries

    dest = tmp_path / "replay.pkl"
    dest.write_bytes(b"previous, intact")
    code = textwrap.dedent(f"""
        import os, signal
        from bundlerl.utils.atomic import atomic_write
        with atomic_write({str(dest)!r}) as tmp:
            tmp.write_bytes(b"x" * 100_000)
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert out.returncode == -9
    left = [p for p in tmp_path.iterdir() if p.name.startswith(".replay.pkl.")]
    assert len(left) == 1 and dest.read_bytes() == b"previous, intact"
    (tmp_path / ".hidden_config").write_text("keep me")
    with atomic_write(tmp_path / "live.bin") as mine:  # this process's own write in progress
        mine.write_bytes(b"y")
        assert sweep_temporaries(tmp_path) == 0  # within the grace period: nothing removed
        old = time.time() - 120
        os.utime(left[0], (old, old))
        os.utime(mine, (old, old))
        assert sweep_temporaries(tmp_path) == 1  # the dead writer's file; ours runs on
        assert not left[0].exists() and mine.exists()
    assert (tmp_path / "live.bin").read_bytes() == b"y" and (tmp_path / ".hidden_config").exists()
    assert sweep_temporaries(tmp_path / "missing") == 0


def test_sweep_removes_any_temporary_older_than_the_maximum_age(tmp_path):
    import os

    from bundlerl.utils.atomic import sweep_temporaries

    t = tmp_path / f".cache.npz.{os.getpid()}.abcd1234.tmp.npz"
    t.write_bytes(b"z")
    old = time.time() - 2 * 86_400
    os.utime(t, (old, old))
    assert sweep_temporaries(tmp_path) == 1 and not t.exists()


@pytest.mark.parametrize("env_value, requested, default, want", [
    (None, None, True, True), (None, None, False, False), ("0", None, True, False), ("off", None, True, False),
    ("FALSE", None, True, False), ("1", None, True, True), ("0", True, False, True), (None, False, True, False),
])
def test_progress_switch(monkeypatch, env_value, requested, default, want):
    from bundlerl.utils.progress import PROGRESS_ENV, progress_enabled

    if env_value is None:
        monkeypatch.delenv(PROGRESS_ENV, raising=False)
    else:
        monkeypatch.setenv(PROGRESS_ENV, env_value)
    assert progress_enabled(requested, default=default) is want


def test_progress_bar_writes_to_stderr_only_when_shown(capsys):
    from bundlerl.utils.progress import progress_bar

    with progress_bar(3, "testing the bar", unit="step", show=True, mininterval=0) as bar:
        bar.update(3)
    shown = capsys.readouterr()
    assert "testing the bar" in shown.err and shown.out == ""
    with progress_bar(3, "hidden bar", show=False) as bar:
        bar.update(3)
        bar.set_postfix(x=1)
    assert capsys.readouterr().err == ""
