"""Run the real ``bundlerl`` command line in a subprocess (shared by the CLI tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, timeout=120, cwd=None, env=None) -> subprocess.CompletedProcess:
    """``python -m bundlerl.scripts.cli *args`` from the repository root; stdout / stderr captured as text;
    ``env``: variables set for the command on top of this process's."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", "bundlerl.scripts.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd or ROOT, env=env)
