"""The environment: shopper simulator, candidate pools, the Gymnasium env and the batched env.

``import env`` registers the gymnasium ids (``bundlerl/BundleRec-v0`` and variants, see
``env.registration``); the env classes load lazily (``env.BundleRecEnv``, ``env.BundleRecVecEnv``).
"""

from __future__ import annotations

from env.registration import register_envs

register_envs()

__all__ = ["BundleRecEnv", "BundleRecVecEnv", "EnvConfig", "PRESETS", "build_world", "get_config"]


def __getattr__(name: str):
    if name == "BundleRecEnv":
        from env.bundle_env import BundleRecEnv

        return BundleRecEnv
    if name == "BundleRecVecEnv":
        from env.vec_env import BundleRecVecEnv

        return BundleRecVecEnv
    if name in ("EnvConfig", "PRESETS", "build_world", "get_config"):
        from env import presets

        return getattr(presets, name)
    raise AttributeError(f"module 'env' has no attribute {name!r}")
