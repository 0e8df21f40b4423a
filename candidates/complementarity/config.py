"""The complementarity model's hyper-parameters (:class:`ComplementConfig`) and its error class."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from bundlerl.utils.config_io import check_field_types, from_mapping
from bundlerl.utils.errors import BundlerlError

__all__ = ["ComplementConfig", "ComplementError"]


class ComplementError(BundlerlError):
    """Bad input to the complementarity model; the message says what is wrong and what to do."""


@dataclass(frozen=True)
class ComplementConfig:
    """Hyper-parameters of the complementarity model (validated on construction)."""

    alpha: float = 2.0
    """Prior strength of the item-pair shrinkage, in pseudo expected co-occurrences (> 0). Larger = lean
    more on the category/text prior for rare pairs."""
    category_alpha: float = 5.0
    """Prior strength (pseudo expected counts) shrinking the category lift toward 1 (> 0)."""
    kappa: float = 2.0
    """Lift mapped to 0.5 by ``L / (L + kappa)`` (> 0)."""
    beta: float = 5.0
    """Pseudo-count in the direction factor ``min(1, (n_j + beta) / (n_i + beta)) ** eta`` (> 0)."""
    eta: float = 0.0
    """Exponent of the direction factor (>= 0; 0 = no popularity-based direction; see the module docstring)."""
    substitute_cosine: float = 0.8
    """Same-category pairs with text cosine >= this are substitutes: excluded from text-model positives
    and penalised in the score. In (-1, 1]."""
    substitute_penalty: float = 1.0
    """Score multiplier for substitutes is ``1 - substitute_penalty``; in [0, 1] (1 = substitutes score 0)."""
    rank: int = 32
    """Rank of the text two-tower factors (>= 1)."""
    use_item_ids: bool = True
    """Learn per-item offsets for items seen in baskets (cold items use text only)."""
    n_pairs: int = 400_000
    """Positive co-purchase instances sampled to train the text model (as many negatives are drawn); >= 1."""
    epochs: int = 3
    """Passes over the sampled pairs (>= 1)."""
    batch_size: int = 16384
    """Mini-batch size of the text model (>= 1)."""
    lr: float = 0.01
    """Adam learning rate (> 0)."""
    weight_decay: float = 1e-5
    """L2 on the text projections (>= 0)."""
    id_weight_decay: float = 1e-3
    """L2 on the per-item offsets, per sample (>= 0)."""
    max_residual: float = 4.0
    """The text residual log-lift is clipped to [-max_residual, max_residual] (> 0)."""
    max_basket_size: int = 0
    """Baskets larger than this are left out of the pair counts (0 = keep all)."""
    top_k: int = 50
    """C_top: complements precomputed per item (>= 1)."""
    pool_size: int = 5_000
    """Candidate complements considered for the top lists: the ``pool_size`` items most frequent in baskets
    (all items when the catalogue is smaller or no basket holds any). >= 1."""
    chunk: int = 512
    """Anchors per block when computing the top lists (memory ~ chunk x pool x 8 bytes x a few)."""
    threads: int = 2
    """torch threads for training."""
    user_alpha: float = 1.0
    """Prior strength (pseudo expected counts) shrinking the user-level lift toward 1 (> 0)."""
    max_user_items: int = 300
    """Distinct items kept per user for user-level co-occurrence (0 = all); bounds the quadratic pair count."""
    svd_rank: int = 64
    """Rank of the PPMI embeddings (basket and user level); 0 = no embedding features."""
    blend_fraction: float = 0.125
    """Share of the baskets held out (from the training baskets given to :func:`fit`) to fit the blend
    weights; in [0, 0.5]; 0 = fixed weights ``comp = L / (L + kappa)``."""
    blend_pairs: int = 100_000
    """Validation co-purchase instances (each with a popularity-matched negative) used to fit the blend (>= 1)."""
    min_blend_pairs: int = 2_000
    """Fewer validation positives than this -> keep the fixed weights (too little data to fit them); each blend
    row (never-seen / seen pairs) also needs ``min_blend_pairs // 4`` positives and as many negatives; >= 1."""
    blend_l2: float = 1e-3
    """L2 penalty on the standardised blend weights (>= 0)."""

    def __post_init__(self) -> None:
        check_field_types(self, ComplementError)  # None / a wrong type named, before the range checks
        pos = ("alpha", "category_alpha", "kappa", "beta", "lr", "max_residual")
        for name in pos:
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and np.isfinite(v) and v > 0):
                raise ComplementError(f"ComplementConfig.{name}={v!r}; it must be a finite number > 0")
        if not (isinstance(self.user_alpha, (int, float)) and np.isfinite(self.user_alpha) and self.user_alpha > 0):
            raise ComplementError(f"ComplementConfig.user_alpha={self.user_alpha!r}; it must be a finite number > 0")
        if not (isinstance(self.blend_fraction, (int, float)) and 0.0 <= self.blend_fraction <= 0.5):
            raise ComplementError(f"ComplementConfig.blend_fraction={self.blend_fraction!r}; it must be in [0, 0.5]")
        for name in ("max_user_items", "svd_rank"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ComplementError(f"ComplementConfig.{name}={v!r}; it must be an int >= 0")
        for name in ("eta", "weight_decay", "id_weight_decay", "blend_l2"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and np.isfinite(v) and v >= 0):
                raise ComplementError(f"ComplementConfig.{name}={v!r}; it must be a finite number >= 0")
        if not -1.0 < self.substitute_cosine <= 1.0:
            raise ComplementError(f"ComplementConfig.substitute_cosine={self.substitute_cosine}; it must be in (-1, 1]")
        if not 0.0 <= self.substitute_penalty <= 1.0:
            raise ComplementError(f"ComplementConfig.substitute_penalty={self.substitute_penalty}; it must be in [0, 1]")
        for name in ("rank", "n_pairs", "epochs", "batch_size", "top_k", "pool_size", "chunk", "threads", "blend_pairs", "min_blend_pairs"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ComplementError(f"ComplementConfig.{name}={v!r}; it must be an int >= 1")
        if isinstance(self.max_basket_size, bool) or not isinstance(self.max_basket_size, (int, np.integer)) or self.max_basket_size < 0:
            raise ComplementError(f"ComplementConfig.max_basket_size={self.max_basket_size!r}; it must be an int >= 0")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ComplementConfig":
        return cls(**from_mapping(cls, d, "ComplementConfig", ComplementError))
