"""Shared file helpers: atomic writes.

``atomic_write(path)`` yields a temporary path in the same directory as ``path``; on a clean
exit the temp file is moved over ``path`` with :func:`os.replace` (atomic on POSIX and
Windows), so readers never see a half-written file; on an exception the temp file is removed
and ``path`` is left untouched.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_write"]


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
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
