"""The estimated, directed item complementarity model ``comp(i -> j) in [0, 1]`` (recommender side).

Estimated from baskets and item text only; it never reads ``Catalog.complement_graph``
(simulator truth). The score of an ordered pair is a logistic blend of pair features

    comp(i->j) = sigmoid(w_s . f(i, j) + b_s) * min(1, (n_j + beta) / (n_i + beta)) ** eta * (1 - penalty * sub(i, j))

where ``s = seen(i, j)`` (the pair co-occurs in some basket) picks one of two weight rows: pairs with
co-purchase evidence and pairs without it rank best under different features (measured on Instacart:
count evidence for seen pairs, the text/embedding prior for never-seen ones), and a single row has to
compromise between them (a separate row per subset added +0.02 AUC on seen pairs).

with the features ``f`` (:data:`FEATURES`, columns ``PF``, in ``blend``):

- ``log_lift``: log of the empirical-Bayes shrunk basket lift ``L = (n_ij + alpha L0) / (E_ij + alpha)``,
  ``E_ij = n_i n_j / B``, whose prior ``L0 = exp(logL_cat[c(i), c(j)] + clip(<u_i, v_j> + b_t))`` is the
  category lift (:func:`bundlerl.candidates.cooccurrence.category_log_lift`, shrunk toward independence) times the
  text (+ item-id) two-tower of :mod:`bundlerl.candidates.text_comp` (trained on co-purchased pairs against
  popularity-matched negatives, substitutes excluded; items with no baskets get factors from text alone);
- ``log1p_count``: ``log(1 + n_ij)``;
- ``user_log_lift``, ``log1p_user_count``: the same from *user-level* co-occurrence (two items bought by
  one user, in the same or different orders; :func:`bundlerl.candidates.cooccurrence.user_baskets`), shrunk
  toward independence with ``user_alpha``;
- ``category_log_lift``, ``text_residual``: the two parts of the prior, separately;
- ``basket_svd_cos``, ``user_svd_cos``: cosines of low-rank PPMI embeddings (truncated SVD of the
  positive-PMI matrix, basket and user level; :func:`bundlerl.candidates.cooccurrence.ppmi_embeddings`), which
  link items never bought together through shared partners;
- ``log1p_n_i``, ``log1p_n_j``: popularity context for the count evidence.

The weights are fitted by logistic regression on a validation split of the *training* baskets (the
features recomputed on the other part, negatives popularity-matched as in :mod:`bundlerl.candidates.comp_eval`),
one regression per row (never-seen / seen validation pairs; the logistic loss separates, so this equals
one joint fit with every feature interacted with ``seen``); the weights of the four count-evidence
features are constrained >= 0 so more co-purchases never lower a score. With too little data for that
split (or for one subset) the row is ``w = (1, 0, ...), b = -log(kappa)``, i.e. ``comp = L / (L + kappa)``.
The final components are refitted on all baskets.
The direction factor makes the model asymmetric (``i -> j`` strong when ``j`` is at least as common as
``i``). Its default exponent is 0: on Instacart (popularity-matched negatives) ``eta = 0.25`` lowered the
held-out AUC from 0.69 to 0.65, since it rescales whole anchors without telling complements apart; the
two-tower text residual stays directed either way. ``sub(i, j)`` = same category and text cosine >=
``substitute_cosine``.

Modules, one job each: ``config`` (:class:`ComplementConfig`, :class:`ComplementError`), ``blend`` (the pair
features' names and columns, the fixed and fitted blend), ``model`` (:class:`ComplementModel`: pair features,
scores, its file format), ``top_lists`` (each item's precomputed best complements), ``fitting`` (:func:`fit`,
the disk cache, which heals), ``progress`` (the fit's progress bar and its stages). Every public name is
importable from the package, as before it was one module.

Usage::

    model = fit(catalog, baskets, embeddings, rng)        # cached on disk by content hash
    s = model.score(i, j)                                 # (m,) float32 in [0, 1]
    items, scores = model.top_complements(i)              # (m, C_top) int32 / float32
"""

from __future__ import annotations

from bundlerl.candidates.complementarity.blend import (
    FEATURES,
    MONOTONE,
    NEVER_SEEN,
    PF,
    SEEN,
    PairFeatureIndex,
    blend_probability,
    default_blend,
    fit_blend,
)
from bundlerl.candidates.complementarity.config import ComplementConfig, ComplementError
from bundlerl.candidates.complementarity.fitting import cache_key, fit
from bundlerl.candidates.complementarity.model import FORMAT_VERSION, ComplementModel

__all__ = [
    "ComplementConfig",
    "ComplementModel",
    "ComplementError",
    "fit",
    "cache_key",
    "FORMAT_VERSION",
    "FEATURES",
    "PF",
    "PairFeatureIndex",
    "NEVER_SEEN",
    "SEEN",
    "MONOTONE",
    "blend_probability",
    "default_blend",
    "fit_blend",
]
