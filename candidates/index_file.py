"""The files of a saved :class:`~bundlerl.candidates.index.ItemIndex`: the faiss index and its JSON sidecar.

``<path>`` holds ``faiss.write_index``'s bytes; ``<path>.json`` the format tag, dimension, item count, the
:class:`~bundlerl.candidates.index_config.IndexConfig` and the index file's SHA-256. Each is written atomically
(the index first, so the sidecar's checksum always describes a complete file).

A saved index is a user's file, not a cache: nothing in bundlerl writes one behind the user's back, and the file
holds the vectors it would be rebuilt from. So a damaged one is an :class:`IndexError_` naming the file and the
fix, never silently rebuilt. The checksum is compared before faiss parses the file: faiss reads a bit-flipped
index without complaint (flipped vectors or links), and a truncated one only with a bare ``RuntimeError``.
Sidecars written before the checksum existed load without that check.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from bundlerl.candidates.index_config import IndexConfig, IndexError_
from bundlerl.utils.hashing import file_sha256

__all__ = ["FORMAT", "write_index_files", "read_index_files", "sidecar_path"]

#: The sidecar's format tag.
FORMAT = "bundlerl.ItemIndex/1"


def sidecar_path(path: str | os.PathLike) -> Path:
    """``<path>.json``: the sidecar of the index file at ``path``."""
    path = Path(path)
    return path.with_name(path.name + ".json")



def write_index_files(index, config: IndexConfig, dim: int, path: str | os.PathLike) -> Path:
    """Write the faiss ``index`` to ``path`` and its sidecar (``config``, ``dim``, item count, SHA-256); returns ``path``."""
    import faiss

    from bundlerl.utils.atomic import atomic_write, write_text

    path = Path(path)
    with atomic_write(path) as tmp:
        faiss.write_index(index, str(tmp))
        digest = file_sha256(tmp)
    meta = {"format": FORMAT, "dim": int(dim), "n_items": int(index.ntotal), "config": asdict(config), "sha256": digest}
    write_text(sidecar_path(path), json.dumps(meta, indent=2))
    return path


def read_index_files(path: str | os.PathLike):
    """``(faiss index, IndexConfig, dim)`` read from ``path`` and its sidecar, checked against each other.

    Raises :class:`IndexError_` naming the file and the fix when either file is missing, the sidecar does not parse
    (or lacks a field, or holds an invalid config), the index file differs from its recorded checksum, faiss cannot
    read it, or the two files disagree on size, dimension or re-ranking.
    """
    import faiss

    path = Path(path)
    side = sidecar_path(path)
    if not path.is_file() or not side.is_file():
        raise IndexError_(f"{path} or its sidecar {side.name} is missing; write it with ItemIndex.save")
    fix = "rebuild the index (ItemIndex(catalog.embeddings, config)) and write it again with ItemIndex.save"
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
        tag = meta.get("format")
        if tag == FORMAT:
            config, dim, n_items = IndexConfig(**meta["config"]), int(meta["dim"]), int(meta["n_items"])
    except Exception as err:  # noqa: BLE001 - not JSON, not an object, a field missing, mistyped or invalid
        raise IndexError_(f"cannot read the index sidecar {side} ({type(err).__name__}: {err}); {fix}") from err
    if tag != FORMAT:
        raise IndexError_(f"{side} is not an ItemIndex sidecar (format {tag!r}); {fix}")
    if "sha256" in meta and file_sha256(path) != meta["sha256"]:
        raise IndexError_(f"{path} is damaged: its bytes differ from the checksum recorded when it was saved; {fix}")
    try:
        index = faiss.read_index(str(path))
    except RuntimeError as err:
        lines = str(err).strip().splitlines()
        raise IndexError_(f"faiss cannot read the index file {path} ({lines[0] if lines else 'RuntimeError'}); {fix}") from err
    if index.d != dim or index.ntotal != n_items:
        raise IndexError_(
            f"{path} holds {index.ntotal} x {index.d} but its sidecar says {n_items} x {dim}; re-save the index"
        )
    refined = isinstance(index, faiss.IndexRefine)
    if refined != config.refined:
        raise IndexError_(
            f"{path} {'is' if refined else 'is not'} a re-ranked index but its sidecar says "
            f"reduce_dim={config.reduce_dim}, pq_m={config.pq_m}; re-save the index"
        )
    return index, config, dim
