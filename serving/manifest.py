"""The manifest of an exported model folder (``manifest.json``): what the folder holds and each file's SHA-256.

A model folder (:mod:`bundlerl.serving.export` writes it) is read by a server that may run anywhere, from files
that may have been copied, cut short or edited: so nothing in it is ever unpickled (arrays are ``.npy`` / ``.npz``
read with ``allow_pickle=False``, the rest JSON, the FAISS index and the ONNX graph their own formats), and
:func:`read_manifest` checks every listed file against its recorded SHA-256 before anything is parsed. A missing,
changed or unlisted-but-required file is a :class:`ModelFolderError` naming the file and what to do.

Manifest fields: ``format`` (:data:`FORMAT`), ``format_version`` (:data:`FORMAT_VERSION`), ``created`` (UTC ISO
8601), ``source`` (the run directory and model, or the baseline), ``versions`` (python and package versions, git
commit of the exporting checkout), ``env_config`` (the world's EnvConfig as ``to_dict`` writes it), ``observation``
(spec and version), ``encoder`` (the text encoder's name, identity and dimension), ``policy`` (how to run it) and
``files`` (relative path -> ``{"sha256", "bytes"}``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bundlerl.utils.errors import BundlerlError
from bundlerl.utils.hashing import file_sha256

__all__ = ["FORMAT", "FORMAT_VERSION", "MANIFEST", "ModelFolderError", "file_entry", "read_manifest",
           "write_manifest"]

FORMAT = "bundlerl.model"
FORMAT_VERSION = 1
"""Bumped when the folder layout or a file's meaning changes; a server refuses other versions."""
MANIFEST = "manifest.json"


class ModelFolderError(BundlerlError):
    """An exported model folder is missing, damaged, tampered with or of another format; the message says which
    file and what to do."""


def file_entry(path: str | os.PathLike) -> dict[str, Any]:
    """``{"sha256": hex, "bytes": size}`` of a file."""
    return {"sha256": file_sha256(path), "bytes": os.path.getsize(path)}


def write_manifest(folder: str | os.PathLike, manifest: dict[str, Any], files: list[str]) -> Path:
    """Write ``folder/manifest.json``: ``manifest`` plus format fields and the entry of each of ``files`` (paths
    relative to ``folder``), atomically and last, so a folder with a manifest is complete."""
    from bundlerl.utils.atomic import write_text

    folder = Path(folder)
    body = {"format": FORMAT, "format_version": FORMAT_VERSION, **manifest,
            "files": {f: file_entry(folder / f) for f in sorted(files)}}
    write_text(folder / MANIFEST, json.dumps(body, indent=2, sort_keys=True) + "\n")
    return folder / MANIFEST


def read_manifest(folder: str | os.PathLike, *, verify: bool = True) -> dict[str, Any]:
    """The manifest of the model folder ``folder``, after checking its format and (``verify``) every listed file's
    size and SHA-256.

    :raises ModelFolderError: no folder or manifest, a manifest that is not JSON or of another format / version, a
        listed file missing or whose bytes differ from the manifest (tampered or damaged).
    """
    folder = Path(folder)
    fix = "export the model again with 'bundlerl export RUN_DIR --out MODEL_DIR'"
    path = folder / MANIFEST
    if not path.is_file():
        raise ModelFolderError(f"{folder} is not an exported model folder (no {MANIFEST}); {fix}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelFolderError(f"{path}: not valid JSON ({err}); {fix}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelFolderError(f"{path}: not a bundlerl model manifest (format "
                               f"{manifest.get('format') if isinstance(manifest, dict) else None!r}); {fix}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ModelFolderError(f"{path}: format version {manifest.get('format_version')!r}; this bundlerl reads "
                               f"version {FORMAT_VERSION}; {fix} with this version")
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise ModelFolderError(f"{path}: field 'files' is missing or empty; {fix}")
    if verify:
        for name, entry in sorted(files.items()):
            f = folder / name
            if not f.is_file():
                raise ModelFolderError(f"{f} is missing (listed in {MANIFEST}); {fix}")
            if (not isinstance(entry, dict) or entry.get("bytes") != f.stat().st_size
                    or entry.get("sha256") != file_sha256(f)):
                raise ModelFolderError(f"{f}: its bytes differ from the SHA-256 recorded in {MANIFEST} (the file was "
                                       f"changed or damaged after export); refusing to load it; {fix}")
    return manifest
