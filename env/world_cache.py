"""The on-disk cache of a world's raw parts (catalogue, personas, baskets): its key, reading, writing, cleaning.

Key (:func:`world_cache_key`): :meth:`EnvConfig.world_key <bundlerl.env.config.EnvConfig.world_key>` (the config
and the generators' and loaders' versions) and, for a config that reads data files (``instacart``), the content of
every file it reads (:data:`INPUT_FILES`): editing a data file in place (a title in ``products.csv``) builds a new
world instead of returning the old one. The key also names the world in the in-process cache.

How a file's content enters the key: its SHA-256, memoised per file under ``worlds/inputs/`` together with its
stat (size, mtime, ctime, inode, device). The digest is reused while the stat is unchanged and the file had not
changed for :data:`RACY_S` seconds when the digest was taken; otherwise the file is read and hashed again. Why
not the stat alone (size + mtime): a same-size edit whose mtime was put back (``cp -p``, ``rsync -t``, editors
restoring times) or that fell in the same tick of a coarse filesystem clock would keep the old world. ctime and
inode catch the first (no user sets ctime; replacing a file changes its inode), the racy rule the second (git's
"racy clean" rule). Why not hash on every build: the real Instacart order lines are ~600 MB, ~0.3 s of SHA-256 at
every ``build_world``, every env construction included; with the memo an unchanged file costs one ``stat``.

Reading (:func:`load_raw`): an entry that cannot be read as a world of this config and format (truncated, garbage,
another format, wrong types or sizes, not a file) is a miss: one RuntimeWarning naming the file, and the caller
rebuilds it and :func:`save_raw` overwrites it atomically (:func:`bundlerl.utils.atomic.atomic_write`; a failed
write, e.g. a read-only disk, warns and leaves the built world usable). Temporary files of killed writers are
swept from the worlds folder (and its memo folder) at the first use in a process and before each write.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from bundlerl.env.config import WORLD_FORMAT, EnvConfig
from bundlerl.utils.atomic import atomic_write, sweep_temporaries, write_text
from bundlerl.utils.cache import cache_root
from bundlerl.utils.hashing import file_sha256

__all__ = ["INPUT_FILES", "RACY_S", "worlds_dir", "input_files", "file_digest", "world_cache_key", "entry_path",
           "load_raw", "save_raw", "sweep"]

INPUT_FILES: dict[str, tuple[str, ...]] = {
    "synthetic": (),
    "instacart": ("aisles.csv", "departments.csv", "products.csv", "order_products.csv", "order_products__prior.csv",
                  "order_products__train.csv", "orders.csv"),
}
"""The files each ``EnvConfig.source`` reads, relative to its data folder (those of
:func:`bundlerl.sim_data.loaders.load_instacart`; tests/test_world_cache.py checks the list against the files it
opens). A missing optional file (``orders.csv``; the order-line files the folder does not use: ``order_products.csv``
or Kaggle's two) is part of the key as missing."""

RACY_S = 2.0
"""A file changed less than this many seconds before its digest was taken is hashed again at the next use (coarse
filesystem clocks tick in up to 2 s)."""

_SWEPT: set[str] = set()
_SWEPT_LOCK = threading.Lock()


def worlds_dir() -> Path:
    """``<cache root>/worlds``: the raw parts of worlds, one pickle per key (and ``inputs/``, the digest memo)."""
    return cache_root() / "worlds"


def input_files(config: EnvConfig) -> list[Path]:
    """The absolute paths of the files ``config`` reads (:data:`INPUT_FILES`), existing or not."""
    names = INPUT_FILES[config.source]
    if not names:
        return []
    folder = Path(config.instacart_path).expanduser().resolve()
    return [folder / name for name in names]


def _stat_tuple(st: os.stat_result) -> list[int]:
    """[size, mtime_ns, ctime_ns, inode, device]: what the memo compares (times as the filesystem keeps them)."""
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]



def file_digest(path: Path) -> str:
    """SHA-256 of the file's bytes (memoised, see the module docstring); ``"missing"`` for an absent file and
    ``"unreadable: <reason>"`` for one that cannot be read (the loader then raises its own clear error)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return "missing"
    except OSError as err:
        return f"unreadable: {err.strerror}"
    memo = worlds_dir() / "inputs" / (hashlib.sha256(str(path).encode()).hexdigest()[:24] + ".json")
    stamp = _stat_tuple(st)
    try:
        m = json.loads(memo.read_text(encoding="utf-8"))
        racy_ns = int(RACY_S * 1e9)
        if (m["path"] == str(path) and m["stat"] == stamp and isinstance(m["sha256"], str)
                and max(stamp[1], stamp[2]) < int(m["checked_ns"]) - racy_ns):
            return m["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no memo, or a damaged one: hash the file (the memo only saves time)
    checked_ns = time.time_ns()
    try:
        digest = file_sha256(path)
        if _stat_tuple(path.stat()) != stamp:  # changed while being read: use the digest, but do not memoise it
            return digest
    except OSError as err:
        return f"unreadable: {err.strerror}"
    try:
        write_text(memo, json.dumps({"path": str(path), "stat": stamp, "sha256": digest, "checked_ns": checked_ns}))
    except OSError:
        pass  # a read-only cache: hash again next time
    return digest


def world_cache_key(config: EnvConfig) -> str:
    """The key of ``config``'s world: :meth:`EnvConfig.world_key` alone for generated worlds, with the content of
    every input file (:func:`file_digest`) for worlds read from data files."""
    files = input_files(config)
    if not files:
        return config.world_key()
    src = {"config": config.world_key(), "inputs": {p.name: file_digest(p) for p in files}}
    return hashlib.sha256(json.dumps(src, sort_keys=True).encode()).hexdigest()[:20]


def entry_path(key: str) -> Path:
    """The pickle holding the raw parts of the world ``key``."""
    return worlds_dir() / f"{key}.pkl"


def sweep(force: bool = False) -> None:
    """Remove temporary files of killed writers from the worlds folder (recursively); once per process and cache
    root unless ``force``."""
    folder = worlds_dir()
    with _SWEPT_LOCK:
        if not force and str(folder) in _SWEPT:
            return
        _SWEPT.add(str(folder))
    sweep_temporaries(folder, recursive=True)


def _check(raw: Any, config: EnvConfig) -> tuple[Any, Any, Any]:
    """(catalog, personas, baskets) of a loaded entry; ValueError saying what is wrong otherwise."""
    from bundlerl.sim_data.baskets import Baskets
    from bundlerl.sim_data.catalog import Catalog
    from bundlerl.sim_data.personas import Personas

    if not isinstance(raw, dict):
        raise ValueError(f"holds a {type(raw).__name__}, not a world")
    if raw.get("format") != WORLD_FORMAT:
        raise ValueError(f"format {raw.get('format')!r}, expected {WORLD_FORMAT}")
    parts = raw.get("catalog"), raw.get("personas"), raw.get("baskets")
    for part, cls in zip(parts, (Catalog, Personas, Baskets)):
        if not isinstance(part, cls):
            raise ValueError(f"holds a {type(part).__name__} where a {cls.__name__} belongs")
    catalog, personas, baskets = parts
    if len(personas) != config.n_personas:
        raise ValueError(f"holds {len(personas)} personas, the config asks for {config.n_personas}")
    if config.source == "synthetic" and catalog.n_items != config.n_items:
        raise ValueError(f"holds {catalog.n_items} items, the config asks for {config.n_items}")
    if baskets.n_items != catalog.n_items:
        raise ValueError(f"baskets over {baskets.n_items} items, catalogue of {catalog.n_items}")
    return parts


def load_raw(config: EnvConfig, key: str) -> tuple[Any, Any, Any] | None:
    """(catalog without embeddings, personas, baskets) of the entry ``key``; None when there is none or it cannot be
    read (then after one RuntimeWarning naming the file: the caller rebuilds and overwrites it)."""
    sweep()
    path = entry_path(key)
    if not os.path.lexists(path):
        return None
    try:
        with open(path, "rb") as fh:
            return _check(pickle.load(fh), config)
    except Exception as err:  # whatever a damaged pickle raises, the entry is rebuilt, never trusted
        reason = f"{type(err).__name__}: {err}"
        warnings.warn(f"world cache entry {path} is unreadable ({reason[:200]}); rebuilding it", RuntimeWarning,
                      stacklevel=3)
        return None


def save_raw(key: str, catalog: Any, personas: Any, baskets: Any) -> None:
    """Write the entry ``key`` atomically (readers never see half a file; a killed writer leaves the old one); a
    failed write warns and is otherwise ignored (the world is built; it is rebuilt next time)."""
    sweep(force=True)
    path = entry_path(key)
    try:
        with atomic_write(path) as tmp:
            with open(tmp, "wb") as fh:
                pickle.dump({"format": WORLD_FORMAT, "catalog": catalog, "personas": personas, "baskets": baskets}, fh)
    except OSError as err:
        warnings.warn(f"could not write world cache entry {path} ({err}); the world will be rebuilt next time",
                      RuntimeWarning, stacklevel=3)
