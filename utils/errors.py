"""The one base class of every error caused by input or configuration, and how to recognise a Ctrl-C."""

from __future__ import annotations

__all__ = ["BundlerlError", "keyboard_interrupt_in"]


class BundlerlError(ValueError):
    """Bad input or configuration: the message says what is wrong, where (file, line, column, field) and what to
    do. Every such error of bundlerl derives from it (a ``ValueError``, so ``except ValueError`` keeps working);
    the command line prints it in one line, and any other exception is a bug that shows its traceback."""


def keyboard_interrupt_in(exc: BaseException | None) -> KeyboardInterrupt | None:
    """The ``KeyboardInterrupt`` that ``exc`` is, or was raised from or during (its ``__cause__`` / ``__context__``
    chain), else None.

    Why: a Ctrl-C that arrives while numba-compiled code runs (the bundle builder's ``greedy_complete``) surfaces as
    a ``SystemError`` ("returned a result with an exception set") chained to the ``KeyboardInterrupt``; callers that
    clean up or checkpoint on Ctrl-C must treat it as one."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None
