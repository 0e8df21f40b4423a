"""Model zips saved before the package moved to the ``bundlerl.`` namespace.

SB3 pickles (cloudpickle) the classes a model was made with into its zip's ``data`` JSON: ``policy_class``, and the
features extractor in ``policy_kwargs``. A run directory written when the rooms were top-level packages names
them ``agents.networks.CandidateActorCriticPolicy``; that module is now ``bundlerl.agents.networks``, so SB3's load
fails with ``ModuleNotFoundError: No module named 'agents'`` (or, run from a source checkout, imports a second copy
of the module from the top-level folder). :func:`renamed_objects` unpickles those entries with every room's old
top-level name read as ``bundlerl.<room>``, never importing the old names, and
:func:`bundlerl.agents.sb3.load_model` hands them to SB3 as ``custom_objects``: the model loads unchanged (its
weights are tensors, which name no class).
"""

from __future__ import annotations

import base64
import io
import json
import pickle
import pkgutil
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = ["rooms", "old_room", "renamed_objects"]


@lru_cache(maxsize=1)
def rooms() -> frozenset[str]:
    """The rooms: bundlerl's subpackages (``agents``, ``env``, ...), once top-level packages."""
    import bundlerl

    return frozenset(m.name for m in pkgutil.iter_modules(bundlerl.__path__) if m.ispkg)


def old_room(module: str | None) -> bool:
    """Whether ``module`` is under a room's old top-level name (``agents.networks``, not ``bundlerl.agents...``)."""
    return bool(module) and module.split(".")[0] in rooms()


class _Renaming(pickle.Unpickler):
    """Unpickles with ``<room>.x`` read as ``bundlerl.<room>.x`` (the classes themselves are unchanged); records
    whether it renamed anything."""

    renamed = False

    def find_class(self, module: str, name: str) -> Any:
        if old_room(module):
            self.renamed, module = True, f"bundlerl.{module}"
        return super().find_class(module, name)


def renamed_objects(path: str | Path) -> dict[str, Any]:
    """The entries of the zip's ``data`` JSON that name classes under an old top-level room, unpickled under the
    ``bundlerl.`` namespace: SB3's ``custom_objects`` for ``load(path, custom_objects=...)``; {} for a model saved
    under the namespace. Entries that fail to unpickle for another reason are left to SB3 (it warns about them).

    :raises AttributeError: a renamed module no longer holds the class (the message names it).
    """
    with zipfile.ZipFile(path) as zf:
        data = json.loads(zf.read("data"))
    out: dict[str, Any] = {}
    for key, item in data.items():
        if not (isinstance(item, dict) and ":serialized:" in item):
            continue
        unpickler = _Renaming(io.BytesIO(base64.b64decode(item[":serialized:"].encode())))
        try:
            obj = unpickler.load()
        except Exception:  # noqa: BLE001 - ours when it named an old room, else not ours to fix
            if unpickler.renamed:
                raise
            continue
        if unpickler.renamed:
            out[key] = obj
    return out
