"""Atomic writes: a temporary file in the destination's folder, then :func:`os.replace` onto the destination.

Readers never see a half-written file, and a crash or kill mid-write leaves the previous file intact
(``os.replace`` is atomic on POSIX and Windows). On an exception the temporary file is removed; a temporary file
left by a killed process (it cannot clean up) is removed by :func:`sweep_temporaries` on a later run.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_write", "write_text", "sweep_temporaries", "interrupts_deferred"]


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temp path next to ``path``; ``os.replace`` it onto ``path`` on success.

    :param path: final destination; its parent directory is created if missing.
    :param suffix: the temp file is named ``.<name>.<random>.tmp<suffix>`` (default suffix: that
        of ``path``), so writers that append a missing extension (``numpy.save``) write to it as is.
    Usage::

        with atomic_write(out) as tmp:
            np.save(tmp, arr)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp" + (path.suffix if suffix is None else suffix)
    )
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; saved runs and caches get the usual permissions
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


class _Deferred:
    """What :func:`interrupts_deferred` saw: ``interrupted`` is True once a Ctrl-C (SIGINT) arrived in the block."""

    interrupted = False


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[_Deferred]:
    """Hold Ctrl-C (SIGINT) back while the block runs (a few renames that must all happen, or none): a SIGINT
    arriving meanwhile only sets the yielded object's ``interrupted``, which the caller acts on after the block.
    Outside the main thread (where no signal handler can be set) the block runs as is."""
    import signal
    import threading

    state = _Deferred()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def note(signum, frame):
        state.interrupted = True

    previous = signal.signal(signal.SIGINT, note)
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, previous)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_write(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


#: ``.<name>.<pid>.<8 random characters of mkstemp>.tmp<suffix>``: the temporary files of :func:`atomic_write`.
_TEMP = re.compile(r"^\..+\.(\d+)\.[A-Za-z0-9_]{8}\.tmp[^/]*$")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def sweep_temporaries(folder: str | os.PathLike, *, recursive: bool = False, grace_s: float = 60.0,
                      max_age_s: float = 86_400.0, dirs: bool = False) -> int:
    """Remove the temporary files that killed writers of :func:`atomic_write` left in ``folder`` (with ``dirs``,
    also staging folders named the same way, e.g. ``bundlerl.evaluation.ope.report``'s ``.NAME.PID.XXXXXXXX.tmp-report``).

    A temporary is removed when its writer process no longer runs on this machine and it has not changed for
    ``grace_s`` seconds (the grace spares a writer on another machine sharing the folder), or when it has not
    changed for ``max_age_s`` seconds whoever wrote it. Other files are never touched. Returns the number removed;
    a missing folder is empty.
    """
    folder = Path(folder)
    try:
        paths = folder.rglob(".*.tmp*") if recursive else folder.glob(".*.tmp*")
        now, removed = time.time(), 0
        for p in paths:
            m = _TEMP.match(p.name)
            if m is None or not (p.is_file() or (dirs and p.is_dir() and not p.is_symlink())):
                continue
            with contextlib.suppress(OSError):
                age = now - p.stat().st_mtime
                if age > max_age_s or (age > grace_s and not _running(int(m.group(1)))):
                    if p.is_dir():
                        shutil.rmtree(p)
                    else:
                        p.unlink()
                    removed += 1
        return removed
    except FileNotFoundError:
        return 0
