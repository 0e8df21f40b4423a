"""The batched session core: N shopper sessions stepped by one code path, a short orchestrator of its parts.

Both :class:`bundlerl.env.bundle_env.BundleRecEnv` (N = 1) and :class:`bundlerl.env.vec_env.BundleRecVecEnv`
(N users) are thin views of :class:`SessionBatch`. A step goes through its parts in order:

1. the action becomes a shown bundle: a candidate of the cached pool (bundle mode) or the partial bundle
   built by :class:`~bundlerl.env.compose.ComposeAdapter` (compose mode);
2. the shopper (:class:`~bundlerl.env.shopper.ShopperModel`; SIMULATOR TRUTH: ``model``, ``state``)
   responds, and the reward is computed from the response (:mod:`bundlerl.env.reward`);
3. the recommender-side :class:`~bundlerl.env.event_log.EventLog` records it;
4. the :class:`~bundlerl.env.candidate_cache.CandidateCache` rebuilds the pools its refresh policy asks for
   and updates the others in place.

Each part declares its per-row arrays once (:mod:`bundlerl.env.rows`), which drives allocation, episode
resets and :meth:`SessionBatch.fork`. The parts' arrays read as the batch's own attributes (``batch.t`` is
``batch.log.t``, ``batch.cand_items`` is ``batch.pool.cand_items``).

Randomness. Each row ``i`` has its own ``numpy.random.Generator`` (``row_rngs[i]``; a single
env's ``np_random``, or for the vec env the generator seeded with ``seed + i`` as SB3 seeds
``DummyVecEnv``). At each episode start the row draws one 64-bit *episode key* from it; every
random draw inside the episode (persona choice, initial state, responses) comes from the
shopper's per-user streams keyed by that key, so a row's trajectory does not depend on the other
rows: a batch of N equals N single-user runs with the same per-user seeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bundlerl.candidates.features import COL
from bundlerl.env.candidate_cache import CandidateCache
from bundlerl.env.compose import ComposeAdapter, bundle_features_of
from bundlerl.env.config import EnvConfig
from bundlerl.env.event_log import EventLog
from bundlerl.env.observation import ACTION_MODES, build_observation
from bundlerl.env.reward import penalised, reward
from bundlerl.env.rows import Row, RowTable
from bundlerl.env.user_streams import UserStreams, splitmix64
from bundlerl.env.world import World
from bundlerl.utils.errors import BundlerlError
from bundlerl.utils.threads import serial_numpy_blas

__all__ = ["SessionBatch", "StepOutcome", "InvalidActionError", "ACTION_MODES"]


class InvalidActionError(BundlerlError):
    """An action outside the action space (not an integer in [0, n_actions)); the message shows the mask."""


@dataclass
class StepOutcome:
    """What one batched step produced; all arrays (N,)."""

    reward: np.ndarray
    """float32 reward of the response minus the invalid-action penalty (:mod:`bundlerl.env.reward`)."""
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


_PARTS = ("log", "pool", "compose")
"""The batch's RowTable parts, whose per-row arrays read as the batch's attributes."""


class SessionBatch(RowTable):
    """N concurrent sessions of one environment config; see the module docstring.

    :param world: the World of ``config`` (catalogue, personas, candidate builder, ...).
    :param config: the EnvConfig.
    :param n: number of rows N >= 1.
    :param action_mode: ``"bundle"`` (choose one of K candidate bundles) or ``"compose"`` (build a bundle item
        by item from M items, then "done").
    """

    ROWS = (Row("keys", np.uint64, reset=False),)  # the episode keys of the shopper's per-user streams

    def __init__(self, world: World, config: EnvConfig, n: int, action_mode: str = "bundle"):
        if action_mode not in ACTION_MODES:
            raise ValueError(f"action_mode={action_mode!r}; use one of {ACTION_MODES}")
        if n < 1:
            raise ValueError(f"n={n}; a batch needs at least one row")
        from bundlerl.env.shopper import ShopperModel
        from bundlerl.utils.arrays import zero_padded

        super().__init__(n)
        self.world, self.config, self.mode = world, config, action_mode
        # the shopper pays the discounted price the store shows it: the builder's discounts are the one home
        self.model = ShopperModel(world.catalog, config.shopper_params(), world.builder.config.discounts)
        self.reward_weights = config.reward_weights()
        self.K, self.K_max, self.M = config.K, config.K_max, config.compose_items
        self.n_actions = self.K if action_mode == "bundle" else self.M + 1
        self.n_items = world.n_items
        self._emb_z = zero_padded(world.observable_catalog.embeddings)  # shared by the envs of this world
        self._proj_z = zero_padded(world.item_proj)
        self._emb = self._emb_z[:-1]
        self._price = world.observable_catalog.price
        self.state = None
        self.row_rngs: list[np.random.Generator] = [np.random.default_rng(i) for i in range(self.n)]
        self.log = EventLog(n, n_items=self.n_items, d=self._emb.shape[1], P=config.profile_dim,
                            L=config.horizon * config.K_max)
        self.pool = CandidateCache(n, config, world.builder, self._emb)
        self.compose = ComposeAdapter(n, config.K_max, self.M)

    def __getattr__(self, name: str):
        # only reached when normal lookup fails: the per-row arrays of the parts (batch.t is batch.log.t)
        for part in _PARTS:
            table = self.__dict__.get(part)
            if table is not None and name in type(table).row_names():
                return getattr(table, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def fork(self, rows) -> "SessionBatch":
        """A new batch whose row j is a copy of row ``rows[j]`` (repeats allowed): hidden state, event log,
        candidate pool. World, model and config are shared. For planners that simulate futures (oracles): the
        copy draws the same responses as its source rows unless its ``keys`` are replaced."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.ndim != 1 or rows.size == 0 or rows.min() < 0 or rows.max() >= self.n:
            raise ValueError(f"fork rows must be a non-empty 1-D array of row indices in [0, {self.n})")
        if self.state is None:
            raise RuntimeError("reset the batch before forking it")
        new = self.take(rows)
        for part in _PARTS:
            setattr(new, part, getattr(self, part).take(rows))
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
        world = self.world
        persona = (_hash_keys(keys, 1) % np.uint64(len(world.personas))).astype(np.int64)
        vecs = world.persona_vecs[persona]
        new_state = self.model.init_state(world.personas.take(persona), vecs, self._rng(keys, 2))
        if self.state is None:
            if rows.size != self.n:
                raise RuntimeError("the first reset must cover all rows")
            self.state = new_state
        else:
            self.state.put(rows, new_state)
        self.log.start(rows, persona, vecs, world.persona_obs[persona])
        self.pool.start(rows, persona, world.initial_pools())
        self.compose.reset(rows)

    def _rng(self, keys: np.ndarray, salt: int):
        """The shopper's per-user random streams for ``keys`` (one per row), salted per purpose/step."""
        return UserStreams(_hash_keys(keys, salt))

    def _refresh(self, rows: np.ndarray) -> None:
        """Rebuild the candidate pools of ``rows`` (the one place the step asks for rebuilds; benchmarks count it)."""
        self.pool.rebuild(rows, self.log)

    # ------------------------------------------------------------------ masks / observation
    def action_masks(self) -> np.ndarray:
        """(N, n_actions) bool validity of each action now."""
        if self.mode == "bundle":
            return self.pool.cand_mask.copy()
        return self.compose.masks(self.pool.cand_items)

    def observation_space(self):
        """The gymnasium Dict space of :meth:`observe` rows, with finite bounds from the catalogue's prices."""
        from bundlerl.env.observation import observation_space

        price = self._price.astype(np.float64)
        disc = self.world.builder.disc
        lo = float(np.log(price.min() * (1.0 - disc.max()))) - 1e-3
        hi = float(np.log(self.K_max * price.max())) + 1e-3
        max_spend = self.config.horizon * self.K_max * price.max()
        return observation_space(self.config.profile_dim, self.n_actions, len(COL), (lo, hi),
                                 float(np.log1p(max_spend / self.world.mean_price)) + 1e-3)

    def observe(self, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The batched observation (dict of (N, ...) float32 arrays; ``rows`` of it when given), recommender side
        only."""
        mask = self.action_masks()
        if self.mode == "bundle":
            cand = self.pool.cand_feat
        else:
            cand = self.compose.features(self.pool.cand_items, mask, self.log, self.world, self._emb)
        obs = build_observation(self.log, cand, mask, self.compose.partial_len, horizon=self.config.horizon,
                                K_max=self.K_max, mean_price=self.world.mean_price)
        if rows is not None:
            obs = {k: v[rows] for k, v in obs.items()}
        return obs

    def _bundle_features(self, bundles: np.ndarray) -> np.ndarray:
        """(N, J, F) features of arbitrary bundles (N, J, K_max) of these users, as compose mode computes them."""
        return bundle_features_of(bundles, self.log, self.world, self._emb)

    def _history_vectors(self, rows: np.ndarray | None = None) -> np.ndarray:
        """(n, d) float32 clicked-items history vectors of ``rows`` (:meth:`EventLog.history_vectors`)."""
        return self.log.history_vectors(rows)

    def expected_reward(self, state, bundles: np.ndarray) -> np.ndarray:
        """SIMULATOR TRUTH (oracles only): (N, K) float64 exact one-step expected reward of showing each bundle
        (N, K, K_max) to shoppers in hidden ``state``: the reward of the expected response (the reward is linear)."""
        return reward(*self.model.expected_response(state, bundles), self.reward_weights, self.world.mean_price)

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
            bundles = np.where(valid[:, None], self.pool.cand_items[rows, a], -1).astype(np.int32)
            respond = np.ones(N, bool)
        else:
            respond, bundles = self.compose.act(a, valid, self.pool.cand_items)
        rew = np.zeros(N, np.float32)
        click = np.zeros(N, bool)
        n_bought = np.zeros(N, np.int32)
        revenue = np.zeros(N, np.float32)
        bought = np.zeros((N, self.K_max), bool)
        done = np.zeros(N, bool)
        rr = np.flatnonzero(respond)
        if rr.size:
            step_keys = _hash_keys(self.keys[rr], 1000 + 0) ^ self.log.t[rr].astype(np.uint64)
            if rr.size == N:
                resp = self.model.step(self.state, bundles, self._rng(step_keys, 3))
            else:
                sub = self.state.take(rr)
                resp = self.model.step(sub, bundles[rr], self._rng(step_keys, 3))
                self.state.put(rr, sub)
            rew[rr] = reward(resp.click, resp.n_bought, resp.revenue, self.reward_weights, self.world.mean_price)
            click[rr] = resp.click
            n_bought[rr] = resp.n_bought
            revenue[rr] = resp.revenue
            bought[rr] = resp.bought
            done[rr] = resp.done
            self._after_response(rr, bundles[rr], resp)
        truncated = respond & ~done & (self.log.t >= self.config.horizon)
        return StepOutcome(penalised(rew, invalid, self.config.invalid_action_penalty), done, truncated, respond,
                           invalid, click, n_bought, revenue, np.where(respond[:, None], bundles, -1), bought)

    def _after_response(self, rr: np.ndarray, bundles: np.ndarray, resp) -> None:
        """Rows ``rr`` saw ``bundles`` and responded: log it, empty their partial bundles, refresh their pools."""
        self.log.record(rr, bundles, resp, self._emb_z, self._proj_z)
        self.compose.reset(rr)
        click = np.asarray(resp.click, bool)
        need = self.pool.due(rr, click, np.asarray(resp.n_bought), np.asarray(resp.done, bool))
        self._refresh(rr[need])
        keep = ~need
        self.pool.update(rr[keep], click[keep], self.log)
