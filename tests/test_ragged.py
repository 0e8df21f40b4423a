"""RaggedSet (bundlerl.candidates.ragged): membership from lists and -1 padded logs, subsets, the most recent
items, both lookup paths, errors (ItemIndex.search reports a bad exclude as IndexError_: tests/test_index.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bundlerl.candidates.ragged import RaggedSet, RaggedSetError


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.lists(st.integers(0, 19), max_size=20), min_size=1, max_size=6),
    probe=st.lists(st.integers(-1, 19), min_size=3, max_size=3),
    width=st.integers(0, 4),
)
@pytest.mark.parametrize("form", ["lists", "padded"])
def test_ragged_set_contains_and_padded(rows, probe, width, form):
    if form == "lists":
        rs = RaggedSet([np.array(r, dtype=int) for r in rows], len(rows), 20)
    else:  # one (n, L) int array, -1 padded (the env's fixed-width logs): same sets, same order
        log = np.full((len(rows), 21), -1, np.int32)
        for r, row in enumerate(rows):
            log[r, : len(row)] = row
        rs = RaggedSet(log, len(rows), 20)
    q = np.tile(np.array(probe), (len(rows), 1))
    got = rs.contains(q)
    want = np.array([[p in set(r) for p in probe] for r in rows])
    np.testing.assert_array_equal(got, want)
    keep = np.arange(len(rows))[::2]
    sub = rs.subset(keep)
    np.testing.assert_array_equal(sub.contains(q[keep]), want[keep])
    pad = rs.padded(width)
    for r, row in enumerate(rows):
        last = list(reversed(row))[:width]
        assert pad[r, : len(last)].tolist() == last and (pad[r, len(last) :] == -1).all()


def test_ragged_set_contains_column_and_search_paths_agree(monkeypatch):
    """Short rows are compared column by column, long ones searched: both give the brute-force answer,
    for probes of any trailing shape (the builder asks with (N, S, C) and (N, K, K_max) arrays)."""
    import bundlerl.candidates.ragged as ragged_mod
    rng = np.random.default_rng(3)
    n = 50
    rows = [rng.integers(0, n, rng.integers(0, 9)) for _ in range(40)]
    probe = rng.integers(-1, n, (40, 5, 3))
    want = np.array([[[p in set(r.tolist()) for p in q] for q in P] for r, P in zip(rows, probe)])
    for limit in (0, ragged_mod.BROADCAST_MAX_LEN):
        monkeypatch.setattr(ragged_mod, "BROADCAST_MAX_LEN", limit)
        rs = RaggedSet(rows, len(rows), n)
        assert rs.max_len <= 8
        np.testing.assert_array_equal(rs.contains(probe), want)
        keep = np.array([0, 3, 7, 39])
        np.testing.assert_array_equal(rs.subset(keep).contains(probe[keep]), want[keep])


def test_ragged_set_padded_form_errors():
    with pytest.raises(RaggedSetError, match="outside"):
        RaggedSet(np.array([[3, -2]]), 1, 20)  # only -1 is padding
    with pytest.raises(RaggedSetError, match="rows"):
        RaggedSet(np.full((2, 3), -1), 3, 20)
