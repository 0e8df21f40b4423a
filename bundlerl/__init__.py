"""bundlerl: learn to recommend product bundles with reinforcement learning.

The project's parts are top-level packages (``encoders``, ``sim_data``, ``candidates``,
``env``, ``agents``, ``scripts``); this package carries the version and, on import,
registers the Gymnasium environment ids (``bundlerl/BundleRec-v0`` and variants).
"""

__version__ = "0.1.0"

import env as _env  # noqa: E402,F401  - registers the gymnasium ids on import
