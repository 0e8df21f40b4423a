"""Bundle completion learned from a catalogue's own bundles or baskets (issue 16).

Modules, one job each: ``config`` (:class:`CompletionConfig`, :class:`CompletionError`), ``signals`` (the
per-pair signals and their column names), ``generation`` (candidate items of a seed), ``model``
(:class:`CompletionModel`: scores, contributions, completions, top lists, its file format), ``fitting``
(:func:`fit_completion`: weights fitted by a pairwise ranking objective, cached by content hash), ``baselines``
(text cosine, co-occurrence count, popularity as score rows).

Usage::

    model = fit_completion(catalog, baskets, embeddings, rng)   # cached on disk by content hash
    items, scores = model.complete([seed], k=10)                 # best completions, probabilities
    parts = model.contributions(np.repeat(seed, items.size), items)  # (k, len(SIGNALS)) per-signal logits
    model.report                                                 # what was fitted, what fell back
"""

from __future__ import annotations

from bundlerl.candidates.learned.baselines import cooccurrence_scorer, popularity_scorer, text_scorer
from bundlerl.candidates.learned.config import CompletionConfig, CompletionError
from bundlerl.candidates.learned.fitting import completion_cache_key, fit_completion
from bundlerl.candidates.learned.model import SEEN, UNSEEN, CompletionModel, baseline_weights
from bundlerl.candidates.learned.signals import SF, SIGNALS, Signals

__all__ = [
    "CompletionConfig",
    "CompletionError",
    "CompletionModel",
    "fit_completion",
    "completion_cache_key",
    "baseline_weights",
    "SIGNALS",
    "SF",
    "Signals",
    "SEEN",
    "UNSEEN",
    "text_scorer",
    "cooccurrence_scorer",
    "popularity_scorer",
]
