"""The signals of the learned completion: per (seed s, candidate j) features from what the project already has.

:class:`Signals` holds the statistics estimated from bundles / baskets (pair counts, category lift, PPMI
embeddings, popularity) beside the catalogue's text embeddings, categories and prices; :meth:`Signals.features`
evaluates the columns :data:`SIGNALS` (named by :data:`SF`):

- ``text_cos``: ``<e_s, e_j>``, cosine of the packaged encoder's unit embeddings;
- ``log1p_count``: ``log(1 + n_sj)``, baskets holding both (``bundlerl.candidates.cooccurrence.PairCounts``);
- ``pmi``: ``log((n_sj + alpha) / (n_s n_j / B + alpha))``, the PMI shrunk toward independence
  (``bundlerl.candidates.cooccurrence.shrunk_log_lift``; 0 without evidence);
- ``ppmi_cos``: cosine of the items' PPMI embeddings (``cooccurrence.ppmi_embeddings``; 0 for an item in no basket),
  links items never bought together through shared partners;
- ``category_log_lift``: the category lift shrunk toward 1 (``cooccurrence.category_log_lift``), the complementarity
  model's category prior;
- ``same_category``: ``[c_s = c_j]``; ``substitute``: ``[c_s = c_j] max(0, cos)`` (``bundlerl.candidates.features.substitution``);
- ``price_fit``: ``-|log p_j - log p_s|`` (0 = same price);
- ``log1p_popularity``: ``log(1 + n_j)``; ``candidate_seen``: ``[n_j > 0]``; ``pair_seen``: ``[n_sj > 0]``;
- ``log1p_user_count``, ``user_pmi``: the same count and shrunk PMI from *user-level* co-occurrence (two items one
  user bought, in one order or across orders; ``cooccurrence.user_baskets``, at most ``max_user_items`` per user),
  equal to the basket-level ones when the baskets carry no user ids (bundles);
- ``partner_share``: ``w_sj / m_s``, the chance that a random other item of a basket holding s is j, with ``w_sj``
  the size-weighted co-occurrence (a basket of m items adds ``1 / (m - 1)``) and ``m_s`` the baskets of >= 2 items
  holding s (``cooccurrence.partner_shares``; 0 for a seed in none). A found item of a bundle of m items is worth
  ``1 / (m - 1)`` of Recall@k, so this, not the count, estimates the recall of ranking j; small baskets weigh more;
- ``log_partner_share``: ``log((w_sj + alpha' q_j) / (m_s + alpha'))`` with ``q_j = m_j / sum m`` the item's share of
  all partner slots and ``alpha' = partner_alpha``: the share shrunk toward that popularity, so pairs never seen
  together rank by popularity (as the co-occurrence baseline breaks its ties);
- ``log1p_small_count``, ``log1p_small_popularity``: the count and the candidate's popularity among *bundle-sized*
  baskets only (at most ``config.max_query_items`` items; 0 when every basket is that small, as they would repeat
  ``log1p_count`` and ``log1p_popularity``): small orders are made of other
  items than weekly shops (Instacart: Recall@10 0.151 without these two, 0.164-0.170 with them; benchmarks/HISTORY.md).

The seed's own regime (``n_s > 0``: seen) is not a column: it picks the weight row (``bundlerl.candidates.learned.model``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from bundlerl.candidates.cooccurrence import (
    PairCounts,
    category_counts,
    category_log_lift,
    expected_counts,
    partner_shares,
    ppmi_embeddings,
    shrunk_log_lift,
    user_baskets,
)
from bundlerl.candidates.features import substitution
from bundlerl.candidates.learned.config import CompletionConfig, CompletionError
from bundlerl.sim_data.baskets import Baskets

__all__ = ["SignalIndex", "SF", "SIGNALS", "Signals", "check_embeddings", "pair_dots"]


class SignalIndex(NamedTuple):
    """Column of each signal (the fields, in column order; see the module docstring)."""

    text_cos: int
    log1p_count: int
    pmi: int
    ppmi_cos: int
    category_log_lift: int
    same_category: int
    substitute: int
    price_fit: int
    log1p_popularity: int
    candidate_seen: int
    pair_seen: int
    log1p_user_count: int
    user_pmi: int
    partner_share: int
    log_partner_share: int
    log1p_small_count: int
    log1p_small_popularity: int


#: The column of each signal: ``F[:, SF.text_cos]``.
SF = SignalIndex(*range(len(SignalIndex._fields)))
#: Signal names in column order.
SIGNALS: tuple[str, ...] = SignalIndex._fields


def check_embeddings(embeddings, n: int) -> np.ndarray:
    """(n, d) float32 contiguous unit rows, or :class:`CompletionError` saying what is wrong."""
    E = np.asarray(embeddings)
    if E.ndim != 2 or E.shape[0] != n:
        raise CompletionError(f"embeddings have shape {E.shape}; expected ({n}, d), one row per catalogue item")
    E = np.ascontiguousarray(E, np.float32)
    if not np.isfinite(E).all() or np.abs(np.linalg.norm(E, axis=1) - 1).max() > 1e-3:
        raise CompletionError("embeddings must be finite unit-norm rows (as the encoders return them); re-encode")
    return E


def pair_dots(X: np.ndarray, s: np.ndarray, j: np.ndarray, chunk: int = 16384) -> np.ndarray:
    """(m,) float64 ``<X[s[k]], X[j[k]]>``, in chunks of ``chunk`` pairs through batched BLAS products (a gather of
    all pairs at once, or ``einsum``, runs ~10x slower: the gathered rows leave the cache)."""
    out = np.empty(s.size, np.float64)
    for lo in range(0, s.size, chunk):
        A, B = X[s[lo : lo + chunk]], X[j[lo : lo + chunk]]
        out[lo : lo + chunk] = np.matmul(A[:, None, :], B[:, :, None])[:, 0, 0]
    return out


@dataclass
class Signals:
    """Statistics of one set of bundles / baskets over a catalogue of ``n`` items.

    ``embeddings`` (n, d) float32 unit rows; ``category`` (n,) int64; ``log_price`` (n,) float64; ``counts``
    (:class:`PairCounts`); ``cat_log_lift`` (C, C) float32; ``ppmi`` (n, r) float32 unit or zero rows; ``alpha``
    the PMI prior strength; ``user_counts`` user-level :class:`PairCounts` (``counts`` itself without user ids);
    ``partner`` (P,) float64 size-weighted counts aligned with ``counts.keys`` and ``partner_mass`` (n,) float64
    (``cooccurrence.partner_shares``); ``partner_alpha`` the shrinkage of ``log_partner_share``; ``small_counts`` the
    :class:`PairCounts` of the bundle-sized baskets (``counts`` itself when every basket is one).
    """

    embeddings: np.ndarray
    category: np.ndarray
    log_price: np.ndarray
    counts: PairCounts
    cat_log_lift: np.ndarray
    ppmi: np.ndarray
    alpha: float
    user_counts: PairCounts
    partner: np.ndarray
    partner_mass: np.ndarray
    partner_alpha: float
    small_counts: PairCounts

    @classmethod
    def from_baskets(cls, category: np.ndarray, n_categories: int, price: np.ndarray, baskets: Baskets,
                     embeddings: np.ndarray, config: CompletionConfig, rng: np.random.Generator) -> "Signals":
        """Estimate the statistics from ``baskets`` (``rng`` draws the PPMI range finder's test matrix)."""
        counts = PairCounts.from_baskets(baskets)
        pair, single = category_counts(baskets, category, n_categories)
        cat_ll = category_log_lift(pair, single, max(1, len(baskets)), config.category_alpha)
        ppmi = ppmi_embeddings(counts, config.svd_rank, rng) if config.svd_rank > 0 else np.zeros((baskets.n_items, 0), np.float32)
        users = counts if baskets.user is None else PairCounts.from_baskets(user_baskets(baskets, config.max_user_items))
        partner, mass = partner_shares(baskets, counts)
        m = config.max_query_items
        small = counts if not m or (baskets.sizes <= m).all() else PairCounts.from_baskets(baskets.subset(baskets.sizes <= m))
        return cls(embeddings, np.asarray(category, np.int64), np.log(np.asarray(price, np.float64)), counts, cat_ll,
                   ppmi, float(config.alpha), users, partner, mass, float(config.partner_alpha), small)

    @property
    def n_items(self) -> int:
        return int(self.category.size)

    @property
    def popularity(self) -> np.ndarray:
        """(n,) int64 baskets holding each item."""
        return self.counts.item_counts

    def seen(self, items) -> np.ndarray:
        """(m,) bool: the items occur in some basket."""
        return self.counts.item_counts[np.asarray(items, np.int64)] > 0

    def features(self, s: np.ndarray, j: np.ndarray) -> np.ndarray:
        """(m, len(SIGNALS)) float64 signals of the pairs ``(s[k], j[k])`` (int arrays of catalogue positions)."""
        s = np.asarray(s, np.int64).reshape(-1)
        j = np.asarray(j, np.int64).reshape(-1)
        if s.shape != j.shape:
            raise CompletionError(f"{s.size} seeds and {j.size} candidates; pass two equal-length arrays")
        n_i = self.counts.item_counts.astype(np.float64)
        n_sj = self.counts.lookup(s, j).astype(np.float64)
        F = np.empty((s.size, len(SIGNALS)), np.float64)
        cos = pair_dots(self.embeddings, s, j)
        F[:, SF.text_cos] = cos
        F[:, SF.log1p_count] = np.log1p(n_sj)
        F[:, SF.pmi] = shrunk_log_lift(n_sj, expected_counts(n_i[s], n_i[j], max(1, self.counts.n_baskets)), self.alpha)
        F[:, SF.ppmi_cos] = pair_dots(self.ppmi, s, j) if self.ppmi.shape[1] else 0.0
        cs, cj = self.category[s], self.category[j]
        F[:, SF.category_log_lift] = self.cat_log_lift[cs, cj]
        F[:, SF.same_category] = cs == cj
        F[:, SF.substitute] = substitution(cs, cj, cos)
        F[:, SF.price_fit] = -np.abs(self.log_price[j] - self.log_price[s])
        F[:, SF.log1p_popularity] = np.log1p(n_i[j])
        F[:, SF.candidate_seen] = n_i[j] > 0
        F[:, SF.pair_seen] = n_sj > 0
        uc = self.user_counts
        u_sj = n_sj if uc is self.counts else uc.lookup(s, j).astype(np.float64)
        u_i = uc.item_counts.astype(np.float64)
        F[:, SF.log1p_user_count] = np.log1p(u_sj)
        F[:, SF.user_pmi] = shrunk_log_lift(u_sj, expected_counts(u_i[s], u_i[j], max(1, uc.n_baskets)), self.alpha)
        w_sj = self.partner_lookup(s, j)
        m = self.partner_mass
        F[:, SF.partner_share] = w_sj / np.maximum(m[s], 1.0)
        q_j = m[j] / max(float(m.sum()), 1.0)
        a = self.partner_alpha
        F[:, SF.log_partner_share] = np.log((w_sj + a * q_j + 1e-12) / (m[s] + a))
        sc = self.small_counts
        if sc is self.counts:  # every basket is bundle-sized: the two would repeat log1p_count and the popularity
            F[:, SF.log1p_small_count] = F[:, SF.log1p_small_popularity] = 0.0
        else:
            F[:, SF.log1p_small_count] = np.log1p(sc.lookup(s, j).astype(np.float64))
            F[:, SF.log1p_small_popularity] = np.log1p(sc.item_counts[j].astype(np.float64))
        return F

    def partner_lookup(self, s: np.ndarray, j: np.ndarray) -> np.ndarray:
        """(m,) float64 size-weighted co-occurrence ``w_sj`` of the pairs (0 for pairs never together)."""
        return self.counts.gather(self.partner, s, j).astype(np.float64)
