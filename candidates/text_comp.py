"""The text (+ item-id) part of the complementarity model: a low-rank bilinear two-tower on item embeddings.

It predicts the log-lift *residual* over the category prior:

    log L0(i, j) = logL_cat[c(i), c(j)] + <u_i, v_j> + b
    u_i = e_i @ U + a_i,   v_j = e_j @ V + a'_j

``e`` are the (n, d) unit text embeddings, ``U, V`` (d, r) are shared projections (so items with
no baskets still get a score from their text), ``a, a'`` (n, r) are per-item offsets learned only
for items seen in baskets (zero for cold items, L2-regularised).

Training is the density-ratio trick: positives are co-purchase instances (i, j) drawn in
proportion to their counts, negatives keep ``i`` and draw ``j'`` from the marginal of ``j`` over
positives (popularity-matched); the logistic odds then estimate ``P(i, j) / (P(i) P(j))``, a lift.
Substitute pairs (same category, cosine >= threshold) are dropped from the positives.
torch is imported lazily, inside :func:`train_text_model`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from bundlerl.candidates.cooccurrence import PairCounts
from bundlerl.utils.threads import torch_threads

__all__ = ["TextFactors", "train_text_model", "substitute_mask"]

#: at::internal::GRAIN_SIZE: torch splits a reduction across threads only above this many elements.
_TORCH_GRAIN = 32768


def substitute_mask(i: np.ndarray, j: np.ndarray, category: np.ndarray, emb: np.ndarray, threshold: float) -> np.ndarray:
    """(m,) bool: same category and cosine(e_i, e_j) >= threshold (rows of ``emb`` are unit-norm).

    Cosines are computed only for the same-category pairs (chunked), so this is cheap for long lists.
    """
    i = np.asarray(i, np.int64)
    j = np.asarray(j, np.int64)
    out = np.zeros(i.shape, bool)
    same = np.flatnonzero(category[i] == category[j])
    for s in range(0, same.size, 1 << 16):
        k = same[s : s + (1 << 16)]
        cos = np.einsum("md,md->m", emb[i[k]].astype(np.float32), emb[j[k]].astype(np.float32))
        out[k] = cos >= threshold
    return out


def _gather_matmul(torch, threads: int):
    """``f(E, idx, P) = E[idx] @ P`` (rows of the constant table ``E`` times the trainable ``P``) as an autograd
    function whose two matmuls (forward ``X @ P``, backward ``X.T @ grad``, the same calls autograd's ``mm``
    makes for a row-major ``P``) run with ``threads`` intra-op threads, whatever the caller's setting.
    ``E`` and ``idx`` get no gradient."""

    class GatherMatmul(torch.autograd.Function):
        @staticmethod
        def forward(ctx, E, idx, P):
            X = E.index_select(0, idx)
            with torch_threads(threads):
                out = X.mm(P)
            ctx.save_for_backward(X)
            return out

        @staticmethod
        def backward(ctx, grad):
            (X,) = ctx.saved_tensors
            with torch_threads(threads):
                gP = X.t().mm(grad)
            return None, None, gP

    return GatherMatmul.apply


@dataclass(frozen=True)
class TextFactors:
    """Per-item factors of the trained model: score residual = ``u[i] @ v[j] + bias``.

    ``u``, ``v``: (n, r) float32; ``bias``: float; ``proj_u``, ``proj_v``: (d, r) float32 text
    projections (kept so that new items can be scored from their embedding alone).
    """

    u: np.ndarray
    v: np.ndarray
    bias: float
    proj_u: np.ndarray
    proj_v: np.ndarray

    def residual(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """(m,) float32 log-lift residual of pairs (i[k], j[k])."""
        return np.einsum("mr,mr->m", self.u[i], self.v[j]) + np.float32(self.bias)


def train_text_model(
    counts: PairCounts,
    category: np.ndarray,
    emb: np.ndarray,
    cat_log_lift: np.ndarray,
    rng: np.random.Generator,
    *,
    rank: int,
    n_pairs: int,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    id_weight_decay: float,
    use_item_ids: bool,
    substitute_cosine: float,
    threads: int,
    on_batch: Callable[[int], None] | None = None,
) -> TextFactors:
    """Fit the two-tower on ``counts``; returns per-item factors for all ``n`` items.

    ``on_batch(epoch)`` (0-based epoch), when given, is called after each optimiser step (progress bars):
    ``ceil(2 * n_pairs / batch_size)`` calls per epoch, none when there is nothing to train on.

    With no pairs at all (no basket with two items) the residual is zero everywhere.
    Deterministic given ``rng`` (torch is seeded from it).
    """
    import torch

    n, d = emb.shape
    ii, jj = counts.pairs()
    w = counts.counts.astype(np.float64)
    if ii.size:
        sub = substitute_mask(ii, jj, category, emb, substitute_cosine)
        w[sub] = 0.0
    if ii.size == 0 or w.sum() == 0:
        z = np.zeros((n, rank), np.float32)
        return TextFactors(z, z.copy(), 0.0, np.zeros((d, rank), np.float32), np.zeros((d, rank), np.float32))

    m = int(n_pairs)
    pick = rng.choice(ii.size, size=m, p=w / w.sum())
    pi, pj = ii[pick], jj[pick]
    # negatives: same anchor, partner drawn from the partner marginal of the positives (popularity-matched)
    nj = pj[rng.permutation(m)]
    clash = nj == pi
    nj[clash] = pj[rng.integers(0, m, int(clash.sum()))]
    I = np.concatenate([pi, pi])
    J = np.concatenate([pj, nj])
    Y = np.concatenate([np.ones(m, np.float32), np.zeros(m, np.float32)])
    base = cat_log_lift[category[I], category[J]].astype(np.float32)
    order = rng.permutation(I.size)
    I, J, Y, base = I[order], J[order], Y[order], base[order]

    with torch_threads(threads):  # the caller's thread count is restored on exit
        g = torch.Generator().manual_seed(int(rng.integers(0, 2**31 - 1)))
        E = torch.from_numpy(np.ascontiguousarray(emb, dtype=np.float32))
        scale = 1.0 / np.sqrt(d)
        PU = torch.nn.Parameter(torch.randn(d, rank, generator=g) * scale)
        PV = torch.nn.Parameter(torch.randn(d, rank, generator=g) * scale)
        b = torch.nn.Parameter(torch.zeros(()))
        params = [PU, PV, b]
        seen = counts.item_counts > 0
        if use_item_ids:
            # dense per-item rows with a dense Adam: SparseAdam's per-step sparse_mask/coalesce took 3/4 of
            # the fit on Instacart (50k items), a dense update of the (n, r) tables costs ~1 ms per step
            AU = torch.nn.Embedding(n, rank)
            AV = torch.nn.Embedding(n, rank)
            torch.nn.init.zeros_(AU.weight)
            torch.nn.init.zeros_(AV.weight)
            opt_id = torch.optim.Adam(list(AU.parameters()) + list(AV.parameters()), lr=lr)
        opt = torch.optim.Adam([{"params": params, "weight_decay": weight_decay}], lr=lr)
        It, Jt = torch.from_numpy(I), torch.from_numpy(J)
        Yt, Bt = torch.from_numpy(Y), torch.from_numpy(base)
        bce = torch.nn.BCEWithLogitsLoss()
        tower = _gather_matmul(torch, int(threads))
        # one intra-op thread for the step's elementwise work (optimizer updates, losses, embedding backward): on the
        # shared 2-core host a 2-thread OpenMP region stalls whenever the other core is busy (Adam alone went from
        # ~1 to ~110 ms a step). Those ops give the same bits with any thread count: elementwise, row-wise, or
        # reductions over a batch no longer than torch's parallel grain (one chunk either way). The matmuls keep
        # ``threads`` inside ``tower``.
        torch.set_num_threads(1 if batch_size <= _TORCH_GRAIN else max(1, int(threads)))
        for epoch in range(int(epochs)):
            perm = torch.randperm(It.numel(), generator=g)
            for s in range(0, It.numel(), batch_size):
                k = perm[s : s + batch_size]
                # index_select: the same rows as ``x[k]``, copied row-wise instead of by the generic index kernel
                bi, bj = It.index_select(0, k), Jt.index_select(0, k)
                u = tower(E, bi, PU)
                v = tower(E, bj, PV)
                if use_item_ids:
                    au, av = AU(bi), AV(bj)
                    u = u + au
                    v = v + av
                logit = Bt.index_select(0, k) + (u * v).sum(1) + b
                loss = bce(logit, Yt.index_select(0, k))
                if use_item_ids:
                    loss = loss + id_weight_decay * ((au**2).sum(1) + (av**2).sum(1)).mean()
                opt.zero_grad()
                if use_item_ids:
                    opt_id.zero_grad()
                loss.backward()
                opt.step()
                if use_item_ids:
                    opt_id.step()
                if on_batch is not None:
                    on_batch(epoch)
        torch.set_num_threads(max(1, int(threads)))
        with torch.no_grad():
            u_all = (E @ PU).numpy()
            v_all = (E @ PV).numpy()
            if use_item_ids:
                mask = torch.from_numpy(seen.astype(np.float32))[:, None]
                u_all = u_all + (AU.weight * mask).numpy()
                v_all = v_all + (AV.weight * mask).numpy()
            bias = float(b.item())
            pu, pv = PU.detach().numpy().copy(), PV.detach().numpy().copy()
    return TextFactors(u_all.astype(np.float32), v_all.astype(np.float32), bias, pu, pv)
