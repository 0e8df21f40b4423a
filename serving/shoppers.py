"""Simulated shoppers driving a live service over HTTP: the loop closed end to end (validation, simulator side).

:func:`drive_service` runs N shopper sessions of the service's own world (``bundlerl.env.session.SessionBatch``:
the simulator's hidden state and responses) against ``POST /v1/recommend/batch``: at each step every active shopper
sends its profile text and its events so far (the service keeps no user state), is shown the response's slot-1
bundle (the logged action), answers as the simulated shopper does, and the answer goes back as
``POST /v1/feedback``. What only the simulator knows is kept apart and labelled: for each impression, the exact
expected reward of every one of its K candidates for the shopper's hidden state at that moment
(``SessionBatch.expected_reward``), which :func:`bundlerl.serving.journal.journal_to_log` writes to the log's
``truth/`` so that ``bundlerl ope --truth`` can check an off-policy estimate against the value it estimates.

HTTP with the standard library (``urllib``): no client dependency.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass

import numpy as np

__all__ = ["drive_service", "DriveResult"]


@dataclass
class DriveResult:
    """What :func:`drive_service` did: ``impressions``, ``truth`` (impression id -> (K,) expected reward per
    candidate, NaN where invalid: SIMULATOR TRUTH), ``rewards`` (the env's reward of each impression, in order)."""

    impressions: int
    truth: dict[str, np.ndarray]
    rewards: list[float]


def _post(url: str, body: dict, headers: dict[str, str] | None = None, timeout: float = 120.0) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def drive_service(url: str, world, *, n_shoppers: int, api_key: str, exploration: dict | None = None,
                  seed: int = 0, chunk: int = 32) -> DriveResult:
    """Run ``n_shoppers`` simulated sessions (until each ends or its horizon) against the service at ``url``.

    :param world: the service's World (``build_world`` of the exported model's EnvConfig). :param api_key: for the
        feedback writes. :param exploration: the requests' exploration settings. :param seed: the sessions' seed
        (per-row generators of the LOGGING purpose stream). :param chunk: requests per batch call.
    """
    from bundlerl.env.session import SessionBatch
    from bundlerl.evaluation.seeds import Purpose, env_stream

    cfg = world.config
    batch = SessionBatch(world, cfg, n_shoppers)
    stream = env_stream(Purpose.LOGGING, seed)
    batch.seed_rows(np.arange(n_shoppers), [np.random.default_rng(s) for s in stream.spawn(n_shoppers)])
    batch.reset_rows()
    ids = world.observable_catalog.item_ids
    pos = {str(k): i for i, k in enumerate(ids.tolist())}
    events: list[list[dict]] = [[] for _ in range(n_shoppers)]
    alive = np.ones(n_shoppers, bool)
    result = DriveResult(0, {}, [])
    texts = [str(world.personas.texts[p]) for p in batch.log.persona]
    for t in range(cfg.horizon):
        rows = np.flatnonzero(alive)
        if rows.size == 0:
            break
        answers = []
        for start in range(0, rows.size, chunk):
            part = rows[start:start + chunk]
            reqs = [{"user_id": f"shopper-{seed}-{i}", "profile_text": texts[i], "events": events[i][-200:],
                     "k": cfg.K, "exploration": exploration or {}} for i in part]
            answers += _post(f"{url}/v1/recommend/batch", {"requests": reqs})["results"]
        # the served bundles, and every candidate of each impression for the truth (K slots, -1 padded)
        shown = np.full((rows.size, cfg.K_max), -1, np.int32)
        cands = np.full((rows.size, cfg.K, cfg.K_max), -1, np.int32)
        for j, ans in enumerate(answers):
            for b in ans["bundles"]:
                items = [pos[it["id"]] for it in b["items"]]
                cands[j, b["candidate"], :len(items)] = items
            first = [pos[it["id"]] for it in ans["bundles"][0]["items"]] if ans["bundles"] else []
            shown[j, :len(first)] = first
        sub = batch.state.take(rows)
        expected = batch.expected_reward(sub, cands)  # SIMULATOR TRUTH: exact one-step expected reward
        for j, ans in enumerate(answers):
            valid = (cands[j] >= 0).any(axis=1)
            result.truth[ans["impression_id"]] = np.where(valid, expected[j], np.nan)
        # show each shopper its served bundle through the env's own step (slot 0 of its pool holds it)
        acts = np.zeros(n_shoppers, np.int64)
        batch.pool.cand_items[rows, 0] = shown
        batch.pool.cand_mask[rows, 0] = (shown >= 0).any(axis=1)
        dead = np.flatnonzero(~alive)
        batch.pool.cand_mask[dead] = False  # finished rows: an invalid action, ignored below
        out = batch.step(acts)
        for j, (i, ans) in enumerate(zip(rows, answers)):
            items = shown[j][shown[j] >= 0]
            bought = shown[j][out.bought[i]]
            _post(f"{url}/v1/feedback", {"impression_id": ans["impression_id"], "click": bool(out.click[i]),
                                          "bought": [str(ids[b]) for b in bought],
                                          "revenue": float(out.revenue[i])}, {"X-API-Key": api_key})
            events[i] += [{"item_id": str(ids[m]), "kind": "view", "timestamp": t} for m in items]
            if out.click[i] and items.size:
                events[i].append({"item_id": str(ids[items[0]]), "kind": "click", "timestamp": t})
            events[i] += [{"item_id": str(ids[b]), "kind": "purchase", "timestamp": t,
                           "price": float(out.revenue[i]) / max(len(bought), 1)} for b in bought]
            result.rewards.append(float(out.reward[i]))
            result.impressions += 1
        alive[rows] &= ~(out.terminated[rows] | out.truncated[rows])
    return result
