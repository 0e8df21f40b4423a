"""Content hashes of files (cache keys, checksums in manifests and sidecars)."""

from __future__ import annotations

import hashlib
import os

__all__ = ["file_sha256"]


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of the file's bytes, read in 1 MiB blocks (constant memory for files of any size)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
