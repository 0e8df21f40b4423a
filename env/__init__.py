"""The environment: shopper simulator, candidate pools, the Gymnasium env and the batched env.

``import bundlerl.env`` registers the gymnasium ids (``bundlerl/BundleRec-v0`` and variants, see
:mod:`bundlerl.env.registration`); the public names below load their modules lazily.
"""

from __future__ import annotations

from bundlerl.env.registration import register_envs
from bundlerl.utils.lazy import lazy_exports

register_envs()

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".bundle_env": "BundleRecEnv InvalidActionError",
    ".vec_env": "BundleRecVecEnv",
    ".config": "EnvConfig ConfigError PRESETS get_config instacart_config load_env_config env_config_overrides",
    ".world": "World build_world",
    ".reward": "RewardWeights REWARD_MODES",
    ".shopper_params": "ShopperParams",
    ".registration": "ENV_IDS",
    ".observation": "OBS_KEYS MASK_KEY",
})
