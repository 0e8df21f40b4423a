"""The batched session core: N shopper sessions stepped by one code path.

Both :class:`bundlerl.env.bundle_env.BundleRecEnv` (N = 1) and :class:`bundlerl.env.vec_env.BundleRecVecEnv`
(N users) are thin views of :class:`SessionBatch`. It owns

- the shopper model and its hidden state (SIMULATOR TRUTH; ``model``, ``state``),
- the recommender-side event log per user (shown / bought items, counters, the clicked-items
  history vector) from which the observation is built,
- the candidate pool per user, cached and rebuilt only on events (purchase, every
  ``refresh_every`` steps, optionally click, or fewer than ``min_valid_candidates`` left); a new
  episode's pool is gathered from the world's per-persona table. Between rebuilds the cached
  pool is kept exact cheaply: the ``novelty`` column is recomputed, ``rel_history`` after a
  click, and bundles holding a bought item are masked out.

Randomness. Each row ``i`` has its own ``numpy.random.Generator`` (``row_rngs[i]``; a single
env's ``np_random``, or for the vec env the generator seeded with ``seed + i`` as SB3 seeds
``DummyVecEnv``). At each episode start the row draws one 64-bit *episode key* from it; every
random draw inside the episode (persona choice, initial state, responses) comes from the
shopper's per-user streams keyed by that key, so a row's trajectory does not depend on the other
rows: a batch of N equals N single-user runs with the same per-user seeds.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from bundlerl.candidates.builder import inner_products_by_index
from bundlerl.candidates.types import CANDIDATE_FEATURES
from bundlerl.env.observation import (
    CANDIDATES_KEY,
    HISTORY_KEY,
    MASK_KEY,
    PROFILE_KEY,
    SESSION_KEY,
    session_features,
)
from bundlerl.env.presets import EnvConfig, World
from bundlerl.env.user_streams import UserStreams, splitmix64
from bundlerl.utils.errors import BundlerlError
from bundlerl.utils.threads import serial_numpy_blas

__all__ = ["SessionBatch", "StepOutcome", "InvalidActionError", "ACTION_MODES"]

ACTION_MODES = ("bundle", "compose")
_NOVELTY = CANDIDATE_FEATURES.index("novelty")
_REL_H = CANDIDATE_FEATURES.index("rel_history")
_F = len(CANDIDATE_FEATURES)


class InvalidActionError(BundlerlError):
    """An action outside the action space (not an integer in [0, n_actions)); the message shows the mask."""


@dataclass
class StepOutcome:
    """What one batched step produced; all arrays (N,)."""

    reward: np.ndarray
    """float32 reward (shopper reward minus the invalid-action penalty)."""
    terminated: np.ndarray
    """bool: the shopper left or ran out of budget."""
    truncated: np.ndarray
    """bool: the horizon was reached (and the episode did not terminate)."""
    responded: np.ndarray
    """bool: the shopper saw a bundle this step (always True in bundle mode)."""
    invalid: np.ndarray
    """bool: the chosen action was masked."""
    click: np.ndarray
    n_bought: np.ndarray
    revenue: np.ndarray
    shown: np.ndarray
    """(N, K_max) int32 items shown this step, -1 padded (all -1 when nothing was shown)."""
    bought: np.ndarray
    """(N, K_max) bool items bought."""


def _hash_keys(keys: np.ndarray, salt: int) -> np.ndarray:
    """(n,) uint64 splitmix64 of keys ^ salt: a vectorised, batch-independent per-row draw."""
    return splitmix64(keys.astype(np.uint64) ^ np.uint64(salt))


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


#: Per-row arrays of a SessionBatch (first axis = row); :meth:`SessionBatch.fork` copies exactly these.
_ROW_FIELDS = (
    "keys", "t", "clicks", "purchases", "items_bought", "spent", "last_click", "last_items", "miss_streak",
    "shown_items", "n_shown", "bought_items", "bought_log", "n_bought_log", "shown_log", "hist_sum", "hist_proj",
    "has_hist", "persona", "profile_vec", "profile_obs", "history_obs", "cand_items", "cand_mask", "cand_feat",
    "since_refresh", "partial", "partial_len",
)


class SessionBatch:
    """N concurrent sessions of one environment config; see the module docstring.

    :param world: the World of ``config`` (catalogue, personas, candidate builder, ...).
    :param config: the EnvConfig.
    :param n: number of rows N >= 1.
    :param action_mode: ``"bundle"`` (choose one of K candidate bundles) or ``"compose"`` (build a bundle item
        by item from M items, then "done").
    """

    def __init__(self, world: World, config: EnvConfig, n: int, action_mode: str = "bundle"):
        if action_mode not in ACTION_MODES:
            raise ValueError(f"action_mode={action_mode!r}; use one of {ACTION_MODES}")
        if n < 1:
            raise ValueError(f"n={n}; a batch needs at least one row")
        from bundlerl.env.shopper import ShopperModel, zero_padded

        self.world, self.config, self.n, self.mode = world, config, int(n), action_mode
        self.model = ShopperModel(world.catalog, config.shopper_params())
        self.K, self.K_max = config.K, config.K_max
        self.M = config.compose_items
        self.n_actions = self.K if action_mode == "bundle" else self.M + 1
        self.n_items = world.n_items
        self._emb_z = zero_padded(world.observable_catalog.embeddings)  # shared by the envs of this world
        self._proj_z = zero_padded(world.item_proj)
        self._emb = self._emb_z[:-1]
        self._price = world.observable_catalog.price
        self.state = None
        self.row_rngs: list[np.random.Generator] = [np.random.default_rng(i) for i in range(self.n)]
        self.keys = np.zeros(self.n, dtype=np.uint64)
        N, n_it, d = self.n, self.n_items, self._emb.shape[1]
        # recommender-side event log
        self.t = np.zeros(N, np.int32)
        self.clicks = np.zeros(N, np.int32)
        self.purchases = np.zeros(N, np.int32)
        self.items_bought = np.zeros(N, np.int32)
        self.spent = np.zeros(N, np.float64)
        self.last_click = np.zeros(N, np.float32)
        self.last_items = np.zeros(N, np.int32)
        self.miss_streak = np.zeros(N, np.int32)
        self.shown_items = np.zeros((N, n_it), bool)
        self.n_shown = np.zeros(N, np.int32)
        self.bought_items = np.zeros((N, n_it), bool)
        L = config.horizon * config.K_max
        self.bought_log = np.full((N, L), -1, np.int32)  # items bought, in purchase order (cross-sell seeds)
        self.n_bought_log = np.zeros(N, np.int32)
        self.shown_log = np.full((N, L), -1, np.int32)  # distinct items shown, in order
        self.hist_sum = np.zeros((N, d), np.float32)
        self.hist_proj = np.zeros((N, config.profile_dim), np.float32)  # hist_sum @ projection, accumulated
        self.has_hist = np.zeros(N, bool)
        self.persona = np.zeros(N, np.int64)
        self.profile_vec = np.zeros((N, d), np.float32)
        self.profile_obs = np.zeros((N, config.profile_dim), np.float32)
        self.history_obs = np.zeros((N, config.profile_dim), np.float32)
        # candidate pool cache
        self.cand_items = np.full((N, self.K, self.K_max), -1, np.int32)
        self.cand_mask = np.zeros((N, self.K), bool)
        self.cand_feat = np.zeros((N, self.K, _F), np.float32)
        self.since_refresh = np.zeros(N, np.int32)
        # compose mode
        self.partial = np.full((N, self.K_max), -1, np.int32)
        self.partial_len = np.zeros(N, np.int32)

    def fork(self, rows) -> "SessionBatch":
        """A new batch whose row j is a copy of row ``rows[j]`` (repeats allowed): hidden state, event log,
        candidate pool. World, model and config are shared. For planners that simulate futures (oracles): the
        copy draws the same responses as its source rows unless its ``keys`` are replaced."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.ndim != 1 or rows.size == 0 or rows.min() < 0 or rows.max() >= self.n:
            raise ValueError(f"fork rows must be a non-empty 1-D array of row indices in [0, {self.n})")
        if self.state is None:
            raise RuntimeError("reset the batch before forking it")
        new = copy.copy(self)
        new.n = int(rows.size)
        for name in _ROW_FIELDS:
            setattr(new, name, getattr(self, name)[rows])
        new.state = self.state.take(rows)
        new.row_rngs = [self.row_rngs[r] for r in rows.tolist()]
        return new

    # ------------------------------------------------------------------ reset
    def seed_rows(self, rows: np.ndarray, rngs: list[np.random.Generator]) -> None:
        """Give rows their own generators (a single env's ``np_random``; the vec env's per-row ones)."""
        for r, g in zip(np.asarray(rows).tolist(), rngs):
            self.row_rngs[r] = g

    def reset_rows(self, rows: np.ndarray | None = None) -> None:
        """Start new episodes in ``rows`` (all when None): fresh persona, hidden state, log and candidates."""
        with serial_numpy_blas():  # see bundlerl.utils.threads.serial_numpy_blas: numpy BLAS threads spin through faiss
            self._reset_rows(rows)

    def _reset_rows(self, rows: np.ndarray | None) -> None:
        rows = np.arange(self.n) if rows is None else np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            return
        # One draw per resetting row from its own generator: the episode key (loop only over resets).
        keys = np.array([self.row_rngs[r].integers(0, 2**63, dtype=np.uint64) for r in rows.tolist()], np.uint64)
        self.keys[rows] = keys
        n_pool = len(self.world.personas)
        persona = (_hash_keys(keys, 1) % np.uint64(n_pool)).astype(np.int64)
        self.persona[rows] = persona
        vecs = self.world.persona_vecs[persona]
        self.profile_vec[rows] = vecs
        self.profile_obs[rows] = self.world.persona_obs[persona]
        new_state = self.model.init_state(self.world.personas.take(persona), vecs, self._rng(keys, 2))
        if self.state is None:
            if rows.size != self.n:
                raise RuntimeError("the first reset must cover all rows")
            self.state = new_state
        else:
            self.state.put(rows, new_state)
        for arr in (self.t, self.clicks, self.purchases, self.items_bought, self.spent, self.last_click,
                    self.last_items, self.miss_streak, self.n_shown, self.since_refresh, self.partial_len,
                    self.n_bought_log):
            arr[rows] = 0
        self.bought_log[rows] = -1
        self.shown_log[rows] = -1
        self.shown_items[rows] = False
        self.bought_items[rows] = False
        self.hist_sum[rows] = 0.0
        self.hist_proj[rows] = 0.0
        self.has_hist[rows] = False
        self.history_obs[rows] = 0.0
        self.partial[rows] = -1
        # A new episode's pool depends only on the persona (no history, nothing shown or bought): gather it
        # from the world's per-persona table instead of rebuilding.
        init = self.world.initial_pools()
        self._set_pool(rows, init.items[persona], init.mask[persona], init.features[persona])
        self.since_refresh[rows] = 0

    def _rng(self, keys: np.ndarray, salt: int):
        """The shopper's per-user random streams for ``keys`` (one per row), salted per purpose/step."""
        return UserStreams(_hash_keys(keys, salt))

    # ------------------------------------------------------------------ candidates
    def _refresh(self, rows: np.ndarray) -> None:
        """Rebuild the candidate pools of ``rows`` from the recommender side."""
        if rows.size == 0:
            return
        hist = self._history_vectors(rows) if self.has_hist[rows].any() else None
        # the logs are -1 padded, in event order (bought in purchase order: the last ones seed cross-sell)
        cs = self.world.builder.build(self.profile_vec[rows], hist, self.bought_log[rows], self.shown_log[rows], None)
        self._set_pool(rows, cs.items, cs.mask, cs.features)
        self.since_refresh[rows] = 0

    def _set_pool(self, rows: np.ndarray, items: np.ndarray, mask: np.ndarray, feats: np.ndarray) -> None:
        """Store candidate pools for ``rows``."""
        self.cand_items[rows] = items
        self.cand_mask[rows] = mask
        self.cand_feat[rows] = feats

    def _update_cached(self, rows: np.ndarray, clicked: np.ndarray) -> None:
        """Keep the cached pools of ``rows`` (not rebuilt this step) exact without a rebuild.

        Call after this step's shown and bought items are in ``shown_items`` / ``bought_items``.
        :param clicked: (len(rows),) bool, the history vector changed.

        - novelty = (size - shown members) / size, the members looked up in the (N, n_items) shown matrix;
        - rel_history of clicked rows: mean cosine of the bundle's items to the new history vector;
        - bundles holding a bought item are masked out (never re-offered). Pools never hold an item bought
          before they were built, and masked bundles lose their items, so a bought member was bought this step.
        Same formulas as ``bundlerl.candidates.builder``.
        """
        if rows.size == 0:
            return
        items = self.cand_items[rows]  # (n, K, Km)
        valid = items >= 0
        size = valid.sum(axis=2)
        # one flat gather per matrix: 4x cheaper than comparing every member with this step's items
        flat = (rows * self.n_items)[:, None, None] + np.maximum(items, 0)
        seen = (np.take(self.shown_items.reshape(-1), flat) & valid).sum(axis=2)
        feat = self.cand_feat[rows]
        feat[:, :, _NOVELTY] = np.where(size > 0, (size - seen) / np.maximum(size, 1), 0.0)
        if clicked.any():
            sel = np.flatnonzero(clicked)
            h = self._history_vectors(rows[sel])
            # fused gather + dot: never materialises the (n, K, K_max, d) block of embeddings
            cos = inner_products_by_index(h, self._emb, items[sel].reshape(sel.size, -1)).reshape(items[sel].shape)
            feat[sel, :, _REL_H] = cos.sum(axis=2) / np.maximum(size[sel], 1)
        stale = (np.take(self.bought_items.reshape(-1), flat) & valid).any(axis=2)
        if stale.any():
            self.cand_mask[rows] = self.cand_mask[rows] & ~stale
            feat = np.where(stale[..., None], 0.0, feat).astype(np.float32)
            self.cand_items[rows] = np.where(stale[..., None], -1, items)
        self.cand_feat[rows] = feat

    # ------------------------------------------------------------------ masks / observation
    def action_masks(self) -> np.ndarray:
        """(N, n_actions) bool validity of each action now."""
        if self.mode == "bundle":
            return self.cand_mask.copy()
        items, _ = self._compose_pool()
        in_partial = (items[:, :, None] == self.partial[:, None, :]).any(axis=2)
        can_add = (items >= 0) & ~in_partial & (self.partial_len < self.K_max)[:, None]
        done_ok = self.partial_len > 0
        return np.concatenate([can_add, done_ok[:, None]], axis=1)

    def _compose_pool(self) -> tuple[np.ndarray, np.ndarray]:
        """(N, M) int32 distinct items of the candidate pool in rank order (-1 padded), and their (N, M) slot."""
        flat = self.cand_items.reshape(self.n, -1)
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

    def _compose_bundles(self) -> np.ndarray:
        """(N, M+1, K_max) bundles each action would lead to: partial + item j, and the partial itself ("done")."""
        items, _ = self._compose_pool()
        N, M = self.n, self.M
        b = np.repeat(self.partial[:, None, :], M + 1, axis=1)
        slot = np.minimum(self.partial_len, self.K_max - 1)
        b[np.arange(N)[:, None], np.arange(M)[None, :], slot[:, None]] = items
        full = self.partial_len >= self.K_max
        b[full, :M] = -1
        b[:, :M][items < 0] = -1
        return b

    def observation_space(self):
        """The gymnasium Dict space of :meth:`observe` rows, with finite bounds from the catalogue's prices."""
        from bundlerl.env.observation import observation_space

        price = self._price.astype(np.float64)
        disc = self.world.builder.disc
        lo = float(np.log(price.min() * (1.0 - disc.max()))) - 1e-3
        hi = float(np.log(self.K_max * price.max())) + 1e-3
        max_spend = self.config.horizon * self.K_max * price.max()
        return observation_space(self.config.profile_dim, self.n_actions, _F, (lo, hi),
                                 float(np.log1p(max_spend / self.world.mean_price)) + 1e-3)

    def observe(self, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The batched observation (dict of (N, ...) float32 arrays), recommender side only."""
        sess = session_features(
            self.t, self.clicks, self.purchases, self.items_bought, self.spent, self.last_click,
            self.last_items, self.miss_streak, self.n_shown, self.partial_len,
            horizon=self.config.horizon, K_max=self.K_max, mean_price=self.world.mean_price,
        )
        mask = self.action_masks()
        if self.mode == "bundle":
            cand = self.cand_feat.copy()
        else:
            cand = np.where(mask[..., None], self._bundle_features(self._compose_bundles()), 0.0).astype(np.float32)
        mask = mask.astype(np.float32)
        obs = {
            PROFILE_KEY: self.profile_obs.copy(),
            HISTORY_KEY: self.history_obs.copy(),
            SESSION_KEY: sess,
            CANDIDATES_KEY: cand,
            MASK_KEY: mask,
        }
        if rows is not None:
            obs = {k: v[rows] for k, v in obs.items()}
        return obs

    def _bundle_features(self, bundles: np.ndarray) -> np.ndarray:
        """(N, J, F) CANDIDATE_FEATURES of arbitrary bundles (N, J, K_max), -1 padded; all-0 rows for empty bundles.

        The formulas of ``bundlerl.candidates.features.bundle_features`` with the world builder's tables (exact
        embeddings, the estimated complementarity model's ``score``, its discount table and popularity feature).
        """
        from bundlerl.candidates.features import bundle_features

        b = self.world.builder
        return bundle_features(
            bundles, profile=self.profile_vec, history=self._history_vectors(), shown=self.shown_items,
            embeddings=self._emb, category=b.category, price=b.price, popularity=b.pop_feat, discount=b.disc,
            comp_score=b.comp.score,
        )

    def _history_vectors(self, rows: np.ndarray | None = None) -> np.ndarray:
        """(n, d) float32 normalised clicked-items history vectors of ``rows`` (zero rows before the first click)."""
        h = self.hist_sum if rows is None else self.hist_sum[rows]
        nrm = np.linalg.norm(h, axis=1, keepdims=True)
        return np.where(nrm > 0, h / np.maximum(nrm, 1e-12), 0.0).astype(np.float32)

    # ------------------------------------------------------------------ step
    def check_actions(self, actions) -> np.ndarray:
        """(N,) int64 actions; raises InvalidActionError for wrong shape or out-of-range values."""
        a = np.asarray(actions)
        if a.shape == () and self.n == 1:
            a = a.reshape(1)
        if a.shape != (self.n,) or not (np.issubdtype(a.dtype, np.integer) or
                                        (np.issubdtype(a.dtype, np.floating) and np.all(a == np.round(a)))):
            raise InvalidActionError(
                f"actions {a!r} must be {self.n} integer(s) in [0, {self.n_actions}); "
                f"action mask now: {self.action_masks().astype(int).tolist()}"
            )
        a = a.astype(np.int64)
        bad = (a < 0) | (a >= self.n_actions)
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            raise InvalidActionError(
                f"action {int(a[r])} (row {r}) is outside [0, {self.n_actions}); valid actions are where the "
                f"action mask is 1: {self.action_masks()[r].astype(int).tolist()}"
            )
        return a

    def step(self, actions) -> StepOutcome:
        """Apply one action per row. Does not reset finished rows (the caller does, after reading the outcome)."""
        a = self.check_actions(actions)
        with serial_numpy_blas():
            return self._step(a)

    def _step(self, a: np.ndarray) -> StepOutcome:
        N, rows = self.n, np.arange(self.n)
        valid = self.action_masks()[rows, a]
        invalid = ~valid
        if self.mode == "bundle":
            bundles = np.where(valid[:, None], self.cand_items[rows, a], -1).astype(np.int32)
            respond = np.ones(N, bool)
        else:
            bundles_all = self._compose_bundles()
            add = valid & (a < self.M)
            if add.any():
                self.partial[add] = bundles_all[add, a[add]]
                self.partial_len[add] += 1
            respond = invalid | (valid & (a == self.M)) | (add & (self.partial_len >= self.K_max))
            bundles = np.where((respond & valid)[:, None], self.partial, -1).astype(np.int32)
        reward = np.zeros(N, np.float32)
        click = np.zeros(N, bool)
        n_bought = np.zeros(N, np.int32)
        revenue = np.zeros(N, np.float32)
        bought = np.zeros((N, self.K_max), bool)
        done = np.zeros(N, bool)
        rr = np.flatnonzero(respond)
        if rr.size:
            step_keys = _hash_keys(self.keys[rr], 1000 + 0) ^ self.t[rr].astype(np.uint64)
            if rr.size == N:
                resp = self.model.step(self.state, bundles, self._rng(step_keys, 3))
                sub = None
            else:
                sub = self.state.take(rr)
                resp = self.model.step(sub, bundles[rr], self._rng(step_keys, 3))
                self.state.put(rr, sub)
            reward[rr] = resp.reward
            click[rr] = resp.click
            n_bought[rr] = resp.n_bought
            revenue[rr] = resp.revenue
            bought[rr] = resp.bought
            done[rr] = resp.done
            self._log_response(rr, bundles[rr], resp)
        reward = reward - np.float32(self.config.invalid_action_penalty) * invalid
        terminated = done
        truncated = respond & ~terminated & (self.t >= self.config.horizon)
        return StepOutcome(reward.astype(np.float32), terminated, truncated, respond, invalid, click, n_bought,
                           revenue, np.where(respond[:, None], bundles, -1), bought)

    def _log_response(self, rr: np.ndarray, bundles: np.ndarray, resp) -> None:
        """Update the recommender-side log of rows ``rr`` after the shopper responded to ``bundles``."""
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
            cr = rr[click]
            cb = bundles[click]
            self.hist_sum[cr] += self._emb_z[cb].sum(axis=1)  # -1 slots gather the zero row
            self.hist_proj[cr] += self._proj_z[cb].sum(axis=1)
            self.has_hist[cr] = True
            h = self.hist_sum[cr]
            # normalise(h) @ W == (h @ W) / |h|, with h @ W accumulated from per-item projections
            nrm = np.sqrt(np.einsum("nd,nd->n", h, h))[:, None]
            self.history_obs[cr] = np.clip(self.hist_proj[cr] / np.maximum(nrm, 1e-12), -1.0, 1.0)
        self.partial[rr] = -1
        self.partial_len[rr] = 0
        self.since_refresh[rr] += 1
        cfg = self.config
        need = self.since_refresh[rr] >= cfg.refresh_every
        if cfg.refresh_on_click:
            need |= click
        if cfg.refresh_on_purchase:
            need |= nb > 0
        need |= self.cand_mask[rr].sum(axis=1) < cfg.min_valid_candidates
        # A shopper who left (or ran out of budget) is shown nothing more: no rebuild, only the in-place update.
        # Only the terminal observation sees this pool, and neither PPO nor DQN uses its value after termination.
        need &= ~np.asarray(resp.done, bool)
        self._refresh(rr[need])
        keep = ~need
        self._update_cached(rr[keep], click[keep])
