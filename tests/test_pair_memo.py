"""PairScoreMemo: a memo of pair scores returns exactly what scoring returns, stays bounded, and the builder's
``comp_bought`` column is the same with and without it."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bundlerl.candidates.pair_memo import PairScoreMemo

N_ITEMS = 50


def _score(i, j):
    """A batch-independent score in [0, 1] (float32, as complementarity models return)."""
    i, j = np.asarray(i), np.asarray(j)
    return ((np.sin(1.7 * i + 0.3 * j * j) + 1.0) / 2.0).astype(np.float32)


class _Counting:
    def __init__(self):
        self.pairs = 0

    def __call__(self, i, j):
        self.pairs += np.asarray(i).size
        return _score(i, j)


pairs = st.lists(st.tuples(st.integers(0, N_ITEMS - 1), st.integers(0, N_ITEMS - 1)), min_size=0, max_size=40)


@settings(max_examples=60, deadline=None)
@given(calls=st.lists(pairs, min_size=1, max_size=6), max_pairs=st.integers(1, 200))
def test_memo_returns_exactly_what_scoring_returns_and_stays_bounded(calls, max_pairs):
    memo = PairScoreMemo(_score, N_ITEMS, max_pairs=max_pairs)
    largest = 0  # a call's own new pairs are always kept, so the bound is the larger of max_pairs and that
    for call in calls:
        i = np.array([a for a, _ in call], np.int64)
        j = np.array([b for _, b in call], np.int64)
        got = memo(i, j)
        assert got.dtype == np.float64 and got.shape == (len(call),)
        np.testing.assert_array_equal(got, _score(i, j).astype(np.float64))
        largest = max(largest, len(set(call)))
        assert len(memo) <= max(max_pairs, largest)


def test_repeated_pairs_are_scored_once():
    counting = _Counting()
    memo = PairScoreMemo(counting, N_ITEMS)
    i = np.array([1, 2, 1, 3, 1])
    j = np.array([4, 5, 4, 6, 4])
    memo(i, j)
    assert counting.pairs == 3  # (1,4), (2,5), (3,6)
    memo(np.array([2, 7]), np.array([5, 8]))
    assert counting.pairs == 4  # only (7,8) is new
    assert len(memo) == 4


def test_builder_memo_follows_its_model_and_gives_the_same_comp_bought():
    from bundlerl.candidates.features import bought_complementarity
    from bundlerl.env.world import build_world

    builder = build_world("small").builder
    memo = builder.bought_comp_score
    assert builder.bought_comp_score is memo  # one memo per model
    rng = np.random.default_rng(0)
    n = builder.n_items
    items = rng.integers(-1, n, size=(4, 6, 3))
    bought = rng.integers(-1, n, size=(4, 2))
    direct = bought_complementarity(items, bought, builder.comp.score)
    np.testing.assert_array_equal(bought_complementarity(items, bought, memo), direct)
    np.testing.assert_array_equal(bought_complementarity(items, bought, memo), direct)  # from the memo
    old = builder.comp
    try:
        builder.comp = type("Other", (), {"score": staticmethod(lambda i, j: np.zeros(np.asarray(i).size, np.float32))})()
        assert builder.bought_comp_score is not memo
        assert not bought_complementarity(items, bought, builder.bought_comp_score).any()
    finally:
        builder.comp = old
