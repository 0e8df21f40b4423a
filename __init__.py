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

import os as _os
from importlib import metadata as _metadata

from bundlerl.env import registration as _registration
from bundlerl.utils.cache import cache_root as _cache_root
from bundlerl.utils.lazy import lazy_exports as _lazy_exports

try:
    __version__ = _metadata.version("bundlerl")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree that was never installed
    __version__ = "0+unknown"

_registration.register_envs()

# torch makes its compile cache (torchinductor_<user>) in the system temp dir when torch._dynamo loads (transformers
# and torch's optimisers load it): bundlerl's cache holds it instead, so no run leaves anything in the temp dir (a
# user's own TORCHINDUCTOR_CACHE_DIR is kept)
_os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(_cache_root() / "torchinductor"))

__getattr__, __dir__, _PUBLIC = _lazy_exports(__name__, {
    "bundlerl.utils.errors": "BundlerlError",
    "bundlerl.env": "BundleRecEnv BundleRecVecEnv EnvConfig PRESETS build_world",
    "bundlerl.agents": "Policy make_baseline make_oracle SB3Policy make_model load_model",
    "bundlerl.evaluation": "evaluate",
    "bundlerl.experiment": "TrainConfig train RunDir",
    "bundlerl.candidates": "BundleBuilder BuilderConfig ItemIndex",
    "bundlerl.encoders": "default_encoder",
    "bundlerl.sim_data": "Catalog Baskets",
    "bundlerl.sim_data.loaders": "load_instacart load_items_csv load_baskets_csv load_bundles_csv load_steam_bundles load_groceries",
})
__all__ = ["__version__", *_PUBLIC]
