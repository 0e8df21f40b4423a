"""The service's append-only journal of impressions and feedback, and its conversion to the offline-evaluation log.

Writing (:class:`Journal`). Each worker process appends to its own file ``LOG_DIR/journal-<pid>-<start ns>.jsonl``
(so processes never interleave), one JSON object per line, written with a single ``os.write`` on an ``O_APPEND``
descriptor **before** the HTTP response is sent: an acknowledged record is in the file (the kernel's page cache) and
survives the process being killed; with ``fsync=True`` it is also on disk before the response (survives power loss,
at about a millisecond per request). A kill can only cut the line being written, which was not acknowledged:
:func:`read_journal` drops a last line without its newline and refuses (:class:`JournalError`) any damaged line
before it, so the log is never silently corrupted.

Records: ``{"type": "impression", "impression_id", "time", "user", "model_version", "k", "shown", "action",
"action_prob", "pscore", "profile", "history", "session", "candidates", "action_mask", "item_ids"}`` (the observation
and the full action distribution: what off-policy evaluation recomputes another policy on) and ``{"type":
"feedback", "impression_id", "time", "click", "bought", "revenue"}``. User ids are stored only as salted hashes
(:func:`salted_hash`; the salt from ``BUNDLERL_USER_SALT`` or a random one kept in ``LOG_DIR/salt``, mode 0600).

Conversion (:func:`journal_to_log`): impressions joined with their feedback (the last one wins; none: no click, no
purchase) become rows of the offline-evaluation schema (``bundlerl.evaluation.logs.schema``): each impression is
its own context (``step`` 0), ``action`` its slot-1 candidate, ``reward`` the env's reward of the feedback under the
model's reward weights, ``terminated`` / ``truncated`` null (unknown for served traffic).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import orjson  # at import, not per record: a server without it fails at start, not with a 500 per request

from bundlerl.utils.errors import BundlerlError

__all__ = ["Journal", "JournalError", "read_journal", "salted_hash", "load_salt", "journal_to_log"]

SALT_ENV = "BUNDLERL_USER_SALT"


class JournalError(BundlerlError):
    """A journal line that is damaged (not the torn last line of a killed writer); the message names file and line."""


def load_salt(log_dir: str | os.PathLike) -> bytes:
    """The user-id salt: ``$BUNDLERL_USER_SALT``, else ``LOG_DIR/salt`` (created once, 32 random bytes, mode 0600;
    workers racing to create it agree on the first one written)."""
    env = os.environ.get(SALT_ENV)
    if env:
        return env.encode()
    path = Path(log_dir) / "salt"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    except FileExistsError:
        pass
    for _ in range(100):  # another worker may be between its create and its write
        text = path.read_text().strip()
        if text:
            return text.encode()
        time.sleep(0.01)
    raise JournalError(f"{path} is empty; remove it (a new salt is made) or set {SALT_ENV}")


def salted_hash(user_id: str | None, salt: bytes) -> str | None:
    """32 hex of sha256(salt + user id); None for no user id."""
    if user_id is None:
        return None
    return hashlib.sha256(salt + b"\0" + user_id.encode("utf-8")).hexdigest()[:32]


def _line(record: dict[str, Any]) -> bytes:
    """One record as one JSON line (orjson: numpy arrays and scalars written as JSON numbers without a ``tolist``
    pass; several times faster than ``json.dumps`` on an impression's observation). Non-finite floats, which no
    record holds, would be written as ``null``."""
    return orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE)


class Journal:
    """One process's append-only journal in ``log_dir`` (see the module docstring)."""

    def __init__(self, log_dir: str | os.PathLike, *, fsync: bool = False):
        self.dir = Path(log_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / f"journal-{os.getpid()}-{time.time_ns()}.jsonl"
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.fsync = fsync

    def append(self, record: dict[str, Any]) -> None:
        """Append one record as one line with one write (then fsync when asked); returns once it is in the file."""
        view = memoryview(_line(record))
        while view:  # os.write may write less than asked (signals, pipes): finish the line
            n = os.write(self.fd, view)
            view = view[n:]
        if self.fsync:
            os.fsync(self.fd)

    def close(self) -> None:
        os.close(self.fd)


def read_journal(log_dir: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Every record of every journal in ``log_dir`` (file by file, in order). A last line without its newline (a
    killed writer's) is dropped; :raises JournalError: any other line that is not a JSON object."""
    for path in sorted(Path(log_dir).glob("journal-*.jsonl")):
        data = path.read_bytes()
        lines = data.split(b"\n")
        complete, tail = lines[:-1], lines[-1]  # tail: b"" when the file ends with a newline
        for n, raw in enumerate(complete, 1):
            try:
                rec = json.loads(raw)
                if not isinstance(rec, dict):
                    raise ValueError("not an object")
            except ValueError as err:
                raise JournalError(f"{path}, line {n}: damaged record ({err}); the journal was changed by something "
                                   "other than the server") from None
            yield rec
        del tail  # unacknowledged: the writer was killed mid-line


def journal_to_log(log_dir: str | os.PathLike, out: str | os.PathLike, artifacts, *,
                   truth: "dict[str, np.ndarray] | None" = None) -> int:
    """Write the impressions of the journals in ``log_dir`` (joined with their feedback) to the offline-evaluation
    log folder ``out`` (Parquet parts, ``bundlerl.evaluation.logs``); returns the number of rows written.

    :param truth: SIMULATOR TRUTH, for validation only (:mod:`bundlerl.serving.shoppers`): impression id -> (K,)
        expected reward of each candidate for the shopper's hidden state, written to the log's ``truth/``; then every
        impression needs one (a LogError otherwise).
    """
    from bundlerl.env.reward import reward
    from bundlerl.evaluation.logs.schema import Dims
    from bundlerl.evaluation.logs.writer import LogWriter
    from bundlerl.serving.export import model_observation_spec

    impressions: dict[str, dict] = {}
    feedback: dict[str, dict] = {}
    for rec in read_journal(log_dir):
        if rec.get("type") == "impression" and rec.get("action", -1) >= 0:
            impressions[rec["impression_id"]] = rec
        elif rec.get("type") == "feedback":
            feedback[rec["impression_id"]] = rec
    cfg = artifacts.config
    spec = model_observation_spec(cfg)
    dims = Dims(cfg.profile_dim, len(spec["session_features"]), cfg.K, len(spec["candidate_features"]), cfg.K_max)
    if not impressions:
        return 0
    recs = list(impressions.values())
    n = len(recs)
    rows: dict[str, np.ndarray] = {
        "context_id": np.arange(n, dtype=np.int64), "step": np.zeros(n, np.int32),
        "spec_version": np.full(n, spec["version"], np.int16),
    }
    for key in ("profile", "history", "session", "candidates", "action_mask", "item_ids", "action_prob"):
        rows[key] = np.array([r[key] for r in recs])
    rows["action_mask"] = rows["action_mask"] > 0
    rows["action"] = np.array([r["action"] for r in recs], np.int32)
    rows["pscore"] = np.array([r["pscore"] for r in recs], np.float64)
    click = np.zeros(n, bool)
    n_bought = np.zeros(n, np.int32)
    revenue = np.zeros(n, np.float64)
    bought = np.full((n, cfg.K_max), -1, np.int64)
    for i, r in enumerate(recs):
        fb = feedback.get(r["impression_id"])
        if fb is None:
            continue
        shown = r["item_ids"][r["action"]]
        hit = sorted({pos for pos in fb["bought"] if pos in shown})  # an id listed twice is one item bought
        click[i] = bool(fb["click"]) or bool(hit)
        n_bought[i] = len(hit)
        revenue[i] = float(fb["revenue"])
        for slot, pos in enumerate(shown):
            if pos >= 0 and pos in hit:
                bought[i, slot] = pos
    rows.update(click=click, n_bought=n_bought, revenue=revenue, bought_items=bought,
                reward=reward(click, n_bought, revenue, cfg.reward_weights(), artifacts.mean_price))
    expected = None
    if truth is not None:
        from bundlerl.evaluation.logs.schema import LogError

        missing = [r["impression_id"] for r in recs if r["impression_id"] not in truth]
        if missing:
            raise LogError(f"no ground truth for impression {missing[0]!r} ({len(missing)} in all)")
        expected = np.array([truth[r["impression_id"]] for r in recs], np.float64)
    with LogWriter(out, dims, spec, truth=truth is not None) as w:
        w.write(rows, expected)
    return n
