"""Next-basket evaluation on real orders (issue 18, section 4): each user's last order held out
(``bundlerl.sim_data.splits.last_order_split``, users with >= 2 orders), Recall@k / NDCG@k with 95% CIs over users of

- ``global-popularity``: the k items in most training orders (the same list for everyone);
- ``own-most-bought``: the user's own k most-bought items in earlier orders (ties: global popularity), the
  standard repeat-purchase baseline of next-basket recommendation;
- ``bundles:<policy>``: the recommender side. Candidate bundles come from the user's earlier orders: each of the
  user's ``n_anchors`` most-bought items is an anchor, completed with the item of the user's earlier orders that it
  is most often bought with (co-purchase lift over every training order, ``bundlerl.candidates.cooccurrence``; a
  single-item bundle when none co-occurs). A policy (``bundlerl.agents``) ranks the bundles from their observable
  features and the ranked bundles' items, in order and without repeats, are the list.

The bundles' features are computed from the baskets alone (Instacart has no profile text and the real users no
session): ``rel_history`` = the mean share of the user's earlier orders holding each item (the user's own taste),
``mean_comp`` = the pair's shrunk co-purchase lift mapped to [0, 1), ``popularity`` = the catalogue's popularity
feature, ``size``; ``rel_profile``, ``max_sub``, ``novelty``, ``discount`` and ``log_price`` are 0. These stand in for
the env's embedding-based features: the same policy weights, other inputs.

Recall@k and NDCG@k are ``bundlerl.sim_data.ranking_metrics``'s (Recall normalised by min(k, |basket|)).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from bundlerl.agents.policy import Policy
from bundlerl.candidates.cooccurrence import PairCounts, expected_counts, lift_to_unit, shrunk_lift
from bundlerl.candidates.features import CANDIDATE_FEATURES, COL, popularity_feature
from bundlerl.env.observation import CANDIDATES_KEY, MASK_KEY
from bundlerl.evaluation.stats import Estimate, mean_ci
from bundlerl.sim_data.baskets import Baskets
from bundlerl.sim_data.ranking_metrics import ndcg_at_k, recall_at_k
from bundlerl.sim_data.splits import Queries, RankingSplit, last_order_split

__all__ = ["next_basket_evaluation", "user_bundles"]


def _queries(heldout: Baskets) -> Queries:
    """One query per held-out order: targets = its distinct items (the seed is unused: -1)."""
    targets = [np.unique(heldout.items[heldout.indptr[b]:heldout.indptr[b + 1]]) for b in range(len(heldout))]
    indptr = np.r_[0, np.cumsum([t.size for t in targets])].astype(np.int64)
    return Queries(np.full(len(heldout), -1, np.int64), np.arange(len(heldout), dtype=np.int64), indptr,
                   np.concatenate(targets).astype(np.int64), np.ones(len(heldout), bool))


def user_bundles(history: np.ndarray, counts: PairCounts, popularity: np.ndarray, n_user_orders: int,
                 n_anchors: int, K_max: int = 2, alpha: float = 5.0, kappa: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """One user's candidate bundles and their features (see the module docstring).

    :param history: (h,) the items of the user's earlier orders, with repeats. :param counts: co-purchase counts of
        the training orders. :param popularity: (n,) the catalogue's popularity feature. :param n_user_orders: the
        user's earlier orders. :returns: ``bundles`` (A, K_max) -1 padded, ``features`` (A, F) in ``COL`` order.
    """
    items, freq = np.unique(history, return_counts=True)
    order = np.lexsort((-popularity[items], -freq))
    anchors = items[order][:n_anchors]
    A = anchors.size
    bundles = np.full((A, K_max), -1, np.int64)
    bundles[:, 0] = anchors
    feats = np.zeros((A, len(CANDIDATE_FEATURES)), np.float32)
    share = dict(zip(items.tolist(), (freq / max(n_user_orders, 1)).tolist()))
    comp = np.zeros(A)
    if items.size > 1 and K_max > 1:
        i = np.repeat(anchors, items.size)
        j = np.tile(items, A)
        n_ij = counts.lookup(i, j)
        lift = shrunk_lift(n_ij, expected_counts(counts.item_counts[i], counts.item_counts[j], counts.n_baskets),
                           1.0, alpha)
        lift = np.where((i == j) | (n_ij == 0), -np.inf, lift).reshape(A, items.size)
        best = lift.argmax(axis=1)
        has = np.isfinite(lift[np.arange(A), best])
        bundles[has, 1] = items[best[has]]
        comp[has] = lift_to_unit(lift[np.arange(A), best][has], kappa)
    members = [b[b >= 0] for b in bundles]
    feats[:, COL.rel_history] = [np.mean([share[int(x)] for x in m]) for m in members]
    feats[:, COL.mean_comp] = comp
    feats[:, COL.popularity] = [popularity[m].mean() for m in members]
    feats[:, COL.size] = [m.size / K_max for m in members]
    return bundles, feats


def next_basket_evaluation(orders: Baskets, policies: Mapping[str, Policy], k: int = 10, n_anchors: int = 16,
                           split: RankingSplit | None = None) -> dict[str, dict[str, Estimate]]:
    """``{method: {"recall@k": Estimate, "ndcg@k": Estimate}}`` over the users of ``split`` (default
    :func:`last_order_split` of ``orders``); the methods are the two baselines and ``bundles:<name>`` per policy."""
    split = split or last_order_split(orders)
    train, test = split.train, split.heldout
    q = _queries(test)
    counts = PairCounts.from_baskets(train, max_basket_size=50)
    n_items = train.n_items
    item_count = train.item_counts().astype(np.float64)
    popularity = popularity_feature(item_count).astype(np.float64)
    by_pop = np.lexsort((np.arange(n_items), -item_count))
    lists: dict[str, np.ndarray] = {"global-popularity": np.tile(by_pop[:k], (len(test), 1))}
    own = np.full((len(test), k), -1, np.int64)
    bundle_lists = {f"bundles:{name}": np.full((len(test), k), -1, np.int64) for name in policies}
    user_of_train = train.user
    order_rows = np.argsort(user_of_train, kind="stable")
    sorted_users = user_of_train[order_rows]
    for u_row, user in enumerate(test.user):
        lo, hi = np.searchsorted(sorted_users, [user, user + 1])
        rows = order_rows[lo:hi]
        history = np.concatenate([train.items[train.indptr[r]:train.indptr[r + 1]] for r in rows]) \
            if rows.size else np.zeros(0, np.int64)
        if not history.size:
            continue
        items, freq = np.unique(history, return_counts=True)
        top = items[np.lexsort((-popularity[items], -freq))][:k]
        own[u_row, :top.size] = top
        bundles, feats = user_bundles(history, counts, popularity, rows.size, n_anchors)
        obs = {CANDIDATES_KEY: feats[None], MASK_KEY: np.ones((1, len(bundles)), np.float32),
               "profile": np.zeros((1, 1), np.float32), "history": np.zeros((1, 1), np.float32),
               "session": np.zeros((1, 10), np.float32)}
        for name, pol in policies.items():
            s = np.asarray(pol.scores(obs) if hasattr(pol, "scores") else pol.action_probabilities(obs))[0]
            ranked = bundles[np.lexsort((np.arange(len(s)), -s))].reshape(-1)
            ranked = ranked[ranked >= 0]
            _, first = np.unique(ranked, return_index=True)
            flat = ranked[np.sort(first)][:k]
            bundle_lists[f"bundles:{name}"][u_row, :flat.size] = flat
    lists["own-most-bought"] = own
    lists.update(bundle_lists)
    return {m: {f"recall@{k}": mean_ci(recall_at_k(ranked, q)), f"ndcg@{k}": mean_ci(ndcg_at_k(ranked, q))}
            for m, ranked in lists.items()}
