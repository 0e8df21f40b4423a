"""The evaluation metrics: their names, labels and formulas (the one home of every table's and chart's columns).

Two families, both per episode (episodes are the independent units of every confidence interval):

- session metrics (:data:`METRICS`), from an :class:`bundlerl.evaluation.rollout.EvalResult`'s per-episode
  counts (:func:`session_summary`): mean return, click rate (clicks / shown bundles), conversion (purchases /
  clicks), items per purchase, revenue per episode, session length;
- bundle metrics (:data:`BUNDLE_METRICS`), from its bundle log and the world's catalogue
  (:func:`bundle_metrics`): bundle size (items per shown bundle), true-complement share (share of shown bundles
  holding a pair of items whose categories are complements in the simulator's graph: READS SIMULATOR TRUTH,
  evaluation only, never shown to a policy) and diversity (mean 1 - cosine similarity within a multi-item bundle).

Rates pooled over episodes are ratios of per-episode sums with delta-method intervals
(:func:`bundlerl.evaluation.stats.ratio_ci`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bundlerl.evaluation.stats import Estimate, EvaluationError, mean_ci, ratio_ci
from bundlerl.utils.args import need_number, shown

__all__ = [
    "METRICS", "BUNDLE_METRICS", "COMPARISON_METRICS", "LABELS", "UNITS", "COMPLEMENT_THRESHOLD", "session_summary",
    "bundle_metrics", "summarize",
]

METRICS = ("return", "click_rate", "conversion", "items_per_purchase", "revenue", "length")
"""Session metrics (:func:`session_summary`, ``EvalResult.summary()``), in table order."""

BUNDLE_METRICS = ("bundle_size", "complement_share", "diversity")
"""Metrics of the shown bundles (:func:`bundle_metrics`), in table order."""

COMPARISON_METRICS = ("return", "click_rate", "conversion", "revenue", "bundle_size", "complement_share", "diversity")
"""The columns of a comparison of policies (``bundlerl evaluate``: results.md and the bar chart)."""

LABELS = {
    "return": "mean return",
    "click_rate": "click rate",
    "conversion": "conversion",
    "items_per_purchase": "items / purchase",
    "revenue": "revenue",
    "length": "session length",
    "bundle_size": "bundle size",
    "complement_share": "true-complement share",
    "diversity": "diversity",
}
"""Column heading of each metric."""

UNITS = {
    "return": "reward per episode (the world's reward mode)",
    "click_rate": "clicked / shown bundles",
    "conversion": "bundles bought from / clicked",
    "items_per_purchase": "items bought / bundle bought from",
    "revenue": "paid per episode (catalogue price units)",
    "length": "shown bundles per episode",
    "bundle_size": "items per shown bundle",
    "complement_share": "share of shown bundles",
    "diversity": "mean 1 - cosine within a bundle",
}
"""What each metric counts, in its unit (the value axis of charts)."""

COMPLEMENT_THRESHOLD = 0.3
"""Default threshold of a true complement pair: max(G[a, b], G[b, a]) >= it, G the category complement graph."""


def session_summary(res) -> dict[str, Estimate]:
    """Mean and 95% CI of each of :data:`METRICS` from ``res``'s per-episode arrays (n_episodes,)."""
    return {
        "return": mean_ci(res.returns),
        "click_rate": ratio_ci(res.clicks, res.length),
        "conversion": ratio_ci(res.purchases, res.clicks),
        "items_per_purchase": ratio_ci(res.items, res.purchases),
        "revenue": mean_ci(res.revenue),
        "length": mean_ci(res.length),
    }


def _check_inputs(res, world, complement_threshold, where: str) -> None:
    """``res`` an EvalResult (or anything with its log: ``n_episodes``, ``log_items``, ``log_episode``), ``world`` a
    World (anything with a ``catalog``), ``complement_threshold`` a number in [0, 1]; else EvaluationError."""
    if not all(hasattr(res, a) for a in ("n_episodes", "log_items", "log_episode")):
        raise EvaluationError(f"{where}(res={shown(res)}): res must be an EvalResult (evaluate)")
    if not hasattr(world, "catalog"):
        raise EvaluationError(f"{where}(world={shown(world)}): world must be a World (build_world)")
    need_number(complement_threshold, "complement_threshold", where, low=0.0, high=1.0, error=EvaluationError)


def bundle_metrics(res, world, complement_threshold: float = COMPLEMENT_THRESHOLD) -> dict[str, Any]:
    """Per-episode sums for bundle size, true-complement share and diversity from ``res``'s bundle log.

    :param res: an EvalResult (``n_episodes``, ``log_items`` (L, K_max) int -1 padded, ``log_episode`` (L,)).
    :param world: holds ``catalog`` (``embeddings`` (n_items, d) unit rows, ``category`` (n_items,),
        ``complement_graph`` (n_categories, n_categories) or None: then no complement share).
    :returns: ``{metric: (numerator (n_episodes,), denominator (n_episodes,))}``; the metric is Σnum / Σden.
    """
    _check_inputs(res, world, complement_threshold, "bundle_metrics")
    n = res.n_episodes
    items = np.asarray(res.log_items)
    ep = np.asarray(res.log_episode)
    valid = items >= 0
    sizes = valid.sum(axis=1)
    cat = world.catalog
    G = None if cat.complement_graph is None else np.asarray(cat.complement_graph)
    emb = np.asarray(cat.embeddings, dtype=np.float32)
    category = np.asarray(cat.category)
    kmax = items.shape[1] if items.ndim == 2 else 0
    has_comp = np.zeros(len(items), bool)
    div_sum = np.zeros(len(items))
    n_pairs = np.zeros(len(items))
    safe = np.where(valid, items, 0)
    for a in range(kmax):  # K_max is small (3): a loop over the pairs of slots, vectorised over the log
        for b in range(a + 1, kmax):
            ok = valid[:, a] & valid[:, b]
            ia, ib = safe[:, a], safe[:, b]
            if G is not None:
                ca, cb = category[ia], category[ib]
                has_comp |= ok & (np.maximum(G[ca, cb], G[cb, ca]) >= complement_threshold)
            cos = np.einsum("ij,ij->i", emb[ia], emb[ib])
            div_sum += np.where(ok, 1.0 - cos, 0.0)
            n_pairs += ok
    multi = n_pairs > 0
    per_bundle_div = np.where(multi, div_sum / np.maximum(n_pairs, 1), 0.0)
    count = lambda w: np.bincount(ep, weights=w, minlength=n).astype(np.float64)  # noqa: E731
    out = {
        "bundle_size": (count(sizes.astype(float)), count(np.ones(len(items)))),
        "diversity": (count(per_bundle_div), count(multi.astype(float))),
    }
    if G is not None:
        out["complement_share"] = (count(has_comp.astype(float)), count(np.ones(len(items))))
    return out


def summarize(res, world, complement_threshold: float = COMPLEMENT_THRESHOLD) -> dict[str, Estimate]:
    """Every metric of ``res`` (session and bundle) as an Estimate; ``complement_share`` is missing when the
    catalogue has no complement graph."""
    _check_inputs(res, world, complement_threshold, "summarize")
    out = session_summary(res)
    for k, (num, den) in bundle_metrics(res, world, complement_threshold).items():
        out[k] = ratio_ci(num, den)
    return out
