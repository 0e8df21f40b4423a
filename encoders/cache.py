"""On-disk embedding cache wrapped around any :class:`~bundlerl.encoders.base.TextEncoder`.

Layout: ``<cache_dir>/embeddings/<sha1(identity)[:16]>/`` holds ``identity.json`` (the
encoder identity and dim) and shard files ``shard-*.npz``, each with the 128-bit text keys
(the first 16 bytes of sha1(utf-8 text), as two uint64 columns ``k1``/``k2``) and the float32
vectors ``vecs`` (n, d). A lookup hashes the texts, merges the shards into one index sorted
by ``k1`` and finds the rows with ``np.searchsorted`` (vectorised, no per-text dict work);
only the misses go to the wrapped encoder, and they are appended as a new shard.

Concurrency and crashes: a shard is written to a temp file in the same folder and moved
into place with ``os.replace``, so a reader sees a complete shard or none; writers never
modify an existing shard, so concurrent writers only add files. Many small shards are
compacted into one (new file first, old ones deleted after), and duplicate keys across
shards are harmless. A shard that cannot be read, fails its zip CRC, or has inconsistent
arrays is skipped with a warning (its texts are re-encoded), never trusted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import uuid
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from bundlerl.encoders._texts import check_texts
from bundlerl.encoders.base import EncoderError, TextEncoder
from bundlerl.utils.args import need_path, shown
from bundlerl.utils.cache import cache_root

__all__ = ["CachedEncoder", "text_keys"]

#: Compact when a cache folder holds more than this many shards.
MAX_SHARDS = 16
_NORM_TOL = 1e-3


def text_keys(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """128-bit keys of ``texts``: (k1, k2) uint64 arrays of shape (n,) from sha1 of the utf-8 text."""
    raw = b"".join(hashlib.sha1(t.encode("utf-8")).digest()[:16] for t in texts)
    keys = np.frombuffer(raw, dtype="<u8").reshape(len(texts), 2)
    return np.ascontiguousarray(keys[:, 0]), np.ascontiguousarray(keys[:, 1])


class CachedEncoder:
    """A :class:`TextEncoder` that remembers every vector on disk, keyed by encoder identity and text.

    :param encoder: the encoder to wrap; its ``identity`` selects the cache folder, so a
        change of model or weights never reads stale vectors.
    :param cache_dir: root folder (default :func:`bundlerl.utils.cache.cache_root`); vectors live under
        ``<cache_dir>/embeddings/``.

    ``encode`` returns exactly what the wrapped encoder returned when each text was first
    encoded (bit-identical on a hit). Raises :class:`EncoderError` for bad texts (index named)
    and when the cache folder holds vectors of another dimension than ``encoder.dim``.
    """

    def __init__(self, encoder: TextEncoder, cache_dir: str | os.PathLike | None = None) -> None:
        if not isinstance(encoder, TextEncoder):
            raise EncoderError(f"CachedEncoder(encoder={shown(encoder)}): encoder must be a TextEncoder (identity, dim, "
                               "encode)")
        self.encoder = encoder
        cache_dir = need_path(cache_dir, "cache_dir", "CachedEncoder", optional=True, what="a cache folder",
                              error=EncoderError)
        root = cache_dir.expanduser() if cache_dir is not None else cache_root()
        self.folder = root / "embeddings" / hashlib.sha1(encoder.identity.encode()).hexdigest()[:16]
        self._loaded: set[str] = set()  # shard file names merged into the index
        self._bad: set[str] = set()  # shard names already warned about
        self._k1 = np.zeros(0, dtype=np.uint64)
        self._k2 = np.zeros(0, dtype=np.uint64)
        self._vecs: np.ndarray | None = None
        self._checked_meta = False
        #: Hits and misses over this object's lifetime (for tests and benchmarks).
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"CachedEncoder({self.encoder!r}, folder={str(self.folder)!r})"

    @property
    def identity(self) -> str:
        """The wrapped encoder's identity (a cache does not change the vectors)."""
        return self.encoder.identity

    @property
    def dim(self) -> int:
        """The wrapped encoder's dimension."""
        return self.encoder.dim

    # -- reading -----------------------------------------------------------------------------
    def _mismatch(self, where: Path, d: int) -> EncoderError:
        return EncoderError(
            f"dimension mismatch: cache at {where} holds d={d}; encoder gives d={self.dim}; "
            "delete the cache dir or pass another cache_dir"
        )

    def _check_meta(self) -> None:
        if self._checked_meta:
            return
        from bundlerl.utils.atomic import sweep_temporaries, write_text

        sweep_temporaries(self.folder)  # leftovers of writers killed mid-write
        meta = self.folder / "identity.json"
        try:
            info = json.loads(meta.read_text())
            d = int(info["dim"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            if not isinstance(err, FileNotFoundError):
                warnings.warn(f"rewriting unreadable embedding cache metadata {meta}: {err}", RuntimeWarning,
                              stacklevel=3)
            write_text(meta, json.dumps({"identity": self.identity, "dim": int(self.dim)}))
        else:
            if d != self.dim:
                raise self._mismatch(self.folder, d)
        self._checked_meta = True

    def _read_shard(self, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The shard's (k1, k2, vecs), or None (with one warning) when it is unreadable or inconsistent."""
        try:
            with np.load(path, allow_pickle=False) as z:
                k1, k2, vecs = z["k1"], z["k2"], z["vecs"]  # full reads: zipfile checks each CRC
            n = k1.shape[0] if k1.ndim == 1 else -1
            ok = (
                k1.dtype == np.uint64 and k2.dtype == np.uint64 and vecs.dtype == np.float32
                and k2.shape == (n,) and vecs.ndim == 2 and vecs.shape[0] == n
            )
            if not ok:
                raise ValueError("arrays have unexpected shapes or dtypes")
            if vecs.shape[1] != self.dim:
                raise self._mismatch(path, vecs.shape[1])
            norms = np.linalg.norm(vecs, axis=1)
            if not np.all(np.abs(norms - 1.0) < _NORM_TOL):
                raise ValueError("holds rows that are not unit vectors")
            return k1, k2, vecs
        except FileNotFoundError:
            return None  # compacted away by another process after we listed it
        except EncoderError:
            raise
        except Exception as err:  # noqa: BLE001 - any failure means "do not trust this shard"
            if path.name not in self._bad:
                self._bad.add(path.name)
                warnings.warn(
                    f"removing corrupt embedding cache shard {path} ({type(err).__name__}: {err}); "
                    "its texts will be re-encoded",
                    RuntimeWarning,
                    stacklevel=4,
                )
                # the cache heals: the re-encoded vectors go to a new shard, the damaged one goes away (shards are
                # written whole by atomic rename, so a shard that does not read is damaged, not half-written)
                with contextlib.suppress(OSError):
                    path.unlink()
            return None

    def _shard_names(self) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self.folder) if n.startswith("shard-") and n.endswith(".npz"))
        except FileNotFoundError:
            return []

    def _refresh(self) -> None:
        """Merge shards that appeared since the last call into the sorted in-memory index."""
        new = [n for n in self._shard_names() if n not in self._loaded and n not in self._bad]
        parts = []
        for name in new:
            got = self._read_shard(self.folder / name)
            if got is not None:
                parts.append(got)
                self._loaded.add(name)
        if parts:
            self._merge(parts)

    def _merge(self, parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
        k1 = np.concatenate([self._k1] + [p[0] for p in parts])
        k2 = np.concatenate([self._k2] + [p[1] for p in parts])
        vecs = np.concatenate(([self._vecs] if self._vecs is not None else []) + [p[2] for p in parts])
        order = np.lexsort((k2, k1))
        k1, k2, vecs = k1[order], k2[order], vecs[order]
        keep = np.ones(k1.shape[0], dtype=bool)
        keep[1:] = (k1[1:] != k1[:-1]) | (k2[1:] != k2[:-1])  # drop exact duplicate keys
        self._k1, self._k2, self._vecs = k1[keep], k2[keep], vecs[keep]

    def _lookup(self, k1: np.ndarray, k2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(hit mask (n,), row of each text in the index (n,); rows are meaningful only where hit)."""
        if self._k1.shape[0] == 0:
            return np.zeros(k1.shape[0], dtype=bool), np.zeros(k1.shape[0], dtype=np.intp)
        pos = np.searchsorted(self._k1, k1)
        pos = np.minimum(pos, self._k1.shape[0] - 1)
        # k1 equal and k2 equal: both halves of the 128-bit key must match.
        hit = (self._k1[pos] == k1) & (self._k2[pos] == k2)
        return hit, pos

    # -- writing -----------------------------------------------------------------------------
    def _write_shard(self, k1: np.ndarray, k2: np.ndarray, vecs: np.ndarray) -> str:
        from bundlerl.utils.atomic import atomic_write

        name = f"shard-{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}.npz"
        with atomic_write(self.folder / name) as tmp:
            np.savez(tmp, k1=k1, k2=k2, vecs=vecs)
        return name

    def _maybe_compact(self) -> None:
        names = [n for n in self._shard_names() if n in self._loaded]
        if len(names) <= MAX_SHARDS or self._vecs is None:
            return
        merged = self._write_shard(self._k1, self._k2, self._vecs)
        self._loaded.add(merged)
        for n in names:  # the merged shard is in place first, so nothing is ever lost
            try:
                os.unlink(self.folder / n)
            except FileNotFoundError:
                pass

    # -- the protocol ------------------------------------------------------------------------
    def encode(self, texts: Sequence[str], *, batch_size: int | None = None, progress: bool | None = None) -> np.ndarray:
        """(len(texts), dim) float32 unit-norm rows; only texts not yet cached are encoded.

        :param batch_size: passed to the wrapped encoder for the misses (None: its default).
        :param progress: passed to the wrapped encoder for the misses.
        Bad texts raise :class:`EncoderError` naming the index; a cache folder holding another
        dimension raises :class:`EncoderError` ("dimension mismatch ...").
        """
        texts = check_texts(texts)
        n = len(texts)
        if n == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        self._check_meta()
        k1, k2 = text_keys(texts)
        self._refresh()
        hit, pos = self._lookup(k1, k2)
        out = np.empty((n, self.dim), dtype=np.float32)
        if hit.any():
            out[hit] = self._vecs[pos[hit]]
        miss = np.flatnonzero(~hit)
        self.hits += n - miss.size
        self.misses += miss.size
        if miss.size:
            # Encode each distinct missing text once.
            mk = np.stack([k1[miss], k2[miss]], axis=1)
            _, first, inverse = np.unique(mk, axis=0, return_index=True, return_inverse=True)
            uniq = miss[first]
            kwargs = {"progress": progress} if batch_size is None else {"batch_size": batch_size, "progress": progress}
            new = np.asarray(self.encoder.encode([texts[i] for i in uniq], **kwargs))
            if new.shape != (uniq.size, self.dim) or new.dtype != np.float32:
                raise EncoderError(
                    f"wrapped encoder returned {new.shape} {new.dtype}, expected ({uniq.size}, {self.dim}) float32"
                )
            out[miss] = new[inverse.reshape(-1)]
            nk1, nk2 = k1[uniq], k2[uniq]
            name = self._write_shard(nk1, nk2, new)
            self._loaded.add(name)  # merged from memory: no need to read back what we just wrote
            self._merge([(nk1, nk2, new)])
            self._maybe_compact()
        return out

    def clear(self) -> None:
        """Delete this encoder's cached vectors (the whole identity folder) and forget them in memory."""
        import shutil

        shutil.rmtree(self.folder, ignore_errors=True)
        self.__init__(self.encoder, self.folder.parent.parent)
