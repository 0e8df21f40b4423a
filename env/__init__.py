"""The environment: shopper simulator, candidate pools, the Gymnasium env and the batched env.

``import bundlerl.env`` registers the gymnasium ids (``bundlerl/BundleRec-v0`` and variants, see
:mod:`bundlerl.env.registration`); the public names below load their modules lazily.
"""

from __future__ import annotations

from bundlerl.env.registration import register_envs
from bundlerl.utils.lazy import lazy_exports

register_envs()

_EXPORTS = {
    "BundleRecEnv": ".bundle_env",
    "InvalidActionError": ".bundle_env",
    "BundleRecVecEnv": ".vec_env",
    "EnvConfig": ".config",
    "ConfigError": ".config",
    "PRESETS": ".config",
    "get_config": ".config",
    "instacart_config": ".config",
    "load_env_config": ".config",
    "env_config_overrides": ".config",
    "World": ".world",
    "build_world": ".world",
    "RewardWeights": ".reward",
    "REWARD_MODES": ".reward",
    "ShopperParams": ".shopper_params",
    "ENV_IDS": ".registration",
    "OBS_KEYS": ".observation",
    "MASK_KEY": ".observation",
}
__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
