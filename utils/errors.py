"""The one base class of every error caused by input or configuration."""

from __future__ import annotations

__all__ = ["BundlerlError"]


class BundlerlError(ValueError):
    """Bad input or configuration: the message says what is wrong, where (file, line, column, field) and what to
    do. Every such error of bundlerl derives from it (a ``ValueError``, so ``except ValueError`` keeps working);
    the command line prints it in one line, and any other exception is a bug that shows its traceback."""
