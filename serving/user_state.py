"""A served user's state, told by the request: profile text and recent events, turned into event-log steps.

The service keeps no per-user state (any worker answers any request): what the env's
:class:`~bundlerl.env.event_log.EventLog` learns step by step, a request tells at once, as events
``(item id, kind, timestamp[, price])`` with kind ``view``, ``click`` or ``purchase``. They map to the env's steps
(:class:`~bundlerl.env.event_log.LoggedStep`) as follows: events sharing a timestamp are **one shown bundle** (an
impression: its items' views, the click on it, the purchases from it), in timestamp order; the bundle is every item
named at that timestamp (first mention order, duplicates once); it was clicked when any of its events is a click or
a purchase (the simulated shopper buys only from a bundle it clicked; a click adds the whole bundle to the history
vector, as in the env); ``bought`` are its purchased items and ``revenue`` the sum of their prices (the event's
``price`` when given, e.g. the discounted price paid; else the catalogue price). The event log then replays the
steps with the env's own bookkeeping (:meth:`EventLog.replay_rows`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bundlerl.env.event_log import LoggedStep
from bundlerl.serving.exploration import Exploration
from bundlerl.utils.errors import BundlerlError

__all__ = ["EVENT_KINDS", "Event", "UserRequest", "to_steps", "UnknownItemError"]

EVENT_KINDS = ("view", "click", "purchase")


class UnknownItemError(BundlerlError):
    """A request names an item id the model does not know; the message names the field and the id."""


@dataclass(frozen=True)
class Event:
    """One event of a user: ``item_id`` (catalogue id), ``kind`` (:data:`EVENT_KINDS`), ``timestamp`` (seconds),
    ``price`` (money paid per item for a purchase; None: catalogue price)."""

    item_id: str
    kind: str
    timestamp: float
    price: float | None = None


@dataclass(frozen=True)
class UserRequest:
    """One recommendation request (the Python form of ``POST /v1/recommend``'s body)."""

    user_id: str | None = None
    profile_text: str | None = None
    events: tuple[Event, ...] = ()
    k: int = 3
    exclude: tuple[str, ...] = ()
    price_cap: float | None = None
    exploration: Exploration = field(default_factory=Exploration)


def to_steps(events, position: dict[str, int], price: np.ndarray, where: str = "events") -> list[LoggedStep]:
    """The steps (see the module docstring) of ``events``, item ids resolved with ``position``.

    :param price: (n_items,) catalogue prices. :param where: field name for error messages.
    :raises UnknownItemError: an event names an unknown item id (the message gives its index in the list).
    :raises BundlerlError: an unknown kind.
    """
    groups: dict[float, list[tuple[int, Event]]] = {}
    for n, ev in enumerate(events):
        if ev.kind not in EVENT_KINDS:
            raise BundlerlError(f"{where}[{n}].kind={ev.kind!r}; use one of {EVENT_KINDS}")
        pos = position.get(ev.item_id)
        if pos is None:
            raise UnknownItemError(f"{where}[{n}].item_id={ev.item_id!r} is not an item of this model; use a "
                                   "catalogue id (GET /v1/items/{id}) or add the item first (POST /v1/items)")
        groups.setdefault(float(ev.timestamp), []).append((pos, ev))
    steps = []
    for ts in sorted(groups):
        shown: list[int] = []
        bought: list[int] = []
        revenue, click = 0.0, False
        for pos, ev in groups[ts]:
            if pos not in shown:
                shown.append(pos)
            if ev.kind in ("click", "purchase"):
                click = True
            if ev.kind == "purchase" and pos not in bought:
                bought.append(pos)
                revenue += float(price[pos] if ev.price is None else ev.price)
        steps.append(LoggedStep(tuple(shown), click, tuple(bought), revenue))
    return steps
