"""Personas: observable profile text plus the hidden shopper parameters of SIMULATOR.md."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bundlerl.utils.args import need_array, need_sequence
from bundlerl.utils.errors import BundlerlError


class PersonaError(BundlerlError):
    """Persona arrays of the wrong shape or range; the message names the field."""


@dataclass(frozen=True)
class Personas:
    """``N`` shoppers over a catalogue with ``C`` categories.

    ``texts`` is observable (the recommender embeds it as the profile / query text).
    Everything else is SIMULATOR TRUTH: only the simulator and oracles may read it.
    Taste θ is not stored here: the simulator draws it from ``enc(texts)`` with its own RNG.
    """

    texts: np.ndarray
    """(N,) str, observable persona / profile text (interests, style, budget words)."""
    interests: np.ndarray
    """(N, k) int32 category indices of each persona's interest categories (truth)."""
    needs: np.ndarray
    """(N, C) float32 in [0, 1]; high for interest categories (truth)."""
    budget: np.ndarray
    """(N,) float32 > 0, session budget in currency units (truth)."""
    price_sensitivity: np.ndarray
    """(N,) float32 > 0, β in SIMULATOR.md (truth)."""

    def __post_init__(self) -> None:
        texts = need_sequence(self.texts, "texts", "Personas", "a list of profile texts (str)", error=PersonaError)
        object.__setattr__(self, "texts", np.asarray(texts, dtype=object))
        for name, dtype, ndim in (("interests", np.int32, 2), ("needs", np.float32, 2), ("budget", np.float32, 1),
                                  ("price_sensitivity", np.float32, 1)):
            object.__setattr__(self, name, need_array(getattr(self, name), name, "Personas", dtype, ndim=ndim,
                                                      error=PersonaError))
        N = len(self.texts)
        if self.needs.ndim != 2 or self.needs.shape[0] != N:
            raise PersonaError(f"needs has shape {self.needs.shape}; expected ({N}, C)")
        if self.interests.ndim != 2 or self.interests.shape[0] != N:
            raise PersonaError(f"interests has shape {self.interests.shape}; expected ({N}, k)")
        if not ((self.needs >= 0) & (self.needs <= 1)).all():
            raise PersonaError("needs must lie in [0, 1]")
        for name in ("budget", "price_sensitivity"):
            v = getattr(self, name)
            if v.shape != (N,) or not (np.isfinite(v) & (v > 0)).all():
                raise PersonaError(f"{name} must be ({N},) finite and > 0")

    def __len__(self) -> int:
        return len(self.texts)

    def __repr__(self) -> str:
        """A summary; the truth arrays are not printed."""
        first = f", e.g. {str(self.texts[0])[:60]!r}" if len(self) else ""
        return f"Personas({len(self):,} shoppers over {self.needs.shape[1]} categories{first})"

    def take(self, rows: np.ndarray) -> "Personas":
        """The personas at ``rows``, in that order."""
        rows = np.asarray(rows)
        return Personas(self.texts[rows], self.interests[rows], self.needs[rows], self.budget[rows], self.price_sensitivity[rows])
