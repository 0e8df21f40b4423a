"""Per-row sets of catalogue positions with vectorised membership tests: :class:`RaggedSet`.

Items a user already bought or was shown, one set per query row, asked "is item x in row r's set?" for whole
(N, ...) arrays at once (the item index's exclusion, the builder's bought filter and novelty). No per-row Python
loop on the hot path.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from bundlerl.utils.errors import BundlerlError

__all__ = ["RaggedSet", "RaggedSetError", "BROADCAST_MAX_LEN"]

#: :meth:`RaggedSet.contains` compares column by column when no row holds more items than this.
BROADCAST_MAX_LEN = 16


class RaggedSetError(BundlerlError):
    """Bad rows for a :class:`RaggedSet` (wrong row count, non-integer or out-of-range positions, a boolean mask)."""


class RaggedSet:
    """Per-row sets of catalogue positions, for vectorised membership tests.

    Built from a sequence of ``n_rows`` int arrays (``None`` entries = empty), or from one
    ``(n_rows, L)`` int array padded with -1 (a fixed-width log, as the env keeps: no per-row Python
    work). Stored as sorted unique int64 keys ``row * n_items + item``. :meth:`contains` compares
    against each row's items column by column when every row holds at most :data:`BROADCAST_MAX_LEN`
    items (a few items bought or shown: 2-3.5x faster than a search), else it is one ``np.searchsorted``.
    """

    def __init__(self, rows: Sequence[np.ndarray | Sequence[int] | None] | None, n_rows: int, n_items: int, name: str = "exclude"):
        self.n_rows = int(n_rows)
        self.n_items = int(n_items)
        if rows is None:
            self.keys = np.zeros(0, dtype=np.int64)
            self.lengths = np.zeros(self.n_rows, dtype=np.int64)
            self._flat = self._row_of = self.keys
            self._raw_lengths = self.lengths
            return
        if isinstance(rows, np.ndarray) and rows.dtype == bool:
            raise RaggedSetError(
                f"{name} is a boolean mask; give a sequence of {n_rows} int arrays (catalogue positions per row)"
            )
        if len(rows) != self.n_rows:
            raise RaggedSetError(f"{name} has {len(rows)} rows for {n_rows} queries; give one int array per query row")
        if isinstance(rows, np.ndarray) and rows.ndim == 2 and np.issubdtype(rows.dtype, np.integer):
            keep = rows != -1  # padding; order within a row is kept (the last items seed cross-sell)
            flat, lengths = rows[keep], keep.sum(axis=1).astype(np.int64)
        else:
            arrs = [np.zeros(0, np.int64) if r is None else np.asarray(r).reshape(-1) for r in rows]
            lengths = np.fromiter((a.size for a in arrs), dtype=np.int64, count=len(arrs))
            flat = np.concatenate(arrs) if arrs else np.zeros(0, np.int64)
        if flat.size and not np.issubdtype(flat.dtype, np.integer):
            raise RaggedSetError(f"{name} must hold integer catalogue positions; got dtype {flat.dtype}")
        flat = flat.astype(np.int64, copy=False)
        if flat.size and (flat.min() < 0 or flat.max() >= self.n_items):
            bad = flat[(flat < 0) | (flat >= self.n_items)][0]
            raise RaggedSetError(f"{name} holds position {bad} outside [0, {n_items}); give catalogue row positions")
        row_of = np.repeat(np.arange(self.n_rows, dtype=np.int64), lengths)
        self._flat, self._row_of, self._raw_lengths = flat, row_of, lengths
        self.keys = np.unique(row_of * self.n_items + flat)
        # distinct items per row (for over-fetch sizing)
        self.lengths = np.bincount(self.keys // max(self.n_items, 1), minlength=self.n_rows).astype(np.int64)

    @property
    def max_len(self) -> int:
        return int(self.lengths.max()) if self.lengths.size else 0

    def all_padded(self) -> np.ndarray:
        """(n_rows, longest row as given) int64: every item of each row (most recent first), -1 padded."""
        return self.padded(int(self._raw_lengths.max()) if self._raw_lengths.size else 0)

    def contains(self, items: np.ndarray) -> np.ndarray:
        """Bool array shaped like ``items`` (n_rows, ...): True where ``items[r, ...]`` is in row r's set.
        Negative items (padding) are never contained."""
        items = np.asarray(items)
        if self.keys.size == 0:
            return np.zeros(items.shape, dtype=bool)
        if self.max_len <= BROADCAST_MAX_LEN:
            cols = self._columns()
            lead = (self.n_rows,) + (1,) * (items.ndim - 1)
            out = items == cols[:, 0].reshape(lead)
            for c in range(1, cols.shape[1]):
                out |= items == cols[:, c].reshape(lead)
            return out
        # prefilter with "in any row's set" (one cheap lookup), then exact keys for the few hits
        anyset = self.__dict__.get("_any")
        if anyset is None:
            anyset = np.zeros(self.n_items + 1, dtype=bool)  # last slot: padding -1
            anyset[self.keys % self.n_items] = True
            self._any = anyset
        flat = items.reshape(-1)
        hit = np.flatnonzero(anyset[np.where(flat >= 0, flat, self.n_items)])
        out = np.zeros(flat.size, dtype=bool)
        if hit.size:
            rows = (hit // max(int(np.prod(items.shape[1:], dtype=np.int64)), 1)).astype(np.int64)
            q = rows * self.n_items + flat[hit].astype(np.int64)
            pos = np.minimum(np.searchsorted(self.keys, q), self.keys.size - 1)
            out[hit] = self.keys[pos] == q
        return out.reshape(items.shape)

    def _columns(self) -> np.ndarray:
        """(n_rows, max_len) int64: each row's distinct items, padded with ``n_items`` (matches no item)."""
        cols = self.__dict__.get("_cols")
        if cols is None:
            r = self.keys // max(self.n_items, 1)
            start = np.concatenate([[0], np.cumsum(self.lengths)[:-1]])
            cols = np.full((self.n_rows, max(self.max_len, 1)), self.n_items, dtype=np.int64)
            cols[r, np.arange(self.keys.size) - start[r]] = self.keys % self.n_items
            self._cols = cols
        return cols

    def subset(self, rows: np.ndarray) -> "RaggedSet":
        """The sets of the given rows (sorted, distinct row indices), as a new RaggedSet with rows 0..len(rows)-1.
        Supports :meth:`contains` only (the given order of items is not kept)."""
        rows = np.asarray(rows, dtype=np.int64)
        out = RaggedSet(None, rows.size, self.n_items)
        if self.keys.size:
            new_row = np.full(self.n_rows, -1, dtype=np.int64)
            new_row[rows] = np.arange(rows.size)
            r = new_row[self.keys // self.n_items]
            keep = r >= 0
            out.keys = r[keep] * self.n_items + self.keys[keep] % self.n_items  # stays sorted: rows ascending
            out.lengths = np.bincount(r[keep], minlength=rows.size).astype(np.int64)
        return out

    def padded(self, width: int) -> np.ndarray:
        """(n_rows, width) int64: the last ``width`` items of each row in the order given (most
        recent first), -1 padded. Used for cross-sell seeds."""
        out = np.full((self.n_rows, width), -1, dtype=np.int64)
        if width == 0 or self._flat.size == 0:
            return out
        start = np.concatenate([[0], np.cumsum(self._raw_lengths)[:-1]])
        r = self._row_of
        rank_from_end = (start[r] + self._raw_lengths[r] - 1) - np.arange(self._flat.size)
        keep = rank_from_end < width
        out[r[keep], rank_from_end[keep]] = self._flat[keep]
        return out
