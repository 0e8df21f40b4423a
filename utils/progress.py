"""Progress bars for work over a couple of seconds, library calls included, with one switch to turn them off.

``BUNDLERL_PROGRESS=0`` (or ``false`` / ``off`` / ``no``) turns every bar bundlerl would show by default off, in
the library and the command line; an explicit ``progress=True`` / ``False`` argument still wins. Bars go to
stderr (tqdm), so piped output stays clean.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["PROGRESS_ENV", "progress_enabled", "progress_bar"]

PROGRESS_ENV = "BUNDLERL_PROGRESS"
"""Environment variable: ``0`` / ``false`` / ``off`` / ``no`` turns default progress bars off."""


def progress_enabled(requested: bool | None = None, *, default: bool = True) -> bool:
    """Whether to show a bar: ``requested`` when given, else ``default`` unless ``$BUNDLERL_PROGRESS`` is off.

    :param requested: the caller's explicit ``progress=`` argument, or None for "decide for me".
    :param default: the caller's own rule for None (e.g. "only for more than N texts").
    """
    if requested is not None:
        return bool(requested)
    if os.environ.get(PROGRESS_ENV, "").strip().lower() in {"0", "false", "off", "no"}:
        return False
    return bool(default)


class _NoBar:
    """The bar's interface doing nothing (``update``, ``set_postfix``, ``close``, context manager)."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def set_description(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> "_NoBar":
        return self

    def __exit__(self, *exc: Any) -> bool:
        return False


def progress_bar(total: float | None, desc: str, *, unit: str = "it", show: bool = True, **kwargs: Any):
    """A tqdm bar (``tqdm.auto``) when ``show``, else an object with the same methods that does nothing.

    :param total: units of work (None: unknown, the bar counts up).
    :param desc: what is being done, in words ("encoding texts", "fitting complementarity").
    """
    if not show:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, **kwargs)
