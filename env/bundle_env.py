"""The single-user Gymnasium environment: a view of the batched session core with N = 1."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from bundlerl.env.config import ConfigError, EnvConfig, get_config
from bundlerl.env.observation import MASK_KEY
from bundlerl.env.render import RENDER_FPS, RENDER_MODES, row_text, text_frame
from bundlerl.env.session import ACTION_MODES, InvalidActionError, SessionBatch
from bundlerl.env.world import build_world
from bundlerl.utils.args import shown

__all__ = ["BundleRecEnv", "InvalidActionError"]


class BundleRecEnv(gym.Env):
    """
    ## Description

    A shopper browses a store for one session. At every step the recommender shows one *bundle*
    (1 to ``K_max`` items) chosen among ``K`` candidate bundles built for this user from the
    recommender side (FAISS retrieval on the profile / history vectors + a complementarity model
    estimated from historical baskets). The simulated shopper (``docs/SIMULATOR.md``) clicks or not,
    buys some of the bundle's items within a hidden budget, grows tired of misses and repeats,
    and may leave. What is shown now changes what is worth showing later (complement activation,
    satiation, budget, fatigue, taste drift), so a sequential policy can beat greedy ranking.

    ## Action Space

    ``bundle`` mode (default): ``Discrete(K)``, the index of the candidate bundle to show.
    ``compose`` mode: ``Discrete(M + 1)``: ``j < M`` adds the ``j``-th retrieved item to the partial
    bundle (no shopper response, reward 0, the step does not count towards the horizon), ``M``
    ("done") shows the partial bundle; it is shown automatically once it holds ``K_max`` items.

    Valid actions: ``action_masks()`` ((n_actions,) bool, for sb3-contrib's MaskablePPO),
    ``obs["action_mask"]`` and ``info["action_mask"]`` (the mask for the *next* action).

    - An action that is not an integer in ``[0, n_actions)`` raises :class:`InvalidActionError` (a
      ValueError) whose message shows the current mask.
    - A *masked* action in range is legal but wasteful: nothing is shown, the shopper treats the
      step as a miss (fatigue rises, the leave draw happens; in compose mode the partial bundle
      is dropped), the reward is the shopper's reward
      (0) minus ``invalid_action_penalty`` (default 1.0), and ``info["invalid_action"]`` is True.
      (Raising would break generic tooling that samples ``action_space``; the penalty keeps the
      MDP well defined.)

    ## Observation Space

    A flat ``Dict`` of float32 Boxes (see ``bundlerl.env.observation``): ``profile`` (P,) and ``history`` (P,)
    in [-1, 1] (profile text embedding / clicked-items embedding, projected on the top-P principal
    directions of the item embeddings), ``session`` (10,) counters in [0, 1] (``SESSION_FEATURES``;
    log_spent up to log1p(max spend / mean price)),
    ``candidates`` (K, 10) (``bundlerl.candidates.types.CANDIDATE_FEATURES``: relevance to profile and history,
    estimated complementarity, substitution, log price, size, popularity, novelty, discount, estimated
    complementarity to this session's purchases),
    ``action_mask`` (K,) 0/1. In compose mode K is M + 1 and row j describes "partial + item j".
    The observation is computed from the recommender side only: it never reads the hidden taste,
    needs, budget, fatigue or the true complement graph.

    ## Rewards

    ``w_click * click + w_buy * items_bought + w_rev * revenue / mean_price`` with the weights of the
    reward mode (``purchases``: w_buy = 1; ``revenue``; ``clicks``; or custom weights), minus the invalid-action
    penalty: see ``bundlerl.env.reward``, where the modes are defined.

    ## Starting State

    A persona is drawn uniformly from the world's persona pool; its hidden taste is drawn near the
    persona text embedding; needs, budget and price sensitivity come from the persona. Counters,
    history and the shown/bought log start empty; K candidates are built.

    ## Episode End

    - Termination: the shopper leaves (probability ``sigmoid(lambda_0 + lambda_f * fatigue)`` after
      each shown bundle) or the remaining budget is below the cheapest relevant item.
    - Truncation: ``horizon`` shown bundles (20 by default). The horizon is never reported as
      termination; registered ids also carry ``max_episode_steps`` = horizon (bundle mode).

    ## Arguments

    ```python
    import gymnasium as gym, bundlerl
    env = gym.make("bundlerl/BundleRec-v0")                       # default preset
    env = gym.make("bundlerl/BundleRec-small-v0", render_mode="ansi")
    env = BundleRecEnv(preset="revenue", action_mode="compose")
    ```

    - ``preset``: preset name (``default``, ``small``, ``revenue``, ``clicks``, ``instacart``) or an
      ``EnvConfig``.
    - ``render_mode``: None, ``"ansi"`` (text: titles and prices of the shown bundle, the response) or
      ``"rgb_array"`` (that text drawn as an (H, W, 3) uint8 image of a shape fixed for the env, for video
      recorders and SB3's ``make_vec_env``, which asks for it).
    - ``action_mode``: ``"bundle"`` or ``"compose"``.

    All randomness comes from ``self.np_random`` after ``reset(seed=...)``: each reset draws one episode
    key from it, and the shopper's per-user streams are keyed by it (so a batch of N users equals N
    single envs with the same seeds).

    ## Version History

    - v0: first version (docs/SIMULATOR.md shopper, FAISS + complementarity candidates); ``rgb_array``
      rendering added later (no change to dynamics).
    - v0: the session errand added (``ShopperParams.sigma_intent``, ``intent_focus``; docs/SIMULATOR.md, User): each
      session is for one hidden interest category, revealed by clicks; off by default (no change to the presets).
    - v0: observation spec 2: the candidate column ``comp_bought`` (the recommender's estimated complementarity of
      the bundle to the items bought this session). Delayed-payoff complements added
      (``ShopperParams.dormant_complements``, ``dormant_threshold``; docs/SIMULATOR.md, User): a complement's need
      starts dormant until its anchor is bought; off by default.
    """

    metadata = {"render_modes": list(RENDER_MODES), "render_fps": RENDER_FPS}

    def __init__(self, preset: "str | EnvConfig" = "default", render_mode: str | None = None,
                 action_mode: str = "bundle"):
        if render_mode is not None and (not isinstance(render_mode, str)
                                        or render_mode not in self.metadata["render_modes"]):
            raise ConfigError(f"render_mode={shown(render_mode)}; use None or one of {list(RENDER_MODES)}")
        if not isinstance(action_mode, str) or action_mode not in ACTION_MODES:
            raise ConfigError(f"action_mode={shown(action_mode)}; use one of {ACTION_MODES}")
        self.config: EnvConfig = get_config(preset)
        self.world = build_world(self.config)
        self.render_mode = render_mode
        self.action_mode = action_mode
        self.core = SessionBatch(self.world, self.config, 1, action_mode)
        self.action_space = spaces.Discrete(self.core.n_actions)
        self.observation_space = self.core.observation_space()
        self._last: dict[str, Any] | None = None
        self._started = False

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.core.seed_rows(np.array([0]), [self.np_random])
        self.core.reset_rows()
        self._started = True
        self._last = None
        obs = self._obs()
        return obs, {MASK_KEY: obs[MASK_KEY] > 0}

    def step(self, action):
        if not self._started:
            raise gym.error.ResetNeeded("call reset() before step()")
        out = self.core.step(np.asarray(action).reshape(1) if np.ndim(action) == 0 else action)
        obs = self._obs()
        info = {
            MASK_KEY: obs[MASK_KEY] > 0,
            "invalid_action": bool(out.invalid[0]),
            "responded": bool(out.responded[0]),
            "click": bool(out.click[0]),
            "n_bought": int(out.n_bought[0]),
            "revenue": float(out.revenue[0]),
            "shown": out.shown[0].copy(),
        }
        self._last = info
        terminated, truncated = bool(out.terminated[0]), bool(out.truncated[0])
        if terminated or truncated:
            self._started = False
        return obs, float(out.reward[0]), terminated, truncated, info

    def action_masks(self) -> np.ndarray:
        """(n_actions,) bool: which actions are valid now (MaskablePPO's hook)."""
        return self.core.action_masks()[0]

    def _obs(self) -> dict[str, np.ndarray]:
        return {k: v[0] for k, v in self.core.observe().items()}

    # ------------------------------------------------------------------ render
    def render(self) -> "str | np.ndarray | None":
        """``ansi``: the text of the session (counters, the last shown bundle's titles, categories and prices,
        the response); ``rgb_array``: that text drawn as an (H, W, 3) uint8 image whose shape is fixed for the
        env (``bundlerl.env.render.frame_shape(K_max + 3)``); None (with a warning) without a render mode."""
        if self.render_mode is None:
            gym.logger.warn("render() called without render_mode; pass render_mode='ansi' or 'rgb_array'")
            return None
        text = row_text(self.core, 0, self._last)
        if self.render_mode == "ansi":
            return text
        return text_frame(text, self.config.K_max + 3)
