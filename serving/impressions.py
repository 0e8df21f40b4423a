"""Impression ids: unique across workers and restarts, and signed, so that any worker tells the service's own ids
from any other without shared state.

An id is ``<stream>-<time ns>-<64 random bits>[-<signature>]`` in lower-case hex: the recommender's stream (the
worker's process id), the wall clock in nanoseconds and a draw of its seeded exploration generator; the service
appends the first 64 bits of ``HMAC-SHA256(key, id)`` with a key derived from the journal's salt
(:func:`impression_key`; the salt is shared by every worker of a log folder and kept across restarts). ``POST
/v1/feedback`` answers 404 for an id whose signature does not verify (:func:`is_issued`): one no worker of this
service (with this log folder) issued, mistyped, or made up. A signed id is journaled before its answer is sent, so
a verified id names a journaled impression unless the worker died between the two (then the impression was never
answered).
"""

from __future__ import annotations

import hashlib
import hmac

import numpy as np

__all__ = ["impression_key", "new_impression_id", "is_issued"]

_SIG_HEX = 16


def impression_key(salt: bytes) -> bytes:
    """The signing key of impression ids derived from the journal salt (a key of its own, not the user-id salt)."""
    return hmac.new(salt, b"bundlerl impression ids v1", hashlib.sha256).digest()


def _signature(body: str, key: bytes) -> str:
    return hmac.new(key, body.encode("ascii"), hashlib.sha256).hexdigest()[:_SIG_HEX]


def new_impression_id(stream: int, time_ns: int, rng: np.random.Generator, key: bytes | None = None) -> str:
    """A new impression id (see the module docstring); signed when ``key`` is given."""
    body = f"{int(stream):x}-{int(time_ns):x}-{int(rng.integers(0, 2**63)):016x}"
    return body if key is None else f"{body}-{_signature(body, key)}"


def is_issued(impression_id: str, key: bytes) -> bool:
    """Whether ``impression_id`` carries a valid signature under ``key`` (constant-time comparison)."""
    body, sep, sig = impression_id.rpartition("-")
    if not sep or len(sig) != _SIG_HEX or body.count("-") != 2:
        return False
    try:
        body.encode("ascii")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(sig, _signature(body, key))
