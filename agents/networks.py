"""Networks for a *set* of candidate bundles: an order-free features extractor and per-candidate heads.

Observation (batched, see ``bundlerl.env.observation``): ``profile`` (N, P), ``history`` (N, P), ``session`` (N, S),
``candidates`` (N, K, F), ``action_mask`` (N, K).

:class:`CandidateSetExtractor` (a SB3 ``BaseFeaturesExtractor``)

- context  c   = MLP_ctx([profile, history, session])                  (N, C)
- tokens   h_k = MLP_tok([candidates[:, k], c])   (shared over k)     (N, K, H)
- pooled   g   = [masked mean_k h_k, masked max_k h_k]               (N, 2H)  (0 where no candidate is valid)

Its flat output is ``[mask (K) | c (C) | g (2H) | h (K*H)]`` (:class:`SetLayout` tells the offsets).
``c`` and ``g`` are invariant to the order of the candidates; ``h`` is permuted with them.

Heads that keep the order-freedom (``NetworkConfig.candidate_head``):

- :class:`CandidateScorer` (PPO / MaskablePPO "mlp_extractor"): logit_k = MLP_score([h_k, g, c]) — one shared
  scorer, so permuting the candidates permutes the logits; masked candidates get logit ``-1e8`` (the
  mask is part of the observation, so plain PPO never picks them either); the value head reads ``[g, c]``.
  :class:`CandidateActorCriticPolicy` / :class:`MaskableCandidateActorCriticPolicy` plug it in with an
  identity ``action_net``.
- :class:`MaskedQNetwork` with ``candidate_head=True`` (DQN): Q_k = MLP_score([h_k, g, c]).

DQN and invalid actions: :class:`MaskedQNetwork` sets the Q-value of a masked candidate to ``-1e9`` in
``forward`` (so the TD target's max runs over valid next actions only) and its ``_predict`` takes the
argmax with masked Q = -inf (so a greedy DQN never picks a masked candidate). A row with no valid
candidate is left unmasked (the env then penalises whatever is chosen). ``bundlerl.agents.sb3.MaskedDQN``
also restricts epsilon-exploration to valid candidates.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.dqn.policies import DQNPolicy, QNetwork
from torch import nn

from bundlerl.agents.policy import PolicyError
from bundlerl.env.observation import CANDIDATES_KEY, HISTORY_KEY, MASK_KEY, PROFILE_KEY, SESSION_KEY

__all__ = [
    "SetLayout", "CandidateSetExtractor", "CandidateScorer", "CandidateActorCriticPolicy",
    "MaskableCandidateActorCriticPolicy", "MaskedQNetwork", "MaskedDQNPolicy", "masked_fill_invalid",
    "ACTIVATIONS",
]

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}
MASKED_LOGIT = -1e8
"""Logit of a masked candidate (as sb3-contrib's MaskableCategorical uses)."""
MASKED_Q = -1e9
"""Q-value of a masked candidate in :meth:`MaskedQNetwork.forward`."""


def masked_fill_invalid(values: th.Tensor, mask: th.Tensor, fill: float) -> th.Tensor:
    """``values`` (N, K) with ``fill`` where ``mask`` (N, K) <= 0, except rows without any valid entry (unchanged)."""
    valid = mask > 0
    drop = ~valid & valid.any(dim=1, keepdim=True)
    return values.masked_fill(drop, fill)


@dataclass(frozen=True)
class SetLayout:
    """Where each block sits in the extractor's flat output ``[mask | context | pooled | tokens]``."""

    K: int
    C: int
    H: int

    @property
    def dim(self) -> int:
        return self.K + self.C + 2 * self.H + self.K * self.H

    def split(self, features: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor, th.Tensor]:
        """(mask (N,K), context (N,C), pooled (N,2H), tokens (N,K,H)) views of ``features`` (N, dim)."""
        K, C, H = self.K, self.C, self.H
        mask = features[:, :K]
        ctx = features[:, K:K + C]
        pooled = features[:, K + C:K + C + 2 * H]
        tokens = features[:, K + C + 2 * H:].reshape(-1, K, H)
        return mask, ctx, pooled, tokens


def _mlp(sizes: list[int], act: type[nn.Module], last_act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if last_act or i < len(sizes) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


class CandidateSetExtractor(BaseFeaturesExtractor):
    """Order-free features of a Dict observation holding a set of K candidates (see the module docstring).

    :param observation_space: the env's Dict space with keys profile, history, session, candidates, action_mask.
    :param hidden: H, the per-candidate embedding width.
    :param context_dim: C, the user-context embedding width.
    :param activation: ``relu``, ``tanh`` or ``gelu``.
    :raises PolicyError: the space lacks a key or has unexpected shapes.
    """

    def __init__(self, observation_space: spaces.Dict, hidden: int = 64, context_dim: int = 32,
                 activation: str = "relu"):
        need = (PROFILE_KEY, HISTORY_KEY, SESSION_KEY, CANDIDATES_KEY, MASK_KEY)
        if not isinstance(observation_space, spaces.Dict) or any(k not in observation_space.spaces for k in need):
            raise PolicyError(f"CandidateSetExtractor needs a Dict space with keys {need}; got {observation_space}")
        sp = observation_space.spaces
        K, F = sp[CANDIDATES_KEY].shape
        if sp[MASK_KEY].shape != (K,):
            raise PolicyError(f"{MASK_KEY} shape {sp[MASK_KEY].shape} does not match {CANDIDATES_KEY} {sp[CANDIDATES_KEY].shape}")
        P, P2, S = sp[PROFILE_KEY].shape[0], sp[HISTORY_KEY].shape[0], sp[SESSION_KEY].shape[0]
        layout = SetLayout(K=int(K), C=int(context_dim), H=int(hidden))
        super().__init__(observation_space, features_dim=layout.dim)
        act = ACTIVATIONS[activation]
        self.layout = layout
        self.context_net = _mlp([P + P2 + S, context_dim, context_dim], act)
        self.token_net = _mlp([F + context_dim, hidden, hidden], act)

    def encode(self, obs: dict[str, th.Tensor]) -> dict[str, th.Tensor]:
        """The blocks: ``mask`` (N,K), ``context`` (N,C), ``pooled`` (N,2H), ``tokens`` (N,K,H)."""
        mask = obs[MASK_KEY].float()
        ctx = self.context_net(th.cat([obs[PROFILE_KEY], obs[HISTORY_KEY], obs[SESSION_KEY]], dim=1))
        cand = obs[CANDIDATES_KEY]
        n, K = cand.shape[0], cand.shape[1]
        tokens = self.token_net(th.cat([cand, ctx[:, None, :].expand(n, K, ctx.shape[1])], dim=2))
        valid = mask[:, :, None] > 0
        cnt = valid.sum(dim=1).clamp(min=1)
        mean = (tokens * valid).sum(dim=1) / cnt
        mx = tokens.masked_fill(~valid, -th.inf).max(dim=1).values
        mx = th.where(th.isfinite(mx), mx, th.zeros_like(mx))  # no valid candidate -> 0
        return {"mask": mask, "context": ctx, "pooled": th.cat([mean, mx], dim=1), "tokens": tokens}

    def forward(self, obs: dict[str, th.Tensor]) -> th.Tensor:
        e = self.encode(obs)
        return th.cat([e["mask"], e["context"], e["pooled"], e["tokens"].flatten(1)], dim=1)


class _Scorer(nn.Module):
    """score_k = MLP([h_k, g, c]) -> (N, K), shared over candidates."""

    def __init__(self, layout: SetLayout, hidden: int, act: type[nn.Module]):
        super().__init__()
        self.layout = layout
        self.net = _mlp([layout.H + 2 * layout.H + layout.C, hidden, 1], act, last_act=False)

    @property
    def out_layer(self) -> nn.Linear:
        return self.net[-1]

    def forward(self, features: th.Tensor) -> th.Tensor:
        mask, ctx, pooled, tokens = self.layout.split(features)
        n, K = tokens.shape[0], tokens.shape[1]
        glob = th.cat([pooled, ctx], dim=1)[:, None, :].expand(n, K, pooled.shape[1] + ctx.shape[1])
        return self.net(th.cat([tokens, glob], dim=2)).squeeze(-1)


class CandidateScorer(nn.Module):
    """PPO "mlp_extractor" for :class:`CandidateSetExtractor` features: per-candidate logits and a value latent.

    ``latent_dim_pi`` = K (the logits, masked with ``MASKED_LOGIT``), ``latent_dim_vf`` = ``vf_arch[-1]``.
    """

    def __init__(self, layout: SetLayout, hidden: int, vf_arch: list[int], act: type[nn.Module]):
        super().__init__()
        self.layout = layout
        self.scorer = _Scorer(layout, hidden, act)
        vf_arch = list(vf_arch) or [hidden]
        self.value_net = _mlp([2 * layout.H + layout.C, *vf_arch], act)
        self.latent_dim_pi = layout.K
        self.latent_dim_vf = vf_arch[-1]

    def forward_actor(self, features: th.Tensor) -> th.Tensor:
        mask = features[:, : self.layout.K]
        return masked_fill_invalid(self.scorer(features), mask, MASKED_LOGIT)

    def forward_critic(self, features: th.Tensor) -> th.Tensor:
        _, ctx, pooled, _ = self.layout.split(features)
        return self.value_net(th.cat([pooled, ctx], dim=1))

    def forward(self, features: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        return self.forward_actor(features), self.forward_critic(features)


class _CandidateHeadMixin:
    """Replaces SB3's MLP head by :class:`CandidateScorer` and its ``action_net`` by the identity."""

    def __init__(self, *args, scorer_hidden: int = 64, **kwargs):
        self.scorer_hidden = int(scorer_hidden)
        super().__init__(*args, **kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data["scorer_hidden"] = self.scorer_hidden
        return data

    def _build_mlp_extractor(self) -> None:
        fe = self.features_extractor
        if not isinstance(fe, CandidateSetExtractor):
            raise PolicyError("the candidate head needs features_extractor_class=CandidateSetExtractor")
        arch = self.net_arch
        vf_arch = arch.get("vf", []) if isinstance(arch, dict) else list(arch or [])
        self.mlp_extractor = CandidateScorer(fe.layout, self.scorer_hidden, vf_arch, self.activation_fn)

    def _build(self, lr_schedule) -> None:
        super()._build(lr_schedule)
        # The scorer already outputs one logit per candidate: no extra linear layer, which would mix candidates.
        self.action_net = nn.Identity()
        if self.ortho_init:  # small initial logits, as SB3 does for action_net
            self.mlp_extractor.scorer.out_layer.apply(partial(self.init_weights, gain=0.01))
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)


class CandidateActorCriticPolicy(_CandidateHeadMixin, ActorCriticPolicy):
    """SB3 ``ActorCriticPolicy`` whose logits come from a shared per-candidate scorer (PPO).

    Use with ``features_extractor_class=CandidateSetExtractor``. Extra kwarg ``scorer_hidden``: the scorer's width.
    """


def _maskable_base():
    from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy

    return MaskableActorCriticPolicy


class MaskableCandidateActorCriticPolicy(_CandidateHeadMixin, _maskable_base()):
    """sb3-contrib ``MaskableActorCriticPolicy`` with the per-candidate scorer head (MaskablePPO)."""


class MaskedQNetwork(QNetwork):
    """A DQN Q-network that never values masked candidates (see the module docstring).

    :param candidate_head: score each candidate with a shared MLP over the :class:`CandidateSetExtractor`
        blocks (needs that extractor) instead of SB3's MLP over the flat features.
    :param scorer_hidden: width of that scorer.
    """

    def __init__(self, *args, candidate_head: bool = False, scorer_hidden: int = 64, **kwargs):
        super().__init__(*args, **kwargs)
        self.candidate_head = bool(candidate_head)
        self.scorer_hidden = int(scorer_hidden)
        if self.candidate_head:
            fe = self.features_extractor
            if not isinstance(fe, CandidateSetExtractor):
                raise PolicyError("candidate_head=True needs features_extractor_class=CandidateSetExtractor")
            self.q_net = _Scorer(fe.layout, self.scorer_hidden, self.activation_fn)

    def forward(self, obs) -> th.Tensor:
        """(N, K) Q-values; masked candidates get ``MASKED_Q`` so that max / argmax skip them."""
        q = super().forward(obs)
        return masked_fill_invalid(q, obs[MASK_KEY], MASKED_Q)

    def _predict(self, observation, deterministic: bool = True) -> th.Tensor:
        """Greedy action with masked Q set to -inf (a masked candidate is never chosen)."""
        q = masked_fill_invalid(self(observation), observation[MASK_KEY], -th.inf)
        return q.argmax(dim=1).reshape(-1)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(candidate_head=self.candidate_head, scorer_hidden=self.scorer_hidden)
        return data


class MaskedDQNPolicy(DQNPolicy):
    """``DQNPolicy`` building :class:`MaskedQNetwork` s (online and target). Extra kwargs as MaskedQNetwork."""

    def __init__(self, *args, candidate_head: bool = False, scorer_hidden: int = 64, **kwargs):
        self.candidate_head = bool(candidate_head)
        self.scorer_hidden = int(scorer_hidden)
        super().__init__(*args, **kwargs)

    def make_q_net(self) -> MaskedQNetwork:
        net_args = self._update_features_extractor(self.net_args, features_extractor=None)
        return MaskedQNetwork(candidate_head=self.candidate_head, scorer_hidden=self.scorer_hidden,
                              **net_args).to(self.device)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(candidate_head=self.candidate_head, scorer_hidden=self.scorer_hidden)
        return data


def numpy_mask(obs: dict[str, Any]) -> np.ndarray:
    """(N, K) bool mask of a batched numpy observation."""
    return np.asarray(obs[MASK_KEY]) > 0
