"""Gymnasium registration of the bundlerl environments (idempotent).

Ids (all ``bundlerl/...``, entry point :class:`bundlerl.env.bundle_env.BundleRecEnv`):

=============================  ==========================================================
``BundleRec-v0``               default preset (synthetic ~5k items, K=16, K_max=3, T=20, purchases)
``BundleRec-small-v0``         small preset (300 items; fast tests)
``BundleRec-revenue-v0``       revenue reward
``BundleRec-clicks-v0``        click reward
``BundleRec-compose-v0``       default preset, compose action mode (item by item + "done")
``BundleRec-small-compose-v0`` small preset, compose mode
``BundleRec-instacart-v0``     Instacart-format data folder (``$BUNDLERL_INSTACART``)
=============================  ==========================================================

An id that names a reward mode (``revenue``, ``clicks``) or an action mode (``compose``) keeps it whatever world
``preset=`` chooses: ``gym.make("bundlerl/BundleRec-revenue-v0", preset="small")`` is the small world with the
revenue reward (a ``preset`` EnvConfig likewise gets the id's reward). Only an explicit ``reward=`` (a mode name or
``RewardWeights``) or ``action_mode=`` argument changes them; ``bundlerl/BundleRec-v0`` with ``preset=`` takes the
preset's own reward.

Bundle-mode ids carry ``max_episode_steps`` = the preset's horizon (the env also truncates
internally at its horizon, so a custom config passed through ``gym.make(..., preset=cfg)`` is
truncated at its own horizon; pass ``max_episode_steps`` too when it is longer than 20).
Compose ids have no ``max_episode_steps``: a shown bundle takes several actions, and the env
truncates at ``horizon`` shown bundles itself.
"""

from __future__ import annotations

import gymnasium as gym

__all__ = ["register_envs", "ENV_IDS", "make_env"]

ENTRY_POINT = "bundlerl.env.registration:make_env"

_IDS: dict[str, dict] = {
    "bundlerl/BundleRec-v0": {"preset": "default"},
    "bundlerl/BundleRec-small-v0": {"preset": "small"},
    "bundlerl/BundleRec-revenue-v0": {"preset": "revenue", "reward": "revenue"},
    "bundlerl/BundleRec-clicks-v0": {"preset": "clicks", "reward": "clicks"},
    "bundlerl/BundleRec-compose-v0": {"preset": "default", "action_mode": "compose"},
    "bundlerl/BundleRec-small-compose-v0": {"preset": "small", "action_mode": "compose"},
    "bundlerl/BundleRec-instacart-v0": {"preset": "instacart"},
}


def make_env(preset="default", *, reward=None, **kwargs):
    """The entry point of every id: :class:`bundlerl.env.bundle_env.BundleRecEnv` on ``preset`` (a name or an
    EnvConfig) with ``reward`` (a mode name or ``RewardWeights``; None: the preset's) in place of the preset's reward.

    :raises ConfigError: an unknown preset or reward mode (the message lists the valid ones).
    """
    from bundlerl.env.bundle_env import BundleRecEnv
    from bundlerl.env.config import ConfigError, get_config

    config = get_config(preset)
    if reward is not None and reward != config.reward:
        try:
            config = config.replace(reward=reward)
        except ConfigError as exc:
            raise ConfigError(f"reward={reward!r}: {exc}") from None
    return BundleRecEnv(config, **kwargs)


def _max_episode_steps(kwargs: dict) -> int | None:
    """The preset's horizon for bundle-mode ids, None for compose ids. The instacart preset is the default config
    on a data folder (``instacart_config``): its horizon is ``default``'s, read without needing the folder."""
    from bundlerl.env.config import PRESETS

    if kwargs.get("action_mode", "bundle") != "bundle":
        return None
    return PRESETS["default" if kwargs["preset"] == "instacart" else kwargs["preset"]].horizon


#: id -> (kwargs, max_episode_steps)
ENV_IDS: dict[str, tuple[dict, int | None]] = {env_id: (kw, _max_episode_steps(kw)) for env_id, kw in _IDS.items()}


def register_envs() -> None:
    """Register every id of :data:`ENV_IDS` with gymnasium (no-op for ids already registered)."""
    for env_id, (kwargs, steps) in ENV_IDS.items():
        if env_id in gym.registry:
            continue
        gym.register(id=env_id, entry_point=ENTRY_POINT, kwargs=dict(kwargs), max_episode_steps=steps)
