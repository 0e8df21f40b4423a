"""Per-row arrays declared once: one table per batched part of a session drives allocation, reset and gather.

A session batch keeps N rows (users) of state in several parts: the event log
(:mod:`bundlerl.env.event_log`), the candidate cache (:mod:`bundlerl.env.candidate_cache`), the compose-mode
partial bundles (:mod:`bundlerl.env.compose`) and the episode keys (:mod:`bundlerl.env.session`). Each part
is a :class:`RowTable` that lists its per-row arrays once, as :class:`Row` entries (name, dtype, per-row shape,
fill value); the table allocates them, resets rows at an episode start and gathers rows into a new table
(``fork``: a planner's copy of some users). A new per-row array is one more ``Row``, and is then allocated,
reset and forked with the others.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

__all__ = ["Row", "RowTable"]


@dataclass(frozen=True)
class Row:
    """One per-row array of a :class:`RowTable`."""

    name: str
    """Attribute name of the (N, *shape) array."""
    dtype: Any
    """numpy dtype."""
    shape: tuple = ()
    """Per-row shape: ints, or names of dimensions given to :class:`RowTable` at allocation."""
    fill: Any = 0
    """Value at allocation and after :meth:`RowTable.reset`."""
    reset: bool = True
    """False: a new episode overwrites the row itself (e.g. the persona), so :meth:`RowTable.reset` skips it."""


class RowTable:
    """Per-row arrays listed in the class attribute ``ROWS`` (a tuple of :class:`Row`), allocated for ``n`` rows.

    :param n: number of rows N >= 1.
    :param dims: sizes of the named dimensions of the rows' shapes.
    """

    ROWS: ClassVar[tuple[Row, ...]] = ()

    def __init__(self, n: int, **dims: int):
        self.n = int(n)
        for r in self.ROWS:
            shape = (self.n, *(dims[s] if isinstance(s, str) else s for s in r.shape))
            setattr(self, r.name, np.full(shape, r.fill, r.dtype))

    @classmethod
    def row_names(cls) -> tuple[str, ...]:
        """Names of the per-row arrays, in declaration order."""
        return tuple(r.name for r in cls.ROWS)

    def reset(self, rows: np.ndarray) -> None:
        """Set ``rows`` of every array (but those declared ``reset=False``) back to its fill value."""
        for r in self.ROWS:
            if r.reset:
                getattr(self, r.name)[rows] = r.fill

    def take(self, rows: np.ndarray):
        """A shallow copy whose row j is a copy of row ``rows[j]`` (repeats allowed); other attributes are shared."""
        new = copy.copy(self)
        new.n = int(len(rows))
        for r in self.ROWS:
            setattr(new, r.name, getattr(self, r.name)[rows])
        return new
