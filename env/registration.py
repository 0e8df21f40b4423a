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

Bundle-mode ids carry ``max_episode_steps`` = the preset's horizon (the env also truncates
internally at its horizon, so a custom config passed through ``gym.make(..., preset=cfg)`` is
truncated at its own horizon; pass ``max_episode_steps`` too when it is longer than 20).
Compose ids have no ``max_episode_steps``: a shown bundle takes several actions, and the env
truncates at ``horizon`` shown bundles itself.
"""

from __future__ import annotations

import gymnasium as gym

__all__ = ["register_envs", "ENV_IDS"]

ENTRY_POINT = "bundlerl.env.bundle_env:BundleRecEnv"

#: id -> (kwargs, max_episode_steps)
ENV_IDS: dict[str, tuple[dict, int | None]] = {
    "bundlerl/BundleRec-v0": ({"preset": "default"}, 20),
    "bundlerl/BundleRec-small-v0": ({"preset": "small"}, 10),
    "bundlerl/BundleRec-revenue-v0": ({"preset": "revenue"}, 20),
    "bundlerl/BundleRec-clicks-v0": ({"preset": "clicks"}, 20),
    "bundlerl/BundleRec-compose-v0": ({"preset": "default", "action_mode": "compose"}, None),
    "bundlerl/BundleRec-small-compose-v0": ({"preset": "small", "action_mode": "compose"}, None),
    "bundlerl/BundleRec-instacart-v0": ({"preset": "instacart"}, 20),
}


def register_envs() -> None:
    """Register every id of :data:`ENV_IDS` with gymnasium (no-op for ids already registered)."""
    for env_id, (kwargs, steps) in ENV_IDS.items():
        if env_id in gym.registry:
            continue
        gym.register(id=env_id, entry_point=ENTRY_POINT, kwargs=dict(kwargs), max_episode_steps=steps)
