"""Parameters of the simulated shopper (``docs/SIMULATOR.md``), one validated dataclass.

Every constant of the shopper model lives here with its meaning and unit, plus three switches
(``activation``, ``fatigue``, ``budget``) that turn a mechanism off for ablations. Two things the
shopper responds to are not its own: the bundle discounts are the store's (``BuilderConfig.discounts``,
the price the shopper is shown) and the reward weights are the environment's (:mod:`bundlerl.env.reward`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from bundlerl.utils.errors import BundlerlError

__all__ = ["ShopperParams", "ShopperParamsError", "SHOPPER_VERSION"]

SHOPPER_VERSION = 1
"""Version of the shopper model's equations (``bundlerl.env.shopper``): bump it with every change of behaviour, so
that what is cached on the simulator's answers (tuned-linear fits, ``bundlerl.evaluation.tuning``) is fitted again."""


class ShopperParamsError(BundlerlError):
    """A shopper parameter is out of range; the message names the field and its valid range."""


@dataclass(frozen=True)
class ShopperParams:
    """Constants of the shopper model. Symbols are those of docs/SIMULATOR.md.

    Affinity      a(i) = w_s·<θ, e_i> + w_n·ν[c(i)] − β·log(p_i / p̄_c(i))
    Utility       U(B) = mean a(i) + γ·mean_{i≠j} comp*(i,j) − δ·max_{i≠j} sub(i,j) − ρ·seen(B)
    Click         σ((U − τ_c) / T_c);  purchase of i after a click  σ((a(i) + γ·mean_{j≠i} comp*(j,i) − τ_b) / T_b)
    Leaving       σ(λ_0 + λ_f·f) after each step.
    """

    # --- affinity and utility
    w_s: float = 4.0
    """Weight of taste similarity <θ, e_i> (cosine, in [-1, 1]) in the affinity; >= 0."""
    w_n: float = 2.5
    """Weight of the need ν[c(i)] (in [0, 1]) in the affinity; >= 0."""
    gamma: float = 2.0
    """γ: weight of true complementarity (mean over ordered pairs, in [0, 1]) in utility and purchase; >= 0."""
    delta: float = 2.0
    """δ: penalty on the largest substitute similarity in the bundle (same category × cosine); >= 0."""
    rho: float = 1.5
    """ρ: penalty on the share of the bundle's items already shown this session; >= 0."""
    fit_brand: float = 0.25
    """Item-level fit m(i,j) = 0.5 + fit_brand·[same brand] + fit_tier·[same price tier]; both >= 0, sum <= 0.5."""
    fit_tier: float = 0.25
    """See ``fit_brand``; price tiers are the catalogue's within-category thirds."""
    # --- click and purchase
    tau_c: float = 2.0
    """τ_c: utility at which a bundle is clicked with probability 1/2."""
    T_c: float = 0.6
    """T_c > 0: click temperature (larger = noisier clicks)."""
    tau_b: float = 2.2
    """τ_b: purchase score at which a clicked item is bought with probability 1/2."""
    T_b: float = 0.5
    """T_b > 0: purchase temperature."""
    # --- dynamics
    satiation: float = 0.8
    """s in [0, 1]: a purchase multiplies the need of its category by (1 − s)."""
    kappa: float = 0.8
    """κ >= 0: a purchase of i raises ν[x] by κ·G[c(i), x] (complement activation), capped at 1."""
    eta: float = 0.3
    """η in [0, 1]: interest drift of θ towards the clicked bundle's mean embedding."""
    phi_miss: float = 0.25
    """φ_miss in [0, 1]: fatigue added by a bundle that is not clicked."""
    phi_rep: float = 0.4
    """φ_rep >= 0: extra fatigue per unit share of already-shown items in an unclicked bundle."""
    phi_hit: float = 0.5
    """φ_hit in [0, 1]: a click multiplies fatigue by (1 − φ_hit)."""
    lambda_0: float = -3.5
    """λ_0: logit of the leave probability at zero fatigue."""
    lambda_f: float = 4.5
    """λ_f >= 0: increase of the leave logit per unit fatigue."""
    sigma_theta: float = 0.5
    """σ_θ >= 0: taste noise, θ = normalize(enc(persona) + σ_θ·ξ + σ_I·ē_{c*}) with ξ a uniform random unit direction."""
    sigma_intent: float = 0.0
    """σ_I >= 0: this session's errand. A shopper comes for one of the persona's interest categories c* (uniformly
    drawn per session, hidden: the profile text names every interest); its taste leans towards the unit mean
    embedding ē_{c*} of that category by σ_I. Clicks reveal it (the history vector); 0: no errand tilt."""
    intent_focus: float = 0.0
    """In [0, 1]: the needs of the persona's interest categories other than the errand are multiplied by
    (1 − intent_focus) at the start of the session (the shopper came for the errand); 0: no focus."""
    dormant_complements: float = 0.0
    """φ_D in [0, 1]: delayed-payoff complements. A category x whose anchor is among the persona's interests (an
    interest c ≠ x with G[c, x] > G[x, c] and G[c, x] >= ``dormant_threshold``: owning a c is what makes an x wanted,
    as a camera makes a memory card wanted) starts the session with its need multiplied by (1 − φ_D): nobody shops
    for a memory card before they have the camera. Buying the anchor re-activates it (ν[x] += κ·G[c, x]), so an anchor
    that sells less now unlocks its complements later; 0: no dormancy."""
    dormant_threshold: float = 0.3
    """Smallest G[c, x] that makes interest c the anchor of a dormant complement x (``dormant_complements``), in
    [0, 1]."""
    need_relevant: float = 0.2
    """A category is relevant while its need is >= this; the session ends when the budget is below the cheapest
    item of every relevant category (or nothing is relevant any more). In [0, 1]."""
    # --- switches for ablations
    activation: bool = True
    """False: purchases do not raise the needs of complements (κ treated as 0)."""
    fatigue: bool = True
    """False: fatigue stays 0 (the leave probability stays σ(λ_0))."""
    budget: bool = True
    """False: unlimited budget (nothing is skipped for price, no out-of-budget ending)."""

    def __post_init__(self) -> None:
        ranges = {
            "w_s": (0, None), "w_n": (0, None), "gamma": (0, None), "delta": (0, None), "rho": (0, None),
            "fit_brand": (0, 0.5), "fit_tier": (0, 0.5), "T_c": (1e-6, None), "T_b": (1e-6, None),
            "satiation": (0, 1), "kappa": (0, None),
            "eta": (0, 1), "phi_miss": (0, 1), "phi_rep": (0, None), "phi_hit": (0, 1), "lambda_f": (0, None),
            "sigma_theta": (0, None), "need_relevant": (0, 1), "sigma_intent": (0, None), "intent_focus": (0, 1),
            "dormant_complements": (0, 1), "dormant_threshold": (0, 1),
        }
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.type in ("bool", bool):
                if not isinstance(v, bool):
                    raise ShopperParamsError(f"ShopperParams.{f.name}={v!r}; it must be True or False")
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ShopperParamsError(f"ShopperParams.{f.name}={v!r}; it must be a finite number")
            lo, hi = ranges.get(f.name, (None, None))
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                raise ShopperParamsError(
                    f"ShopperParams.{f.name}={v!r} is outside [{lo}, {hi if hi is not None else 'inf'}]"
                )
        if self.fit_brand + self.fit_tier > 0.5 + 1e-9:
            raise ShopperParamsError(
                f"fit_brand + fit_tier = {self.fit_brand + self.fit_tier}; keep it <= 0.5 so m(i, j) stays in [0.5, 1]"
            )

    def replace(self, **changes) -> "ShopperParams":
        """A validated copy with ``changes`` applied (e.g. ``params.replace(fatigue=False)`` for an ablation)."""
        return dataclasses.replace(self, **changes)
