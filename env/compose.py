"""Compose mode: the policy builds the shown bundle item by item from the candidate pool, then says "done".

Actions ``j < M`` add the ``j``-th of the M distinct items of the row's candidate pool (in rank order) to the
row's partial bundle; action ``M`` ("done") shows the partial bundle, which is also shown automatically once
it holds ``K_max`` items. An addition gets no shopper response and does not count towards the horizon. Row
``j`` of the ``candidates`` observation describes the bundle "partial + item j", row ``M`` the partial
bundle itself, with the features the builder gives its candidates
(:func:`bundlerl.candidates.features.bundle_features`). Bundle mode never calls this module; its partial
bundles stay empty (the ``partial_size`` session feature is then 0).
"""

from __future__ import annotations

import numpy as np

from bundlerl.env.rows import Row, RowTable

__all__ = ["ComposeAdapter"]


class ComposeAdapter(RowTable):
    """The partial bundles of N rows and the compose-mode actions over a candidate pool.

    :param n: rows N. :param K_max: largest bundle. :param M: items offered per step (``EnvConfig.compose_items``).
    """

    ROWS = (
        Row("partial", np.int32, ("K_max",), -1),
        Row("partial_len", np.int32),
    )

    def __init__(self, n: int, K_max: int, M: int):
        super().__init__(n, K_max=K_max)
        self.K_max, self.M = K_max, M

    def items(self, cand_items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, M) int32 distinct items of the pools ``cand_items`` (N, K, K_max) in rank order (-1 padded), and
        their (N, M) position in the flattened pool."""
        flat = cand_items.reshape(self.n, -1)
        # First occurrence of each item per row, keeping rank order; vectorised via a sort by (item, position).
        pos = np.arange(flat.shape[1])
        order = np.argsort(flat.astype(np.int64) * flat.shape[1] + pos, axis=1, kind="stable")  # one key: (item, position)
        srt = np.take_along_axis(flat, order, axis=1)
        first = np.ones_like(srt, bool)
        first[:, 1:] = srt[:, 1:] != srt[:, :-1]
        first &= srt >= 0
        keep_pos = np.where(first, order, np.iinfo(np.int64).max)
        keep_pos.sort(axis=1)
        keep_pos = keep_pos[:, : self.M]
        ok = keep_pos < flat.shape[1]
        items = np.where(ok, np.take_along_axis(flat, np.where(ok, keep_pos, 0), axis=1), -1).astype(np.int32)
        if items.shape[1] < self.M:
            items = np.concatenate([items, np.full((self.n, self.M - items.shape[1]), -1, np.int32)], axis=1)
        return items, keep_pos

    def masks(self, cand_items: np.ndarray) -> np.ndarray:
        """(N, M + 1) bool valid actions: add an item not yet in a partial bundle that has room; "done" when it
        holds at least one item."""
        items, _ = self.items(cand_items)
        in_partial = (items[:, :, None] == self.partial[:, None, :]).any(axis=2)
        can_add = (items >= 0) & ~in_partial & (self.partial_len < self.K_max)[:, None]
        done_ok = self.partial_len > 0
        return np.concatenate([can_add, done_ok[:, None]], axis=1)

    def bundles(self, cand_items: np.ndarray) -> np.ndarray:
        """(N, M + 1, K_max) the bundles each action would lead to: partial + item j, and the partial itself."""
        items, _ = self.items(cand_items)
        N, M = self.n, self.M
        b = np.repeat(self.partial[:, None, :], M + 1, axis=1)
        slot = np.minimum(self.partial_len, self.K_max - 1)
        b[np.arange(N)[:, None], np.arange(M)[None, :], slot[:, None]] = items
        full = self.partial_len >= self.K_max
        b[full, :M] = -1
        b[:, :M][items < 0] = -1
        return b

    def act(self, a: np.ndarray, valid: np.ndarray, cand_items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Apply actions ``a`` (N,) whose validity is ``valid``: additions grow the partial bundles.

        Returns (respond, bundles): (N,) bool rows whose shopper sees a bundle now ("done", a full partial bundle,
        or a masked action, which shows nothing) and the (N, K_max) int32 bundles shown (-1 rows: nothing).
        Call :meth:`reset` on the responding rows once the response is logged.
        """
        bundles_all = self.bundles(cand_items)
        add = valid & (a < self.M)
        if add.any():
            self.partial[add] = bundles_all[add, a[add]]
            self.partial_len[add] += 1
        respond = ~valid | (valid & (a == self.M)) | (add & (self.partial_len >= self.K_max))
        return respond, np.where((respond & valid)[:, None], self.partial, -1).astype(np.int32)

    def features(self, cand_items: np.ndarray, mask: np.ndarray, log, world, embeddings: np.ndarray) -> np.ndarray:
        """(N, M + 1, F) float32 ``candidates`` observation: the features of :meth:`bundles`, 0 where masked."""
        feats = bundle_features_of(self.bundles(cand_items), log, world, embeddings)
        return np.where(mask[..., None], feats, 0.0).astype(np.float32)


def bundle_features_of(bundles: np.ndarray, log, world, embeddings: np.ndarray) -> np.ndarray:
    """(N, J, F) CANDIDATE_FEATURES of arbitrary bundles (N, J, K_max) of the log's N users, -1 padded; all-0 rows
    for empty bundles.

    The formulas of ``bundlerl.candidates.features.bundle_features`` with the world builder's tables (exact
    embeddings, the estimated complementarity model's ``score``, its discount table and popularity feature).
    """
    from bundlerl.candidates.features import bundle_features

    b = world.builder
    return bundle_features(
        bundles, profile=log.profile_vec, history=log.history_vectors(), shown=log.shown_items, bought=log.bought_log,
        embeddings=embeddings, category=b.category, price=b.price, popularity=b.pop_feat, discount=b.disc,
        comp_score=b.comp.score,
    )
