"""Shared, expensive test fixtures (add yours below; keep each one cheap to skip)."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import settings

# The suite's own system temp dir (TMPDIR, inherited by the commands it runs): whatever a test, a library or a
# command leaves in the temp dir shows there, and fails the run (pytest_sessionfinish); pytest's own tmp_path
# folders live in it too, and it is removed after a passing run.
_SYSTEM_TMP = tempfile.gettempdir()
_PREFIX = "bundlerl-suite-"


def _sweep_dead_suites() -> None:
    """Remove the temp dirs of suites whose process is gone (killed, or kept after a failure for a look): the name
    carries the owner's pid, so a suite running beside this one keeps its own."""
    for d in Path(_SYSTEM_TMP).glob(_PREFIX + "*"):
        pid = d.name[len(_PREFIX):].split("-")[0]
        if pid.isdigit():
            try:
                os.kill(int(pid), 0)
                continue  # alive
            except ProcessLookupError:
                pass
            except OSError:  # alive, another user's
                continue
        else:  # named without its pid (an older conftest): gone once it is older than any suite runs
            try:
                if time.time() - d.stat().st_mtime < 3 * 3600:
                    continue
            except OSError:
                continue
        shutil.rmtree(d, ignore_errors=True)


_sweep_dead_suites()
SUITE_TMP = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-"))
os.environ["TMPDIR"] = str(SUITE_TMP)
tempfile.tempdir = None  # recomputed from TMPDIR on next use

# Hypothesis runs derandomized with no example database by default, so every run of the suite (CI's included)
# tries the same examples and no result depends on what an earlier run stored. HYPOTHESIS_PROFILE=explore
# draws fresh examples each run (for hunting bugs, not for landing).
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False, database=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def minilm():
    """The real packaged all-MiniLM-L6-v2 SentenceEncoder (384-d, CPU/GPU as available), loaded once.

    Not cached on disk; wrap it in ``encoders.CachedEncoder(minilm, tmp_path)`` when a test needs a cache.
    """
    from bundlerl.encoders import SentenceEncoder

    enc = SentenceEncoder()
    enc.encode(["load the model once per session"])
    return enc


#: Folder names of the repository's rooms; each installs only as ``bundlerl.<name>``.
ROOMS = ("env", "agents", "scripts", "encoders", "sim_data", "candidates", "evaluation", "experiment", "utils",
         "serving")


def _temp_leftovers() -> list[str]:
    """What the suite left in its temp dir besides pytest's own folders (``pytest-of-<user>``)."""
    return sorted(p.name for p in SUITE_TMP.iterdir() if not p.name.startswith("pytest-of-") and p.name not in LIBRARY_TEMP)


#: Files that libraries (not bundlerl) write to the temp dir by design: onnxruntime records a telemetry session id in
#: ``$TMPDIR/.ses`` (51 bytes) on its first session of a process tree.
LIBRARY_TEMP = frozenset({".ses"})


def pytest_sessionfinish(session, exitstatus):
    """Fail the run if any room was ever imported as a top-level module (``import env`` instead of
    ``import bundlerl.env``): the repository root must never shadow the installed namespace; or if anything was left
    in the system temp dir (the suite's own, :data:`SUITE_TMP`), which is removed after a passing run."""
    import sys

    loaded = sorted(name for name in sys.modules if name.split(".")[0] in ROOMS)
    if loaded:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print(f"\nERROR: top-level modules loaded during the suite: {loaded}; import them as bundlerl.<room>",
              file=sys.stderr)
    left = _temp_leftovers() if SUITE_TMP.is_dir() else []
    if left:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print(f"\nERROR: the suite left {len(left)} entries in the system temp dir ({SUITE_TMP}): {left[:10]}; "
              "every file belongs in a test's tmp_path or a run directory (SB3-* folders: a model learning without "
              "a logger, see bundlerl.agents.sb3.quiet_logger)", file=sys.stderr)
    if session.exitstatus == 0:
        shutil.rmtree(SUITE_TMP, ignore_errors=True)
    else:
        print(f"\n(the suite's temp dir is kept for a look: {SUITE_TMP})", file=sys.stderr)
    os.environ["TMPDIR"] = _SYSTEM_TMP


@pytest.fixture(scope="session")
def served_model(tmp_path_factory):
    """An exported model folder (untrained PPO on the real small world, ONNX) shared by the serving tests; tests
    that write to it (item store, journals) copy it first."""
    from _serving import small_run_dir

    from bundlerl.serving.export import export_model

    tmp = tmp_path_factory.mktemp("served")
    run = small_run_dir(tmp / "runs", "ppo")
    return export_model(tmp / "model", run_dir=run, progress=False)
