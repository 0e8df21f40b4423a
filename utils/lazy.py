"""Lazy re-exports for package ``__init__`` modules (PEP 562 module ``__getattr__``).

A package lists the public names of its submodules; a name's submodule is imported on first access only,
so ``import bundlerl`` and the command line's ``--help`` stay fast (torch, faiss and SB3 load when used).
"""

from __future__ import annotations

import importlib
import sys
from typing import Callable

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]],
                                                                list[str]]:
    """``(__getattr__, __dir__, __all__)`` for the module ``package``, resolving ``exports`` lazily.

    :param package: the package's ``__name__``.
    :param exports: module -> the public names it holds, space-separated; the module is relative to ``package``
        (``".bundle_env"``) or absolute.
    A resolved name is stored in the package's namespace, so each is imported once. Unknown names raise
    ``AttributeError`` as usual. ``__all__`` lists the names in the order given.
    """
    where = {name: module for module, names in exports.items() for name in names.split()}

    def __getattr__(name: str) -> object:
        target = where.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(target, package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(where))

    return __getattr__, __dir__, list(where)
