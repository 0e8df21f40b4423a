"""Offline ranking metrics for logs where no simulator exists: how a policy ranks the logged candidates against what
was bought (issue 18, section 4).

At each logged decision the policy ranks the valid candidates by its scores (``policy.scores(obs)`` when it has them,
else its action probabilities; ties -> lower candidate index). A candidate is *relevant* when it holds an item bought
anywhere in that context (session). With ``rel`` the relevant candidates and ``top`` the first k of the ranking:

- ``precision@k = |top & rel| / k``; ``recall@k = |top & rel| / |rel|``; ``hit@k = 1{top & rel non-empty}``;
- ``NDCG@k = sum_{i <= k} [c_i in rel] / log2(i + 1)`` over the ideal ``sum_{i <= min(k, |rel|)} 1 / log2(i + 1)``.

Decisions without a relevant candidate are left out (their count is reported). Means are over decisions, with
95% intervals that treat contexts as the independent units (``bundlerl.evaluation.stats.ratio_ci``: per-context sums
over per-context decision counts).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from bundlerl.agents.policy import Policy, check_probabilities
from bundlerl.evaluation.logs.loader import LogDataset
from bundlerl.evaluation.stats import Estimate, EvaluationError, ratio_ci

__all__ = ["RANKING_METRICS", "rank_candidates", "candidate_relevance", "ranking_scores", "log_ranking_metrics"]

RANKING_METRICS = ("precision", "recall", "ndcg", "hit")
"""The metric names, in table order (each @k)."""


def rank_candidates(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(n, K) candidate indices best first: valid candidates by descending score (ties -> lower index), then the
    masked ones (never counted: :func:`ranking_scores` gives them no relevance)."""
    s = np.where(np.asarray(mask) > 0, np.asarray(scores, np.float64), -np.inf)
    s = np.where(np.isnan(s), -np.inf, s)
    K = s.shape[1]
    return np.lexsort((np.broadcast_to(np.arange(K), s.shape), -s), axis=1) if s.size else np.zeros(s.shape, int)


def candidate_relevance(item_ids: np.ndarray, context: np.ndarray, bought: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(n, K) bool: candidate k of decision i is valid and holds an item bought anywhere in decision i's context.

    :param item_ids: (n, K, M) -1 padded. :param context: (n,) context ids. :param bought: (n, M) items bought at
        each decision (-1: none). :param mask: (n, K) valid candidates.
    """
    ctx = np.asarray(context, np.int64)
    b = np.asarray(bought, np.int64)
    rows = np.repeat(np.arange(len(ctx)), b.shape[1])[b.reshape(-1) >= 0]
    keys_bought = np.unique(np.stack([ctx[rows], b.reshape(-1)[b.reshape(-1) >= 0]], axis=1), axis=0) \
        if rows.size else np.zeros((0, 2), np.int64)
    items = np.asarray(item_ids, np.int64)
    n, K, M = items.shape
    if not keys_bought.size:
        return np.zeros((n, K), bool)
    # encode (context, item) pairs as one int64 key and test membership with a sorted search
    base = int(max(items.max(), b.max())) + 2
    bought_keys = np.sort(keys_bought[:, 0] * base + keys_bought[:, 1] + 1)
    cand_keys = ctx[:, None, None] * base + items + 1
    pos = np.searchsorted(bought_keys, cand_keys).clip(max=bought_keys.size - 1)
    hit = (bought_keys[pos] == cand_keys) & (items >= 0)
    return hit.any(axis=2) & (np.asarray(mask) > 0)


def ranking_scores(ranked: np.ndarray, relevant: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Per decision (n,) precision, recall, NDCG and hit @k of the ranking ``ranked`` (n, K) against ``relevant``
    (n, K) bool (the module docstring's formulas); NaN where a decision has no relevant candidate."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise EvaluationError(f"k={k!r}; rank at least one candidate")
    rel = np.take_along_axis(np.asarray(relevant, bool), ranked, axis=1)[:, :k]
    n_rel = np.asarray(relevant, bool).sum(axis=1)
    hits = rel.sum(axis=1)
    disc = 1.0 / np.log2(np.arange(2, rel.shape[1] + 2))
    ideal = np.cumsum(disc)[np.clip(np.minimum(k, n_rel), 1, rel.shape[1]) - 1]
    ok = n_rel > 0
    nan = np.full(len(n_rel), np.nan)
    return {"precision": np.where(ok, hits / k, nan), "recall": np.where(ok, hits / np.maximum(n_rel, 1), nan),
            "ndcg": np.where(ok, (rel * disc).sum(axis=1) / ideal, nan), "hit": np.where(ok, hits > 0, nan)}


def _scores(policy: Policy, obs: Mapping[str, np.ndarray]) -> np.ndarray:
    if hasattr(policy, "scores"):
        return np.asarray(policy.scores(obs), np.float64)
    return check_probabilities(policy.action_probabilities(obs), obs, policy.name)


def log_ranking_metrics(logs: "LogDataset | str", policies: Mapping[str, Policy], k: int = 5,
                        batch: int = 8192) -> dict[str, dict[str, Estimate]]:
    """``{policy: {metric: Estimate}}`` of :data:`RANKING_METRICS` @k over a log, streamed part by part; each
    Estimate's ``n`` is the number of contexts (sessions) in the log, the interval's independent units, those without
    a relevant candidate included (their decisions add nothing to the means)."""
    logs = logs if isinstance(logs, LogDataset) else LogDataset.open(logs)
    cols = ("context_id", "step", "profile", "history", "session", "candidates", "action_mask", "item_ids",
            "bought_items")
    sums: dict[str, dict[str, list]] = {p: {m: [] for m in (*RANKING_METRICS, "_n")} for p in policies}
    for part in logs.parts(cols):
        c = part.columns
        rel = candidate_relevance(c["item_ids"], c["context_id"], c["bought_items"], c["action_mask"])
        _, ctx = np.unique(c["context_id"], return_inverse=True)
        ctx = ctx.reshape(-1)
        obs = part.observation()
        for name, pol in policies.items():
            s = np.concatenate([_scores(pol, {key: v[lo:lo + batch] for key, v in obs.items()})
                                for lo in range(0, part.n, batch)])
            per = ranking_scores(rank_candidates(s, c["action_mask"]), rel, k)
            ok = np.isfinite(per["ndcg"])
            for m in RANKING_METRICS:
                sums[name][m].append(np.bincount(ctx[ok], per[m][ok], minlength=ctx.max() + 1))
            sums[name]["_n"].append(np.bincount(ctx[ok], minlength=ctx.max() + 1).astype(float))
    out = {}
    for name, acc in sums.items():
        den = np.concatenate(acc["_n"])
        out[name] = {m: ratio_ci(np.concatenate(acc[m]), den) for m in RANKING_METRICS}
    return out
