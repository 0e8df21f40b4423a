"""``Recommender``: an exported model answering recommendation requests; what the HTTP service calls.

One code path with the env. For a batch of requests the recommender fills an :class:`~bundlerl.env.event_log.
EventLog` (one row per user: the profile vector and its projection, then the user's events replayed as the env's
steps, :mod:`bundlerl.serving.user_state`), builds the candidates with :func:`bundlerl.env.candidate_cache.
build_pools` and the observation with :func:`bundlerl.env.observation.build_observation`: the functions the env
itself calls. Only three things are serving's own: the profile of a user without text
(:func:`bundlerl.serving.artifacts.default_profile`), exclusions (candidates holding an excluded item are masked out,
as the env masks bundles holding a bought item) and the exploring distribution and ranked list
(:mod:`bundlerl.serving.exploration`).

Where the time goes: every call records its stages' seconds in :attr:`Recommender.last_timings` (encoding, user
state, candidates, policy, ranking and reasons); ``benchmarks/bench_serving.py`` reports them.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bundlerl.env.candidate_cache import build_pools
from bundlerl.env.event_log import EventLog
from bundlerl.env.observation import build_observation, project
from bundlerl.serving.exploration import exploring_probabilities, ranked_slots
from bundlerl.serving.reasons import purchase_comp, reason_seeds, reasons_for
from bundlerl.serving.schemas import BundleOut
from bundlerl.serving.user_state import UnknownItemError, UserRequest, to_steps

__all__ = ["Recommender", "Recommendation"]

_TEXT_MEMO = 4096  # profile vectors kept per process (the encoder's cost is per distinct text)


@dataclass
class Recommendation:
    """The answer to one request, and what the impression journal records (:mod:`bundlerl.serving.journal`).

    ``observation`` holds the user's observation row (each array without the batch axis), ``probabilities`` the
    exploring distribution over the K candidates, ``policy_probabilities`` the policy's own, ``action`` the
    logged (slot-1) candidate (-1 when no candidate was valid), ``candidates`` (K, K_max) the candidate items.
    """

    impression_id: str
    bundles: list[BundleOut]
    """The ranked bundles (``bundlerl.serving.schemas.BundleOut``: items (id, title, price), discounted bundle price,
    discount, ``score`` the policy's probability, ``propensity`` the exploring distribution's (slot 1's is the
    logged propensity), reason and the scores behind it, ``candidate`` its index among the K candidates)."""
    model_version: str
    observation: dict[str, np.ndarray]
    probabilities: np.ndarray
    policy_probabilities: np.ndarray
    action: int
    propensity: float
    candidates: np.ndarray


class Recommender:
    """Serves an exported model (see the module docstring).

    :param artifacts: a :class:`bundlerl.serving.artifacts.ModelArtifacts`.
    :param seed: seed of the exploration draws (a ``SeedSequence`` with the SERVING purpose and ``stream``).
    :param stream: the stream within the seed (the HTTP workers pass their process id).
    :param encoder: text encoder (default: the packaged SentenceEncoder the model was exported with, on onnxruntime).
    :param encoder_precision: the default encoder's weights, ``"fp32"`` (the model's vectors) or ``"int8"``
        (quantised: ~3x less CPU per new text, cosine ~0.99 to the model's vectors;
        :mod:`bundlerl.encoders.onnx_sentence`).
    """

    def __init__(self, artifacts, *, seed: int = 0, stream: int = 0, encoder=None, encoder_precision: str = "fp32"):
        from bundlerl.encoders.onnx_sentence import check_precision
        from bundlerl.evaluation.seeds import Purpose

        self.art = artifacts
        self.stream = int(stream)
        self.rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(Purpose.SERVING),
                                                                                      int(stream))))
        self._encoder = encoder
        self.encoder_precision = check_precision(encoder_precision)
        self._memo: OrderedDict[str, np.ndarray] = OrderedDict()
        #: profile-text vectors kept (the encoder's cost is per distinct text)
        self.memo_size = _TEXT_MEMO
        #: key signing impression ids (``bundlerl.serving.impressions``); None: unsigned ids
        self.id_key: bytes | None = None
        self.last_timings: dict[str, float] = {}

    @classmethod
    def load(cls, folder: str | os.PathLike, *, seed: int = 0, stream: int = 0, items: bool = True,
             encoder_precision: str = "fp32") -> "Recommender":
        """The recommender of the exported model folder ``folder`` (hashes verified, nothing unpickled); with
        ``items``, the cold-start items of its item store too. Raises ModelFolderError and the parts' errors."""
        from bundlerl.serving.artifacts import load_artifacts

        art = load_artifacts(Path(folder))
        if items:
            from bundlerl.serving.item_store import ItemStore

            art = art.with_items(ItemStore(folder).read())
        return cls(art, seed=seed, stream=stream, encoder_precision=encoder_precision)

    def _impression_id(self) -> str:
        """A new impression id (:mod:`bundlerl.serving.impressions`: the stream, the time in ns and 64 bits of the
        exploration generator, unique across workers, restarts and concurrent requests), signed with
        :attr:`id_key` when set (the service sets it)."""
        from bundlerl.serving.impressions import new_impression_id

        return new_impression_id(self.stream, time.time_ns(), self.rng, self.id_key)

    # ------------------------------------------------------------------ text
    @property
    def encoder(self):
        """The text encoder: the model's SentenceEncoder run by onnxruntime on one thread
        (:class:`~bundlerl.encoders.onnx_sentence.OnnxSentenceEncoder`: same vectors, half the CPU; int8 weights
        with ``encoder_precision="int8"``), or, at float32, the SentenceEncoder itself for a model whose pipeline it
        does not export (int8 then raises EncoderError: there is no quantised fallback)."""
        if self._encoder is None:
            from bundlerl.encoders import SentenceEncoder
            from bundlerl.encoders.base import EncoderError
            from bundlerl.encoders.onnx_sentence import OnnxSentenceEncoder

            base = SentenceEncoder(self.art.manifest["encoder"]["name"])
            try:
                onnx = OnnxSentenceEncoder(base, precision=self.encoder_precision)
                onnx.encode(["load and check the exported graph"])
                self._encoder = onnx
            except EncoderError:
                if self.encoder_precision != "fp32":
                    raise
                self._encoder = base
        return self._encoder

    def encode(self, texts: list[str], *, memo: bool = True) -> np.ndarray:
        """(n, d) float32 unit vectors of ``texts``, memoised per process by text (``memo``; new items pass False):
        the last ``memo_size`` distinct texts used (least recently used evicted first; a batch's own texts are
        answered before anything is evicted, whatever the batch's size).

        The encoder runs on one thread: a worker computes one batch at a time, and on a busy machine two threads
        fighting for the cores made one sentence 10x slower (BENCHMARKS.md, Serving)."""
        from bundlerl.utils.threads import torch_threads

        d = self.art.catalog.embeddings.shape[1]
        if not memo:
            with torch_threads(1):
                return np.asarray(self.encoder.encode(list(texts)), dtype=np.float32).reshape(-1, d)
        if not texts:
            return np.zeros((0, d), np.float32)
        have = {t: self._memo[t] for t in dict.fromkeys(texts) if t in self._memo}
        for t in have:
            self._memo.move_to_end(t)  # recently used: evicted last
        todo = [t for t in dict.fromkeys(texts) if t not in have]
        if todo:
            with torch_threads(1):
                vecs = np.asarray(self.encoder.encode(todo), dtype=np.float32)
            have.update(zip(todo, vecs))
            self._memo.update(zip(todo, vecs))
            while len(self._memo) > self.memo_size:
                self._memo.popitem(last=False)
        return np.stack([have[t] for t in texts])

    # ------------------------------------------------------------------ the shared code path
    def user_log(self, requests: list[UserRequest]) -> tuple[EventLog, list[list]]:
        """The event log of the requests' users (row i = request i) and each user's steps.

        :raises UnknownItemError: an event names an unknown item (the message names the request and event).
        """
        art, cfg = self.art, self.art.config
        t0 = time.perf_counter()
        texts = [r.profile_text for r in requests if r.profile_text]
        vecs = self.encode(texts)
        t1 = time.perf_counter()
        steps = [to_steps(r.events, art.position, art.catalog.price, where=f"requests[{n}].events")
                 for n, r in enumerate(requests)]
        n = len(requests)
        L = max([1] + [sum(len(s.shown) for s in st) for st in steps])
        log = EventLog(n, n_items=art.catalog.n_items, d=art.catalog.embeddings.shape[1], P=cfg.profile_dim, L=L)
        profile = np.tile(art.profile0, (n, 1))
        has_text = [i for i, r in enumerate(requests) if r.profile_text]
        if has_text:
            profile[has_text] = vecs
        rows = np.arange(n)
        log.start(rows, np.full(n, -1), profile, project(profile, art.projection))
        log.replay_rows(rows, steps, art.emb_z, art.proj_z)
        self.last_timings.update(encode=t1 - t0, user_state=time.perf_counter() - t1)
        return log, steps

    def observe(self, requests: list[UserRequest]):
        """(observation dict of (N, ...) arrays, CandidateSet, event log, steps) for the requests: the env's
        candidate builder and observation on the users' event log, exclusions masked out."""
        art, cfg = self.art, self.art.config
        log, steps = self.user_log(requests)
        t0 = time.perf_counter()
        rows = np.arange(len(requests))
        cap = np.array([np.inf if r.price_cap is None else float(r.price_cap) for r in requests])
        cands = build_pools(art.builder, log, rows, None if np.isinf(cap).all() else cap)
        items, mask, feats = cands.items.copy(), cands.mask.copy(), cands.features.copy()
        for i, r in enumerate(requests):
            if r.exclude:
                ex = []
                for e, item_id in enumerate(r.exclude):
                    if item_id not in art.position:
                        raise UnknownItemError(f"requests[{i}].exclude[{e}]={item_id!r} is not an item of this model")
                    ex.append(art.position[item_id])
                hit = np.isin(items[i], ex).any(axis=1)
                mask[i] &= ~hit
                items[i][hit] = -1
                feats[i][hit] = 0.0
        obs = build_observation(log, feats, mask, np.zeros(len(requests), np.int32), horizon=cfg.horizon,
                                K_max=cfg.K_max, mean_price=art.mean_price)
        self.last_timings["candidates"] = time.perf_counter() - t0
        return obs, items, mask, log, steps

    # ------------------------------------------------------------------ answers
    def _exploring(self, obs, policy_p: np.ndarray, requests: list[UserRequest]) -> np.ndarray:
        """(N, K) exploring distribution of each request: the policy's own rows where a request has no settings,
        else one wrapped call per distinct setting over its requests' rows."""
        out = policy_p
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            key = tuple(sorted(r.exploration.settings().items()))
            if key:
                groups.setdefault(key, []).append(i)
        if groups:
            out = policy_p.copy()
        for rows in groups.values():
            x = requests[rows[0]].exploration
            sub = {k: v[rows] for k, v in obs.items()}
            out[rows] = exploring_probabilities(self.art.policy, sub, policy_p[rows], x)
        return out

    def recommend(self, request: UserRequest) -> Recommendation:
        """The ranked bundles for one request (see :meth:`recommend_batch`)."""
        return self.recommend_batch([request])[0]

    def recommend_batch(self, requests: list[UserRequest]) -> list[Recommendation]:
        """The ranked bundles of each request, in order: ``k`` bundles (fewer when fewer candidates are valid)
        drawn and ranked by :mod:`bundlerl.serving.exploration`, each with a reason.

        :raises UnknownItemError: unknown item ids in events or exclusions. :raises BundlerlError: bad settings.
        """
        art = self.art
        obs, items, mask, log, steps = self.observe(requests)
        t0 = time.perf_counter()
        policy_p = art.policy.action_probabilities(obs)
        t1 = time.perf_counter()
        probs = self._exploring(obs, policy_p, requests)
        disc = art.builder.disc
        price = art.catalog.price
        # draws first, in request order (each request's slot draw, then its id: as when answered one at a time)
        chosen, ids = [], []
        for i, r in enumerate(requests):
            slots = ranked_slots(probs[i], mask[i], int(r.k), self.rng)
            chosen.append(slots[slots >= 0])
            ids.append(self._impression_id())
        bought = [[it for s in st for it in s.bought] for st in steps]
        comp = purchase_comp(art, [reason_seeds(b) for b in bought], [items[i][c] for i, c in enumerate(chosen)])
        out = []
        for i, r in enumerate(requests):
            p, ch = probs[i], chosen[i]
            clicked = [it for s in steps[i] if s.click for it in s.shown]
            reasons = reasons_for(art, items[i][ch], obs["candidates"][i][ch], profile_vec=log.profile_vec[i],
                                  has_text=bool(r.profile_text), clicked=clicked, bought=bought[i],
                                  comp_all=comp[i])
            bundles = []
            for c, (reason, scores) in zip(ch.tolist(), reasons):
                members = items[i, c][items[i, c] >= 0]
                d = float(disc[members.size])
                bundles.append(BundleOut(
                    items=[{"id": str(art.catalog.item_ids[m]), "title": str(art.catalog.titles[m]),
                            "price": round(float(price[m]), 2)} for m in members.tolist()],
                    price=round(float(price[members].sum()) * (1 - d), 2), discount=d, score=float(policy_p[i, c]),
                    propensity=float(p[c]), reason=reason, scores=scores, candidate=int(c)))
            action = int(ch[0]) if ch.size else -1
            out.append(Recommendation(
                impression_id=ids[i], bundles=bundles, model_version=art.version,
                observation={k: v[i] for k, v in obs.items()}, probabilities=p, policy_probabilities=policy_p[i],
                action=action, propensity=float(p[action]) if action >= 0 else 0.0, candidates=items[i]))
        self.last_timings.update(policy=t1 - t0, ranking=time.perf_counter() - t1)
        return out
