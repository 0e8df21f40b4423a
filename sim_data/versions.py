"""Version constants of what the data generators and loaders produce.

A world cached on disk (``bundlerl.env`` worlds, keyed by :meth:`EnvConfig.world_key`) is reused only while
these match, so a generator whose output changes must bump its constant. ``tests/test_golden.py`` holds a
snapshot of the generators' output for a small config and fails when that output changes while the
constant stays the same; regenerate the snapshot in the same commit as the bump.
"""

from __future__ import annotations

__all__ = ["GENERATOR_VERSION", "LOADER_VERSION"]

GENERATOR_VERSION = 1
"""Output version of the synthetic generators: ``synthetic.generate_catalog`` (and the built-in taxonomy
``taxonomy/general_store.json``), ``personas_gen.sample_personas`` and ``basket_gen.generate_baskets``."""

LOADER_VERSION = 1
"""Output version of the real-data loaders (``loaders/``): the catalogue and baskets they return from the same
files."""
