"""The complementarity model's top lists: each item's ``top_k`` best complements, precomputed.

Scoring all n x n pairs exactly is too slow for large catalogues, so :func:`compute_top` pre-selects
``2 top_k`` candidates per anchor among the ``pool_size`` items most frequent in baskets with the dense
blend logit of whole (anchor block x pool) matrices (:func:`block_logit`, the never-seen blend row plus
sparse count corrections, pairs seen in baskets rescored exactly), then rescores those exactly with
``ComplementModel.score`` (which adds the substitute penalty) and sorts them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np

from bundlerl.candidates.complementarity.blend import NEVER_SEEN, PF, SEEN
from bundlerl.candidates.cooccurrence import PairCounts

if TYPE_CHECKING:
    from bundlerl.candidates.complementarity.model import ComplementModel

__all__ = ["pool_side", "block_logit", "compute_top"]


def pool_side(model: "ComplementModel", pool: np.ndarray) -> dict:
    """Candidate-side factors of :func:`block_logit` for ``pool`` (sorted item positions), computed once per
    top-list build instead of once per anchor block."""
    w = model.blend_w[NEVER_SEEN].astype(np.float32)
    return dict(
        pool=pool,
        w=w,
        cl_j=np.ascontiguousarray(model.cat_log_lift[:, model.category[pool]]),
        vT=model.v[pool].T,
        sbT=model.svd_basket[pool].T,
        suT=model.svd_user[pool].T,
        pop_j=w[PF.log1p_n_j] * np.log1p(model._n_i[pool]).astype(np.float32),
        n_B=model._n_i[pool] / model._B,
        u_U=model._u_i[pool] / model._U,
    )


def block_logit(
    model: "ComplementModel", I: np.ndarray, pool: np.ndarray, side: dict | None = None, work: dict | None = None
) -> np.ndarray:
    """(|I|, |pool|) float32 blend logit of every (anchor in I, candidate in pool) pair: the dense twin of
    ``model.pair_features`` with the never-seen row of the blend (sparse count corrections); the pairs
    seen in baskets are then rescored exactly with the seen row. Used to pre-select the top lists.

    ``side``: :func:`pool_side` of ``pool`` (computed here when None). ``work``: reusable buffers (a dict
    this method fills; pass the same one for every block so that the (|I|, |pool|) temporaries are allocated
    once): the returned array is then one of them, valid until the next call with that ``work``.
    Each element goes through the same float32/float64 operations in the same order whatever the buffers.
    """
    cfg = model.config
    if side is None:
        side = pool_side(model, pool)
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

    np.matmul(model.u[I], side["vT"], out=r)
    r += np.float32(model.bias)
    np.clip(r, -cfg.max_residual, cfg.max_residual, out=r)
    np.take(side["cl_j"], model.category[I], axis=0, out=cl)  # cl[a, b] = cat_log_lift[c(I[a]), c(pool[b])]
    # logit = b0 + (w_category_log_lift cl + w_text_residual r)
    np.multiply(cl, w[PF.category_log_lift], out=a)
    np.multiply(r, w[PF.text_residual], out=b)
    a += b
    np.add(a, np.float32(model.blend_b[NEVER_SEEN]), out=logit)
    if model.svd_basket.shape[1] and w[PF.basket_svd_cos] != 0:
        np.matmul(model.svd_basket[I], side["sbT"], out=a)
        a *= w[PF.basket_svd_cos]
        logit += a
    if model.svd_user.shape[1] and w[PF.user_svd_cos] != 0:
        np.matmul(model.svd_user[I], side["suT"], out=a)
        a *= w[PF.user_svd_cos]
        logit += a
    np.add((w[PF.log1p_n_i] * np.log1p(model._n_i[I]).astype(np.float32))[:, None], side["pop_j"][None, :], out=a)
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
    row, col, cnt = sparse(model.counts)
    a[row, col] += cnt
    np.multiply(model._n_i[I][:, None], side["n_B"][None, :], out=d64)
    b[...] = d64  # float64 -> float32, rounded as astype does
    b += np.float32(cfg.alpha)
    np.log(a, out=a)
    np.log(b, out=b)
    a -= b
    a *= w[PF.log_lift]
    logit += a
    logit[row, col] += w[PF.log1p_count] * np.log1p(cnt)
    # user-level shrunk log-lift
    urow, ucol, ucnt = sparse(model.user_counts)
    ua = np.float32(cfg.user_alpha)
    np.multiply(model._u_i[I][:, None], side["u_U"][None, :], out=d64)
    b[...] = d64
    b += ua
    b /= ua
    np.log(b, out=b)
    b *= w[PF.user_log_lift]
    logit -= b
    logit[urow, ucol] += w[PF.user_log_lift] * np.log((ucnt + ua) / ua) + w[PF.log1p_user_count] * np.log1p(ucnt)
    if row.size:  # seen pairs: their own blend row, from the exact features (few per anchor)
        logit[row, col] = (model.pair_features(I[row], pool[col]) @ model.blend_w[SEEN] + model.blend_b[SEEN]).astype(np.float32)
    return logit


def compute_top(model: "ComplementModel", on_block: Callable[[], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``model``'s top lists: items (n, top_k) int32, best first, -1 padded, and their scores (n, top_k) float32
    ``model.score(i, item)``, 0 where padded (pairs scoring <= 0 are left out). ``on_block()``, when given, is
    called after each block of ``config.chunk`` anchors (``ceil(n / chunk)`` calls; progress bars)."""
    cfg = model.config
    n, K = model.n_items, cfg.top_k
    nc = model._n_i
    if n <= cfg.pool_size or not (nc > 0).any():
        pool = np.arange(n)
    else:
        pool = np.sort(np.argsort(-nc, kind="stable")[: cfg.pool_size])
    m = pool.size
    k_pre = min(m, 2 * K)
    k_out = min(K, k_pre)
    items = np.empty((n, k_out), np.int32)
    scores = np.empty((n, k_out), np.float32)
    side, work = pool_side(model, pool), {}
    for s in range(0, n, cfg.chunk):
        I = np.arange(s, min(n, s + cfg.chunk))
        score = block_logit(model, I, pool, side, work)
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
        sc = model.score(np.repeat(I, k_pre), cand.ravel()).reshape(I.size, k_pre)
        sc[cand == I[:, None]] = -1.0
        order = np.argsort(-sc, axis=1, kind="stable")[:, :K]
        items[I] = np.take_along_axis(cand, order, 1)
        scores[I] = np.take_along_axis(sc, order, 1)
        if on_block is not None:
            on_block()
    bad = scores <= 0
    items[bad] = -1
    scores[bad] = 0.0
    if items.shape[1] < K:
        pad = K - items.shape[1]
        items = np.pad(items, ((0, 0), (0, pad)), constant_values=-1)
        scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=0.0)
    return items, scores
