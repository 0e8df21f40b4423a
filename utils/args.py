"""Argument checks of the public API: a value of the wrong kind (None, a wrong type, NaN, an array where a number
goes, a number out of range) is a :class:`~bundlerl.utils.errors.BundlerlError` naming the function, the argument
and what it needs, not a TypeError from deep inside. Each check returns the value in its normal form."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from bundlerl.utils.errors import BundlerlError

__all__ = ["MissingPathError", "shown", "need_int", "need_number", "need_path", "need_str", "need_names", "need_callable",
           "need_instance", "need_optional_bool", "need_array", "need_sequence"]

Error = Callable[[str], Exception]


class MissingPathError(BundlerlError, FileNotFoundError):
    """A file or folder an argument names does not exist; the message names the argument, the path and what was
    expected there. Both a BundlerlError (the command line: one line, exit 2) and a FileNotFoundError (what code
    written against the standard library catches)."""


def shown(value: Any) -> str:
    """``value`` in a message: an array by its shape, anything else by a short repr."""
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fail(where: str, name: str, value: Any, needs: str, error: Error) -> Exception:
    return error(f"{where}({name}={shown(value)}): {name} must be {needs}")


def need_int(value: Any, name: str, where: str, *, minimum: int | None = None, optional: bool = False,
             error: Error = BundlerlError) -> int | None:
    """An integer (numpy's too, not a bool) >= ``minimum``; None passes when ``optional``."""
    if value is None and optional:
        return None
    needs = "an integer" + (f" >= {minimum}" if minimum is not None else "") + (" or None" if optional else "")
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise _fail(where, name, value, needs, error)
    if minimum is not None and value < minimum:
        raise _fail(where, name, value, needs, error)
    return int(value)


def need_number(value: Any, name: str, where: str, *, low: float | None = None, high: float | None = None,
                optional: bool = False, error: Error = BundlerlError) -> float | None:
    """A finite number (not a bool) in [``low``, ``high``]; None passes when ``optional``."""
    if value is None and optional:
        return None
    rng = "" if low is None and high is None else (
        f" in [{low:g}, {high:g}]" if low is not None and high is not None else
        f" >= {low:g}" if low is not None else f" <= {high:g}")
    needs = f"a finite number{rng}" + (" or None" if optional else "")
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if not ok or not math.isfinite(value) or (low is not None and value < low) or (high is not None and value > high):
        raise _fail(where, name, value, needs, error)
    return float(value)


def need_path(value: Any, name: str, where: str, *, optional: bool = False, what: str = "a path",
              error: Error = BundlerlError) -> Path | None:
    """A non-empty ``str`` or ``os.PathLike`` as a Path (existence is the caller's to check, naming the file)."""
    if value is None and optional:
        return None
    if not isinstance(value, (str, os.PathLike)) or not str(os.fspath(value)).strip():
        raise _fail(where, name, value, f"{what} (a str or pathlib.Path)" + (" or None" if optional else ""), error)
    return Path(value)


def need_str(value: Any, name: str, where: str, *, optional: bool = False, error: Error = BundlerlError) -> str | None:
    """A ``str``; None passes when ``optional``."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise _fail(where, name, value, "a str" + (" or None" if optional else ""), error)
    return value


def need_names(value: Any, name: str, where: str, *, error: Error = BundlerlError) -> tuple[str, ...]:
    """A sequence of names (``str``): a list or tuple, or one name alone."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (Mapping, np.ndarray)) or not isinstance(value, Iterable):
        raise _fail(where, name, value, "a list of names (str)", error)
    out = tuple(value)
    if not all(isinstance(v, str) for v in out):
        raise _fail(where, name, value, "a list of names (str)", error)
    return out


def need_callable(value: Any, name: str, where: str, what: str, *, error: Error = BundlerlError):
    """Something callable (``what`` says what it is called with, in words)."""
    if not callable(value):
        raise _fail(where, name, value, what, error)
    return value


def need_instance(value: Any, name: str, where: str, types: type | tuple[type, ...], what: str, *,
                  optional: bool = False, error: Error = BundlerlError):
    """An instance of ``types`` (``what`` names it in words); None passes when ``optional``."""
    if value is None and optional:
        return None
    if not isinstance(value, types):
        raise _fail(where, name, value, what + (" or None" if optional else ""), error)
    return value


def need_optional_bool(value: Any, name: str, where: str, *, error: Error = BundlerlError) -> bool | None:
    """True, False or None."""
    if value is not None and not isinstance(value, (bool, np.bool_)):
        raise _fail(where, name, value, "True, False or None", error)
    return None if value is None else bool(value)


def need_array(value: Any, name: str, where: str, dtype, *, ndim: int | None = None, optional: bool = False,
               error: Error = BundlerlError) -> np.ndarray | None:
    """``value`` as a numpy array of ``dtype`` (lists welcome) with ``ndim`` dimensions; None passes when
    ``optional``. A value numpy cannot convert (None, an object, ragged rows) or of another rank is ``error``."""
    if value is None and optional:
        return None
    needs = f"{'an' if ndim is None else f'a {ndim}-d'} array of {np.dtype(dtype).name}" + (" or None" if optional else "")
    if value is None or isinstance(value, (str, bytes, Mapping)):
        raise _fail(where, name, value, needs, error)
    try:
        arr = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError, OverflowError):
        raise _fail(where, name, value, needs, error) from None
    if ndim is not None and arr.ndim != ndim:
        raise _fail(where, name, value, needs, error)
    return arr


def need_sequence(value: Any, name: str, where: str, what: str, *, error: Error = BundlerlError) -> list:
    """``value`` (a list, tuple, 1-d array or other iterable; not a str, a mapping or an n-d array) as a list."""
    if isinstance(value, np.ndarray):
        if value.ndim != 1:
            raise _fail(where, name, value, what, error)
        return value.tolist()
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise _fail(where, name, value, what, error)
    return list(value)
