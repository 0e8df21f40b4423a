"""Provenance of a run: the versions of python and the packages it ran with, and the git commit (and dirty flag) of
the checkout bundlerl was installed from; what a run directory's versions.json records."""

from __future__ import annotations

import json
import platform
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["package_versions", "git_info", "source_checkout", "VERSION_PACKAGES"]

VERSION_PACKAGES = {
    "numpy": "numpy", "torch": "torch", "stable_baselines3": "stable-baselines3", "sb3_contrib": "sb3-contrib",
    "gymnasium": "gymnasium", "faiss": "faiss-cpu", "sentence_transformers": "sentence-transformers",
    "bundlerl": "bundlerl",
}
"""Key in versions.json -> distribution name (read from package metadata, no heavy import)."""


def package_versions() -> dict[str, str | None]:
    """Python and the versions of :data:`VERSION_PACKAGES` (None when not installed)."""
    from importlib import metadata

    out: dict[str, str | None] = {"python": platform.python_version()}
    for key, dist in VERSION_PACKAGES.items():
        try:
            out[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[key] = None
    return out


def source_checkout() -> Path | None:
    """The folder bundlerl was installed from in editable mode (``pip install -e``), from the installer's
    ``direct_url.json`` (PEP 610); None for a regular install, whose code no checkout describes."""
    from importlib import metadata
    from urllib.parse import unquote, urlparse

    # every installed copy's metadata, first found first (a source tree also holds a bare ``*.egg-info``)
    raw = next((t for d in metadata.distributions(name="bundlerl") if (t := d.read_text("direct_url.json"))), "{}")
    try:
        info = json.loads(raw)
    except ValueError:
        return None
    url = urlparse(str(info.get("url", "")))
    if url.scheme != "file" or not info.get("dir_info", {}).get("editable"):
        return None
    return Path(unquote(url.path))


def git_info(cwd: str | Path | None = None) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` of the git checkout at ``cwd``, by default the one
    bundlerl runs from (:func:`source_checkout`); both None without git or outside a checkout."""
    cwd = Path(cwd) if cwd else source_checkout()
    if cwd is None or not cwd.is_dir():
        return {"commit": None, "dirty": None}
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return {"commit": None, "dirty": None}
        st = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True,
                            text=True, timeout=30)
        return {"commit": sha.stdout.strip(), "dirty": bool(st.stdout.strip()) if st.returncode == 0 else None}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
