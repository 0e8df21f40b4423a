"""The simulated shopper of ``docs/SIMULATOR.md``: hidden state, bundle response, dynamics.

SIMULATOR TRUTH. Only the environment's response step and the oracles (``agents/oracles.py``)
may use this module; policies, baselines, candidate generation and serving never do.

One code path for any number of users N: every method takes (N, ...) arrays and loops at most
over bundle slots (K_max <= a handful) or purchase patterns (2^K_max), never over users. All
randomness comes from the ``rng`` handed in: a ``numpy.random.Generator`` or, for batch-independent
per-user streams, :class:`bundlerl.env.user_streams.UserStreams` (same ``random`` / ``standard_normal`` API).

Model (symbols of docs/SIMULATOR.md; constants in :class:`bundlerl.env.shopper_params.ShopperParams`):

- item affinity   a(i) = w_s·<θ, e_i> + w_n·ν[c(i)] − β·log(p_i / p̄_c(i))
- true complement comp*(i, j) = G[c(i), c(j)]·m(i, j), m = 0.5 + fit_brand·[same brand] + fit_tier·[same
  price tier]; 0 within a category (same category = substitutes)
- substitution    sub(i, j) = [c(i) = c(j)]·max(0, <e_i, e_j>)
- utility         U(B) = mean a(i) + γ·mean_{i≠j} comp*(i, j) − δ·max_{i≠j} sub(i, j) − ρ·seen(B)
- click           P = σ((U − τ_c)/T_c); an empty bundle (all -1: nothing shown) is never clicked
- purchase        after a click, item i is wanted with prob σ((a(i) + γ·mean_{j≠i} comp*(j, i) − τ_b)/T_b)
                  (0 for items bought earlier in the session); wanted items are bought in decreasing
                  order of that probability, skipping those that no longer fit the remaining budget.
                  Buying every item of a bundle of k >= 2 items pays (1 − d_k) of the sum, d_k the store's
                  discount it was shown (``BuilderConfig.discounts``; the shopper owns no discount).
- reward          not the shopper's: the environment computes it from the response (:mod:`bundlerl.env.reward`)
- dormancy        at the session start ν[x] ← ν[x]·(1 − φ_D) for every category x whose anchor c is among the
                  persona's interests (G[c, x] > G[x, c], G[c, x] >= dormant_threshold): complements wait for the anchor
- dynamics        per bought item (in purchase order): ν[c] ← ν[c]·(1 − s), then ν ← min(1, ν + κ·G[c, :]);
                  budget −= paid; after a click θ ← normalize(θ + η·(mean e_B − θ)); fatigue: no click
                  f ← min(1, f + φ_miss + φ_rep·seen(B)), click f ← f·(1 − φ_hit)
- ending          left with prob σ(λ_0 + λ_f·f) (new f) after every step; out of budget when the budget is
                  below the cheapest item of every still-relevant category (need >= need_relevant),
                  which includes having no relevant category left.

Rows whose session has ended (``state.active`` False) ignore further steps: no click, nothing bought,
``done`` True.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from bundlerl.env.shopper_params import ShopperParams
from bundlerl.env.shopper_state import Response, ShopperState
from bundlerl.utils.arrays import zero_padded
from bundlerl.utils.errors import BundlerlError

__all__ = ["ShopperError", "ShopperModel", "sigmoid"]


class ShopperError(BundlerlError):
    """Bad input to the shopper model (shapes, ids, a catalogue without truth); the message says what to do."""


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically safe logistic function."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x)))


@dataclass
class _BundleTerms:
    """State-independent scoring terms of N rows of J bundles (:meth:`ShopperModel._bundle_terms`).

    Arrays are (N, J, K_max) per slot or (N, J) per bundle; ``emb`` is (N, J·K_max, d).
    """

    items: np.ndarray
    valid: np.ndarray
    item: np.ndarray
    """Item ids with empty slots mapped to 0 (masked by ``valid``)."""
    category: np.ndarray
    log_rel_price: np.ndarray
    emb: np.ndarray
    size: np.ndarray
    comp_mean: np.ndarray
    """γ-free mean true complementarity over ordered pairs of the bundle."""
    comp_into: np.ndarray
    """Per slot i: mean comp*(j -> i) over the bundle's other items j."""
    sub_max: np.ndarray
    """Largest substitute similarity (same category x cosine) within the bundle."""
    price: np.ndarray
    """Prices per slot, 0 for empty slots."""


class ShopperModel:
    """The shopper of docs/SIMULATOR.md over one catalogue; see the module docstring for the equations.

    :param catalog: a ``bundlerl.sim_data.catalog.Catalog`` with ``embeddings`` (n, d) and the true
        ``complement_graph`` (C, C); otherwise ShopperError.
    :param params: ShopperParams (default: ``ShopperParams()``).
    :param discounts: the store's bundle discount by size, ``{k: d_k}`` for sizes >= k up to the next key: the
        recommender side's price list (``BuilderConfig.discounts``), the discounted price the shopper is shown
        and pays when it buys the whole bundle. None: ``BuilderConfig``'s default.

    Bundles are int arrays with item indices in [0, n) and -1 for empty slots; the last axis is
    the bundle (length K_max). Out-of-range ids, wrong shapes or state of another size raise ShopperError.
    """

    def __init__(self, catalog, params: ShopperParams | None = None, discounts: Mapping[int, float] | None = None):
        if catalog.embeddings is None:
            raise ShopperError("the shopper needs item embeddings: encode the catalogue first (catalog.with_embeddings)")
        if catalog.complement_graph is None:
            raise ShopperError(
                "the shopper needs the true complement graph (catalog.complement_graph); synthetic catalogues carry it, "
                "real ones get it from bundlerl.sim_data.loaders.calibrate_complement_graph"
            )
        self.params = params if params is not None else ShopperParams()
        if not isinstance(self.params, ShopperParams):
            raise ShopperError(f"params must be a ShopperParams, got {type(self.params).__name__}")
        self.catalog = catalog
        self._emb_z = zero_padded(np.asarray(catalog.embeddings, dtype=np.float32))
        self.emb = self._emb_z[:-1]
        self.n_items, self.dim = self.emb.shape
        self.category = catalog.category.astype(np.int64)
        G = np.array(catalog.complement_graph, dtype=np.float32)
        np.fill_diagonal(G, 0.0)  # same category = substitutes, never complements
        self.G = G
        self.n_categories = G.shape[0]
        self.price = catalog.price.astype(np.float32)
        self.log_rel_price = np.log(self.price / catalog.category_mean_price()[self.category]).astype(np.float32)
        _, self.brand = np.unique(catalog.brand, return_inverse=True)
        self.brand_known = np.char.str_len(catalog.brand.astype(str)) > 0
        self.tier = catalog.price_tier(3).astype(np.int8)
        # ē_c: unit mean embedding of each category's items (the direction of a session's errand); 0 for empty ones
        cat_sum = np.zeros((self.n_categories, self.dim), np.float64)
        np.add.at(cat_sum, self.category, self.emb.astype(np.float64))
        self.category_dir = _normalize(cat_sum).astype(np.float32)
        cat_min = np.full(self.n_categories, np.inf, np.float32)
        np.minimum.at(cat_min, self.category, self.price)
        self.cat_min_price = cat_min
        from bundlerl.candidates.builder import BuilderConfig
        from bundlerl.candidates.features import discount_for_sizes

        disc = BuilderConfig().discounts if discounts is None else dict(discounts)
        # by size 0..largest key; larger bundles take the last entry (discount_for_sizes' rule)
        self._disc = discount_for_sizes(np.arange(max(disc, default=1) + 1), disc).astype(np.float32)

    # ------------------------------------------------------------------ input checks
    def _bundles(self, bundles, N: int, ndim: int) -> np.ndarray:
        b = np.asarray(bundles)
        if b.ndim != ndim or b.shape[0] != N or not np.issubdtype(b.dtype, np.integer):
            want = "(N, K_max)" if ndim == 2 else "(N, K, K_max)"
            raise ShopperError(f"bundles must be an integer array of shape {want} with N={N}, got {b.dtype} {b.shape}")
        bad = (b < -1) | (b >= self.n_items)
        if bad.any():
            raise ShopperError(
                f"bundle item id {int(b[bad].flat[0])} is outside [0, {self.n_items}); use item indices, -1 for empty slots"
            )
        return b.astype(np.int64)

    def _check_state(self, state: ShopperState) -> int:
        N = len(state)
        if state.theta.shape != (N, self.dim) or state.needs.shape != (N, self.n_categories):
            raise ShopperError(
                f"state has theta {state.theta.shape}, needs {state.needs.shape}; this model needs (N, {self.dim}) and "
                f"(N, {self.n_categories}): was the state made by another catalogue's model?"
            )
        return N

    # ------------------------------------------------------------------ initial state
    def init_state(self, personas, profile_vecs: np.ndarray, rng) -> ShopperState:
        """Fresh sessions for ``personas`` (N rows) whose profile text embeddings are ``profile_vecs`` (N, d).

        θ = normalize(profile + σ_θ·ξ + σ_I·ē_{c*}), ξ a uniform random unit direction drawn from ``rng``, c* this
        session's errand (one of the persona's interests, uniformly, drawn from ``rng`` when σ_I or the focus is
        > 0), ē_c the unit mean embedding of category c; needs are the persona's, those of its other interests
        times (1 − intent_focus), those of dormant complements (:meth:`dormant_mask`) times (1 − dormant_complements);
        budget and β are the persona's; fatigue 0; nothing shown or bought.
        """
        v = np.asarray(profile_vecs, dtype=np.float32)
        N = len(personas)
        if v.shape != (N, self.dim) or not np.isfinite(v).all():
            raise ShopperError(f"profile_vecs must be finite with shape ({N}, {self.dim}), got {v.shape}")
        if personas.needs.shape[1] != self.n_categories:
            raise ShopperError(
                f"personas have needs over {personas.needs.shape[1]} categories, the catalogue has {self.n_categories}"
            )
        p = self.params
        xi = rng.standard_normal((N, self.dim))
        xi /= np.maximum(np.linalg.norm(xi, axis=1, keepdims=True), 1e-12)
        needs = personas.needs.astype(np.float32).copy()
        tilt = np.zeros_like(v)
        if p.sigma_intent > 0 or p.intent_focus > 0:  # this session's errand: one interest, uniformly (one draw per row)
            k = personas.interests.shape[1]
            pick = np.minimum((rng.random((N, 1))[:, 0] * k).astype(np.int64), k - 1)
            rows = np.arange(N)
            errand = personas.interests[rows, pick]
            tilt = p.sigma_intent * self.category_dir[errand]
            others = personas.interests[rows[:, None], np.arange(k)[None, :]]
            other_mask = np.arange(k)[None, :] != pick[:, None]
            r_idx, j_idx = np.nonzero(other_mask)
            needs[r_idx, others[r_idx, j_idx]] *= 1.0 - p.intent_focus
        if p.dormant_complements > 0:  # complements wait for their anchor (no random draw: streams stay aligned)
            needs[self.dormant_mask(personas.interests)] *= 1.0 - p.dormant_complements
        theta = _normalize(v + p.sigma_theta * xi + tilt)
        return ShopperState(
            theta=theta.astype(np.float32),
            needs=needs,
            budget=personas.budget.astype(np.float32).copy(),
            beta=personas.price_sensitivity.astype(np.float32).copy(),
            fatigue=np.zeros(N, np.float32),
            shown=np.zeros((N, self.n_items), bool),
            bought=np.zeros((N, self.n_items), bool),
            active=np.ones(N, bool),
        )

    def dormant_mask(self, interests: np.ndarray) -> np.ndarray:
        """(N, C) bool: the categories whose need starts dormant for shoppers with ``interests`` (N, k): those with an
        anchor c among the interests, G[c, x] > G[x, c] and G[c, x] >= ``dormant_threshold`` (see
        ``ShopperParams.dormant_complements``)."""
        G = self.G
        anchor_of = (G > G.T) & (G >= self.params.dormant_threshold)  # [c, x]: c is x's anchor (diagonal False)
        return anchor_of[np.asarray(interests, dtype=np.int64)].any(axis=1)

    # ------------------------------------------------------------------ scoring (N, J, K_max) bundles
    def _bundle_terms(self, b: np.ndarray) -> "_BundleTerms":
        """The state-independent part of scoring bundles b (N, J, K_max), already checked by :meth:`_bundles`."""
        p = self.params
        valid = b >= 0
        bc = np.maximum(b, 0)
        eb = self._emb_z[b]  # (N, J, Km, d), zeros in empty slots
        pv = valid[..., :, None] & valid[..., None, :]
        pv &= ~np.eye(b.shape[-1], dtype=bool)
        cat = self.category[bc]
        ci, cj = cat[..., :, None], cat[..., None, :]
        fit = 0.5 + p.fit_brand * ((self.brand[bc][..., :, None] == self.brand[bc][..., None, :])
                                   & self.brand_known[bc][..., :, None])
        fit = fit + p.fit_tier * (self.tier[bc][..., :, None] == self.tier[bc][..., None, :])
        comp = np.where(pv, self.G[ci, cj] * fit, 0.0)  # comp*(i -> j)
        same = (ci == cj) & pv
        sub_max = np.zeros(b.shape[:2])
        has = same.any((-1, -2))
        if has.any():  # cosines only for the bundles that hold a same-category pair
            e = eb[has]
            cos = np.einsum("mkd,mld->mkl", e, e)
            sub_max[has] = np.where(same[has], np.maximum(cos, 0.0), 0.0).max((-1, -2))
        size = valid.sum(-1)
        N, J, Km = b.shape
        return _BundleTerms(
            items=b, valid=valid, item=bc, category=cat, log_rel_price=self.log_rel_price[bc],
            emb=np.ascontiguousarray(eb.reshape(N, J * Km, self.dim)), size=size,
            comp_mean=comp.sum((-1, -2)) / np.maximum(size * (size - 1), 1),
            comp_into=comp.sum(-2) / np.maximum(size - 1, 1)[..., None],  # what the others bring to i: comp*(j -> i)
            sub_max=sub_max, price=np.where(valid, self.price[bc], 0.0),
        )

    def _terms(self, state: ShopperState, t: "_BundleTerms"):
        """Per-bundle pieces under ``state``: utility, click prob, purchase probs, seen share (N, J[, Km])."""
        p = self.params
        N = len(state)
        J, Km = t.items.shape[1:]
        sim = np.matmul(t.emb, state.theta[:, :, None]).reshape(N, J, Km)  # <θ, e> of every bundle item
        rows = np.arange(N)[:, None, None]
        valid, size = t.valid, t.size
        aff = p.w_s * sim + p.w_n * state.needs[rows, t.category] - state.beta[:, None, None] * t.log_rel_price
        seen = np.where(valid, state.shown[rows, t.item], False).sum(-1) / np.maximum(size, 1)
        util = (np.where(valid, aff, 0.0).sum(-1) / np.maximum(size, 1)
                + p.gamma * t.comp_mean - p.delta * t.sub_max - p.rho * seen)
        buy = sigmoid((aff + p.gamma * t.comp_into - p.tau_b) / p.T_b)
        buy = np.where(valid & ~state.bought[rows, t.item], buy, 0.0)
        click = np.where(size > 0, sigmoid((util - p.tau_c) / p.T_c), 0.0)
        click = np.where(state.active[:, None], click, 0.0)
        return util, click, buy, seen

    def _prepare(self, state: ShopperState, bundles) -> "_BundleTerms":
        return self._bundle_terms(self._bundles(bundles, self._check_state(state), 3))

    def utility(self, state: ShopperState, bundles) -> np.ndarray:
        """(N, K) float32 U(B) of candidate bundles (N, K, K_max); empty bundles score 0 (and are never clicked)."""
        return self._terms(state, self._prepare(state, bundles))[0].astype(np.float32)

    def click_prob(self, state: ShopperState, bundles) -> np.ndarray:
        """(N, K) float32 P(click) of candidate bundles (N, K, K_max); 0 for empty bundles and ended sessions."""
        return self._terms(state, self._prepare(state, bundles))[1].astype(np.float32)

    def purchase_probs(self, state: ShopperState, bundles) -> np.ndarray:
        """(N, K, K_max) float32 P(item wanted | click) per slot, before the budget; 0 for empty slots and items
        already bought this session."""
        return self._terms(state, self._prepare(state, bundles))[2].astype(np.float32)

    def expected_response(self, state: ShopperState, bundles) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Exact one-step expected response to each candidate bundle (N, K, K_max): (N, K) float64 click
        probability, expected items bought and expected amount paid (currency units, after the discount).

        Exact for the response (click, every pattern of wanted items, the budget-ordered purchase and the
        bundle discount are enumerated: 2^K_max patterns); it ignores what happens after the step. The
        expected reward is :func:`bundlerl.env.reward.reward` of these (the reward is linear in the response).
        """
        t = self._prepare(state, bundles)
        _, click, buy, _ = self._terms(state, t)
        Km = t.items.shape[-1]
        order = np.argsort(-buy, axis=-1, kind="stable")
        pb = np.take_along_axis(buy, order, -1)
        price = np.take_along_axis(t.price, order, -1)
        size = t.size
        budget = self._budget_cap(state)[:, None, None]
        want = ((np.arange(1, 2**Km)[:, None] >> np.arange(Km)) & 1).astype(bool)  # (P, Km) wanted patterns
        prob = np.prod(np.where(want, pb[..., None, :], 1.0 - pb[..., None, :]), axis=-1)  # (N, K, P)
        _, n, paid = self._purchase(want, price[..., None, :], budget, size[..., None])
        return click, click * (prob * n).sum(-1), click * (prob * paid).sum(-1)

    def _budget_cap(self, state: ShopperState) -> np.ndarray:
        return state.budget.astype(np.float64) if self.params.budget else np.full(len(state), np.inf)

    def _purchase(self, want, price, budget, size):
        """Sequential budgeted purchase over slots already sorted by purchase probability.

        :param want: (..., Km) bool wanted items; :param price: (..., Km) prices (0 for empty slots);
        :param budget: budget broadcastable to want[..., 0]; :param size: (...) bundle sizes.
        Returns bought (..., Km) bool, n (...) int, paid (...) float64 after the all-items discount.
        """
        Km = price.shape[-1]
        left = np.broadcast_to(budget, price.shape[:-1]).astype(np.float64)
        bought = np.zeros(np.broadcast_shapes(np.shape(want), price.shape), bool)
        for k in range(Km):
            take = want[..., k] & (price[..., k] <= left)
            bought[..., k] = take
            left = left - np.where(take, price[..., k], 0.0)
        n = bought.sum(-1)
        total = np.where(bought, price, 0.0).sum(-1)
        full = (n == size) & (size >= 2)
        paid = total * (1.0 - np.where(full, self._disc[np.minimum(size, len(self._disc) - 1)], 0.0))
        return bought, n, paid

    # ------------------------------------------------------------------ step
    def leave_prob(self, fatigue: np.ndarray) -> np.ndarray:
        """σ(λ_0 + λ_f·f): probability of leaving after a step with fatigue f (post-update)."""
        return sigmoid(self.params.lambda_0 + self.params.lambda_f * np.asarray(fatigue, np.float64))

    def cheapest_relevant_price(self, state: ShopperState) -> np.ndarray:
        """(N,) float32 price of the cheapest item in any category with need >= need_relevant (inf if none)."""
        relevant = state.needs >= self.params.need_relevant
        return np.where(relevant, self.cat_min_price[None, :], np.inf).min(axis=1).astype(np.float32)

    def step(self, state: ShopperState, bundles, rng) -> Response:
        """Show one bundle per shopper (N, K_max) -1 padded (all -1 = nothing shown); mutate ``state``; respond.

        Draws exactly N x (K_max + 2) uniforms from ``rng`` (click, one per slot for wanting, leave), so
        per-user streams stay aligned whatever happens.
        """
        p = self.params
        N = self._check_state(state)
        b = self._bundles(bundles, N, 2)[:, None, :]  # (N, 1, Km)
        Km = b.shape[-1]
        u = rng.random((N, Km + 2))
        terms = self._bundle_terms(b)
        _, pc, pb, seen = self._terms(state, terms)
        pc, pb, seen, valid, b = pc[:, 0], pb[:, 0], seen[:, 0], terms.valid[:, 0], b[:, 0]
        active = state.active.copy()
        click = active & (u[:, 0] < pc)
        want = click[:, None] & (u[:, 1:Km + 1] < pb)
        order = np.argsort(-pb, axis=-1, kind="stable")
        bc = np.maximum(b, 0)
        price = np.where(valid, self.price[bc], 0.0)
        bought_sorted, n, paid = self._purchase(np.take_along_axis(want, order, -1), np.take_along_axis(price, order, -1),
                                                self._budget_cap(state), valid.sum(-1))
        bought = np.zeros_like(bought_sorted)
        np.put_along_axis(bought, order, bought_sorted, -1)
        # dynamics: purchases in purchase order (satiation, then activation of complements)
        for k in range(Km):
            slot = order[:, k]
            who = np.flatnonzero(bought_sorted[:, k])
            if who.size == 0:
                continue
            item = b[who, slot[who]]
            c = self.category[item]
            state.needs[who, c] *= 1.0 - p.satiation
            if p.activation:
                state.needs[who] = np.minimum(1.0, state.needs[who] + p.kappa * self.G[c])
            state.bought[who, item] = True
        if p.budget:
            state.budget -= paid.astype(np.float32)
            np.maximum(state.budget, 0.0, out=state.budget)  # guards float rounding only; purchases always fit
        if click.any():
            cr = np.flatnonzero(click)
            e = terms.emb[cr].sum(1) / valid[cr].sum(1, keepdims=True)  # empty slots hold zero vectors
            state.theta[cr] = _normalize(state.theta[cr] + p.eta * (e - state.theta[cr]))
        if p.fatigue:
            f = state.fatigue
            state.fatigue = np.where(
                active, np.where(click, f * (1.0 - p.phi_hit), np.minimum(1.0, f + p.phi_miss + p.phi_rep * seen)), f
            ).astype(np.float32)
        vr = np.flatnonzero(active[:, None].repeat(Km, 1).ravel() & valid.ravel())
        state.shown[vr // Km, b.ravel()[vr]] = True
        left = active & (u[:, Km + 1] < self.leave_prob(state.fatigue))
        cheapest = self.cheapest_relevant_price(state)
        # without a budget, a shopper with nothing relevant left still ends the session
        oob = active & ((state.budget < cheapest) if p.budget else ~np.isfinite(cheapest))
        done = left | oob | ~active
        state.active &= ~done
        return Response(  # inactive rows: click False, nothing bought (click and want are masked by ``active``)
            click=click, bought=bought, n_bought=n.astype(np.int32), revenue=paid.astype(np.float32),
            left=left, out_of_budget=oob, done=done,
        )


def _normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
