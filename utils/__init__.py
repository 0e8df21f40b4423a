"""Shared utilities, the lowest layer of ``bundlerl``: atomic file writes, the cache root, scoped thread limits.

Everything here depends on the standard library and numpy only (faiss, threadpoolctl and torch are imported
inside the context managers that need them), so every other layer may import it.
"""
