"""Output paths checked before any work: a folder a command or function will write into must be writable now, so
that a bad ``--out`` (a file in the way, a read-only or missing mount, no permission) fails in its first second,
not after the training or evaluation it would have saved."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bundlerl.utils.errors import BundlerlError

__all__ = ["OutputPathError", "check_output_folder"]


class OutputPathError(BundlerlError):
    """An output folder cannot be written; the message names the argument, the path and what is in the way."""


def check_output_folder(path: "str | os.PathLike", what: str = "output folder") -> Path:
    """``path`` as a Path, once it is sure that the folder can be made (if missing) and written into.

    Walks up from ``path`` to the first part that exists: that part must be a folder in which a file can be
    created (a probe file is made and removed at once; nothing else is created, the folder itself included).

    :param what: the argument's name in the message (``"--out"``, ``"train(out=...)"``).
    :raises OutputPathError: an empty path, a file where a folder is needed, or a folder that cannot be written
        (the message names ``what``, the path, the part in the way and the reason).
    """
    if path is None or not isinstance(path, (str, os.PathLike)):
        raise OutputPathError(f"{what}: {path!r}; give the path of a folder to write into (a str or Path)")
    text = os.fspath(path)
    if not str(text).strip():
        raise OutputPathError(f"{what}: an empty path; give the path of a folder to write into")
    p = Path(text).expanduser()
    for q in (p, *p.parents):
        if not os.path.lexists(q):
            continue
        if not q.is_dir():
            where = "it is a file" if q == p else f"{q} is a file"
            raise OutputPathError(f"{what} {text!r}: {where}, not a folder; give a folder to write into")
        try:
            fd, probe = tempfile.mkstemp(dir=q, prefix=".bundlerl-write-probe-")
        except OSError as exc:
            raise OutputPathError(f"{what} {text!r}: cannot write in {q} ({exc.strerror or exc}); give a folder you "
                                  "can write to") from None
        os.close(fd)
        os.unlink(probe)
        return p
    return p  # pragma: no cover - a relative path's parents end at '.', which exists
