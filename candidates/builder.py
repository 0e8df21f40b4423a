"""Candidate bundles per user: FAISS anchors completed with estimated complements.

Method (vectorised over users; the greedy completion of step 3, the MMR loop of step 5 and the
features of the picks run as compiled per-user loops, ``bundlerl.candidates.kernels``, bit-identical to their
numpy formulation):

1. **Query** ``q = normalize((1 - a) * profile + a * history)`` with ``a = history_weight`` for
   users that have a history vector (a zero row means none), else ``q = profile``.
2. **Pool**: the ``pool_size`` nearest items to ``q`` in the :class:`~bundlerl.candidates.index.ItemIndex`,
   bought items excluded. The first ``n_anchors`` pool items that fit the price cap are anchors.
3. **Completion**: each anchor is grown greedily to ``K_max`` items from its ``n_complements``
   top complements (complementarity model's top lists). Item ``j`` is added to bundle ``B`` to
   maximise the marginal gain

       g(j | B) = w_rel * rel(q, j) + w_comp * mean_{m in B} (comp(m->j) + comp(j->m)) / 2
                  - w_sub * max_{m in B} sub(m, j)

   with ``sub(m, j) = [cat(m) = cat(j)] * max(0, cos(e_m, e_j))`` (a same-category near-duplicate
   is a substitute), skipping bought items and anything that would break the price cap
   (discounted bundle price <= cap). ``rel`` here is computed in a ``rel_dim``-dimensional
   PCA projection of the embeddings to keep the (users x anchors x complements) step cheap;
   every *feature* below is exact. Each anchor yields its prefixes: sizes 1..K_max.
4. **Cross-sell**: the ``n_cross_sell_seeds`` most recently bought items are completed the same
   way but the bought item itself stays out of the bundle (it counts as a virtual member in
   ``g`` so that the bundle complements it and does not substitute it).
5. **Selection**: bundles are scored ``s = w_rel * mean rel(q) + w_comp * mean_comp - w_sub *
   max_sub`` (cross-sell adds ``w_comp * mean comp(seed -> items)``) and ``K`` are chosen by MMR:
   ``lambda * s - (1 - lambda) * |B & U| / |B|`` where U is the union of items already chosen;
   identical item sets are dropped. The first ``round(cross_sell_share * K)`` picks come from
   cross-sell bundles when a user has any.

Pairwise complementarity and substitution among an item and its complement list are tabulated
once per catalogue at construction (``(n, C+1, C+1)`` float32 each, ~97 MB at 100k items with C = 10), so the per-call work is
table look-ups plus one gather of exact embeddings for the ~(anchors + seeds) * K_max items.

Elsewhere: the configuration (``builder_config``), the feature formulas (``features``), the compiled loops
(``kernels``) and single-bundle completion (``completion``; ``BundleBuilder.complete_bundle`` calls it).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from bundlerl.candidates import completion
from bundlerl.candidates.builder_config import BuilderConfig, BuilderError, ComplementModelLike, check_rows
from bundlerl.candidates.features import (
    COL,
    bought_complementarity,
    log_price,
    popularity_feature,
    prefix_mean,
    prefix_pair_max_upper,
    prefix_pair_mean_upper,
    substitution,
    upper_pairs,
)
from bundlerl.candidates.index import ItemIndex, inner_products_by_index
from bundlerl.candidates.kernels import greedy_complete, mmr_select, selected_bundles
from bundlerl.candidates.pair_memo import PairScoreMemo
from bundlerl.candidates.projection import pca_projection
from bundlerl.candidates.ragged import RaggedSet, RaggedSetError
from bundlerl.candidates.types import CandidateSet
from bundlerl.sim_data.catalog import Catalog
from bundlerl.utils.args import need_instance, shown
from bundlerl.utils.threads import serial_numpy_blas

__all__ = [  # BuilderConfig, BuilderError, ComplementModelLike (builder_config) and inner_products_by_index (index): importable from here as before
    "BuilderConfig",
    "BundleBuilder",
    "BuilderError",
    "ComplementModelLike",
    "inner_products_by_index",
    "picked_bundles",
]

#: Extra neighbours fetched beyond n_anchors in the first (small) pool search; see BundleBuilder._anchors.
_ANCHOR_MARGIN = 8


def picked_bundles(sel, slot_items, price, pop_feat, shown: RaggedSet, rel_p, rel_h, mean_comp, max_sub, disc_b) -> CandidateSet:
    """The :class:`CandidateSet` of the MMR picks: candidate ``m = sel[u, t]`` is the first ``m % K_max + 1``
    slots of source ``m // K_max``.

    :param sel: (N, K) int64 picks, -1 none; :param slot_items: (N, S, K_max) int64 slot items (-1 none).
    :param price: (n,) float64; :param pop_feat: (n,) float32 :func:`popularity_feature`; :param shown: the
        users' shown items (novelty). :param rel_p, rel_h, mean_comp, max_sub: (N, S * K_max) float32 features
        of every candidate (``rel_h`` None = no history: 0). :param disc_b: (K_max,) discount of sizes 1..K_max.
    Item-only features are prefix means over the picked source's slots at the picked size; log_price is
    ``log(sum of prices * (1 - discount))``. Unpicked slots: items -1, size 0, features 0.
    """
    items, sizes, features, disc_price = selected_bundles(
        sel, slot_items, price, pop_feat, shown.keys, shown.n_items, rel_p,
        np.zeros((0, 0), np.float32) if rel_h is None else rel_h, mean_comp, max_sub, COL, disc_b,
    )
    valid = sel >= 0
    features[..., COL.log_price] = np.where(valid, log_price(disc_price), 0.0)
    return CandidateSet(items=items, sizes=sizes, mask=valid, features=features)


class BundleBuilder:
    """Builds K candidate bundles per user from an item index and a complementarity model.

    :param catalog: the (observable) catalogue with ``embeddings``; its ``complement_graph``
        (simulator truth) is never read.
    :param index: an :class:`~bundlerl.candidates.index.ItemIndex` over ``catalog.embeddings`` (same rows).
    :param complement_model: anything with ``top_items``, ``top_scores`` (n, C_top) and
        ``score(i, j)`` (see :class:`ComplementModelLike`).
    :param config: :class:`BuilderConfig`.
    Raises :class:`BuilderError` when the three disagree on the number of items or dimension.
    Construction tabulates pairwise comp/sub over each item's complement list (O(n * C^2)).
    """

    def __init__(self, catalog, index: ItemIndex, complement_model: ComplementModelLike, config: BuilderConfig | None = None):
        need_instance(catalog, "catalog", "BundleBuilder", Catalog, "a Catalog (its observable view)", error=BuilderError)
        need_instance(index, "index", "BundleBuilder", ItemIndex, "an ItemIndex over the catalogue's embeddings",
                      error=BuilderError)
        if not hasattr(complement_model, "top_items"):
            raise BuilderError(f"BundleBuilder(complement_model={shown(complement_model)}): complement_model must be a "
                               "fitted ComplementModel (bundlerl.candidates.complementarity.fit)")
        need_instance(config, "config", "BundleBuilder", BuilderConfig, "a BuilderConfig", optional=True,
                      error=BuilderError)
        self.config = cfg = config or BuilderConfig()
        if catalog.embeddings is None:
            raise BuilderError("catalog has no embeddings; encode it first (catalog.with_embeddings(...))")
        n, d = catalog.embeddings.shape
        if index.n_items != n or index.dim != d:
            raise BuilderError(
                f"index holds {index.n_items} x {index.dim} vectors but the catalogue {n} x {d}; "
                "build the index over catalog.embeddings (after a cold-start add, rebuild the builder with the extended catalogue)"
            )
        top = np.asarray(complement_model.top_items)
        if top.ndim != 2 or top.shape[0] != n:
            raise BuilderError(f"complement_model.top_items has shape {top.shape}; expected ({n}, C_top)")
        self.catalog = catalog
        self.index = index
        self.comp = complement_model
        self.n_items, self.dim = n, d
        self.E = catalog.embeddings
        self.price = catalog.price.astype(np.float64)
        self.category = catalog.category
        self.pop_feat = popularity_feature(catalog.popularity)
        self.disc = cfg.discount_table()
        self._tabulate(top, np.asarray(complement_model.top_scores, dtype=np.float32))
        # flat views of the pair tables: one np.take with a computed offset is several times
        # faster than 3-array fancy indexing in the per-call gathers
        self._COMPS_flat = self.COMPS.reshape(-1)
        self._SUBX_flat = self.SUBX.reshape(-1)
        self._SEEDC_flat = self.SEEDC.reshape(-1)
        self._LIST_flat = self.LIST.reshape(-1)
        if cfg.rel_dim is None or cfg.rel_dim >= d:
            self.W = None
            self.Er = np.ascontiguousarray(self.E, dtype=np.float32)
        else:
            self.W = pca_projection(self.E, cfg.rel_dim, center=False)  # the best rank-r approximation of inner products
            self.Er = np.ascontiguousarray(self.E @ self.W)

    @property
    def bought_comp_score(self) -> PairScoreMemo:
        """``self.comp.score`` with a memo of its pairs (:class:`bundlerl.candidates.pair_memo.PairScoreMemo`): the
        ``comp_bought`` column scores the same (purchase, item) pairs step after step. A new memo when ``comp`` is
        replaced."""
        owner, memo = self.__dict__.get("_bought_memo", (None, None))
        if owner is not self.comp:
            memo = PairScoreMemo(self.comp.score, self.n_items)
            self._bought_memo = (self.comp, memo)
        return memo

    # ------------------------------------------------------------------ tables
    def _tabulate(self, top: np.ndarray, top_scores: np.ndarray, chunk: int = 4096) -> None:
        """LIST (n, C+1): complement list with the item itself as last column ("self" code C);
        COMPS (n, C+1, C+1) float32: comp(u -> v) + comp(v -> u) for u, v = LIST[a, .] (symmetrised,
        0 on the diagonal and for missing entries); SEEDC (n, C): directed comp(a -> LIST[a, c]);
        SUBX (n, C+1, C+1) float32: substitution."""
        n, C = self.n_items, min(self.config.n_complements, top.shape[1])
        self.C = C
        lst = np.full((n, C + 1), -1, dtype=np.int64)
        lst[:, :C] = top[:, :C]
        self_idx = np.arange(n)
        lst[:, :C] = np.where(lst[:, :C] == self_idx[:, None], -1, lst[:, :C])  # an item is not its own complement
        lst[:, C] = self_idx
        self.LIST = lst
        self.COMPS = np.zeros((n, C + 1, C + 1), dtype=np.float32)
        self.SEEDC = np.zeros((n, max(C, 1)), dtype=np.float32)
        self.SUBX = np.zeros((n, C + 1, C + 1), dtype=np.float32)
        eye = np.eye(C + 1, dtype=bool)
        for s in range(0, n, chunk):
            L = lst[s : s + chunk]
            v = L >= 0
            Lc = np.where(v, L, 0)
            ok = v[:, :, None] & v[:, None, :] & ~eye
            ii = np.broadcast_to(Lc[:, :, None], ok.shape)[ok]
            jj = np.broadcast_to(Lc[:, None, :], ok.shape)[ok]
            comp = np.zeros(ok.shape, dtype=np.float32)
            comp[ok] = np.clip(np.asarray(self.comp.score(ii, jj), dtype=np.float32), 0.0, 1.0)
            self.COMPS[s : s + chunk] = comp + comp.transpose(0, 2, 1)
            self.SEEDC[s : s + chunk, :C] = comp[:, C, :C]
            emb = self.E[Lc]  # (b, C+1, d)
            cos = np.matmul(emb, emb.transpose(0, 2, 1))
            cat = self.category[Lc]
            sub = substitution(cat[:, :, None], cat[:, None, :], cos)
            self.SUBX[s : s + chunk] = np.where(ok, sub, 0.0)

    # ------------------------------------------------------------------ completion
    def _complete(self, src, src_valid, include_src: bool, qr, cap, bought: RaggedSet):
        """Greedy completion of each source item. Returns member codes (N, S, K_max) into
        LIST[src] (C = the source itself, -1 = none) and ok (N, S, K_max): prefix of size k+1 valid.

        Arithmetic is float32 (gains are compared, never reported); prices stay float64 so that
        the cap test is the same as in the exact features."""
        cfg, C, Km = self.config, self.C, self.config.max_bundle_size
        N, S = src.shape
        srcc = np.where(src_valid, src, 0)
        cand = self.LIST[srcc, :C]  # (N, S, C)
        cvalid = src_valid[..., None] & (cand >= 0)
        cvalid &= ~bought.contains(cand)
        # fused gather + dot in the reduced space: never materialises the (N, S*C, r) block
        rel = inner_products_by_index(qr, self.Er, np.where(cvalid, cand, -1).reshape(N, S * C)).reshape(N, S, C)
        size0 = 1 if include_src else 0
        capped = bool(np.isfinite(cap).any())  # no cap anywhere (the env's case): skip the price bookkeeping
        price_sum = self.price[srcc] if include_src else np.zeros((N, S))
        codes, ok = greedy_complete(
            cand, cvalid, rel, float(cfg.w_rel), srcc * (C + 1) ** 2, C * (C + 1), self._COMPS_flat, self._SUBX_flat,
            src_valid, size0, Km, float(cfg.w_comp), float(cfg.w_sub), capped, price_sum, self.price, self.disc,
            np.ascontiguousarray(cap, dtype=np.float64),
        )
        if include_src:
            codes[..., 0] = C
            ok[..., 0] = src_valid
        return codes, ok

    # ------------------------------------------------------------------ main entry
    def build(
        self,
        profile: np.ndarray,
        history: np.ndarray | None = None,
        bought: Sequence[np.ndarray | None] | None = None,
        shown: Sequence[np.ndarray | None] | None = None,
        price_cap: np.ndarray | None = None,
    ) -> CandidateSet:
        """K candidate bundles for each of N users.

        :param profile: (N, d) float32 unit rows, the profile-text embedding of each user.
        :param history: (N, d) float32 unit rows (history vector), a zero row for a user without
            history, or None for nobody.
        :param bought: None or a sequence of N int arrays: catalogue positions already bought
            (never appear in a bundle; the most recent, last in each array, seed cross-sell bundles);
            or the same as one (N, L) int array padded with -1.
        :param shown: None or a sequence of N int arrays (or an (N, L) int array padded with -1): items
            shown this session (novelty feature).
        :param price_cap: None or (N,) max discounted bundle price per user (inf = none); combined
            with ``config.price_cap`` by min.
        :returns: :class:`CandidateSet` with items (N, K, K_max) int32, sizes (N, K) int8, mask (N, K)
            bool (valid slots first), features (N, K, F) float32 in ``CANDIDATE_FEATURES`` order:
            rel_profile, rel_history in [-1, 1]; mean_comp, max_sub in [0, 1]; log_price real;
            size in (0, 1]; popularity, novelty in [0, 1]; discount in [0, 1); comp_bought in [0, 1] (the
            estimated complementarity of ``bought`` to the bundle: ``features.bought_complementarity``).
        Raises :class:`BuilderError` on wrong shapes, NaN/inf, non-unit rows or bad positions.
        Deterministic: the same inputs give the same output.
        """
        cfg, n = self.config, self.n_items
        profile = check_rows(profile, None, self.dim, "profile")
        N = profile.shape[0]
        if history is not None:
            history = check_rows(history, N, self.dim, "history", allow_zero=True)
            has_h = np.linalg.norm(history, axis=1) > 0
            a = np.where(has_h, cfg.history_weight, 0.0).astype(np.float32)[:, None]
            q = (1 - a) * profile + a * history
            qn = np.linalg.norm(q, axis=1, keepdims=True)
            degenerate = qn[:, 0] <= 1e-6  # history exactly opposite to the profile: fall back to the profile
            a = np.where(degenerate[:, None], 0.0, a)
            qnorm = np.where(degenerate[:, None], 1.0, qn)
            q = np.where(degenerate[:, None], profile, q / np.maximum(qn, 1e-12)).astype(np.float32)
        else:
            q = profile
        cap = np.full(N, np.inf if cfg.price_cap is None else cfg.price_cap)
        if price_cap is not None:
            pc = np.asarray(price_cap, dtype=np.float64)
            if pc.shape != (N,) or np.isnan(pc).any() or (pc <= 0).any():
                raise BuilderError(f"price_cap must be (N,)=({N},) positive numbers (inf = no cap); got shape {pc.shape}")
            cap = np.minimum(cap, pc)
        try:  # checked for N = 0 too: a row-count mismatch is still reported
            bought_set = RaggedSet(bought, N, n, "bought")
            shown_set = RaggedSet(shown, N, n, "shown")
        except RaggedSetError as e:
            raise BuilderError(str(e)) from None
        if N == 0:
            return self._empty(0)
        if history is None:
            has_h, a, qnorm = None, None, None
        # (Overlapping the index search of one chunk of rows with the numpy work of the previous one
        # on a worker thread was tried: slower on the shared 2-core VM, so one pass.)
        with serial_numpy_blas():
            anchors = self._anchors(q, cap, bought_set)
            return self._build_rows(profile, history, has_h, a, qnorm, q, cap, bought_set, shown_set, anchors)

    def _build_rows(self, profile, history, has_h, a, qnorm, q, cap, bought_set: RaggedSet, shown_set: RaggedSet, anchors):
        """The body of :meth:`build` for validated rows whose anchors are already searched."""
        cfg, Km, K = self.config, self.config.max_bundle_size, self.config.n_candidates
        N = profile.shape[0]
        anchors, a_valid = anchors
        qr = q if self.W is None else np.ascontiguousarray(q @ self.W)
        codes_a, ok_a = self._complete(anchors, a_valid, True, qr, cap, bought_set)
        B = cfg.n_cross_sell_seeds
        if B > 0:
            seeds = bought_set.padded(B)
            s_valid = seeds >= 0
            codes_s = np.full(seeds.shape + (Km,), -1, dtype=np.int64)
            ok_s = np.zeros(seeds.shape + (Km,), dtype=bool)
            rows_cs = np.flatnonzero(s_valid[:, 0])  # padded() fills from the left: only users who bought something
            if rows_cs.size == N:
                codes_s, ok_s = self._complete(seeds, s_valid, False, qr, cap, bought_set)
            elif rows_cs.size:
                c_s, o_s = self._complete(
                    seeds[rows_cs], s_valid[rows_cs], False, qr[rows_cs], cap[rows_cs], bought_set.subset(rows_cs)
                )
                codes_s[rows_cs], ok_s[rows_cs] = c_s, o_s
            src = np.concatenate([anchors, seeds], 1)
            codes = np.concatenate([codes_a, codes_s], 1)
            ok = np.concatenate([ok_a, ok_s], 1)
        else:
            src, codes, ok = anchors, codes_a, ok_a
        S, C, A = src.shape[1], self.C, anchors.shape[1]
        M = S * Km
        srcc = np.maximum(src, 0)

        # ---- per-source member slots (N, S, Km): items, exact relevance, pair tables.
        # Candidate (s, k) = the first k+1 slots of source s; it is valid iff ok[s, k].
        codesc = np.maximum(codes, 0)
        slot_items = np.where(codes >= 0, np.take(self._LIST_flat, (srcc * (C + 1))[..., None] + codesc), -1)
        slot_ids = slot_items.reshape(N, M)
        # exact cosines to profile (and history, only for users who have one); q's follows by linearity
        rel_p = inner_products_by_index(profile, self.E, slot_ids).reshape(N, S, Km)
        f_relp = prefix_mean(rel_p)
        if history is not None:
            rows_h = np.flatnonzero(has_h)
            rel_h = np.zeros((N, S, Km), np.float32)
            if rows_h.size:
                rel_h[rows_h] = inner_products_by_index(history[rows_h], self.E, slot_ids[rows_h]).reshape(-1, S, Km)
            f_relh = prefix_mean(rel_h)
            a3, qn3 = a[:, :, None], qnorm[:, :, None].astype(np.float32)
            f_relq = ((1 - a3) * f_relp + a3 * f_relh) / qn3
        else:
            f_relh = None
            f_relq = f_relp
        # both tables are symmetric: gather the K_max(K_max-1)/2 pairs u < v only (COMPS already holds both directions)
        iu, iv = upper_pairs(Km)
        pair_idx = (srcc * (C + 1) ** 2)[..., None] + codesc[..., iu] * (C + 1) + codesc[..., iv]
        mean_comp = prefix_pair_mean_upper(np.take(self._COMPS_flat, pair_idx), Km)  # mean of both directions
        max_sub = prefix_pair_max_upper(np.take(self._SUBX_flat, pair_idx), Km)

        score = np.float32(cfg.w_rel) * f_relq + np.float32(cfg.w_comp) * mean_comp - np.float32(cfg.w_sub) * max_sub
        if B > 0:  # cross-sell sources: + w_comp * mean comp(seed -> items)
            seed_comp = np.take(self._SEEDC_flat, (srcc[:, A:] * self.SEEDC.shape[1])[..., None] + np.minimum(codesc[:, A:], self.SEEDC.shape[1] - 1))
            score[:, A:] += np.float32(cfg.w_comp) * prefix_mean(seed_comp)

        # ---- MMR selection (compiled loop); an unavailable candidate has base -inf
        lam = cfg.mmr_lambda
        base = np.where(ok.reshape(N, M), np.float32(lam) * score.reshape(N, M), np.float32(-np.inf))
        pen = ((1 - lam) / np.tile(np.arange(1, Km + 1), S)).astype(np.float32)  # (M,) per unit of overlap
        n_cs = int(round(cfg.cross_sell_share * K)) if B > 0 else 0
        sel = mmr_select(base, slot_ids, Km, pen, n_cs, A * Km, K)

        scored = [x if x is None else x.reshape(N, M) for x in (f_relp, f_relh, mean_comp, max_sub)]
        cs = picked_bundles(sel, slot_items, self.price, self.pop_feat, shown_set, *scored, self.disc[1 : Km + 1])
        if bought_set.max_len:  # comp_bought: 0 until the user buys something
            cs.features[..., COL.comp_bought] = np.where(
                cs.mask, bought_complementarity(cs.items, bought_set.all_padded(), self.bought_comp_score), 0.0)
        return cs

    def _anchors(self, q: np.ndarray, cap: np.ndarray, bought: RaggedSet) -> tuple[np.ndarray, np.ndarray]:
        """(N, n_anchors) anchors and their validity: the first n_anchors of the ``pool_size``
        nearest items (bought excluded) that fit the cap alone.

        The index is asked first for only ``n_anchors + 8`` neighbours (cheaper for flat search and
        for small batches); rows where fewer than n_anchors of them fit the cap are searched again
        with the full pool. With an exact index this equals one ``pool_size`` search."""
        cfg = self.config
        k1 = min(cfg.pool_size, cfg.n_anchors + _ANCHOR_MARGIN)
        anchors, a_valid, short = self._first_fitting(q, k1, cap, bought)
        if k1 < cfg.pool_size and short.any():
            rows = np.flatnonzero(short)
            sub = bought if rows.size == q.shape[0] else bought.subset(rows)
            anchors[rows], a_valid[rows], _ = self._first_fitting(q[rows], cfg.pool_size, cap[rows], sub)
        return anchors, a_valid

    def _first_fitting(self, q, k, cap, bought: RaggedSet):
        _, pool = self.index.search(q, k, exclude=bought)
        fits = (pool >= 0) & (self.price[np.maximum(pool, 0)] <= cap[:, None])
        order = np.argsort(~fits, axis=1, kind="stable")[:, : self.config.n_anchors]
        return np.take_along_axis(pool, order, 1), np.take_along_axis(fits, order, 1), fits.sum(1) < self.config.n_anchors

    def _empty(self, N: int) -> CandidateSet:
        K, Km = self.config.n_candidates, self.config.max_bundle_size
        return CandidateSet(
            items=np.full((N, K, Km), -1, np.int32),
            sizes=np.zeros((N, K), np.int8),
            mask=np.zeros((N, K), bool),
            features=np.zeros((N, K, len(COL)), np.float32),
        )

    # ------------------------------------------------------------------ single-bundle completion
    #: ``builder.complete_bundle(seed_items, k, *, profile=None, exclude=None, n_text_neighbours=50)``: the items that
    #: best complete a started bundle, (k,) int64 best first; see :func:`bundlerl.candidates.completion.complete_bundle`.
    complete_bundle = completion.complete_bundle
