"""The candidate pool of N sessions, cached between rebuilds, and the policy deciding when to rebuild.

Building candidates (``bundlerl.candidates.builder``) dominates the cost of a step, so each row keeps its
pool (K bundles, their mask and features) and rebuilds it only on events (:meth:`CandidateCache.due`):

- every ``refresh_every`` shown bundles (the retrieval query moves with the history vector);
- after a purchase (``refresh_on_purchase``: cross-sell bundles completing the bought item enter the pool);
- after a click (``refresh_on_click``, off by default);
- when fewer than ``min_valid_candidates`` valid bundles remain;
- never for a session that has just terminated (only its terminal observation would see the new pool, and
  neither PPO nor DQN uses its value after termination).

A new episode's pool depends on the persona only (no history, nothing shown or bought): it is gathered from
the world's per-persona table (:meth:`bundlerl.env.world.World.initial_pools`). Between rebuilds the cached
pool is kept exact cheaply (:meth:`CandidateCache.update`): the ``novelty`` column is recomputed,
``rel_history`` after a click, and bundles holding a bought item are masked out. Recommender side only.
"""

from __future__ import annotations

import numpy as np

from bundlerl.candidates.builder import inner_products_by_index
from bundlerl.candidates.features import COL, bought_complementarity
from bundlerl.env.rows import Row, RowTable

__all__ = ["CandidateCache", "build_pools"]


def build_pools(builder, log, rows: np.ndarray, price_cap: np.ndarray | None = None):
    """The :class:`~bundlerl.candidates.types.CandidateSet` of ``rows`` of an event log, built fresh: the one call of
    the builder on a user's recommender-side state (profile vector, history vector when the row has clicked, bought
    items in purchase order (the last ones seed cross-sell), shown items), shared by the env's rebuilds and
    serving (``bundlerl.serving.recommender``).

    :param builder: a ``BundleBuilder``. :param log: an ``EventLog``. :param rows: (n,) int rows of the log.
    :param price_cap: None or (n,) max discounted bundle price per row (inf = none).
    """
    hist = log.history_vectors(rows) if log.has_hist[rows].any() else None
    # the logs are -1 padded, in event order (bought in purchase order: the last ones seed cross-sell)
    return builder.build(log.profile_vec[rows], hist, log.bought_log[rows], log.shown_log[rows], price_cap)


class CandidateCache(RowTable):
    """The cached pools of N rows and their refresh policy (see the module docstring).

    :param n: rows N. :param config: the EnvConfig (K, K_max and the refresh fields).
    :param builder: the world's ``BundleBuilder``. :param embeddings: (n_items, d) float32 item embeddings.
    """

    ROWS = (
        Row("cand_items", np.int32, ("K", "K_max"), -1),
        Row("cand_mask", bool, ("K",), False),
        Row("cand_feat", np.float32, ("K", "F")),
        Row("since_refresh", np.int32),  # shown bundles since the pool was built
    )

    def __init__(self, n: int, config, builder, embeddings: np.ndarray):
        super().__init__(n, K=config.K, K_max=config.K_max, F=len(COL))
        self.config, self.builder, self.emb = config, builder, embeddings
        self.n_items = embeddings.shape[0]

    def set(self, rows: np.ndarray, items: np.ndarray, mask: np.ndarray, feats: np.ndarray) -> None:
        """Store freshly built pools for ``rows``."""
        self.cand_items[rows] = items
        self.cand_mask[rows] = mask
        self.cand_feat[rows] = feats
        self.since_refresh[rows] = 0

    def start(self, rows: np.ndarray, persona: np.ndarray, initial_pools) -> None:
        """New episodes in ``rows``: each persona's initial pool (a CandidateSet indexed by persona)."""
        self.set(rows, initial_pools.items[persona], initial_pools.mask[persona], initial_pools.features[persona])

    def rebuild(self, rows: np.ndarray, log) -> None:
        """Rebuild the pools of ``rows`` from the event log (profile, history, bought and shown items)."""
        if rows.size == 0:
            return
        cs = build_pools(self.builder, log, rows)
        self.set(rows, cs.items, cs.mask, cs.features)

    def due(self, rr: np.ndarray, click: np.ndarray, n_bought: np.ndarray, done: np.ndarray) -> np.ndarray:
        """(len(rr),) bool: which of the rows ``rr`` that just responded need a rebuild (counts the shown bundle).

        :param click: (len(rr),) bool clicks. :param n_bought: items bought. :param done: the session ended.
        """
        cfg = self.config
        self.since_refresh[rr] += 1
        need = self.since_refresh[rr] >= cfg.refresh_every
        if cfg.refresh_on_click:
            need |= click
        if cfg.refresh_on_purchase:
            need |= n_bought > 0
        need |= self.cand_mask[rr].sum(axis=1) < cfg.min_valid_candidates
        return need & ~done

    def update(self, rows: np.ndarray, clicked: np.ndarray, log) -> None:
        """Keep the cached pools of ``rows`` (not rebuilt this step) exact without a rebuild.

        Call after this step's shown and bought items are in the log. :param clicked: (len(rows),) bool, the
        history vector changed.

        - novelty = (size - shown members) / size, the members looked up in the (N, n_items) shown matrix;
        - rel_history of clicked rows: mean cosine of the bundle's items to the new history vector;
        - comp_bought of clicked rows (a purchase follows a click): ``features.bought_complementarity`` of the
          bundle and the log's bought items;
        - bundles holding a bought item are masked out (never re-offered). Pools never hold an item bought
          before they were built, and masked bundles lose their items, so a bought member was bought this step.
        Same formulas as ``bundlerl.candidates.features``.
        """
        if rows.size == 0:
            return
        items = self.cand_items[rows]  # (n, K, Km)
        valid = items >= 0
        size = valid.sum(axis=2)
        # one flat gather per matrix: 4x cheaper than comparing every member with this step's items
        flat = (rows * self.n_items)[:, None, None] + np.maximum(items, 0)
        seen = (np.take(log.shown_items.reshape(-1), flat) & valid).sum(axis=2)
        feat = self.cand_feat[rows]
        feat[:, :, COL.novelty] = np.where(size > 0, (size - seen) / np.maximum(size, 1), 0.0)
        if clicked.any():
            sel = np.flatnonzero(clicked)
            h = log.history_vectors(rows[sel])
            # fused gather + dot: never materialises the (n, K, K_max, d) block of embeddings
            cos = inner_products_by_index(h, self.emb, items[sel].reshape(sel.size, -1)).reshape(items[sel].shape)
            feat[sel, :, COL.rel_history] = cos.sum(axis=2) / np.maximum(size[sel], 1)
            bought = log.bought_log[rows[sel]]
            feat[sel, :, COL.comp_bought] = np.where(
                size[sel] > 0, bought_complementarity(items[sel], bought, self.builder.bought_comp_score), 0.0)
        stale = (np.take(log.bought_items.reshape(-1), flat) & valid).any(axis=2)
        if stale.any():
            self.cand_mask[rows] = self.cand_mask[rows] & ~stale
            feat = np.where(stale[..., None], 0.0, feat).astype(np.float32)
            self.cand_items[rows] = np.where(stale[..., None], -1, items)
        self.cand_feat[rows] = feat
