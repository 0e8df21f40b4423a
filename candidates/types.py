"""The candidate-set contract shared by candidate generation, the env and serving."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Names of the per-candidate features, in column order of ``CandidateSet.features``.
CANDIDATE_FEATURES: tuple[str, ...] = (
    "rel_profile",      # mean cosine of the bundle's items to the profile vector
    "rel_history",      # mean cosine of the bundle's items to the history vector (0 without history)
    "mean_comp",        # mean estimated complementarity over ordered pairs (0 for size 1)
    "max_sub",          # max same-category cosine over pairs (estimated substitution; 0 for size 1)
    "log_price",        # log of the bundle's discounted price
    "size",             # number of items / K_max
    "popularity",       # mean log-popularity of the items, normalised
    "novelty",          # share of the bundle's items not yet shown to this user this session
    "discount",         # bundle discount fraction for this size
)


@dataclass(frozen=True)
class CandidateSet:
    """K candidate bundles for each of N users; fixed shapes whatever the users.

    Invalid slots (mask False) have ``items`` all -1, ``sizes`` 0 and ``features`` 0.
    """

    items: np.ndarray
    """(N, K, K_max) int32 catalogue row positions, -1 padded after the first ``sizes`` entries."""
    sizes: np.ndarray
    """(N, K) int8 number of items in each bundle (1..K_max; 0 if invalid)."""
    mask: np.ndarray
    """(N, K) bool, True where the candidate is a valid bundle to show."""
    features: np.ndarray
    """(N, K, F) float32 with F = len(CANDIDATE_FEATURES), finite."""
