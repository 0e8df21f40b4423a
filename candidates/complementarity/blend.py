"""The blend of the complementarity score: its pair features (names and columns) and weights.

``comp(i -> j)`` starts from ``sigmoid(w_s . f(i, j) + b_s)`` (the package docstring): :data:`FEATURES` /
:data:`PF` name the columns of ``f`` (computed by ``ComplementModel.pair_features``), :func:`default_blend`
is the fixed blend used without data to fit one, :func:`fit_blend` fits a row by logistic regression and
:func:`blend_probability` evaluates it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bundlerl.candidates.complementarity.config import ComplementError
from bundlerl.utils.threads import torch_threads

__all__ = ["PairFeatureIndex", "PF", "FEATURES", "NEVER_SEEN", "SEEN", "MONOTONE", "default_blend", "blend_probability", "fit_blend"]


class PairFeatureIndex(NamedTuple):
    """Column of each pair feature of the blend (the fields, in column order; see the package docstring)."""

    log_lift: int  # log of the empirical-Bayes shrunk basket lift (prior: category lift x text two-tower)
    log1p_count: int  # log(1 + n_ij), basket co-occurrences; > 0 means the pair was "seen"
    user_log_lift: int  # shrunk log-lift of user-level co-occurrence
    log1p_user_count: int  # log(1 + user-level co-occurrences)
    category_log_lift: int  # the prior's category part
    text_residual: int  # the prior's text two-tower part (clipped)
    basket_svd_cos: int  # cosine of basket-level PPMI embeddings
    user_svd_cos: int  # cosine of user-level PPMI embeddings
    log1p_n_i: int  # log(1 + baskets holding i)
    log1p_n_j: int  # log(1 + baskets holding j)


#: The column of each pair feature: ``F[:, PF.log1p_count]``.
PF = PairFeatureIndex(*range(len(PairFeatureIndex._fields)))

#: Pair features of the blend, in column order.
FEATURES: tuple[str, ...] = PairFeatureIndex._fields

#: Rows of the blend weights (``blend_w``, ``blend_b``): pairs never seen together in a basket, pairs seen.
NEVER_SEEN, SEEN = 0, 1

#: Features whose blend weight is constrained >= 0 (count evidence: more co-purchases never lower a score).
MONOTONE = (PF.log_lift, PF.log1p_count, PF.user_log_lift, PF.log1p_user_count)


def default_blend(kappa: float) -> tuple[np.ndarray, np.ndarray]:
    """The fixed blend used without a validation fit, both rows ``sigmoid(log L - log kappa) = L / (L + kappa)``:
    ``w`` (2, len(FEATURES)), ``b`` (2,)."""
    w = np.zeros((2, len(FEATURES)))
    w[:, PF.log_lift] = 1.0
    return w, np.full(2, -float(np.log(kappa)))


def blend_probability(F: np.ndarray, w: np.ndarray, b: float) -> np.ndarray:
    """``sigmoid(F @ w + b)``: (m,) float64 in [0, 1] (computed stably for large |logit|)."""
    z = np.asarray(F, np.float64) @ np.asarray(w, np.float64) + float(b)
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def fit_blend(F_pos: np.ndarray, F_neg: np.ndarray, l2: float = 1e-3, threads: int = 2) -> tuple[np.ndarray, float]:
    """Logistic regression of positive (label 1) vs negative (label 0) feature rows -> ``(w, b)``.

    Features are standardised for the fit (weights mapped back after), ``l2`` penalises the standardised
    weights, and the weights of :data:`MONOTONE` features are kept >= 0 (softplus parameterisation).
    Columns with no spread get weight 0. Deterministic (full-batch L-BFGS).
    """
    import torch

    X = np.concatenate([F_pos, F_neg]).astype(np.float64)
    if X.ndim != 2 or X.shape[1] != len(FEATURES) or not np.isfinite(X).all():
        raise ComplementError(f"blend features must be finite with {len(FEATURES)} columns; got shape {X.shape}")
    y = np.r_[np.ones(len(F_pos)), np.zeros(len(F_neg))]
    mu, sd = X.mean(0), X.std(0)
    live = sd > 1e-9
    Z = np.where(live, (X - mu) / np.where(live, sd, 1.0), 0.0)
    mono = np.zeros(len(FEATURES), bool)
    mono[list(MONOTONE)] = True
    with torch_threads(threads):
        Zt, yt = torch.from_numpy(Z), torch.from_numpy(y)
        monot = torch.from_numpy(mono)
        raw = torch.zeros(len(FEATURES), dtype=torch.float64, requires_grad=True)
        b = torch.zeros((), dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([raw, b], max_iter=300, line_search_fn="strong_wolfe", tolerance_grad=1e-9)

        def weights():
            return torch.where(monot, torch.nn.functional.softplus(raw), raw)

        def closure():
            opt.zero_grad()
            w = weights()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(Zt @ w + b, yt) + l2 * (w**2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        w_std = weights().detach().numpy()
        b_std = float(b.detach())
    w_std = np.where(live, w_std, 0.0)
    w = np.where(live, w_std / np.where(live, sd, 1.0), 0.0)
    return w, b_std - float((w * mu).sum())
