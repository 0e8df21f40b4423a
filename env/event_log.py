"""The recommender-side event log of N sessions: who each user is and what happened so far.

Per row: the persona and its observable profile (vector and projected observation), the counters of the
session (steps, clicks, purchases, items, money, last response, misses), the shown and bought items (as
(N, n_items) membership matrices and as ordered -1 padded logs, the builder's cross-sell seeds), and the
clicked-items history (:mod:`bundlerl.encoders.user_vectors`: running sums, their projection, the observed
direction). The observation's ``profile``, ``history`` and ``session`` entries and the candidate builder's
queries are built from this log alone: it holds no simulator truth (docs/SIMULATOR.md property 7).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bundlerl.encoders.user_vectors import add_clicked, history_vectors, projected_history
from bundlerl.env.observation import session_features
from bundlerl.env.rows import Row, RowTable

__all__ = ["EventLog", "LoggedStep"]


@dataclass(frozen=True)
class LoggedStep:
    """One shown bundle and the user's answer to it, as a caller outside the env knows it (serving: the events of
    one impression). ``shown`` holds every item of the bundle, ``bought`` those bought (a subset of ``shown``),
    ``revenue`` the money paid for them (catalogue currency units), ``click`` whether the bundle was clicked."""

    shown: tuple[int, ...]
    click: bool
    bought: tuple[int, ...] = ()
    revenue: float = 0.0


def _append(log: np.ndarray, count: np.ndarray, rows: np.ndarray, items: np.ndarray) -> None:
    """Append ``items`` to per-row ordered logs (rows may repeat; order within a row kept), vectorised."""
    if rows.size == 0:
        return
    order = np.argsort(rows, kind="stable")
    r, it = rows[order], items[order]
    first = np.searchsorted(r, r, side="left")
    pos = count[r] + (np.arange(r.size) - first)
    ok = pos < log.shape[1]
    log[r[ok], pos[ok]] = it[ok]
    np.add.at(count, r, 1)


@dataclass(frozen=True)
class _Answer:
    """The fields of a shopper's Response that :meth:`EventLog.record` reads, for :meth:`EventLog.replay_rows`."""

    click: np.ndarray
    bought: np.ndarray
    n_bought: np.ndarray
    revenue: np.ndarray


class EventLog(RowTable):
    """The event log of N sessions (see the module docstring).

    :param n: rows N. :param n_items: catalogue size. :param d: embedding dimension. :param P: observation
        projection dimension. :param L: capacity of the ordered logs (horizon x K_max: every item shown once).
    """

    ROWS = (
        Row("persona", np.int64, reset=False),
        Row("profile_vec", np.float32, ("d",), reset=False),  # enc(persona text): the builder's query
        Row("profile_obs", np.float32, ("P",), reset=False),
        Row("t", np.int32),
        Row("clicks", np.int32),
        Row("purchases", np.int32),
        Row("items_bought", np.int32),
        Row("spent", np.float64),
        Row("last_click", np.float32),
        Row("last_items", np.int32),
        Row("miss_streak", np.int32),
        Row("shown_items", bool, ("n_items",), False),
        Row("n_shown", np.int32),
        Row("shown_log", np.int32, ("L",), -1),  # distinct items shown, in order
        Row("bought_items", bool, ("n_items",), False),
        Row("n_bought_log", np.int32),
        Row("bought_log", np.int32, ("L",), -1),  # items bought, in purchase order (cross-sell seeds)
        Row("hist_sum", np.float32, ("d",)),
        Row("hist_proj", np.float32, ("P",)),  # hist_sum @ projection, accumulated item by item
        Row("has_hist", bool, (), False),
        Row("history_obs", np.float32, ("P",)),
    )

    def start(self, rows: np.ndarray, persona: np.ndarray, profile_vec: np.ndarray, profile_obs: np.ndarray) -> None:
        """New episodes in ``rows``: the users' persona and profile, everything else emptied."""
        self.reset(rows)
        self.persona[rows] = persona
        self.profile_vec[rows] = profile_vec
        self.profile_obs[rows] = profile_obs

    def record(self, rr: np.ndarray, bundles: np.ndarray, resp, emb_z: np.ndarray, proj_z: np.ndarray) -> None:
        """Log the response of rows ``rr`` to the shown ``bundles`` (len(rr), K_max), -1 padded.

        :param resp: the shopper's Response for these rows (click, bought, n_bought, revenue).
        :param emb_z: (n_items + 1, d) item embeddings, :param proj_z: (n_items + 1, P) projected ones, both with a
            zero last row (``bundlerl.utils.arrays.zero_padded``).
        """
        valid = bundles >= 0
        r2 = np.broadcast_to(rr[:, None], bundles.shape)[valid]
        it = bundles[valid]
        newly = ~self.shown_items[r2, it]
        self.shown_items[r2, it] = True
        _append(self.shown_log, self.n_shown, r2[newly], it[newly])
        bought = np.asarray(resp.bought, bool) & valid
        rb = np.broadcast_to(rr[:, None], bundles.shape)[bought]
        self.bought_items[rb, bundles[bought]] = True
        _append(self.bought_log, self.n_bought_log, rb, bundles[bought])
        click = np.asarray(resp.click, bool)
        nb = np.asarray(resp.n_bought, np.int32)
        self.t[rr] += 1
        self.clicks[rr] += click
        self.purchases[rr] += nb > 0
        self.items_bought[rr] += nb
        self.spent[rr] += np.asarray(resp.revenue, np.float64)
        self.last_click[rr] = click
        self.last_items[rr] = nb
        self.miss_streak[rr] = np.where(click, 0, self.miss_streak[rr] + 1)
        if click.any():
            cr, cb = rr[click], bundles[click]
            add_clicked(self.hist_sum, cr, cb, emb_z)
            add_clicked(self.hist_proj, cr, cb, proj_z)
            self.has_hist[cr] = True
            self.history_obs[cr] = projected_history(self.hist_sum[cr], self.hist_proj[cr])

    def replay_rows(self, rows: np.ndarray, steps, emb_z: np.ndarray, proj_z: np.ndarray) -> None:
        """Record each row's ``steps`` (``steps[i]``: a sequence of :class:`LoggedStep` of ``rows[i]``, oldest first)
        through :meth:`record`, step by step: the env's own bookkeeping applied to histories told from outside
        (serving's request events). Step t of every row that has one is one :meth:`record` call over those rows (rows
        are distinct, as in the env's steps), so a batch of users costs as many calls as its longest history.

        :param rows: (n,) distinct int rows. :param emb_z, proj_z: as for :meth:`record`. Items are catalogue
            positions (checked by the caller).
        """
        rows = np.asarray(rows, dtype=np.int64)
        lengths = np.array([len(s) for s in steps], dtype=np.int64)
        for t in range(int(lengths.max(initial=0))):
            idx = np.flatnonzero(lengths > t)
            now = [steps[i][t] for i in idx]
            width = max(1, max(len(st.shown) for st in now))
            bundle = np.full((idx.size, width), -1, dtype=np.int64)
            bought = np.zeros((idx.size, width), dtype=bool)
            for r, st in enumerate(now):
                bundle[r, :len(st.shown)] = st.shown
                if st.bought:
                    bought[r, :len(st.shown)] = np.isin(st.shown, st.bought)
            resp = _Answer(click=np.array([bool(st.click) for st in now]), bought=bought,
                           n_bought=bought.sum(axis=1).astype(np.int32),
                           revenue=np.array([st.revenue for st in now], np.float64))
            self.record(rows[idx], bundle, resp, emb_z, proj_z)

    def history_vectors(self, rows: np.ndarray | None = None) -> np.ndarray:
        """(n, d) float32 clicked-items history vectors of ``rows`` (all when None); zero rows before a click."""
        return history_vectors(self.hist_sum if rows is None else self.hist_sum[rows])

    def session_features(self, partial_len: np.ndarray, *, horizon: int, K_max: int, mean_price: float) -> np.ndarray:
        """(N, S) float32 ``session`` observation (:data:`bundlerl.env.observation.SESSION_FEATURES`).

        :param partial_len: (N,) items of each row's partial bundle (compose mode; zeros in bundle mode).
        """
        return session_features(
            self.t, self.clicks, self.purchases, self.items_bought, self.spent, self.last_click,
            self.last_items, self.miss_streak, self.n_shown, partial_len,
            horizon=horizon, K_max=K_max, mean_price=mean_price,
        )
