"""Recommender-side user vectors: recency-weighted event history and its blend with the profile.

Everything here sees only observable data (events and item embeddings), never simulator
truth. All functions are batched over users (no per-user Python loop) and numpy only.

Definitions (``E`` = item embeddings, ``W[kind]`` = event weights, ``h`` = half-life)::

    state_u   = sum_{events e of u} W[kind_e] * 0.5 ** ((now_u - t_e) / h) * E[item_e]
    history_u = state_u / ||state_u||      (zero vector when state_u = 0, e.g. no events)
    blend_u   = normalize((1 - alpha_u) * profile_u + alpha_u * history_u)

``decay_and_add`` is the same sum kept incrementally (the env's per-step update): applying it
once per event time with ``decay = weights.decay(dt)`` reproduces ``state``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, NamedTuple

import numpy as np

from bundlerl.encoders.base import EncoderError

__all__ = [
    "VIEW",
    "CLICK",
    "PURCHASE",
    "EventWeights",
    "Events",
    "history_state",
    "history_vectors",
    "decay_and_add",
    "normalize_rows",
    "blend",
]

VIEW, CLICK, PURCHASE = 0, 1, 2
_EPS = 1e-12


@dataclass(frozen=True)
class EventWeights:
    """How much each kind of event counts in a user's history vector, and how fast it fades."""

    view: float = 0.2
    """Weight of an impression / view (kind 0); >= 0."""
    click: float = 1.0
    """Weight of a click (kind 1); >= 0."""
    purchase: float = 3.0
    """Weight of a purchase (kind 2); >= 0."""
    half_life: float = 20.0
    """Age (in the units of the event times: env steps or seconds) at which an event counts half;
    > 0, ``math.inf`` for no decay."""

    def __post_init__(self) -> None:
        for name in ("view", "click", "purchase"):
            v = getattr(self, name)
            if not isinstance(v, (int, float, np.floating, np.integer)) or not math.isfinite(v) or v < 0:
                raise EncoderError(f"EventWeights.{name} must be a finite number >= 0, got {v!r}")
        if self.view == self.click == self.purchase == 0:
            raise EncoderError("EventWeights: at least one of view, click, purchase must be > 0")
        h = self.half_life
        if not isinstance(h, (int, float, np.floating, np.integer)) or math.isnan(h) or h <= 0:
            raise EncoderError(f"EventWeights.half_life must be > 0 (math.inf for no decay), got {h!r}")

    def as_array(self) -> np.ndarray:
        """(3,) float64 weights indexed by kind: [view, click, purchase]."""
        return np.array([self.view, self.click, self.purchase], dtype=np.float64)

    def decay(self, dt: float | np.ndarray) -> float | np.ndarray:
        """Factor 0.5 ** (dt / half_life) by which a state fades over ``dt`` time units (dt >= 0)."""
        dt = np.asarray(dt, dtype=np.float64)
        if np.any(np.isnan(dt)) or np.any(dt < 0):
            raise EncoderError("decay(dt) needs dt >= 0 and not NaN")
        out = np.power(0.5, dt / self.half_life)
        return float(out) if out.ndim == 0 else out


class Events(NamedTuple):
    """Parallel event arrays, one entry per event (m events)."""

    user: np.ndarray
    """(m,) int user index in [0, n_users)."""
    item: np.ndarray
    """(m,) int item index in [0, n_items)."""
    kind: np.ndarray
    """(m,) int 0 view, 1 click, 2 purchase."""
    time: np.ndarray
    """(m,) float event time (same units as ``EventWeights.half_life``), not NaN."""


def _as_events(events: Events | Mapping[str, np.ndarray] | tuple) -> Events:
    if isinstance(events, Mapping):
        try:
            events = Events(events["user"], events["item"], events["kind"], events["time"])
        except KeyError as err:
            raise EncoderError(f"events mapping needs keys user, item, kind, time; missing {err}") from None
    elif not isinstance(events, Events):
        if len(events) != 4:
            raise EncoderError("events must be (user, item, kind, time) parallel arrays")
        events = Events(*events)
    return events


def _check_int(name: str, a: np.ndarray, m: int) -> np.ndarray:
    a = np.asarray(a)
    if a.shape != (m,):
        raise EncoderError(f"events.{name} must have shape ({m},) like events.user, got {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise EncoderError(f"events.{name} must be integers, got dtype {a.dtype}")
    return a.astype(np.intp, copy=False)


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` (..., d) scaled to unit L2 norm as float32; all-zero rows stay exactly zero.

    Scale-free: a row of tiny entries (old events decayed to 1e-300) still gets its direction,
    because each row is first divided by its largest absolute entry.
    """
    x = np.asarray(x, dtype=np.float64)
    peak = np.max(np.abs(x), axis=-1, keepdims=True) if x.shape[-1] else np.zeros(x.shape[:-1] + (1,))
    y = np.divide(x, peak, out=np.zeros_like(x), where=peak > 0)
    norm = np.linalg.norm(y, axis=-1, keepdims=True)
    out = np.divide(y, norm, out=np.zeros_like(y), where=norm > 0)
    return out.astype(np.float32)


def history_state(
    events: Events | Mapping[str, np.ndarray] | tuple,
    item_embeddings: np.ndarray,
    n_users: int,
    weights: EventWeights,
    now: float | np.ndarray | None = None,
) -> np.ndarray:
    """Unnormalised history sums ``state`` (n_users, d) float64; see the module docstring.

    Same arguments and errors as :func:`history_vectors`.
    """
    user, item, kind, t = _as_events(events)
    user = np.asarray(user)
    m = user.shape[0] if user.ndim == 1 else -1
    if user.ndim != 1:
        raise EncoderError(f"events.user must be 1-D, got shape {user.shape}")
    user = _check_int("user", user, m)
    item = _check_int("item", item, m)
    kind = _check_int("kind", kind, m)
    t = np.asarray(t, dtype=np.float64)
    if t.shape != (m,):
        raise EncoderError(f"events.time must have shape ({m},) like events.user, got {t.shape}")
    emb = np.asarray(item_embeddings)
    if emb.ndim != 2:
        raise EncoderError(f"item_embeddings must be (n_items, d), got shape {emb.shape}")
    if not isinstance(n_users, (int, np.integer)) or n_users < 0:
        raise EncoderError(f"n_users must be an int >= 0, got {n_users!r}")
    if not isinstance(weights, EventWeights):
        raise EncoderError(f"weights must be an EventWeights, got {type(weights).__name__}")
    n_items, d = emb.shape
    if m and (user.min() < 0 or user.max() >= n_users):
        raise EncoderError(f"events.user out of range [0, {n_users}): min {user.min()}, max {user.max()}")
    if m and (item.min() < 0 or item.max() >= n_items):
        raise EncoderError(f"events.item out of range [0, {n_items}) of item_embeddings: min {item.min()}, max {item.max()}")
    if m and (kind.min() < 0 or kind.max() > 2):
        bad = np.unique(kind[(kind < 0) | (kind > 2)])
        raise EncoderError(f"unknown event kinds {bad.tolist()}; use 0 view, 1 click, 2 purchase")
    if np.isnan(t).any():
        raise EncoderError(f"events.time holds NaN at index {int(np.flatnonzero(np.isnan(t))[0])}")

    if now is None:
        # Each user's own latest event: its newest event counts fully.
        now_u = np.full(n_users, -np.inf)
        np.maximum.at(now_u, user, t)
    else:
        now_u = np.broadcast_to(np.asarray(now, dtype=np.float64), (n_users,))
        if np.isnan(now_u).any():
            raise EncoderError("now holds NaN")
    age = now_u[user] - t
    if m and age.min() < 0:
        raise EncoderError(f"event at index {int(np.argmin(age))} is later than `now` for its user; pass a later now")
    w = weights.as_array()[kind] * np.power(0.5, age / weights.half_life)

    state = np.zeros((n_users, d), dtype=np.float64)
    if m:
        # Sort by user and sum each user's run with reduceat: vectorised, no per-user loop.
        order = np.argsort(user, kind="stable")
        us = user[order]
        contrib = emb[item[order]].astype(np.float64) * w[order, None]
        starts = np.flatnonzero(np.r_[True, us[1:] != us[:-1]])
        state[us[starts]] = np.add.reduceat(contrib, starts, axis=0)
    return state


def history_vectors(
    events: Events | Mapping[str, np.ndarray] | tuple,
    item_embeddings: np.ndarray,
    n_users: int,
    weights: EventWeights,
    now: float | np.ndarray | None = None,
) -> np.ndarray:
    """Each user's recency- and kind-weighted mean direction of the items they interacted with.

    :param events: :class:`Events` (or a mapping / 4-tuple) of parallel (m,) arrays user, item,
        kind (0 view, 1 click, 2 purchase), time.
    :param item_embeddings: (n_items, d) item vectors (normally unit norm).
    :param n_users: number of users N; user ids must lie in [0, N).
    :param weights: kind weights and half-life.
    :param now: time at which ages are measured: a scalar, an (N,) array, or None for each
        user's own latest event time. Events later than ``now`` are an error.
    :returns: (N, d) float32; unit rows, except **zero rows for users with no events** (or
        whose weighted sum vanishes, e.g. only zero-weight kinds).
    :raises EncoderError: unknown kinds, user / item ids out of range, NaN times, shape errors.
    """
    return normalize_rows(history_state(events, item_embeddings, n_users, weights, now))


def decay_and_add(
    state: np.ndarray,
    item_vecs: np.ndarray,
    weights: np.ndarray,
    decay: float | np.ndarray,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """One incremental history step for N users: ``state * decay + sum_k weights * item_vecs``.

    :param state: (N, d) running unnormalised sums (as from :func:`history_state`).
    :param item_vecs: (N, d) one item per user, or (N, k, d) k items per user (e.g. a bundle).
    :param weights: (N,) per-user event weight (0 = no event this step), or (N, k) per item.
    :param decay: scalar or (N,) factor in [0, 1], e.g. ``EventWeights.decay(dt)``.
    :param out: optional array to write into (may be ``state`` itself, for in-place updates).
    :returns: the new (N, d) state (float dtype of ``state``); use :func:`normalize_rows` for vectors.
    :raises EncoderError: shape mismatches, decay outside [0, 1], non-finite weights.
    """
    state = np.asarray(state)
    if state.ndim != 2:
        raise EncoderError(f"state must be (N, d), got shape {state.shape}")
    n, d = state.shape
    vecs = np.asarray(item_vecs)
    if vecs.ndim == 2:
        vecs = vecs[:, None, :]
    if vecs.ndim != 3 or vecs.shape[0] != n or vecs.shape[2] != d:
        raise EncoderError(f"item_vecs must be ({n}, {d}) or ({n}, k, {d}), got shape {np.shape(item_vecs)}")
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim == 1:
        w = w[:, None]
    if w.shape not in ((n, 1), (n, vecs.shape[1])):
        raise EncoderError(f"weights must be ({n},) or ({n}, {vecs.shape[1]}), got shape {np.shape(weights)}")
    if not np.isfinite(w).all():
        raise EncoderError("weights must be finite")
    dec = np.asarray(decay, dtype=np.float64)
    if dec.ndim not in (0, 1) or (dec.ndim == 1 and dec.shape != (n,)):
        raise EncoderError(f"decay must be a scalar or shape ({n},), got shape {dec.shape}")
    if np.isnan(dec).any() or (dec < 0).any() or (dec > 1).any():
        raise EncoderError("decay must lie in [0, 1]")
    added = np.einsum("nk,nkd->nd", np.broadcast_to(w, vecs.shape[:2]), vecs)
    scale = dec[:, None] if dec.ndim == 1 else dec
    if out is None:
        out = np.empty_like(state, dtype=np.result_type(state.dtype, np.float32))
    np.multiply(state, scale, out=out, casting="unsafe")
    out += added.astype(out.dtype, copy=False)
    return out


def blend(profile: np.ndarray, history: np.ndarray, alpha: float | np.ndarray) -> np.ndarray:
    """User query vectors mixing the profile-text embedding with the history vector.

    :param profile: (N, d) profile embeddings (unit norm).
    :param history: (N, d) history vectors (unit norm, or zero for no history).
    :param alpha: weight of the history, scalar or (N,), each in [0, 1]; 0 gives the profile,
        1 gives the history.
    :returns: (N, d) float32 unit rows ``normalize((1 - alpha) * profile + alpha * history)``;
        where history is zero (or the mix cancels out) the normalised profile is returned, and a
        row is zero only when both inputs are.
    :raises EncoderError: shape mismatch, alpha outside [0, 1] or NaN.
    """
    p = np.asarray(profile, dtype=np.float64)
    h = np.asarray(history, dtype=np.float64)
    if p.ndim != 2 or h.shape != p.shape:
        raise EncoderError(f"profile and history must both be (N, d); got {p.shape} and {h.shape}")
    a = np.asarray(alpha, dtype=np.float64)
    if a.ndim not in (0, 1) or (a.ndim == 1 and a.shape != (p.shape[0],)):
        raise EncoderError(f"alpha must be a scalar or shape ({p.shape[0]},), got shape {a.shape}")
    if np.isnan(a).any() or (a < 0).any() or (a > 1).any():
        raise EncoderError("alpha must lie in [0, 1]")
    a = a[:, None] if a.ndim == 1 else a
    mix = (1.0 - a) * p + a * h
    mix_norm = np.linalg.norm(mix, axis=1, keepdims=True)
    h_zero = np.linalg.norm(h, axis=1, keepdims=True) <= _EPS
    use_profile = h_zero | (mix_norm <= _EPS)
    return normalize_rows(np.where(use_profile, p, mix))
