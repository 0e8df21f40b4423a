"""The simulated shopper's hidden state and its response to a shown bundle (docs/SIMULATOR.md).

SIMULATOR TRUTH: :class:`ShopperState` is what the shopper model (:mod:`bundlerl.env.shopper`) steps and the
oracles plan with; the recommender side sees only the :class:`Response` (click, items bought, amount paid),
through the environment's event log. Both are batched: every field has N rows.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

__all__ = ["ShopperState", "Response"]


@dataclass
class ShopperState:
    """Hidden state of N shoppers (SIMULATOR TRUTH); every field has N rows."""

    theta: np.ndarray
    """(N, d) float32 unit taste vectors."""
    needs: np.ndarray
    """(N, C) float32 in [0, 1]."""
    budget: np.ndarray
    """(N,) float32 >= 0, remaining budget in currency units."""
    beta: np.ndarray
    """(N,) float32 > 0, price sensitivity."""
    fatigue: np.ndarray
    """(N,) float32 in [0, 1]."""
    shown: np.ndarray
    """(N, n_items) bool, items shown this session."""
    bought: np.ndarray
    """(N, n_items) bool, items bought this session."""
    active: np.ndarray
    """(N,) bool, the session is still running."""

    def __len__(self) -> int:
        return self.budget.shape[0]

    def copy(self) -> "ShopperState":
        """A deep copy."""
        return ShopperState(**{f.name: getattr(self, f.name).copy() for f in fields(self)})

    def take(self, rows) -> "ShopperState":
        """A new state holding ``rows`` (int indices, repeats allowed, or a bool mask), copied."""
        return ShopperState(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})

    def put(self, rows, other: "ShopperState") -> None:
        """Write ``other`` (len(rows) rows) into ``rows`` in place (e.g. auto-reset of finished sessions)."""
        for f in fields(self):
            getattr(self, f.name)[rows] = getattr(other, f.name)


@dataclass
class Response:
    """What N shoppers did in one step; arrays (N,) unless stated."""

    click: np.ndarray
    """bool."""
    bought: np.ndarray
    """(N, K_max) bool, per bundle slot."""
    n_bought: np.ndarray
    """int32 items bought."""
    revenue: np.ndarray
    """float32 amount paid (after the bundle discount), currency units."""
    left: np.ndarray
    """bool: the shopper left (the σ(λ_0 + λ_f·f) draw)."""
    out_of_budget: np.ndarray
    """bool: the budget no longer buys anything relevant."""
    done: np.ndarray
    """bool: left | out_of_budget (always True for rows that were already inactive)."""
