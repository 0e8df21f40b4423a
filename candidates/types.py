"""The candidate-set contract shared by candidate generation, the env and serving."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bundlerl.candidates.features import CANDIDATE_FEATURES

__all__ = ["CandidateSet", "CANDIDATE_FEATURES"]  # the feature names live in bundlerl.candidates.features

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
    """(N, K, F) float32 with F = len(CANDIDATE_FEATURES), finite; columns ``bundlerl.candidates.features.COL``."""
