"""Reading logs of :mod:`bundlerl.evaluation.logs.schema`, part by part, with every row checked.

:meth:`LogDataset.open` checks each part file's columns, types and metadata (schema version, array sizes, observation
spec, the same in every part); :meth:`LogDataset.parts` then yields one part at a time as numpy arrays (memory: one
part, whatever the log's size) after checking its rows: actions in range, distributions that are finite, >= 0 and
sum to 1 with no mass on masked candidates, a logged action that is a valid candidate, a propensity > 0 that equals
the distribution's mass on the logged action, each context's steps 0, 1, 2, ... in row order within one part, the
row's spec version, finite outcomes (:data:`OUTCOME_COLUMNS`, at most :func:`outcome_limit` in magnitude), finite
observations (:data:`OBSERVATION_COLUMNS`, at most :data:`OBSERVATION_LIMIT` in magnitude), item ids >= -1, bought
items that are the shown bundle's (``n_bought`` of them, at most ``M``), and with ``truth`` finite expected rewards
on the valid candidates. Every checked column is read whatever ``columns`` asks for. Every problem is a :class:`LogError` naming file, row, column. A folder without ``log.json`` (a writer that did not finish) is refused,
and so is one whose ``log.json`` lacks a required field or has one of the wrong type (:data:`LOG_JSON_FIELDS`), or
whose files differ from what it says (sizes, observation spec, part, row and episode counts, and each file's SHA-256
where it records them: logs written since the checksums were added).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bundlerl.evaluation.logs.schema import (
    COLUMNS,
    LOG_JSON,
    LOG_SCHEMA_VERSION,
    META_KEY,
    PART_GLOB,
    TRUTH_DIR,
    Dims,
    LogError,
    log_schema,
    truth_schema,
)

__all__ = ["LogDataset", "LogPart", "column_numpy", "PROB_ATOL", "OUTCOME_COLUMNS", "outcome_limit",
           "OBSERVATION_COLUMNS", "OBSERVATION_LIMIT", "LOG_JSON_FIELDS"]

PROB_ATOL = 1e-6
"""How far a logged distribution's sum may be from 1, and its ``pscore`` from ``action_prob[action]``."""

OUTCOME_COLUMNS = ("reward", "revenue")
"""The real-valued outcome columns, each checked finite and within :func:`outcome_limit` when read (``click`` is a
bool; ``n_bought`` an int >= 0)."""


OBSERVATION_COLUMNS = ("profile", "history", "session", "candidates")
"""The real-valued observation columns a target policy reads, each checked finite and within
:data:`OBSERVATION_LIMIT` when read."""

OBSERVATION_LIMIT = 1e6
"""The largest magnitude an observation value (:data:`OBSERVATION_COLUMNS`) may have. Why: the env's observations
are O(1) to O(100) (profile and history in [-1, 1], session counters and log-prices, candidate features), and a
trained policy's network turns a value near float32's maximum into inf / NaN logits (a crash in torch); 1e6 leaves
served traffic room for larger counters."""

LOG_JSON_FIELDS = {"parts": int, "rows": int, "dims": dict, "obs_spec": dict}
"""The fields ``log.json`` must have and their JSON types (the writer writes them from the files; the loader checks
the files against them). Optional, checked when present: ``episodes`` (int: the contexts in the parts) and
``sha256`` (object: each part's, and truth part's, path in the folder -> SHA-256 hex)."""


def outcome_limit(n_rows: int) -> float:
    """The largest magnitude an outcome (:data:`OUTCOME_COLUMNS`) may have in a log of ``n_rows`` decisions:
    ``float32 max / n_rows`` (3.4e38 / n; 3.4e32 for a million rows).

    Why: the reward models (scikit-learn's ``HistGradientBoostingRegressor``, ``bundlerl.evaluation.ope.reward_model``)
    hold their gradients in float32 and sum them over the rows, so larger outcomes overflow there (inf / NaN figures
    and overflow warnings instead of estimates; a reward of 1e50 already does). The float64 sums of squares of the
    estimators' intervals overflow far later (sqrt(float64 max / n)), so this bound is the binding one."""
    return float(np.finfo(np.float32).max) / max(int(n_rows), 1)


def _feature_name(j: int) -> str:
    """Candidate feature ``j``'s name (``CANDIDATE_FEATURES`` order), with its index."""
    from bundlerl.candidates.features import CANDIDATE_FEATURES

    return f"{j} ({CANDIDATE_FEATURES[j]!r})" if 0 <= j < len(CANDIDATE_FEATURES) else str(j)


def column_numpy(col: "pa.ChunkedArray | pa.Array", tail: tuple = ()) -> np.ndarray:
    """A column as a numpy array (n, *tail): fixed-size lists are flattened and reshaped; nulls become False / NaN."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_fixed_size_list(arr.type):
        flat = arr.flatten().to_numpy(zero_copy_only=False)
        return flat.reshape(len(arr), *tail) if tail else flat.reshape(len(arr), -1)
    if arr.null_count:
        arr = arr.fill_null(False) if pa.types.is_boolean(arr.type) else arr.cast(pa.float64()).fill_null(np.nan)
    return arr.to_numpy(zero_copy_only=False)


def _shapes(d: Dims) -> dict[str, tuple]:
    return {"profile": (d.P,), "history": (d.P,), "session": (d.S,), "candidates": (d.K, d.F),
            "action_mask": (d.K,), "item_ids": (d.K, d.M), "action_prob": (d.K,), "bought_items": (d.M,),
            "expected_reward": (d.K,)}


@dataclass
class LogPart:
    """One part file read as numpy: ``columns`` name -> (n, ...) array (blocks reshaped: candidates (n, K, F),
    item_ids (n, K, M)); ``truth`` (n, K) expected rewards when asked for; ``path`` the file."""

    path: Path
    columns: dict
    truth: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(next(iter(self.columns.values())))

    def observation(self) -> dict[str, np.ndarray]:
        """The logged observations as the batched dict a :class:`bundlerl.agents.policy.Policy` takes (float32)."""
        from bundlerl.env.observation import CANDIDATES_KEY, HISTORY_KEY, MASK_KEY, PROFILE_KEY, SESSION_KEY

        c = self.columns
        return {PROFILE_KEY: c["profile"], HISTORY_KEY: c["history"], SESSION_KEY: c["session"],
                CANDIDATES_KEY: c["candidates"], MASK_KEY: c["action_mask"].astype(np.float32)}


class LogDataset:
    """A log folder, opened and checked (see the module docstring). Use :meth:`open`."""

    def __init__(self, folder: Path, parts: list[Path], dims: Dims, obs_spec: dict, n_rows: int, info: dict):
        self.folder, self.part_paths, self.dims, self.obs_spec, self.n_rows, self.info = (
            folder, parts, dims, obs_spec, n_rows, info)

    @property
    def spec_version(self) -> int:
        return int(self.obs_spec.get("version", -1))

    @property
    def has_truth(self) -> bool:
        return all((self.folder / TRUTH_DIR / p.name).is_file() for p in self.part_paths)

    @classmethod
    def open(cls, folder: str | Path, expect_spec: dict | None = None) -> "LogDataset":
        """Open the log in ``folder`` and check every part's header.

        :param expect_spec: the observation spec of the policies to evaluate
            (``bundlerl.env.observation.observation_spec``); a log of another spec raises.
        :raises LogError: no such folder, no part files, a part with missing columns or wrong types, parts that
            disagree, another schema version or observation spec.
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise LogError(f"{folder}: no such log folder; write one with 'bundlerl log ... --out {folder}'")
        if folder.name == TRUTH_DIR and any(folder.parent.glob(PART_GLOB)):
            raise LogError(f"{folder}: this is the {TRUTH_DIR}/ folder of the log {folder.parent} (ground truth, not "
                           f"decisions); pass its parent, {folder.parent}")
        parts = sorted(folder.glob(PART_GLOB))
        if not parts:
            raise LogError(f"{folder}: no {PART_GLOB} files in it: not a bundlerl log")
        if not (folder / LOG_JSON).is_file():
            raise LogError(f"{folder}: incomplete log: no {LOG_JSON} - the writer did not finish (interrupted?); "
                           "re-run bundlerl log into an empty folder")
        first = None
        n_rows = 0
        for p in parts:
            meta, rows = _check_header(p, "log")
            if first is None:
                first = meta
            elif (meta["dims"], meta["obs_spec"]) != (first["dims"], first["obs_spec"]):
                raise LogError(f"{p}: its sizes / observation spec ({meta['dims']}, version "
                               f"{meta['obs_spec'].get('version')}) differ from {parts[0].name}'s ({first['dims']}, "
                               f"version {first['obs_spec'].get('version')}): one log holds one observation spec; "
                               "write the other to its own folder")
            n_rows += rows
        if expect_spec is not None:
            _check_spec(parts[0], first["obs_spec"], expect_spec)
        info = _read_info(folder / LOG_JSON)
        _check_info(folder / LOG_JSON, info, parts, first, n_rows)
        _check_episodes(folder / LOG_JSON, info, parts)
        _check_sha256(folder, info)
        return cls(folder, parts, Dims(**first["dims"]), first["obs_spec"], n_rows, info)

    def check_spec(self, expect_spec: dict) -> None:
        """What :meth:`open`'s ``expect_spec`` checks, on a log already open (no second pass over its files).

        :raises LogError: the log's observation spec is not ``expect_spec``."""
        _check_spec(self.part_paths[0], self.obs_spec, expect_spec)

    def parts(self, columns: Sequence[str] | None = None, *, truth: bool = False) -> Iterator[LogPart]:
        """Each part in order, its rows checked (see the module docstring); ``columns`` limits what is read (the
        checked columns are always read). ``truth`` also reads the ground-truth part (LogError if missing)."""
        need = {"context_id", "step", "spec_version", "action", "action_mask", "action_prob", "pscore"}
        cols = list(COLUMNS) if columns is None else [c for c in COLUMNS if c in set(columns) | need]
        for c in set(columns or ()) - set(COLUMNS):
            raise LogError(f"{self.folder}: no column {c!r} in the log schema; columns: {', '.join(COLUMNS)}")
        shapes = _shapes(self.dims)
        for p in self.part_paths:
            table = pq.read_table(p)  # every column: each is checked, whichever the caller reads (terminated /
            # truncated have nothing to check, but a part is read whole anyway)
            data = {c: column_numpy(table.column(c), shapes.get(c, ())) for c in COLUMNS}
            _check_rows(p, data, self.dims, self.spec_version, self.n_rows)
            er = None
            if truth:
                tp = self.folder / TRUTH_DIR / p.name
                if not tp.is_file():
                    raise LogError(f"{tp}: no ground truth for {p.name} (logs of real traffic and logs written with "
                                   "--no-truth have none): evaluate without truth (truth=False)")
                _check_header(tp, "truth", self.dims)
                t = pq.read_table(tp)
                if t.num_rows != len(data["step"]) or not np.array_equal(column_numpy(t.column("step")), data["step"]):
                    raise LogError(f"{tp}: its rows do not match {p.name}'s (count or steps differ); regenerate the log")
                er = column_numpy(t.column("expected_reward"), (self.dims.K,))
                _check_truth(tp, er, data["action_mask"].astype(bool))
            yield LogPart(p, {c: data[c] for c in cols}, er)


def _read_info(path: Path) -> dict:
    """``log.json`` as a dict (LogError when it is not a JSON object)."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise LogError(f"{path}: not JSON ({exc}); re-run bundlerl log into an empty folder") from None
    if not isinstance(info, dict):
        raise LogError(f"{path}: holds a {type(info).__name__}, not a JSON object; re-run bundlerl log into an empty "
                       "folder")
    return info


def _check_spec(path: Path, got: dict, want: dict) -> None:
    """A log's observation spec ``got`` (read from ``path``) against the policy's ``want``; the message names what differs."""
    if got != want:
        diff = [k for k in sorted(set(got) | set(want)) if got.get(k) != want.get(k)]
        raise LogError(f"{path}: observation spec version {got.get('version')} ({', '.join(f'{k}={got.get(k)}' for k in diff)}) "
                       f"does not match the policy's, version {want.get('version')} "
                       f"({', '.join(f'{k}={want.get(k)}' for k in diff)}): evaluate policies on logs of their own "
                       "observation spec")


def _check_info(path: Path, info: dict, parts: list[Path], first: dict, n_rows: int) -> None:
    """``log.json``'s required fields (:data:`LOG_JSON_FIELDS`), then the files against what it says they are (dims,
    obs_spec, parts, rows)."""
    redo = "re-run bundlerl log into an empty folder"
    for key, kind in LOG_JSON_FIELDS.items():
        if key not in info:
            raise LogError(f"{path}: no {key!r} field (a log.json of 'bundlerl log' has {', '.join(LOG_JSON_FIELDS)}): "
                           f"it was edited or written by something else; {redo}")
        v = info[key]
        if not isinstance(v, kind) or isinstance(v, bool) or (kind is int and v < 0):
            raise LogError(f"{path}: field {key!r} is {v!r}; it must be a{'n integer >= 0' if kind is int else ' JSON object'}"
                           f"; {redo}")
    bad = {k: v for k, v in info["dims"].items() if isinstance(v, bool) or not isinstance(v, int)}
    if bad:
        k, v = next(iter(bad.items()))
        raise LogError(f"{path}: field 'dims' has {k}={v!r}; each size must be an integer; {redo}")
    if info["dims"] != first["dims"]:
        got, have = info["dims"], first["dims"]
        diff = [k for k in have if got.get(k) != have[k]] or list(have)
        said = ", ".join(f"{k}={got.get(k)}" for k in diff)
        held = ", ".join(f"{k}={have.get(k)}" for k in diff)
        raise LogError(f"{path}: says {said} but the part files have {held}: log.json describes another log; {redo}")
    if info["obs_spec"] != first["obs_spec"]:
        raise LogError(f"{path}: its observation spec differs from the part files' (version "
                       f"{first['obs_spec'].get('version')}): log.json describes another log; {redo}")
    if info["parts"] != len(parts):
        raise LogError(f"{path}: says {info['parts']} part file(s) but the folder holds {len(parts)} "
                       f"({parts[0].name} ... {parts[-1].name}): a part was added or removed after writing; "
                       f"remove the foreign part(s) or {redo}")
    if info["rows"] != n_rows:
        raise LogError(f"{path}: says {info['rows']} decisions but the part files hold {n_rows}: a part was "
                       f"replaced after writing; {redo}")


def _check_episodes(path: Path, info: dict, parts: list[Path]) -> None:
    """``log.json``'s ``episodes`` (when it has one) against the contexts in the parts (a context never spans two)."""
    if "episodes" not in info:
        return
    said = info["episodes"]
    if isinstance(said, bool) or not isinstance(said, int) or said < 1:
        raise LogError(f"{path}: field 'episodes' is {said!r}; it must be an integer >= 1; re-run bundlerl log into "
                       "an empty folder")
    held = sum(len(np.unique(pq.read_table(p, columns=["context_id"]).column("context_id").to_numpy())) for p in parts)
    if said != held:
        raise LogError(f"{path}: says {said} episodes but the part files hold {held} contexts: log.json describes "
                       "another log; re-run bundlerl log into an empty folder")


def _check_sha256(folder: Path, info: dict) -> None:
    """Each file's SHA-256 against ``log.json``'s ``sha256`` (when it has one: written since the checksums were
    added); catches bytes changed after writing that still decode (a damaged disk or copy)."""
    from bundlerl.utils.hashing import file_sha256

    sums = info.get("sha256")
    if sums is None:
        return
    if not isinstance(sums, dict):
        raise LogError(f"{folder / LOG_JSON}: field 'sha256' is {type(sums).__name__}; it must be an object of file "
                       "-> SHA-256; re-run bundlerl log into an empty folder")
    names = {p.name for p in folder.glob(PART_GLOB)} | {f"{TRUTH_DIR}/{p.name}" for p in (folder / TRUTH_DIR).glob(PART_GLOB)}
    for name in sorted(names):
        if name not in sums:
            raise LogError(f"{folder / name}: not in {LOG_JSON}'s checksums: a file added after writing; remove it or "
                           "re-run bundlerl log into an empty folder")
        if file_sha256(folder / name) != sums[name]:
            raise LogError(f"{folder / name}: its SHA-256 differs from the one {LOG_JSON} recorded when it was written: "
                           "the file changed or was damaged since; restore it from a copy or re-run bundlerl log into "
                           "an empty folder")


def _check_truth(path: Path, er: np.ndarray, mask: np.ndarray) -> None:
    """Ground-truth expected rewards: finite on every valid candidate (NaN only on masked ones), never inf."""
    bad = np.flatnonzero((~np.isfinite(er) & mask).any(axis=1) | np.isinf(er).any(axis=1))
    if bad.size:
        r = int(bad[0])
        k = int(np.flatnonzero(~np.isfinite(er[r]) & (mask[r] | np.isinf(er[r])))[0])
        raise _fail(path, r, "expected_reward", f"candidate {k}'s expected reward is {er[r, k]}: ground truth must be "
                    "finite on valid candidates (NaN only on masked ones); regenerate the log")


def _check_header(path: Path, kind: str, dims: Dims | None = None) -> tuple[dict, int]:
    """(metadata, row count) of a part file after checking its columns and types against the schema."""
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise LogError(f"{path}: not a readable Parquet file ({exc}); delete or regenerate it") from None
    schema = pf.schema_arrow
    raw = (schema.metadata or {}).get(META_KEY)
    if raw is None:
        raise LogError(f"{path}: no {META_KEY.decode()!r} metadata: not written by bundlerl's log writer")
    try:
        meta = json.loads(raw)
        d = Dims(**meta["dims"])
    except (ValueError, KeyError, TypeError) as exc:
        raise LogError(f"{path}: damaged {META_KEY.decode()!r} metadata ({exc}); regenerate the log") from None
    if meta.get("schema_version") != LOG_SCHEMA_VERSION:
        raise LogError(f"{path}: log schema version {meta.get('schema_version')}; this bundlerl reads version "
                       f"{LOG_SCHEMA_VERSION}: regenerate the log with this version")
    if dims is not None and d != dims:
        raise LogError(f"{path}: sizes {d} differ from the log's {dims}")
    want = (log_schema if kind == "log" else truth_schema)(d, meta.get("obs_spec", {}))
    have = {f.name: f.type for f in schema}
    for f in want:
        if f.name not in have:
            raise LogError(f"{path}: column {f.name!r} is missing (the schema, version {LOG_SCHEMA_VERSION}, has "
                           f"{', '.join(want.names)})")
        if have[f.name] != f.type:
            raise LogError(f"{path}: column {f.name!r} has type {have[f.name]}; the schema says {f.type}")
    return meta, pf.metadata.num_rows


def _fail(path: Path, row: int, column: str, what: str) -> LogError:
    return LogError(f"{path}: row {row}, column {column!r}: {what}")


def _check_rows(path: Path, c: dict, d: Dims, spec_version: int, log_rows: int | None = None) -> None:
    """Row-level checks of one part (see the module docstring); ``log_rows``: the whole log's rows, which bound the
    outcomes' magnitude (:func:`outcome_limit`; None: only finite). Raises LogError at the first bad row."""
    n = len(c["step"])
    if n == 0:
        return
    bad = np.flatnonzero(c["spec_version"] != spec_version)
    if bad.size:
        raise _fail(path, int(bad[0]), "spec_version", f"observation spec version {int(c['spec_version'][bad[0]])}, "
                    f"the file's metadata says {spec_version}: one part holds one observation spec")
    a = c["action"]
    bad = np.flatnonzero((a < 0) | (a >= d.K))
    if bad.size:
        raise _fail(path, int(bad[0]), "action", f"action {int(a[bad[0]])} is outside [0, K={d.K})")
    p = c["action_prob"]
    bad = np.flatnonzero(~np.isfinite(p).all(axis=1) | (p < 0).any(axis=1))
    if bad.size:
        raise _fail(path, int(bad[0]), "action_prob", f"probabilities {p[bad[0]].tolist()} are not all finite and >= 0")
    s = p.sum(axis=1)
    bad = np.flatnonzero(np.abs(s - 1.0) > PROB_ATOL)
    if bad.size:
        raise _fail(path, int(bad[0]), "action_prob", f"the logging policy's distribution sums to {s[bad[0]]:.8g}, "
                    "not 1: log the full normalised distribution over the K candidates")
    ps = c["pscore"]
    bad = np.flatnonzero(~np.isfinite(ps))
    if bad.size:
        raise _fail(path, int(bad[0]), "pscore", f"propensity {ps[bad[0]]} of the logged action must be finite (a "
                    "number, not NaN or inf): log action_prob[action]")
    bad = np.flatnonzero(~(ps > 0))
    if bad.size:
        raise _fail(path, int(bad[0]), "pscore", f"propensity {ps[bad[0]]} of the logged action: it must be > 0 (an "
                    "action the logging policy could not take; log with exploration, e.g. --epsilon or --floor)")
    m = c["action_mask"].astype(bool)
    bad = np.flatnonzero(~m[np.arange(n), a])
    if bad.size:
        r = int(bad[0])
        raise _fail(path, r, "action", f"action {int(a[r])} is a masked (invalid) candidate: action_mask "
                    f"{m[r].astype(int).tolist()}; a logger shows valid candidates only")
    bad = np.flatnonzero((p * ~m > 0).any(axis=1))
    if bad.size:
        r = int(bad[0])
        k = int(np.flatnonzero(p[r] * ~m[r] > 0)[0])
        raise _fail(path, r, "action_prob", f"probability {p[r, k]:.8g} on masked candidate {k} (action_mask "
                    f"{m[r].astype(int).tolist()}): log a distribution with no mass on masked candidates")
    chosen = p[np.arange(n), a]
    bad = np.flatnonzero(np.abs(ps - chosen) > PROB_ATOL)
    if bad.size:
        r = int(bad[0])
        raise _fail(path, r, "pscore", f"propensity {ps[r]:.8g} differs from action_prob[action={int(a[r])}] = "
                    f"{chosen[r]:.8g}")
    # steps: per context 0, 1, 2, ... in row order (stable sort keeps row order within a context)
    ctx, step = c["context_id"], c["step"]
    order = np.argsort(ctx, kind="stable")
    cs, ss = ctx[order], step[order]
    first = np.r_[True, cs[1:] != cs[:-1]]
    expect = np.where(first, 0, np.r_[0, ss[:-1] + 1])
    bad = np.flatnonzero(ss != expect)
    if bad.size:
        r = int(order[bad[0]])
        raise _fail(path, r, "step", f"context {int(ctx[r])} has step {int(step[r])} where step {int(expect[bad[0]])} "
                    "was expected: a context's rows must be in step order 0, 1, 2, ... within one part file")
    for col in OUTCOME_COLUMNS:  # the outcomes the estimators regress on and average: NaN / inf would poison them
        if col not in c:
            continue
        v = np.asarray(c[col], np.float64)
        bad = np.flatnonzero(~np.isfinite(v))
        if bad.size:
            raise _fail(path, int(bad[0]), col, f"{col} {v[bad[0]]} must be finite (a number, not NaN or inf): "
                        "fix the row or drop its context from the log")
        limit = np.inf if log_rows is None else outcome_limit(log_rows)
        bad = np.flatnonzero(np.abs(v) > limit)
        if bad.size:
            raise _fail(path, int(bad[0]), col, f"{col} {v[bad[0]]:.6g} is too large: in a log of {log_rows:,} rows an "
                        f"outcome's magnitude must be at most {limit:.3g} (float32 max / rows; the reward models' "
                        "sums would overflow); rescale the column (e.g. to thousands) or fix the row")
    if "n_bought" in c:
        nb = c["n_bought"]
        bad = np.flatnonzero((nb < 0) | (nb > d.M))
        if bad.size:
            raise _fail(path, int(bad[0]), "n_bought", f"{int(nb[bad[0]])} items bought: it must be in [0, M={d.M}] "
                        "(the shown bundle's items); fix the row or drop its context from the log")
    _check_items(path, c, d, n, a)
    for col in OBSERVATION_COLUMNS:  # what a target policy reads: NaN / inf / huge values crash its network
        if col not in c:
            continue
        f = c[col].reshape(n, -1)
        bad = np.flatnonzero(~(np.abs(f) <= OBSERVATION_LIMIT).all(axis=1))
        if bad.size:
            r = int(bad[0])
            j = int(np.flatnonzero(~(np.abs(f[r]) <= OBSERVATION_LIMIT))[0])
            where = (f"candidate {j // d.F}'s feature {_feature_name(j % d.F)}" if col == "candidates"
                     else f"{col}[{j}]")
            raise _fail(path, r, col, f"{where} is {float(f[r, j]):.6g}: observations must be finite and at most "
                        f"{OBSERVATION_LIMIT:.0e} in magnitude; fix the row or drop its context from the log")


def _check_items(path: Path, c: dict, d: Dims, n: int, a: np.ndarray) -> None:
    """Item ids >= 0 or the -1 padding; each bought item the shown bundle's item in its slot; ``n_bought`` the
    count of bought slots."""
    for col in ("item_ids", "bought_items"):
        if col not in c:
            continue
        v = c[col].reshape(n, -1)
        bad = np.flatnonzero((v < -1).any(axis=1))
        if bad.size:
            r = int(bad[0])
            raise _fail(path, r, col, f"item id {int(v[r][v[r] < -1][0])}: ids are catalogue indices >= 0, or -1 "
                        "for an empty slot; fix the row or drop its context from the log")
    if "bought_items" not in c or "item_ids" not in c:
        return
    b, shown = c["bought_items"], c["item_ids"][np.arange(n), a]
    bad = np.flatnonzero(((b != -1) & (b != shown)).any(axis=1))
    if bad.size:
        r = int(bad[0])
        raise _fail(path, r, "bought_items", f"bought {b[r].tolist()} from the shown bundle {shown[r].tolist()}: a "
                    "bought item is the shown bundle's item in its slot, else -1; fix the row")
    if "n_bought" in c:
        bad = np.flatnonzero((b != -1).sum(axis=1) != c["n_bought"])
        if bad.size:
            r = int(bad[0])
            raise _fail(path, r, "n_bought", f"{int(c['n_bought'][r])} items bought but bought_items "
                        f"{b[r].tolist()} holds {int((b[r] != -1).sum())}: fix the row")
