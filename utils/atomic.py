"""Atomic writes: a temporary file in the destination's folder, then :func:`os.replace` onto the destination.

Readers never see a half-written file, and a crash or kill mid-write leaves the previous file intact
(``os.replace`` is atomic on POSIX and Windows). On an exception the temporary file is removed.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_write", "write_text"]


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
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + (path.suffix if suffix is None else suffix)
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


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_write(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")

