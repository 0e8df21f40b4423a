"""bundlerl: learn to recommend product bundles with reinforcement learning.

One import namespace: the repository's top-level folders install as its subpackages (``env/`` is
:mod:`bundlerl.env`, ``agents/`` is :mod:`bundlerl.agents`, ...). ``import bundlerl`` registers the Gymnasium
ids (``bundlerl/BundleRec-v0`` and variants, :mod:`bundlerl.env.registration`) and is light: the public verbs
below load their modules on first use.

    >>> import gymnasium as gym
    >>> import bundlerl
    >>> env = gym.make("bundlerl/BundleRec-small-v0")
    >>> venv = bundlerl.BundleRecVecEnv("small", num_envs=64, seed=0)
    >>> result = bundlerl.evaluate(bundlerl.make_baseline("complement-greedy"), "small", n_episodes=100)
"""

from __future__ import annotations

from importlib import metadata as _metadata

from bundlerl.env import registration as _registration
from bundlerl.utils.lazy import lazy_exports as _lazy_exports

try:
    __version__ = _metadata.version("bundlerl")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree that was never installed
    __version__ = "0+unknown"

_registration.register_envs()

_EXPORTS = {
    "BundlerlError": "bundlerl.utils.errors",
    "BundleRecEnv": "bundlerl.env",
    "BundleRecVecEnv": "bundlerl.env",
    "EnvConfig": "bundlerl.env",
    "PRESETS": "bundlerl.env",
    "build_world": "bundlerl.env",
    "Policy": "bundlerl.agents",
    "make_baseline": "bundlerl.agents",
    "make_oracle": "bundlerl.agents",
    "SB3Policy": "bundlerl.agents",
    "make_model": "bundlerl.agents",
    "load_model": "bundlerl.agents",
    "evaluate": "bundlerl.evaluation",
    "TrainConfig": "bundlerl.experiment",
    "train": "bundlerl.experiment",
    "RunDir": "bundlerl.experiment",
    "BundleBuilder": "bundlerl.candidates",
    "BuilderConfig": "bundlerl.candidates",
    "ItemIndex": "bundlerl.candidates",
    "default_encoder": "bundlerl.encoders",
    "Catalog": "bundlerl.sim_data",
    "Baskets": "bundlerl.sim_data",
    "load_instacart": "bundlerl.sim_data.loaders",
    "load_items_csv": "bundlerl.sim_data.loaders",
    "load_baskets_csv": "bundlerl.sim_data.loaders",
    "load_bundles_csv": "bundlerl.sim_data.loaders",
    "load_steam_bundles": "bundlerl.sim_data.loaders",
    "load_groceries": "bundlerl.sim_data.loaders",
}

__all__ = ["__version__", *_EXPORTS]

__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS)
