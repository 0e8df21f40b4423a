"""Writing logs of :mod:`bundlerl.evaluation.logs.schema`: numpy batches of whole contexts -> Parquet part files.

Each part file is written atomically (``bundlerl.utils.atomic``: a temporary file, then a rename), so a reader or
a crash never sees half a part; a part starts at the next free number in the folder, so a writer appends to a log
that already holds parts (serving). Ground truth, when given, goes to ``truth/`` with the same part number and rows.
``close`` then writes ``log.json`` (what the folder holds: parts, rows, sizes, observation spec), last: a writer
that did not finish (a crash, Ctrl-C) leaves none, and the loader refuses such a folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bundlerl.evaluation.logs.schema import (
    COLUMNS,
    LOG_JSON,
    META_KEY,
    PART_GLOB,
    TRUTH_DIR,
    Dims,
    LogError,
    log_schema,
    part_name,
    truth_schema,
)
from bundlerl.utils.atomic import atomic_write, sweep_temporaries

__all__ = ["LogWriter", "to_table", "write_log_json"]

#: per column: numpy dtype it is written from, and its shape after the row axis as a function of Dims
_SHAPES = {
    "context_id": (np.int64, lambda d: ()), "step": (np.int32, lambda d: ()), "spec_version": (np.int16, lambda d: ()),
    "profile": (np.float32, lambda d: (d.P,)), "history": (np.float32, lambda d: (d.P,)),
    "session": (np.float32, lambda d: (d.S,)), "candidates": (np.float32, lambda d: (d.K, d.F)),
    "action_mask": (np.bool_, lambda d: (d.K,)), "item_ids": (np.int64, lambda d: (d.K, d.M)),
    "action": (np.int32, lambda d: ()), "action_prob": (np.float64, lambda d: (d.K,)),
    "pscore": (np.float64, lambda d: ()), "click": (np.bool_, lambda d: ()), "n_bought": (np.int32, lambda d: ()),
    "bought_items": (np.int64, lambda d: (d.M,)), "revenue": (np.float64, lambda d: ()),
    "reward": (np.float64, lambda d: ()), "terminated": (np.bool_, lambda d: ()), "truncated": (np.bool_, lambda d: ()),
}


def _arrow(values: np.ndarray, dtype, tail: tuple, n: int, name: str) -> pa.Array:
    v = np.asarray(values)
    if v.shape != (n, *tail):
        raise LogError(f"column {name!r} has shape {v.shape}; expected {(n, *tail)}")
    v = np.ascontiguousarray(v, dtype=dtype)
    if not tail:
        return pa.array(v)
    return pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), int(np.prod(tail)))


def to_table(rows: Mapping[str, np.ndarray], dims: Dims, obs_spec: dict) -> pa.Table:
    """The decision rows ``rows`` (column name -> (n, ...) array, shapes as in the schema with (K, F) / (K, M)
    blocks unflattened) as an Arrow table of :func:`~bundlerl.evaluation.logs.schema.log_schema`. ``terminated`` /
    ``truncated`` may be missing (unknown: null). Raises LogError on a missing column or a wrong shape."""
    n = len(np.asarray(rows["context_id"])) if "context_id" in rows else 0
    arrays = []
    for name in COLUMNS:
        dtype, tail = _SHAPES[name]
        if name not in rows:
            if name in ("terminated", "truncated"):
                arrays.append(pa.nulls(n, pa.bool_()))
                continue
            raise LogError(f"log rows miss column {name!r}; the schema needs {', '.join(COLUMNS)}")
        arrays.append(_arrow(rows[name], dtype, tail(dims), n, name))
    return pa.Table.from_arrays(arrays, schema=log_schema(dims, obs_spec))


class LogWriter:
    """Appends decision rows (and optionally ground truth) to the log folder ``out`` as Parquet part files.

    :param out: the log folder (created); parts already there are kept and new ones numbered after them.
    :param dims: the sizes of the array columns. :param obs_spec: ``bundlerl.env.observation.observation_spec``.
    :param rows_per_part: a part is written once this many rows are buffered, cut at the next context boundary
        (whole contexts only: a context never spans two parts, which the per-trajectory estimators rely on).
    :param truth: also write ``truth/`` parts (:meth:`write` then needs ``expected_reward``).

    Use as a context manager (``close`` writes what is buffered, then ``log.json`` with :attr:`info`, which the
    caller may fill before closing).
    """

    def __init__(self, out: str | Path, dims: Dims, obs_spec: dict, *, rows_per_part: int = 50_000,
                 truth: bool = False):
        if rows_per_part < 1:
            raise LogError(f"rows_per_part={rows_per_part}; it must be >= 1")
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        sweep_temporaries(self.out, recursive=True)
        self.dims, self.obs_spec, self.rows_per_part, self.truth = dims, obs_spec, int(rows_per_part), bool(truth)
        existing = sorted(self.out.glob(PART_GLOB))
        self.next_part = int(existing[-1].stem.split("-")[1]) + 1 if existing else 0
        self._buf: list[pa.Table] = []
        self._truth_buf: list[np.ndarray] = []
        self._buffered = 0
        self.rows_written = 0
        self.parts: list[Path] = []
        self.info: dict = {}
        """What wrote the log (plain data), merged into ``log.json`` by :meth:`close`."""

    def write(self, rows: Mapping[str, np.ndarray], expected_reward: np.ndarray | None = None) -> None:
        """Buffer ``rows`` (whole contexts, see :func:`to_table`) and, with ``truth``, their (n, K) expected rewards;
        writes a part when ``rows_per_part`` rows are buffered."""
        table = to_table(rows, self.dims, self.obs_spec)
        if self.truth:
            if expected_reward is None:
                raise LogError("this writer logs ground truth: pass expected_reward (n, K)")
            er = np.asarray(expected_reward, np.float64)
            if er.shape != (table.num_rows, self.dims.K):
                raise LogError(f"expected_reward has shape {er.shape}; expected {(table.num_rows, self.dims.K)}")
            self._truth_buf.append(er)
        self._buf.append(table)
        self._buffered += table.num_rows
        while self._buffered >= self.rows_per_part:
            if not self._flush_some():
                break

    def _flush_some(self) -> bool:
        """Write about ``rows_per_part`` buffered rows as one part: cut at the first context boundary at or after
        ``rows_per_part`` rows (whole contexts stay in one part); False when no such cut exists yet."""
        table = pa.concat_tables(self._buf)
        ctx = table.column("context_id").to_numpy()
        cuts = np.flatnonzero(ctx[1:] != ctx[:-1]) + 1
        cuts = cuts[cuts >= self.rows_per_part]
        if not cuts.size or np.isin(ctx[cuts[0]:], ctx[:cuts[0]]).any():
            return False
        cut = int(cuts[0])
        er = np.concatenate(self._truth_buf) if self.truth else None
        self._buf, self._buffered = [table.slice(0, cut)], cut
        self._truth_buf = [er[:cut]] if self.truth else []
        self.flush()
        self._buf, self._buffered = [table.slice(cut)], table.num_rows - cut
        self._truth_buf = [er[cut:]] if self.truth else []
        return True

    def flush(self) -> None:
        """Write the buffered rows as one part (nothing when empty)."""
        if not self._buffered:
            return
        table = pa.concat_tables(self._buf)
        name = part_name(self.next_part)
        with atomic_write(self.out / name) as tmp:
            pq.write_table(table, tmp, row_group_size=min(self.rows_per_part, 65_536))
        if self.truth:
            er = np.concatenate(self._truth_buf)
            t = pa.Table.from_arrays(
                [table.column("context_id"), table.column("step"),
                 pa.FixedSizeListArray.from_arrays(pa.array(er.reshape(-1)), self.dims.K)],
                schema=truth_schema(self.dims, self.obs_spec))
            with atomic_write(self.out / TRUTH_DIR / name) as tmp:
                pq.write_table(t, tmp)
        self.parts.append(self.out / name)
        self.next_part += 1
        self.rows_written += table.num_rows
        self._buf, self._truth_buf, self._buffered = [], [], 0

    def close(self) -> None:
        """Write what is buffered, then ``log.json`` with :attr:`info` (:func:`write_log_json`; none while the folder
        holds no part), which marks the log complete."""
        self.flush()
        if any(self.out.glob(PART_GLOB)):
            write_log_json(self.out, self.info)

    def __enter__(self) -> "LogWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()


def write_log_json(out: str | Path, info: dict) -> None:
    """``out/log.json``: what wrote the log (plain data: ``info`` merged over the file's current content), with
    what the folder holds now - ``parts`` (count), ``rows``, ``dims``, ``obs_spec``, from the part files' footers -
    which the loader checks the files against, and ``sha256``, each part's and truth part's SHA-256 by path in the
    folder (``truth/part-000000.parquet``). Written atomically, after the parts: its presence marks a finished
    log. :raises LogError: the folder holds no part file."""
    from bundlerl.utils.atomic import write_text
    from bundlerl.utils.hashing import file_sha256

    out = Path(out)
    parts = sorted(out.glob(PART_GLOB))
    if not parts:
        raise LogError(f"{out}: no {PART_GLOB} files to describe in {LOG_JSON}")
    old = {}
    if (out / LOG_JSON).is_file():
        try:
            old = json.loads((out / LOG_JSON).read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            old = {}  # a damaged description: replaced by what the files say
    meta = json.loads(pq.read_schema(parts[-1]).metadata[META_KEY])
    files = parts + sorted((out / TRUTH_DIR).glob(PART_GLOB))
    held = {"parts": len(parts), "rows": sum(pq.ParquetFile(p).metadata.num_rows for p in parts),
            "dims": meta["dims"], "obs_spec": meta["obs_spec"],
            # checksums: bytes damaged after writing that still decode are caught by the loader
            "sha256": {p.relative_to(out).as_posix(): file_sha256(p) for p in files}}
    merged = {**(old if isinstance(old, dict) else {}), **info, **held}
    write_text(out / LOG_JSON, json.dumps(merged, indent=2, sort_keys=True, default=str) + "\n")
