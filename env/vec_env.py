"""The batched environment: a Stable-Baselines3 ``VecEnv`` stepping N users with one code path."""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

from bundlerl.env.config import ConfigError, EnvConfig, get_config
from bundlerl.env.render import RENDER_FPS, RENDER_MODES, row_text, text_frame
from bundlerl.env.session import ACTION_MODES, SessionBatch
from bundlerl.env.world import build_world
from bundlerl.utils.args import need_int, shown

__all__ = ["BundleRecVecEnv"]


class BundleRecVecEnv(VecEnv):
    """N independent shopper sessions of one preset, stepped together (SB3 ``VecEnv``).

    Equivalent to ``DummyVecEnv([lambda: BundleRecEnv(preset) for _ in range(N)])`` seeded with
    ``seed`` (row i behaves as a single env reset with ``seed + i``, SB3's convention) but
    vectorised: one shopper step, one observation build and candidate rebuilds only for the
    rows that need them (click / purchase / every ``refresh_every`` steps / new episode).

    Auto-reset follows SB3: when row i ends, ``dones[i]`` is True, ``infos[i]["terminal_observation"]``
    holds its last observation, ``infos[i]["TimeLimit.truncated"]`` is True when the horizon (not
    the shopper) ended it, and the returned observation row is the first of the next episode.
    ``infos[i]["episode"] = {"r", "l"}`` summarises the finished episode (as SB3's Monitor does).

    Oracle access (SIMULATOR TRUTH, for oracles only — observable policies must use the
    observation): ``.model`` (the ShopperModel), ``.state`` (the hidden ShopperState of all rows),
    ``.candidate_items`` ((N, K, K_max) int32 catalogue rows of the current candidates; the items
    themselves are observable, only their pairing with ``.state`` is truth).

    :param preset: preset name or EnvConfig.
    :param num_envs: number of users N >= 1.
    :param seed: base seed; None for a random one. Row i uses ``seed + i``; for a ``numpy.random.SeedSequence``
        (a purpose-tagged stream, ``bundlerl.evaluation.seeds``) its child of spawn key ``seed.spawn_key + (i,)``.
    :param action_mode: ``"bundle"`` or ``"compose"``.
    :param render_mode: None, ``"ansi"`` (:meth:`render` returns the rows' texts) or ``"rgb_array"`` (:meth:`render`
        tiles the rows' frames, :meth:`get_images` returns them, as SB3's ``VecVideoRecorder`` expects).

    Per-row access (``get_attr``, ``set_attr``, ``env_method`` with ``indices``). The rows share one object (one
    config, one world, one batched core), unlike ``DummyVecEnv``'s separate envs:

    - ``env_method`` of a per-row method (:data:`ROW_METHODS`: ``action_masks``, ``render``) returns the
      requested rows' own results. Any other method acts on every row at once, so it may only be called for all
      rows (``indices`` None or covering every row): it runs once and its result is repeated per row. A strict,
      non-empty subset raises NotImplementedError (an empty one does nothing).
    - ``set_attr`` sets the shared attribute, so it too needs ``indices`` covering every row (NotImplementedError
      otherwise).
    - ``get_attr`` returns, for each requested row, the row's own value of a per-row attribute
      (:data:`ROW_ATTRS`: ``np_random``, ``candidate_items``), else the shared value (one config, one world:
      every row's value is the same object).

    Indices follow Python's (``-1`` is the last row); one outside ``[-N, N)`` raises IndexError.
    """

    metadata = {"render_modes": list(RENDER_MODES), "render_fps": RENDER_FPS}
    ROW_METHODS = ("action_masks", "render")
    """Methods answered per row by :meth:`env_method`."""
    ROW_ATTRS = ("np_random", "candidate_items")
    """Attributes answered per row by :meth:`get_attr` (the row's generator; its (K, K_max) candidate bundles)."""

    def __init__(self, preset: "str | EnvConfig" = "default", num_envs: int = 256, seed: int | None = None,
                 action_mode: str = "bundle", render_mode: str | None = None):
        need_int(num_envs, "num_envs", "BundleRecVecEnv", minimum=1, error=ConfigError)
        if not (seed is None or isinstance(seed, np.random.SeedSequence)):
            need_int(seed, "seed", "BundleRecVecEnv", minimum=0, error=ConfigError)
        if render_mode is not None and (not isinstance(render_mode, str) or render_mode not in RENDER_MODES):
            raise ConfigError(f"render_mode={shown(render_mode)}; use None or one of {list(RENDER_MODES)}")
        if not isinstance(action_mode, str) or action_mode not in ACTION_MODES:
            raise ConfigError(f"action_mode={shown(action_mode)}; use one of {ACTION_MODES}")
        self.config = get_config(preset)
        self.world = build_world(self.config)
        self.action_mode = action_mode
        self.core = SessionBatch(self.world, self.config, num_envs, action_mode)
        self.render_mode = render_mode
        obs_space = self.core.observation_space()
        super().__init__(num_envs, obs_space, spaces.Discrete(self.core.n_actions))
        self.metadata = {**self.metadata, "render_fps": RENDER_FPS}  # SB3 sets the modes; recorders read the fps
        self._actions: np.ndarray | None = None
        self._fresh = np.ones(num_envs, bool)  # rows at a session start (nothing shown yet): rendered as such
        self._ep_return = np.zeros(num_envs, np.float64)
        self._ep_len = np.zeros(num_envs, np.int64)
        self._base_seed = seed
        self._need_reset = True
        self.seed(seed)
        self.last_outcome = None
        """The StepOutcome of the last step (before auto-reset): per-row click, n_bought, revenue, shown bundle."""

    # ------------------------------------------------------------------ oracle access (truth)
    @property
    def model(self):
        """SIMULATOR TRUTH: the ShopperModel (oracles only)."""
        return self.core.model

    @property
    def state(self):
        """SIMULATOR TRUTH: the hidden ShopperState of all rows (oracles only)."""
        return self.core.state

    @property
    def candidate_items(self) -> np.ndarray:
        """(N, K, K_max) int32 current candidate bundles (-1 padded)."""
        return self.core.pool.cand_items

    # ------------------------------------------------------------------ VecEnv API
    def seed(self, seed: "int | np.random.SeedSequence | None" = None) -> Sequence:
        """Seed rows with ``seed + i``, or for a ``numpy.random.SeedSequence`` with its children of spawn key
        ``seed.spawn_key + (i,)`` (purpose-tagged streams: ``bundlerl.evaluation.seeds``). Applied now: the next
        :meth:`reset` starts from these generators."""
        if isinstance(seed, np.random.SeedSequence):
            seeds = [np.random.SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, i), pool_size=seed.pool_size)
                     for i in range(self.num_envs)]
            rngs = [np.random.Generator(np.random.PCG64(s)) for s in seeds]
        else:
            seeds = super().seed(seed)
            rngs = [seeding.np_random(int(s))[0] for s in seeds]
        self.core.seed_rows(np.arange(self.num_envs), rngs)
        self._reset_seeds()
        self._need_reset = True
        return seeds

    def reset(self):
        self.core.reset_rows()
        self._ep_return[:] = 0
        self._ep_len[:] = 0
        self._need_reset = False
        self._fresh[:] = True
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return self.core.observe()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self):
        if self._need_reset:
            raise gym.error.ResetNeeded("call reset() before step()")
        out = self.core.step(self._actions.reshape(self.num_envs) if self._actions.size == self.num_envs
                             else self._actions)
        self.last_outcome = out
        self._ep_return += out.reward
        self._ep_len += 1
        dones = out.terminated | out.truncated
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        done_rows = np.flatnonzero(dones)
        if done_rows.size:
            terminal = self.core.observe(done_rows)
            for j, r in enumerate(done_rows.tolist()):
                infos[r] = {
                    "terminal_observation": {k: v[j] for k, v in terminal.items()},
                    "TimeLimit.truncated": bool(out.truncated[r] and not out.terminated[r]),
                    "episode": {"r": float(self._ep_return[r]), "l": int(self._ep_len[r])},
                }
            self._ep_return[done_rows] = 0
            self._ep_len[done_rows] = 0
            self.core.reset_rows(done_rows)
        self._fresh = dones.copy()
        obs = self.core.observe()
        return obs, out.reward.copy(), dones, infos

    def action_masks(self) -> np.ndarray:
        """(N, n_actions) bool valid actions now (MaskablePPO)."""
        return self.core.action_masks()

    def close(self) -> None:
        pass

    # ------------------------------------------------------------------ render
    def _row_text(self, row: int) -> str:
        out = self.last_outcome
        last = None if self._fresh[row] or out is None else {
            "responded": bool(out.responded[row]), "shown": out.shown[row], "click": bool(out.click[row]),
            "n_bought": int(out.n_bought[row]), "revenue": float(out.revenue[row])}
        return row_text(self.core, row, last)

    def _render_row(self, row: int) -> "str | np.ndarray | None":
        if self.render_mode == "ansi":
            return self._row_text(row)
        if self.render_mode == "rgb_array":
            return text_frame(self._row_text(row), self.config.K_max + 3)
        return None

    def render(self, mode: str | None = None) -> "str | np.ndarray | None":
        """``rgb_array``: the rows' frames tiled in one image (SB3's ``VecEnv.render``); ``ansi``: the rows' texts,
        each under a ``--- row i ---`` line; None without a render mode (SB3 warns)."""
        if (mode or self.render_mode) == "ansi" and self.render_mode == "ansi":
            return "".join(f"--- row {i} ---\n{self._row_text(i)}" for i in range(self.num_envs))
        return super().render(mode)

    def get_images(self) -> Sequence[np.ndarray | None]:
        """Each row's (H, W, 3) uint8 frame in ``rgb_array`` mode (one shape for the env), else None per row."""
        return [self._render_row(i) if self.render_mode == "rgb_array" else None for i in range(self.num_envs)]

    # ------------------------------------------------------------------ per-row access (see the class docstring)
    def _indices(self, indices) -> list[int]:
        """Row numbers in [0, N) of SB3-style ``indices`` (None: all; an int; an iterable of ints, negative allowed)."""
        rows = []
        for i in self._get_indices(indices):
            if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not -self.num_envs <= i < self.num_envs:
                raise IndexError(f"row index {i!r} out of range for {self.num_envs} rows")
            rows.append(int(i) % self.num_envs)
        return rows

    def _all_rows(self, what: str, indices) -> list[int]:
        rows = self._indices(indices)
        if rows and set(rows) != set(range(self.num_envs)):  # no rows: nothing to do, as in DummyVecEnv
            raise NotImplementedError(
                f"BundleRecVecEnv.{what} with indices={indices!r}: the {self.num_envs} rows share one object (one "
                "config, one world), so it acts on every row at once; pass indices=None, or use "
                "DummyVecEnv([lambda: BundleRecEnv(...)] * N) for separate envs")
        return rows

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        rows = self._indices(indices)
        if attr_name == "np_random":
            return [self.core.row_rngs[i] for i in rows]
        if attr_name == "candidate_items":
            return [self.core.pool.cand_items[i] for i in rows]
        value = getattr(self, attr_name)
        return [value] * len(rows)

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        if self._all_rows(f"set_attr({attr_name!r})", indices):
            setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        if method_name == "action_masks":
            masks = self.core.action_masks()
            return [masks[i] for i in self._indices(indices)]
        if method_name == "render":
            return [self._render_row(i) for i in self._indices(indices)]
        rows = self._all_rows(f"env_method({method_name!r})", indices)
        if not rows:
            return []
        result = getattr(self, method_name)(*method_args, **method_kwargs)
        return [result] * len(rows)

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices=None) -> list[bool]:
        return [False] * len(self._indices(indices))
