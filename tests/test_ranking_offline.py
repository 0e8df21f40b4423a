"""Offline ranking metrics: logged candidates ranked by a policy against what was bought (known answers and
formula properties), the last-order split, and next-basket Recall / NDCG on a small real Instacart subset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _log_data import rows, write
from hypothesis import given
from hypothesis import strategies as st

from bundlerl.agents.baselines import ComplementGreedyPolicy
from bundlerl.agents.policy import Policy
from bundlerl.evaluation.ranking import candidate_relevance, log_ranking_metrics, rank_candidates, ranking_scores
from bundlerl.sim_data.baskets import BasketError, Baskets
from bundlerl.sim_data.splits import last_order_split

INSTACART = Path(__file__).resolve().parents[2] / "shared" / "data" / "instacart"


def test_rank_and_scores_known_answer():
    scores = np.array([[0.1, 0.9, 0.5, 0.9]])
    mask = np.array([[1, 1, 1, 0]])
    ranked = rank_candidates(scores, mask)
    assert ranked[0, :3].tolist() == [1, 2, 0]  # the masked 0.9 goes last
    rel = np.array([[True, False, True, False]])
    s = ranking_scores(ranked, rel, 2)
    assert s["precision"][0] == 0.5 and s["recall"][0] == 0.5 and s["hit"][0] == 1.0
    assert s["ndcg"][0] == pytest.approx((1 / np.log2(3)) / (1 + 1 / np.log2(3)))
    assert np.isnan(ranking_scores(ranked, np.zeros((1, 4), bool), 2)["ndcg"][0])


@given(st.integers(1, 6), st.integers(0, 1000), st.integers(1, 8))
def test_ranking_score_properties(K, seed, k):
    rng = np.random.default_rng(seed)
    n = 20
    rel = rng.random((n, K)) < 0.4
    ranked = rank_candidates(rng.random((n, K)), np.ones((n, K)))
    s = ranking_scores(ranked, rel, k)
    ok = rel.any(axis=1)
    for m in ("precision", "recall", "ndcg", "hit"):
        assert (s[m][ok] >= 0).all() and (s[m][ok] <= 1 + 1e-12).all()
        assert np.isnan(s[m][~ok]).all()
    # the ideal ranking (relevant first) has NDCG 1 and the largest recall
    ideal = np.argsort(~rel, axis=1, kind="stable")
    best = ranking_scores(ideal, rel, k)
    np.testing.assert_allclose(best["ndcg"][ok], 1.0)
    assert (best["recall"][ok] >= s["recall"][ok] - 1e-12).all()


def test_candidate_relevance_uses_the_whole_context():
    items = np.array([[[1, -1], [2, 3]], [[4, -1], [3, -1]], [[3, -1], [5, -1]]])
    ctx = np.array([0, 0, 1])
    bought = np.array([[-1, -1], [3, -1], [-1, -1]])  # item 3 bought at context 0's second decision
    rel = candidate_relevance(items, ctx, bought, np.ones((3, 2)))
    assert rel.tolist() == [[False, True], [False, True], [False, False]]


class _Pick(Policy):
    name = "pick"

    def __init__(self, k):
        self.k = k

    def scores(self, obs):
        s = np.zeros(obs["action_mask"].shape)
        s[:, self.k] = 1.0
        return s

    def action_probabilities(self, obs):
        return np.eye(obs["action_mask"].shape[1])[np.full(len(obs["action_mask"]), self.k)]


def test_log_ranking_metrics(tmp_path):
    data = rows(20, 2)
    data["item_ids"] = np.tile(np.array([[1, -1], [2, -1], [3, -1]]), (40, 1, 1))
    data["bought_items"] = np.tile([[2, -1]], (40, 1))  # candidate 1 is always the one bought from
    data["action"], data["n_bought"] = np.ones(40, int), np.ones(40, int)  # so it is the shown one (loader's check)
    write(tmp_path, data)
    res = log_ranking_metrics(tmp_path, {"right": _Pick(1), "wrong": _Pick(0)}, k=1)
    assert res["right"]["precision"].value == 1.0 and res["wrong"]["hit"].value == 0.0
    assert res["right"]["ndcg"].n == 20  # contexts are the units
    assert np.isfinite(log_ranking_metrics(tmp_path, {"cg": ComplementGreedyPolicy()}, k=2)["cg"]["recall"].value)


def test_last_order_split():
    b = Baskets(np.array([0, 1, 2, 3, 4, 5]), np.array([0, 1, 2, 3, 4]), 5, user=np.array([7, 7, 8, 9, 9]),
                order_number=np.array([2, 1, 1, 1, 3]))
    sp = last_order_split(b)
    assert sorted(sp.heldout.user.tolist()) == [7, 9]
    assert sorted(sp.heldout.items.tolist()) == [0, 4]  # each user's largest order number
    assert len(sp.train) == 3 and 0 not in sp.train.items.tolist()
    with pytest.raises(BasketError, match="order_number"):
        last_order_split(Baskets(np.array([0, 1, 2]), np.array([0, 1]), 2))


@pytest.mark.skipif(not INSTACART.is_dir(), reason="the shared Instacart data (../shared/data/instacart) is absent")
def test_next_basket_on_instacart():
    from bundlerl.evaluation.next_basket import next_basket_evaluation
    from bundlerl.sim_data.loaders.instacart import load_instacart

    _, orders = load_instacart(INSTACART)
    res = next_basket_evaluation(orders, {"complement-greedy": ComplementGreedyPolicy()})
    assert set(res) == {"global-popularity", "own-most-bought", "bundles:complement-greedy"}
    for m in res.values():
        assert 0 <= m["recall@10"].low <= m["recall@10"].value <= m["recall@10"].high <= 1
    # a user's own history predicts their next basket far better than the crowd's
    assert res["own-most-bought"]["recall@10"].low > res["global-popularity"]["recall@10"].high
