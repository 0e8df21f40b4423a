"""The estimated, directed item complementarity model ``comp(i -> j) in [0, 1]`` (recommender side).

Estimated from baskets and item text only; it never reads ``Catalog.complement_graph``
(simulator truth). The score of an ordered pair is a logistic blend of pair features

    comp(i->j) = sigmoid(w_s . f(i, j) + b_s) * min(1, (n_j + beta) / (n_i + beta)) ** eta * (1 - penalty * sub(i, j))

where ``s = seen(i, j)`` (the pair co-occurs in some basket) picks one of two weight rows: pairs with
co-purchase evidence and pairs without it rank best under different features (measured on Instacart:
count evidence for seen pairs, the text/embedding prior for never-seen ones), and a single row has to
compromise between them (a separate row per subset added +0.02 AUC on seen pairs).

with the features ``f`` (:data:`FEATURES`):

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

Usage::

    model = fit(catalog, baskets, embeddings, rng)        # cached on disk by content hash
    s = model.score(i, j)                                 # (m,) float32 in [0, 1]
    items, scores = model.top_complements(i)              # (m, C_top) int32 / float32
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from bundlerl.candidates.cooccurrence import (
    PairCounts,
    category_counts,
    category_log_lift,
    direction_factor,
    expected_counts,
    lift_to_unit,
    ppmi_embeddings,
    shrunk_lift,
    shrunk_log_lift,
    user_baskets,
)
from bundlerl.sim_data.baskets import Baskets
from bundlerl.sim_data.catalog import Catalog
from bundlerl.utils.errors import BundlerlError
from bundlerl.utils.threads import torch_threads

__all__ = ["ComplementConfig", "ComplementModel", "ComplementError", "fit", "cache_key", "FORMAT_VERSION", "FEATURES"]

#: Bumped when the fitted-model file layout or the fitting maths change (invalidates caches).
FORMAT_VERSION = 3

#: Pair features of the blend, in order (see the module docstring).
FEATURES = (
    "log_lift",
    "log1p_count",
    "user_log_lift",
    "log1p_user_count",
    "category_log_lift",
    "text_residual",
    "basket_svd_cos",
    "user_svd_cos",
    "log1p_n_i",
    "log1p_n_j",
)
#: Features whose blend weight is constrained >= 0 (count evidence: more co-purchases never lower a score).
MONOTONE = (0, 1, 2, 3)


class ComplementError(BundlerlError):
    """Bad input to the complementarity model; the message says what is wrong and what to do."""


@dataclass(frozen=True)
class ComplementConfig:
    """Hyper-parameters of the complementarity model (validated on construction)."""

    alpha: float = 2.0
    """Prior strength of the item-pair shrinkage, in pseudo expected co-occurrences (> 0). Larger = lean
    more on the category/text prior for rare pairs."""
    category_alpha: float = 5.0
    """Prior strength (pseudo expected counts) shrinking the category lift toward 1 (> 0)."""
    kappa: float = 2.0
    """Lift mapped to 0.5 by ``L / (L + kappa)`` (> 0)."""
    beta: float = 5.0
    """Pseudo-count in the direction factor ``min(1, (n_j + beta) / (n_i + beta)) ** eta`` (> 0)."""
    eta: float = 0.0
    """Exponent of the direction factor (>= 0; 0 = no popularity-based direction; see the module docstring)."""
    substitute_cosine: float = 0.8
    """Same-category pairs with text cosine >= this are substitutes: excluded from text-model positives
    and penalised in the score. In (-1, 1]."""
    substitute_penalty: float = 1.0
    """Score multiplier for substitutes is ``1 - substitute_penalty``; in [0, 1] (1 = substitutes score 0)."""
    rank: int = 32
    """Rank of the text two-tower factors (>= 1)."""
    use_item_ids: bool = True
    """Learn per-item offsets for items seen in baskets (cold items use text only)."""
    n_pairs: int = 400_000
    """Positive co-purchase instances sampled to train the text model (as many negatives are drawn); >= 1."""
    epochs: int = 3
    """Passes over the sampled pairs (>= 1)."""
    batch_size: int = 16384
    """Mini-batch size of the text model (>= 1)."""
    lr: float = 0.01
    """Adam learning rate (> 0)."""
    weight_decay: float = 1e-5
    """L2 on the text projections (>= 0)."""
    id_weight_decay: float = 1e-3
    """L2 on the per-item offsets, per sample (>= 0)."""
    max_residual: float = 4.0
    """The text residual log-lift is clipped to [-max_residual, max_residual] (> 0)."""
    max_basket_size: int = 0
    """Baskets larger than this are left out of the pair counts (0 = keep all)."""
    top_k: int = 50
    """C_top: complements precomputed per item (>= 1)."""
    pool_size: int = 5_000
    """Candidate complements considered for the top lists: the ``pool_size`` items most frequent in baskets
    (all items when the catalogue is smaller or no basket holds any). >= 1."""
    chunk: int = 512
    """Anchors per block when computing the top lists (memory ~ chunk x pool x 8 bytes x a few)."""
    threads: int = 2
    """torch threads for training."""
    user_alpha: float = 1.0
    """Prior strength (pseudo expected counts) shrinking the user-level lift toward 1 (> 0)."""
    max_user_items: int = 300
    """Distinct items kept per user for user-level co-occurrence (0 = all); bounds the quadratic pair count."""
    svd_rank: int = 64
    """Rank of the PPMI embeddings (basket and user level); 0 = no embedding features."""
    blend_fraction: float = 0.125
    """Share of the baskets held out (from the training baskets given to :func:`fit`) to fit the blend
    weights; in [0, 0.5]; 0 = fixed weights ``comp = L / (L + kappa)``."""
    blend_pairs: int = 100_000
    """Validation co-purchase instances (each with a popularity-matched negative) used to fit the blend (>= 1)."""
    min_blend_pairs: int = 2_000
    """Fewer validation positives than this -> keep the fixed weights (too little data to fit them); each blend
    row (never-seen / seen pairs) also needs ``min_blend_pairs // 4`` positives and as many negatives; >= 1."""
    blend_l2: float = 1e-3
    """L2 penalty on the standardised blend weights (>= 0)."""

    def __post_init__(self) -> None:
        pos = ("alpha", "category_alpha", "kappa", "beta", "lr", "max_residual")
        for name in pos:
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and np.isfinite(v) and v > 0):
                raise ComplementError(f"ComplementConfig.{name}={v!r}; it must be a finite number > 0")
        if not (isinstance(self.user_alpha, (int, float)) and np.isfinite(self.user_alpha) and self.user_alpha > 0):
            raise ComplementError(f"ComplementConfig.user_alpha={self.user_alpha!r}; it must be a finite number > 0")
        if not (isinstance(self.blend_fraction, (int, float)) and 0.0 <= self.blend_fraction <= 0.5):
            raise ComplementError(f"ComplementConfig.blend_fraction={self.blend_fraction!r}; it must be in [0, 0.5]")
        for name in ("max_user_items", "svd_rank"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ComplementError(f"ComplementConfig.{name}={v!r}; it must be an int >= 0")
        for name in ("eta", "weight_decay", "id_weight_decay", "blend_l2"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and np.isfinite(v) and v >= 0):
                raise ComplementError(f"ComplementConfig.{name}={v!r}; it must be a finite number >= 0")
        if not -1.0 < self.substitute_cosine <= 1.0:
            raise ComplementError(f"ComplementConfig.substitute_cosine={self.substitute_cosine}; it must be in (-1, 1]")
        if not 0.0 <= self.substitute_penalty <= 1.0:
            raise ComplementError(f"ComplementConfig.substitute_penalty={self.substitute_penalty}; it must be in [0, 1]")
        for name in ("rank", "n_pairs", "epochs", "batch_size", "top_k", "pool_size", "chunk", "threads", "blend_pairs", "min_blend_pairs"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ComplementError(f"ComplementConfig.{name}={v!r}; it must be an int >= 1")
        if isinstance(self.max_basket_size, bool) or not isinstance(self.max_basket_size, (int, np.integer)) or self.max_basket_size < 0:
            raise ComplementError(f"ComplementConfig.max_basket_size={self.max_basket_size!r}; it must be an int >= 0")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ComplementConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ComplementError(f"unknown ComplementConfig fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)


def _as_index(x, n: int, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1:
        raise ComplementError(f"{name} has shape {a.shape}; pass a 1-d int array of item positions")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise ComplementError(f"{name} has dtype {a.dtype}; item positions must be integers")
    a = a.astype(np.int64, copy=False)
    bad = np.flatnonzero((a < 0) | (a >= n))
    if bad.size:
        raise ComplementError(f"{name}[{bad[0]}] = {a[bad[0]]} is outside [0, {n}); use catalogue row positions")
    return a


class ComplementModel:
    """A fitted complementarity model over ``n`` items (build with :func:`fit` or :meth:`load`).

    Attributes: ``config`` (:class:`ComplementConfig`), ``n_items``, ``top_items`` (n, C_top) int32
    (-1 padded, best first), ``top_scores`` (n, C_top) float32 (0 where padded), ``category_scores``
    (C, C) float32 directed category-level comp, ``blend_w`` (2, len(FEATURES)) float64 and ``blend_b``
    (2,) float64 (the fitted blend; row 0 for never-seen pairs, row 1 for pairs co-occurring in a basket),
    ``fit_seconds`` (time the fit took; 0 unknown).
    """

    def __init__(
        self,
        config: ComplementConfig,
        category: np.ndarray,
        emb16: np.ndarray,
        counts: PairCounts,
        cat_log_lift: np.ndarray,
        cat_single: np.ndarray,
        u: np.ndarray,
        v: np.ndarray,
        bias: float,
        top_items: np.ndarray | None = None,
        top_scores: np.ndarray | None = None,
        fit_seconds: float = 0.0,
        *,
        user_counts: PairCounts | None = None,
        svd_basket: np.ndarray | None = None,
        svd_user: np.ndarray | None = None,
        blend_w: np.ndarray | None = None,
        blend_b: float | None = None,
        build_top: bool = True,
    ) -> None:
        self.config = config
        self.category = np.asarray(category, np.int64)
        self.emb16 = np.asarray(emb16, np.float16)
        self.counts = counts
        self.user_counts = counts if user_counts is None else user_counts
        self.cat_log_lift = np.asarray(cat_log_lift, np.float32)
        self.cat_single = np.asarray(cat_single, np.int64)
        self.u = np.asarray(u, np.float32)
        self.v = np.asarray(v, np.float32)
        self.bias = float(bias)
        self.n_items = int(self.category.size)
        zero = np.zeros((self.n_items, 0), np.float32)
        self.svd_basket = zero if svd_basket is None else np.asarray(svd_basket, np.float32)
        self.svd_user = zero if svd_user is None else np.asarray(svd_user, np.float32)
        if blend_w is None:
            blend_w, blend_b = default_blend(config.kappa)
        self.blend_w = np.asarray(blend_w, np.float64)
        self.blend_b = np.asarray(blend_b, np.float64)
        if self.blend_w.shape != (2, len(FEATURES)) or self.blend_b.shape != (2,):
            raise ComplementError(
                f"blend_w has shape {self.blend_w.shape}, blend_b {self.blend_b.shape}; expected (2, {len(FEATURES)}) and (2,)"
            )
        self.fit_seconds = float(fit_seconds)
        self._n_i = counts.item_counts.astype(np.float64)
        self._B = max(1, counts.n_baskets)
        self._u_i = self.user_counts.item_counts.astype(np.float64)
        self._U = max(1, self.user_counts.n_baskets)
        if top_items is None and build_top:
            top_items, top_scores = self._compute_top()
        self.top_items = None if top_items is None else np.asarray(top_items, np.int32)
        self.top_scores = None if top_scores is None else np.asarray(top_scores, np.float32)

    def __repr__(self) -> str:
        return f"ComplementModel(n_items={self.n_items}, n_baskets={self.counts.n_baskets}, top_k={self.config.top_k})"

    # ------------------------------------------------------------------ scoring
    def _residual(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        r = np.einsum("mr,mr->m", self.u[i], self.v[j]) + np.float32(self.bias)
        return np.clip(r, -self.config.max_residual, self.config.max_residual)

    def _prior_log_lift(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """(m,) log prior lift ``logL_cat[c(i), c(j)] + clip(<u_i, v_j> + b_t)``."""
        return self.cat_log_lift[self.category[i], self.category[j]] + self._residual(i, j)

    def _substitutes(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        from bundlerl.candidates.text_comp import substitute_mask

        return substitute_mask(i, j, self.category, self.emb16, self.config.substitute_cosine)

    def pair_features(self, i, j) -> np.ndarray:
        """(m, len(FEATURES)) float64 blend features of pairs ``(i[k], j[k])`` (see the module docstring)."""
        i = _as_index(i, self.n_items, "i")
        j = _as_index(j, self.n_items, "j")
        cfg = self.config
        cl = self.cat_log_lift[self.category[i], self.category[j]].astype(np.float64)
        r = self._residual(i, j).astype(np.float64)
        n_ij = self.counts.lookup(i, j)
        E = expected_counts(self._n_i[i], self._n_i[j], self._B)
        u_ij = self.user_counts.lookup(i, j)
        Eu = expected_counts(self._u_i[i], self._u_i[j], self._U)
        F = np.empty((i.size, len(FEATURES)), np.float64)
        F[:, 0] = np.log(shrunk_lift(n_ij, E, np.exp(cl + r), cfg.alpha))
        F[:, 1] = np.log1p(n_ij)
        F[:, 2] = shrunk_log_lift(u_ij, Eu, cfg.user_alpha)
        F[:, 3] = np.log1p(u_ij)
        F[:, 4] = cl
        F[:, 5] = r
        F[:, 6] = np.einsum("mr,mr->m", self.svd_basket[i], self.svd_basket[j])
        F[:, 7] = np.einsum("mr,mr->m", self.svd_user[i], self.svd_user[j])
        F[:, 8] = np.log1p(self._n_i[i])
        F[:, 9] = np.log1p(self._n_i[j])
        return F

    def score(self, i, j) -> np.ndarray:
        """Directed complementarity ``comp(i[k] -> j[k])``: (m,) float32 in [0, 1].

        :param i: (m,) int anchor item positions in [0, n_items).
        :param j: (m,) int candidate complement positions, same length.
        ``comp(i -> i) = 0``. Raises :class:`ComplementError` on shape/range mistakes.
        """
        i = _as_index(i, self.n_items, "i")
        j = _as_index(j, self.n_items, "j")
        if i.shape != j.shape:
            raise ComplementError(f"i has {i.size} entries and j has {j.size}; pass two equal-length arrays")
        cfg = self.config
        F = self.pair_features(i, j)
        seen = F[:, FEATURES.index("log1p_count")] > 0
        s = np.where(seen, blend_probability(F, self.blend_w[1], self.blend_b[1]), blend_probability(F, self.blend_w[0], self.blend_b[0]))
        s *= direction_factor(self._n_i[i], self._n_i[j], cfg.beta, cfg.eta)
        s *= 1.0 - cfg.substitute_penalty * self._substitutes(i, j)
        s[i == j] = 0.0
        return np.clip(s, 0.0, 1.0).astype(np.float32)

    def top_complements(self, i) -> tuple[np.ndarray, np.ndarray]:
        """Precomputed best complements of each anchor: (items (m, C_top) int32 -1 padded, scores (m, C_top) float32)."""
        i = _as_index(i, self.n_items, "i")
        if self.top_items is None:
            self.top_items, self.top_scores = self._compute_top()
        return self.top_items[i], self.top_scores[i]

    @property
    def category_scores(self) -> np.ndarray:
        """(C, C) float32 directed category-level comp: ``lift_to_unit(L_cat) * direction(category counts)``;
        the diagonal (same category = substitutes) is 0."""
        cfg = self.config
        L = np.exp(self.cat_log_lift.astype(np.float64))
        n = self.cat_single.astype(np.float64)
        out = lift_to_unit(L, cfg.kappa) * direction_factor(n[:, None], n[None, :], cfg.beta, cfg.eta)
        np.fill_diagonal(out, 0.0)
        return out.astype(np.float32)

    # ------------------------------------------------------------------ top lists
    def _pool_side(self, pool: np.ndarray) -> dict:
        """Candidate-side factors of :meth:`_block_logit` for ``pool`` (sorted item positions), computed once per
        top-list build instead of once per anchor block."""
        w = self.blend_w[0].astype(np.float32)
        return dict(
            pool=pool,
            w=w,
            cl_j=np.ascontiguousarray(self.cat_log_lift[:, self.category[pool]]),
            vT=self.v[pool].T,
            sbT=self.svd_basket[pool].T,
            suT=self.svd_user[pool].T,
            pop_j=w[9] * np.log1p(self._n_i[pool]).astype(np.float32),
            n_B=self._n_i[pool] / self._B,
            u_U=self._u_i[pool] / self._U,
        )

    def _block_logit(self, I: np.ndarray, pool: np.ndarray, side: dict | None = None, work: dict | None = None) -> np.ndarray:
        """(|I|, |pool|) float32 blend logit of every (anchor in I, candidate in pool) pair: the dense twin of
        :meth:`pair_features` with the never-seen row of the blend (sparse count corrections); the pairs
        seen in baskets are then rescored exactly with the seen row. Used to pre-select the top lists.

        ``side``: :meth:`_pool_side` of ``pool`` (computed here when None). ``work``: reusable buffers (a dict
        this method fills; pass the same one for every block so that the (|I|, |pool|) temporaries are allocated
        once): the returned array is then one of them, valid until the next call with that ``work``.
        Each element goes through the same float32/float64 operations in the same order whatever the buffers.
        """
        cfg = self.config
        if side is None:
            side = self._pool_side(pool)
        w = side["w"]
        m, k = pool.size, I.size
        if work is None:
            work = {}
        if work.get("shape", (0, 0))[0] < k or work["shape"][1] != m:
            work.clear()
            work["shape"] = (k, m)
            for name in ("logit", "r", "cl", "a", "b"):
                work[name] = np.empty((k, m), np.float32)
            work["d64"] = np.empty((k, m), np.float64)
        logit, r, cl, a, b = (work[x][:k] for x in ("logit", "r", "cl", "a", "b"))
        d64 = work["d64"][:k]

        np.matmul(self.u[I], side["vT"], out=r)
        r += np.float32(self.bias)
        np.clip(r, -cfg.max_residual, cfg.max_residual, out=r)
        np.take(side["cl_j"], self.category[I], axis=0, out=cl)  # cl[a, b] = cat_log_lift[c(I[a]), c(pool[b])]
        # logit = b0 + (w4 cl + w5 r)
        np.multiply(cl, w[4], out=a)
        np.multiply(r, w[5], out=b)
        a += b
        np.add(a, np.float32(self.blend_b[0]), out=logit)
        if self.svd_basket.shape[1] and w[6] != 0:
            np.matmul(self.svd_basket[I], side["sbT"], out=a)
            a *= w[6]
            logit += a
        if self.svd_user.shape[1] and w[7] != 0:
            np.matmul(self.svd_user[I], side["suT"], out=a)
            a *= w[7]
            logit += a
        np.add((w[8] * np.log1p(self._n_i[I]).astype(np.float32))[:, None], side["pop_j"][None, :], out=a)
        logit += a

        def sparse(pc: PairCounts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            row, jj, cnt = pc.rows(I)
            col = np.searchsorted(pool, jj)
            ok = (col < m) & (pool[np.minimum(col, m - 1)] == jj)
            return row[ok], col[ok], cnt[ok].astype(np.float32)

        # basket shrunk log-lift: log((n + alpha L0) / (E + alpha)); a = numerator, b = denominator
        np.add(cl, r, out=a)
        np.exp(a, out=a)
        a *= np.float32(cfg.alpha)
        row, col, cnt = sparse(self.counts)
        a[row, col] += cnt
        np.multiply(self._n_i[I][:, None], side["n_B"][None, :], out=d64)
        b[...] = d64  # float64 -> float32, rounded as astype does
        b += np.float32(cfg.alpha)
        np.log(a, out=a)
        np.log(b, out=b)
        a -= b
        a *= w[0]
        logit += a
        logit[row, col] += w[1] * np.log1p(cnt)
        # user-level shrunk log-lift
        urow, ucol, ucnt = sparse(self.user_counts)
        ua = np.float32(cfg.user_alpha)
        np.multiply(self._u_i[I][:, None], side["u_U"][None, :], out=d64)
        b[...] = d64
        b += ua
        b /= ua
        np.log(b, out=b)
        b *= w[2]
        logit -= b
        logit[urow, ucol] += w[2] * np.log((ucnt + ua) / ua) + w[3] * np.log1p(ucnt)
        if row.size:  # seen pairs: their own blend row, from the exact features (few per anchor)
            logit[row, col] = (self.pair_features(I[row], pool[col]) @ self.blend_w[1] + self.blend_b[1]).astype(np.float32)
        return logit

    def _compute_top(self) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.config
        n, K = self.n_items, cfg.top_k
        nc = self._n_i
        if n <= cfg.pool_size or not (nc > 0).any():
            pool = np.arange(n)
        else:
            pool = np.sort(np.argsort(-nc, kind="stable")[: cfg.pool_size])
        m = pool.size
        k_pre = min(m, 2 * K)
        k_out = min(K, k_pre)
        items = np.empty((n, k_out), np.int32)
        scores = np.empty((n, k_out), np.float32)
        side, work = self._pool_side(pool), {}
        for s in range(0, n, cfg.chunk):
            I = np.arange(s, min(n, s + cfg.chunk))
            score = self._block_logit(I, pool, side, work)
            if cfg.eta > 0:  # log of the direction factor (the sigmoid is monotone, so logits rank alike per row)
                d = np.minimum(1.0, (nc[pool][None, :] + cfg.beta) / (nc[I][:, None] + cfg.beta))
                score = np.log(1.0 / (1.0 + np.exp(-score.astype(np.float64))) * d ** cfg.eta + 1e-300).astype(np.float32)
            self_col = np.searchsorted(pool, I)
            hit = (self_col < m) & (pool[np.minimum(self_col, m - 1)] == I)
            score[np.flatnonzero(hit), self_col[hit]] = -np.inf
            part = np.argpartition(-score, k_pre - 1, axis=1)[:, :k_pre] if k_pre < m else np.tile(np.arange(m), (I.size, 1))
            cand = pool[part]
            # exact rescoring (adds the substitute penalty) and sort, per block: every pair's score depends on that
            # pair only, and the block's temporaries stay small (all n * k_pre pairs at once took GBs on Instacart)
            sc = self.score(np.repeat(I, k_pre), cand.ravel()).reshape(I.size, k_pre)
            sc[cand == I[:, None]] = -1.0
            order = np.argsort(-sc, axis=1, kind="stable")[:, :K]
            items[I] = np.take_along_axis(cand, order, 1)
            scores[I] = np.take_along_axis(sc, order, 1)
        bad = scores <= 0
        items[bad] = -1
        scores[bad] = 0.0
        if items.shape[1] < K:
            pad = K - items.shape[1]
            items = np.pad(items, ((0, 0), (0, pad)), constant_values=-1)
            scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=0.0)
        return items, scores

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Write the model to ``path`` (.npz) atomically; returns the path."""
        from bundlerl.utils.atomic import atomic_write

        path = Path(path)
        if self.top_items is None:
            self.top_items, self.top_scores = self._compute_top()
        c, uc = self.counts, self.user_counts
        meta = {
            "format_version": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "bias": self.bias,
            "blend_b": self.blend_b.tolist(),
            "n_baskets": c.n_baskets,
            "n_users": uc.n_baskets,
            "n_items": c.n_items,
            "fit_seconds": self.fit_seconds,
        }
        with atomic_write(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(
                    f,
                    meta=np.array(json.dumps(meta)),
                    category=self.category,
                    emb16=self.emb16,
                    keys=c.keys,
                    counts=c.counts,
                    item_counts=c.item_counts,
                    ukeys=uc.keys,
                    ucounts=uc.counts,
                    uitem_counts=uc.item_counts,
                    cat_log_lift=self.cat_log_lift,
                    cat_single=self.cat_single,
                    u=self.u,
                    v=self.v,
                    svd_basket=self.svd_basket,
                    svd_user=self.svd_user,
                    blend_w=self.blend_w,
                    top_items=self.top_items,
                    top_scores=self.top_scores,
                )
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ComplementModel":
        """Read a model written by :meth:`save`; raises :class:`ComplementError` for missing, corrupt or
        other-version files."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                if meta.get("format_version") != FORMAT_VERSION:
                    raise ComplementError(
                        f"{path} has format version {meta.get('format_version')}, this code reads {FORMAT_VERSION}; refit"
                    )
                a = {k: z[k] for k in z.files if k != "meta"}
            n = int(meta["n_items"])
            counts = PairCounts(a["keys"], a["counts"], a["item_counts"], int(meta["n_baskets"]), n)
            ucounts = PairCounts(a["ukeys"], a["ucounts"], a["uitem_counts"], int(meta["n_users"]), n)
            return cls(
                ComplementConfig.from_dict(meta["config"]),
                a["category"],
                a["emb16"],
                counts,
                a["cat_log_lift"],
                a["cat_single"],
                a["u"],
                a["v"],
                meta["bias"],
                a["top_items"],
                a["top_scores"],
                meta.get("fit_seconds", 0.0),
                user_counts=ucounts,
                svd_basket=a["svd_basket"],
                svd_user=a["svd_user"],
                blend_w=a["blend_w"],
                blend_b=meta["blend_b"],
            )
        except ComplementError:
            raise
        except (OSError, ValueError, KeyError) as err:
            raise ComplementError(f"cannot read complementarity model {path}: {err}; refit or delete the file") from err


# ---------------------------------------------------------------------- the blend
def default_blend(kappa: float) -> tuple[np.ndarray, np.ndarray]:
    """The fixed blend used without a validation fit, both rows ``sigmoid(log L - log kappa) = L / (L + kappa)``:
    ``w`` (2, len(FEATURES)), ``b`` (2,)."""
    w = np.zeros((2, len(FEATURES)))
    w[:, 0] = 1.0
    return w, np.full(2, -float(np.log(kappa)))


def blend_probability(F: np.ndarray, w: np.ndarray, b: float) -> np.ndarray:
    """``sigmoid(F @ w + b)``: (m,) float64 in [0, 1] (computed stably for large |logit|)."""
    z = np.asarray(F, np.float64) @ np.asarray(w, np.float64) + float(b)
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def fit_blend(F_pos: np.ndarray, F_neg: np.ndarray, l2: float = 1e-3, threads: int = 2) -> tuple[np.ndarray, float]:
    """Logistic regression of positive (label 1) vs negative (label 0) feature rows -> ``(w, b)``.

    Features are standardised for the fit (weights mapped back after), ``l2`` penalises the standardised
    weights, and the weights of :data:`MONOTONE` features are kept >= 0 (softplus parameterisation).
    Columns with no spread get weight 0. Deterministic (full-batch L-BFGS).
    """
    import torch

    X = np.concatenate([F_pos, F_neg]).astype(np.float64)
    if X.ndim != 2 or X.shape[1] != len(FEATURES) or not np.isfinite(X).all():
        raise ComplementError(f"blend features must be finite with {len(FEATURES)} columns; got shape {X.shape}")
    y = np.r_[np.ones(len(F_pos)), np.zeros(len(F_neg))]
    mu, sd = X.mean(0), X.std(0)
    live = sd > 1e-9
    Z = np.where(live, (X - mu) / np.where(live, sd, 1.0), 0.0)
    mono = np.zeros(len(FEATURES), bool)
    mono[list(MONOTONE)] = True
    with torch_threads(threads):
        Zt, yt = torch.from_numpy(Z), torch.from_numpy(y)
        monot = torch.from_numpy(mono)
        raw = torch.zeros(len(FEATURES), dtype=torch.float64, requires_grad=True)
        b = torch.zeros((), dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([raw, b], max_iter=300, line_search_fn="strong_wolfe", tolerance_grad=1e-9)

        def weights():
            return torch.where(monot, torch.nn.functional.softplus(raw), raw)

        def closure():
            opt.zero_grad()
            w = weights()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(Zt @ w + b, yt) + l2 * (w**2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        w_std = weights().detach().numpy()
        b_std = float(b.detach())
    w_std = np.where(live, w_std, 0.0)
    w = np.where(live, w_std / np.where(live, sd, 1.0), 0.0)
    return w, b_std - float((w * mu).sum())


# ---------------------------------------------------------------------- fitting
def _check_inputs(catalog: Catalog, baskets: Baskets, embeddings: np.ndarray) -> np.ndarray:
    if not isinstance(catalog, Catalog):
        raise ComplementError(f"catalog must be a bundlerl.sim_data.catalog.Catalog, got {type(catalog).__name__}")
    if not isinstance(baskets, Baskets):
        raise ComplementError(f"baskets must be a bundlerl.sim_data.baskets.Baskets, got {type(baskets).__name__}")
    n = catalog.n_items
    if baskets.n_items != n:
        raise ComplementError(
            f"baskets index a catalogue of {baskets.n_items} items but the catalogue has {n}; "
            "build the baskets against this catalogue"
        )
    emb = np.asarray(embeddings)
    if emb.ndim != 2 or emb.shape[0] != n:
        raise ComplementError(f"embeddings have shape {emb.shape}; expected ({n}, d), one row per catalogue item")
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    if not np.isfinite(emb).all():
        raise ComplementError("embeddings contain NaN or inf; re-encode the catalogue")
    norms = np.linalg.norm(emb, axis=1)
    if np.abs(norms - 1).max() > 1e-3:
        raise ComplementError("embeddings must have unit-norm rows (as the encoders return them)")
    return emb


def cache_key(catalog: Catalog, baskets: Baskets, embeddings: np.ndarray, config: ComplementConfig, seed: int) -> str:
    """Hex content hash of everything a fit depends on: baskets (and their users), categories, embeddings, config, seed."""
    h = hashlib.sha256()
    h.update(f"comp-v{FORMAT_VERSION}|n={catalog.n_items}|C={catalog.n_categories}|seed={seed}|".encode())
    h.update(json.dumps(config.to_dict(), sort_keys=True).encode())
    user = np.zeros(0, np.int64) if baskets.user is None else baskets.user  # user-level co-occurrence uses it
    for arr in (baskets.indptr, baskets.items, user, catalog.category, np.ascontiguousarray(embeddings, np.float32)):
        a = np.ascontiguousarray(arr)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.view(np.uint8).ravel())
    return h.hexdigest()[:24]


def _default_cache_dir() -> Path:
    from bundlerl.utils.cache import cache_root

    return cache_root() / "complementarity"


def fit(
    catalog: Catalog,
    baskets: Baskets,
    embeddings: np.ndarray,
    rng: np.random.Generator,
    config: ComplementConfig | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
) -> ComplementModel:
    """Estimate the complementarity model from ``baskets`` and item ``embeddings``.

    :param catalog: the catalogue (only ``category`` and ``n_items`` are used; never ``complement_graph``).
    :param baskets: historical baskets over this catalogue (``baskets.n_items == catalog.n_items``); their
        ``user`` ids, when given, add user-level co-occurrence (items one user bought across orders).
    :param embeddings: (n, d) float32 unit-norm item text embeddings.
    :param rng: draws one seed (always, hit or miss, so the caller's stream advances identically).
    :param config: hyper-parameters (default :class:`ComplementConfig`).
    :param cache_dir: where fitted models are cached (default ``<BUNDLERL_CACHE or ~/.cache/bundlerl>/complementarity``).
    :param use_cache: False = always refit and do not write the cache.
    A second call with the same inputs, config and seed loads the cached file (``model.cache_hit`` is True).
    Raises :class:`ComplementError` on mismatched shapes.
    """
    config = config or ComplementConfig()
    if not isinstance(rng, np.random.Generator):
        raise ComplementError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    emb = _check_inputs(catalog, baskets, embeddings)
    seed = int(rng.integers(0, 2**63 - 1))
    path = None
    if use_cache:
        folder = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
        path = folder / f"comp-{cache_key(catalog, baskets, emb, config, seed)}.npz"
        if path.exists():
            try:
                model = ComplementModel.load(path)
                model.cache_hit = True
                model.cache_path = path
                return model
            except ComplementError:
                pass  # corrupt or stale: refit and overwrite
    model = _fit(catalog, baskets, emb, np.random.default_rng(seed), config)
    model.cache_hit = False
    model.cache_path = path
    if path is not None:
        model.save(path)
    return model


def _components(catalog: Catalog, baskets: Baskets, emb: np.ndarray, rng: np.random.Generator, cfg: ComplementConfig) -> dict:
    """Everything but the blend weights, estimated from ``baskets``: keyword arguments of ComplementModel."""
    from bundlerl.candidates.text_comp import train_text_model

    counts = PairCounts.from_baskets(baskets, cfg.max_basket_size)
    if baskets.user is None:
        ucounts = counts  # no user ids: user level = basket level
    else:
        ucounts = PairCounts.from_baskets(user_baskets(baskets, cfg.max_user_items))
    pair, single = category_counts(baskets, catalog.category, catalog.n_categories)
    cat_ll = category_log_lift(pair, single, max(1, len(baskets)), cfg.category_alpha)
    tf = train_text_model(
        counts,
        catalog.category,
        emb,
        cat_ll,
        rng,
        rank=cfg.rank,
        n_pairs=cfg.n_pairs,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        id_weight_decay=cfg.id_weight_decay,
        use_item_ids=cfg.use_item_ids,
        substitute_cosine=cfg.substitute_cosine,
        threads=cfg.threads,
    )
    svd_b = svd_u = None
    if cfg.svd_rank > 0:
        svd_b = ppmi_embeddings(counts, cfg.svd_rank, rng)
        svd_u = svd_b if ucounts is counts else ppmi_embeddings(ucounts, cfg.svd_rank, rng)
    return dict(
        config=cfg, category=catalog.category, emb16=emb.astype(np.float16), counts=counts, cat_log_lift=cat_ll,
        cat_single=single, u=tf.u, v=tf.v, bias=tf.bias, user_counts=ucounts, svd_basket=svd_b, svd_user=svd_u,
    )


def _fit(catalog: Catalog, baskets: Baskets, emb: np.ndarray, rng: np.random.Generator, cfg: ComplementConfig) -> ComplementModel:
    from bundlerl.candidates import comp_eval

    t0 = time.perf_counter()
    w, b = default_blend(cfg.kappa)
    blend_info = {"fitted": False}
    if cfg.blend_fraction > 0 and len(baskets) >= 20:
        # fit the blend on a validation split of the *training* baskets: components from the rest
        fit_part, val_part = baskets.split(cfg.blend_fraction, rng)
        try:
            pairs = comp_eval.heldout_pairs(fit_part, val_part, rng, cfg.blend_pairs)
        except ValueError:  # no pair in the validation baskets
            pairs = None
        if pairs is not None and pairs.pos_i.size >= cfg.min_blend_pairs:
            inner = ComplementModel(**_components(catalog, fit_part, emb, rng, cfg), build_top=False)
            Fp = inner.pair_features(pairs.pos_i, pairs.pos_j)
            Fn = inner.pair_features(pairs.neg_i, pairs.neg_j)
            # "seen" as the scorer sees it: co-occurrence in the baskets the features were computed from
            k = FEATURES.index("log1p_count")
            sp, sn = Fp[:, k] > 0, Fn[:, k] > 0
            blend_info = {"fitted": [False, False], "n_pos": [int((~sp).sum()), int(sp.sum())],
                          "n_neg": [int((~sn).sum()), int(sn.sum())]}
            for row, (mp, mn) in enumerate(((~sp, ~sn), (sp, sn))):
                # each side needs enough pairs; the rarer side sets the evidence of a subset
                if min(mp.sum(), mn.sum()) >= cfg.min_blend_pairs // 4:
                    w[row], b[row] = fit_blend(Fp[mp], Fn[mn], cfg.blend_l2, cfg.threads)
                    blend_info["fitted"][row] = True
    model = ComplementModel(**_components(catalog, baskets, emb, rng, cfg), blend_w=w, blend_b=b)
    model.blend_info = blend_info
    model.fit_seconds = time.perf_counter() - t0
    return model
