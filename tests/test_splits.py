"""The completion splits (sim_data/splits.py) and their ranking metrics (sim_data/ranking_metrics.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bundlerl.sim_data.baskets import BasketError, Baskets
from bundlerl.sim_data.ranking_metrics import evaluate_ranking, ndcg_at_k, recall_at_k, top_k
from bundlerl.sim_data.splits import (
    Queries,
    groceries_split,
    holdout_split,
    instacart_split,
    kfold_splits,
    steam_splits,
)


def _baskets(B=60, n=30, seed=0):
    rng = np.random.default_rng(seed)
    rows = [rng.choice(n, size=rng.integers(1, 8), replace=False).tolist() for _ in range(B)]
    return Baskets.from_lists(rows, n)


def _queries(targets: list[list[int]], seeds=None, seen=None) -> Queries:
    lens = [len(t) for t in targets]
    Q = len(targets)
    return Queries(np.asarray(seeds if seeds is not None else [0] * Q, np.int64), np.arange(Q),
                   np.r_[0, np.cumsum(lens)].astype(np.int64), np.asarray(sum(targets, []), np.int64),
                   np.asarray(seen if seen is not None else [True] * Q))


def test_kfold_splits_partition_the_bundles_and_are_fixed():
    b = _baskets()
    splits = steam_splits(b)
    assert len(splits) == 5
    again = steam_splits(b)
    held = 0
    for s, t in zip(splits, again):
        assert np.array_equal(s.heldout.items, t.heldout.items)  # fixed seed: the same split every time
        assert len(s.train) + len(s.heldout) <= len(b)
        assert (s.heldout.sizes >= 2).all()
        held += len(s.heldout)
    assert held == int((b.sizes >= 2).sum())  # every bundle of >= 2 items is held out exactly once
    assert splits[0].pool.sum() == (b.item_counts() > 0).sum()


def test_queries_are_every_bundle_item_with_the_other_items_as_targets():
    b = Baskets.from_lists([[0, 1, 2], [3, 4], [5]], 8)
    train = Baskets.from_lists([[0, 7], [6]], 8)
    from bundlerl.sim_data.splits import RankingSplit

    q = RankingSplit("t", train, b.subset([0, 1]), np.ones(8, bool)).queries()
    assert q.seed.tolist() == [0, 1, 2, 3, 4]
    assert sorted(q.targets(0).tolist()) == [1, 2] and q.targets(3).tolist() == [4]
    assert q.seen.tolist() == [True, False, False, False, False]


def test_holdout_split_sizes_and_pool():
    b = _baskets(200)
    s = instacart_split(b)
    assert ((s.heldout.sizes >= 2) & (s.heldout.sizes <= 6)).all()
    assert s.pool.all()
    assert abs(len(s.train) - 160) <= 1
    g = groceries_split(b)
    assert (g.heldout.sizes >= 2).all() and len(g.heldout) >= len(s.heldout)
    with pytest.raises(BasketError, match="min_items"):
        holdout_split(b, 0.2, 0, min_items=1)
    with pytest.raises(BasketError, match="n_folds"):
        kfold_splits(b, 1, 0)


def test_top_k_ties_by_position_and_excludes_the_seed_and_the_pool():
    s = np.array([[1.0, 3.0, 3.0, 2.0, -np.inf, np.nan]])
    assert top_k(s, 3, [1]).tolist() == [[2, 3, 0]]
    pool = np.array([True, True, False, True, True, True])
    assert top_k(s, 6, [0], pool).tolist() == [[1, 3, -1, -1, -1, -1]]
    with pytest.raises(BasketError):
        top_k(s, 0, [0])


def test_recall_and_ndcg_known_values():
    q = _queries([[1, 2], [5]])
    ranked = np.array([[2, 9, 1], [7, 8, 9]])
    assert recall_at_k(ranked, q).tolist() == [1.0, 0.0]
    nd = ndcg_at_k(ranked, q)
    want = (1 + 1 / np.log2(4)) / (1 + 1 / np.log2(3))
    assert nd[0] == pytest.approx(want) and nd[1] == 0.0


@given(st.lists(st.integers(0, 19), min_size=1, max_size=8, unique=True), st.permutations(list(range(20))),
       st.integers(1, 12))
def test_metric_properties(targets, perm, k):
    """Recall, NDCG in [0, 1]; 1 for the ideal ranking; a ranking with no target scores 0; NDCG <= 1 = ideal."""
    q = _queries([targets], seeds=[99])
    ideal = np.array([targets + [x for x in perm if x not in targets]])[:, :k]
    assert recall_at_k(ideal, q)[0] == pytest.approx(1.0)
    assert ndcg_at_k(ideal, q)[0] == pytest.approx(1.0)
    ranked = np.array([perm[:k]])
    r, n = recall_at_k(ranked, q)[0], ndcg_at_k(ranked, q)[0]
    assert 0.0 <= r <= 1.0 + 1e-12 and 0.0 <= n <= 1.0 + 1e-12
    none = np.array([[x for x in perm if x not in targets][:k]])
    assert recall_at_k(none, q)[0] == 0.0 and ndcg_at_k(none, q)[0] == 0.0
    # moving a hit up never lowers NDCG: swap the first hit below a miss with that miss
    hits = np.isin(ranked[0], targets)
    if hits.any() and not hits.all():
        h, m = int(np.flatnonzero(hits)[-1]), int(np.flatnonzero(~hits)[0])
        if m < h:
            better = ranked.copy()
            better[0, [m, h]] = better[0, [h, m]]
            assert ndcg_at_k(better, q)[0] >= n - 1e-12


def test_evaluate_ranking_with_a_perfect_scorer():
    b = _baskets(100, 20)
    s = groceries_split(b)
    q = s.queries()

    def oracle(seeds):
        out = np.zeros((seeds.size, b.n_items))
        for r, sd in enumerate(seeds):
            row = np.flatnonzero((q.seed == sd))[0]
            out[r, q.targets(row)] = 1.0
        return out

    res = evaluate_ranking(oracle, q, s.pool, k=10)
    # the same seed can occur in several held-out bundles: the oracle uses the first; that query is perfect
    first = np.unique(q.seed, return_index=True)[1]
    assert np.allclose(res["recall"][first], 1.0)
    assert res["ranked"].shape == (len(q), 10)
