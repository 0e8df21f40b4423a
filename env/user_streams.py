"""Per-user random streams: counter-based draws keyed by one 64-bit key per user, vectorised.

A batch of N users stepped together must draw exactly what N single-user runs draw with the same
per-user seeds (docs/SIMULATOR.md property 6). One ``numpy.random.Generator`` for the batch cannot do
that (row i's draws would depend on how many rows precede it), and N Generators would put a Python
loop in the step. :class:`UserStreams` hashes (key_i, counter) with splitmix64 instead: row i's
values depend only on its own key and on how many values were drawn before, never on the batch.

The keys themselves come from the env's seeded ``np_random`` (one draw per episode), so all
randomness still flows from a seeded ``numpy.random.Generator``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["UserStreams", "splitmix64"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """Elementwise splitmix64 finaliser of a uint64 array (a bijection with good avalanche)."""
    with np.errstate(over="ignore"):
        z = np.asarray(x, dtype=np.uint64) + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


class UserStreams:
    """N independent random streams, one per key; offers the subset of the Generator API the shopper uses.

    :param keys: (N,) integer keys (converted to uint64). Equal keys give equal streams.

    Each call consumes ``size[1:]`` values per row from every stream, in C order, so the j-th value a
    row receives is a function of (key, j) only. ``random((N, m))`` gives float64 in [0, 1) with 53
    random bits; ``standard_normal((N, m))`` uses Box-Muller on two uniforms per value.
    """

    def __init__(self, keys: np.ndarray):
        keys = np.asarray(keys)
        if keys.ndim != 1:
            raise ValueError(f"keys must be a 1-D array of per-user keys, got shape {keys.shape}")
        # Pre-mix the key so that nearby keys (0, 1, 2, ...) give unrelated streams.
        self.keys = splitmix64(keys.astype(np.uint64))
        self.counter = 0

    def __len__(self) -> int:
        return self.keys.shape[0]

    def _bits(self, m: int) -> np.ndarray:
        """(N, m) uint64 raw draws; advances the counter by m."""
        ctr = np.arange(self.counter, self.counter + m, dtype=np.uint64)
        self.counter += m
        with np.errstate(over="ignore"):
            return splitmix64(self.keys[:, None] ^ splitmix64(ctr)[None, :])

    def _per_row(self, size) -> tuple[int, tuple[int, ...]]:
        size = (size,) if np.isscalar(size) else tuple(size)
        if not size or size[0] != len(self):
            raise ValueError(f"size {size} must start with the number of streams N={len(self)}")
        return int(np.prod(size[1:], dtype=np.int64)), size

    def random(self, size) -> np.ndarray:
        """Uniform float64 in [0, 1) of shape ``size``; ``size[0]`` must equal N."""
        m, size = self._per_row(size)
        return ((self._bits(m) >> np.uint64(11)).astype(np.float64) * (1.0 / 2.0**53)).reshape(size)

    def standard_normal(self, size) -> np.ndarray:
        """Standard normal float64 of shape ``size``; ``size[0]`` must equal N."""
        m, size = self._per_row(size)
        u = self.random((len(self), 2 * m))
        u1, u2 = 1.0 - u[:, :m], u[:, m:]  # 1 - u is in (0, 1]: log is finite
        return (np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)).reshape(size)

