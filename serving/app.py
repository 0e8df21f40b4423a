"""The HTTP service: a FastAPI app over one exported model folder (``bundlerl serve`` runs it under uvicorn).

Endpoints (OpenAPI at ``/openapi.json``, docs at ``/docs``):

- ``POST /v1/recommend`` and ``POST /v1/recommend/batch``: ranked bundles (:class:`bundlerl.serving.recommender.
  Recommender`); each impression is journaled before the response (:mod:`bundlerl.serving.journal`).
- ``POST /v1/feedback``: the outcome of an impression (click, items bought, revenue), journaled. Workers share no
  memory; impression ids are signed with a key of the log folder's salt (:mod:`bundlerl.serving.impressions`), so
  any worker answers 404 for an id that no worker of this service issued.
- ``POST /v1/items``: cold-start items, encoded and committed to the model folder's item store
  (:mod:`bundlerl.serving.item_store`); ``GET /v1/items/{item_id}``.
- ``GET /healthz`` (the process answers), ``GET /readyz`` (the model is loaded), ``GET /v1/model`` (what is served).

Writes (feedback, items) need the header ``X-API-Key`` equal to ``$BUNDLERL_API_KEY`` (401 without the header,
403 with a wrong key or when the server has no key configured); reads are open. A user's history comes only from
the request, so any worker answers any request; before each request (each batch of recommendations) a worker
reloads the item store if another worker moved its version.

Bad input is a 4xx whose ``detail`` says what is wrong, never a 5xx: bodies over ``max_body`` bytes 413 (checked
while reading, whatever Content-Length says), malformed JSON and out-of-schema fields 422 (the schema's bounds,
:mod:`bundlerl.serving.schemas`), unknown item ids and ``k`` above the model's K 422, an unknown item in
``GET /v1/items`` 404, an unknown impression id in ``POST /v1/feedback`` 404, an existing id in ``POST /v1/items`` 409.

Speed: ``POST /v1/recommend`` requests are answered in dynamic batches on the worker's compute thread
(:mod:`bundlerl.serving.batching`: at concurrency 1 a batch of one, under load the waiting requests together), and
responses are serialised once by pydantic-core.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
import warnings
from pathlib import Path

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader

from bundlerl.serving.exploration import Exploration
from bundlerl.serving.schemas import (
    Ack,
    BatchIn,
    BatchOut,
    ErrorOut,
    FeedbackIn,
    ItemOut,
    ItemsIn,
    ItemsOut,
    RecommendIn,
    RecommendOut,
)
from bundlerl.serving.user_state import Event, UserRequest
from bundlerl.utils.errors import BundlerlError

__all__ = ["create_app", "app_from_env", "API_KEY_ENV", "MAX_BODY", "MAX_BATCH"]

API_KEY_ENV = "BUNDLERL_API_KEY"
MAX_BODY = 256 * 1024
MAX_BATCH = 32
"""Default largest dynamic batch of ``POST /v1/recommend`` requests (:mod:`bundlerl.serving.batching`)."""
"""Default request size limit in bytes (a full request with 200 events is about 20 kB)."""

_ERRORS = {400: {"model": ErrorOut}, 413: {"model": ErrorOut}, 422: {"model": ErrorOut}}
_WRITE_ERRORS = {401: {"model": ErrorOut}, 403: {"model": ErrorOut}, **_ERRORS}


class _BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes is answered 413 (Content-Length checked first, then the
    bytes actually received, so a lying or chunked request cannot get past it)."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, int(limit)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for k, v in scope.get("headers", []):
            if k == b"content-length" and (not v.isdigit() or int(v) > self.limit):
                return await _too_large(send, self.limit)
        seen = 0
        started = False

        async def limited_receive():
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge()
            return msg

        async def tracking_send(msg):
            nonlocal started
            started = started or msg["type"] == "http.response.start"
            await send(msg)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await _too_large(send, self.limit)


class _TooLarge(BundlerlError):
    """A request body over the size limit (answered 413 by :class:`_BodyLimit`)."""


async def _too_large(send, limit: int):
    body = json.dumps({"detail": f"request body over {limit} bytes; send less (split a batch)"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class ServingWarning(UserWarning):
    """Something the service works around (a damaged item-store version); the message says what."""


class ServerState:
    """One worker's model, journal and item-store version (see the module docstring)."""

    def __init__(self, model_dir: Path, log_dir: Path, seed: int, fsync: bool, max_batch: int = MAX_BATCH,
                 encoder_precision: str = "fp32"):
        from bundlerl.serving.artifacts import load_artifacts
        from bundlerl.serving.batching import MicroBatcher
        from bundlerl.serving.impressions import impression_key
        from bundlerl.serving.item_store import ItemStore
        from bundlerl.serving.journal import Journal, load_salt
        from bundlerl.serving.recommender import Recommender

        self.model_dir, self.log_dir = model_dir, log_dir
        self.store = ItemStore(model_dir)
        self.lock = threading.Lock()  # the recommender's model (item-store swaps) against its readers
        self.journal_lock = threading.Lock()  # one record at a time into this worker's journal
        self.base = load_artifacts(model_dir)
        self.items_version = self.store.version()
        self.rec = Recommender(self.base.with_items(self.store.read()), seed=seed, stream=os.getpid(),
                               encoder_precision=encoder_precision)
        self.rec.encode(["warm up the text encoder"], memo=False)  # loaded before /readyz says ready, not on a request
        self.journal = Journal(log_dir, fsync=fsync)
        self.salt = load_salt(log_dir)
        self.rec.id_key = self.id_key = impression_key(self.salt)  # every worker of this log folder signs alike
        self.started = time.time()
        self.batcher = MicroBatcher(self.answer, max_batch=max_batch)

    def log(self, record: dict) -> None:
        with self.journal_lock:
            self.journal.append(record)

    def answer(self, reqs: list[UserRequest]) -> list:
        """The recommendations of a batch of single requests (the batcher's ``run``, on the compute thread), each
        journaled before it is answered. A request's bad input fails only that request: when the batch raises a
        BundlerlError, its requests are answered one by one, each with its own result or error."""
        with self.lock:
            self.refresh()
            try:
                out = list(self.rec.recommend_batch(reqs))
            except BundlerlError as err:
                if len(reqs) == 1:
                    return [err]
                out = []
                for r in reqs:
                    try:
                        out.append(self.rec.recommend_batch([r])[0])
                    except BundlerlError as one:
                        out.append(one)
            for rec, req in zip(out, reqs):
                if not isinstance(rec, BaseException):
                    self.log(_impression_record(rec, req, self.salt))
        return out

    def answer_batch(self, reqs: list[UserRequest]) -> list:
        """The recommendations of one ``/v1/recommend/batch`` body (all or a 422), journaled."""
        with self.lock:
            self.refresh()
            recs = self.rec.recommend_batch(reqs)
            for rec, req in zip(recs, reqs):
                self.log(_impression_record(rec, req, self.salt))
        return recs

    def refresh(self) -> None:
        """Reload the item store when another worker (or this one) committed a new version. A version that does not
        load (damaged on disk) keeps the items served so far, with a warning, and is retried on the next request."""
        v = self.store.version()
        if v != self.items_version:
            try:
                self.rec.art = self.base.with_items(self.store.read())
            except BundlerlError as err:
                warnings.warn(f"item store version {v} does not load ({err}); serving the items of version "
                              f"{self.items_version}", ServingWarning, stacklevel=2)
                return
            self.items_version = v


def _to_request(body: RecommendIn, K: int, where: str) -> UserRequest:
    if body.k > K:
        raise BundlerlError(f"{where}k={body.k}: this model ranks at most K={K} candidate bundles; ask for k <= {K}")
    text = body.profile_text if body.profile_text and body.profile_text.strip() else None
    x = body.exploration
    return UserRequest(
        user_id=body.user_id, profile_text=text,
        events=tuple(Event(e.item_id, e.kind, e.timestamp, e.price) for e in body.events), k=body.k,
        exclude=tuple(body.exclude), price_cap=body.price_cap,
        exploration=Exploration(x.epsilon, x.temperature, x.floor))


def _answer(rec) -> RecommendOut:
    return RecommendOut(impression_id=rec.impression_id, model_version=rec.model_version, bundles=rec.bundles)


def _json(model) -> Response:
    """A pydantic response model as a JSON response, serialised once by pydantic-core: returning a Response makes
    FastAPI skip its own validate-then-serialise pass over the ``response_model`` (which still documents it)."""
    return Response(model.model_dump_json(), media_type="application/json")


def _impression_record(rec, req: UserRequest, salt: bytes) -> dict:
    from bundlerl.serving.journal import salted_hash

    o = rec.observation
    return {"type": "impression", "impression_id": rec.impression_id, "time": time.time(),
            "user": salted_hash(req.user_id, salt), "model_version": rec.model_version, "k": req.k,
            "shown": [b.candidate for b in rec.bundles], "action": rec.action,
            "action_prob": rec.probabilities, "pscore": rec.propensity,
            "profile": o["profile"], "history": o["history"], "session": o["session"],
            "candidates": o["candidates"], "action_mask": o["action_mask"],
            "item_ids": np.asarray(rec.candidates)}  # numpy arrays: the journal writes them (orjson)


def create_app(model_dir: str | os.PathLike, *, log_dir: str | os.PathLike | None = None, seed: int = 0,
               fsync: bool = False, max_body: int = MAX_BODY, max_batch: int = MAX_BATCH,
               encoder_precision: str = "fp32") -> FastAPI:
    """The FastAPI app serving the model folder ``model_dir``; journals go to ``log_dir`` (default
    ``model_dir/logs``). The model loads at startup (``/readyz`` answers 503 until then). ``encoder_precision``:
    the new-text encoder's weights (``fp32`` or ``int8``, see :class:`~bundlerl.serving.recommender.Recommender`).

    :raises ModelFolderError: (at startup) a damaged or tampered model folder.
    """
    model_dir = Path(model_dir)
    log_dir = Path(log_dir) if log_dir is not None else model_dir / "logs"
    holder: dict[str, ServerState] = {}

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app):
        holder["s"] = ServerState(model_dir, log_dir, seed, fsync, max_batch, encoder_precision)
        yield
        holder["s"].batcher.close()
        holder["s"].journal.close()

    app = FastAPI(title="bundlerl", version="1", lifespan=lifespan,
                  description="Bundle recommendations from an exported bundlerl policy.")
    app.add_middleware(_BodyLimit, limit=max_body)
    key_header = APIKeyHeader(name="X-API-Key", auto_error=False)

    async def loaded() -> ServerState:
        """The worker's state once loaded (no item-store check: the batch that answers does it, once per batch)."""
        s = holder.get("s")
        if s is None:
            raise HTTPException(503, "the model is loading; retry shortly")
        return s

    async def state() -> ServerState:
        # async: FastAPI runs a plain-def dependency on its thread pool, a thread hop per request for a check that
        # takes microseconds
        s = holder.get("s")
        if s is None:
            raise HTTPException(503, "the model is loading; retry shortly")
        if s.store.version() != s.items_version:  # the lock only when another worker committed items
            with s.lock:
                s.refresh()
        return s

    async def writer(key: str | None = Depends(key_header)) -> None:
        want = os.environ.get(API_KEY_ENV)
        if not key:
            raise HTTPException(401, "this endpoint writes: send the header X-API-Key")
        if not want or not secrets.compare_digest(key.encode(), want.encode()):
            raise HTTPException(403, "the API key is wrong (or the server has no BUNDLERL_API_KEY set)")

    @app.exception_handler(BundlerlError)
    async def bad_input(request: Request, exc: BundlerlError):
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.post("/v1/recommend", response_model=RecommendOut, responses=_ERRORS)
    async def recommend(body: RecommendIn, s: ServerState = Depends(loaded)):
        rec = await s.batcher.submit(_to_request(body, s.rec.art.config.K, ""))  # batched with concurrent ones
        return _json(_answer(rec))

    @app.post("/v1/recommend/batch", response_model=BatchOut, responses=_ERRORS)
    async def recommend_batch(body: BatchIn, s: ServerState = Depends(loaded)):
        reqs = [_to_request(b, s.rec.art.config.K, f"requests[{i}].") for i, b in enumerate(body.requests)]
        recs = await s.batcher.call(s.answer_batch, reqs)
        return _json(BatchOut(results=[_answer(r) for r in recs]))

    @app.post("/v1/feedback", response_model=Ack, responses={**_WRITE_ERRORS, 404: {"model": ErrorOut}},
              dependencies=[Depends(writer)])
    async def feedback(body: FeedbackIn, s: ServerState = Depends(state)):
        from bundlerl.serving.impressions import is_issued

        if not is_issued(body.impression_id, s.id_key):
            raise HTTPException(404, f"impression_id {body.impression_id!r} was not issued by this service (no "
                                     "worker of it signed it); send the impression_id of a /v1/recommend answer")
        pos = s.rec.art.position
        bad = [b for b in body.bought if b not in pos]
        if bad:
            raise BundlerlError(f"bought: unknown item id {bad[0]!r}; use the ids of the bundle shown")
        s.log({"type": "feedback", "impression_id": body.impression_id, "time": time.time(), "click": body.click,
               "bought": [pos[b] for b in body.bought], "revenue": body.revenue})
        return {"ok": True, "detail": "recorded"}

    @app.post("/v1/items", response_model=ItemsOut, responses={**_WRITE_ERRORS, 409: {"model": ErrorOut}},
              dependencies=[Depends(writer)])
    async def add_items(body: ItemsIn, s: ServerState = Depends(state)):
        from bundlerl.serving.item_store import NewItem

        art = s.rec.art
        ids = [it.id for it in body.items]
        dup = next((i for i in ids if i in art.position), None) or next((i for i in ids if ids.count(i) > 1), None)
        if dup is not None:
            raise HTTPException(409, f"item id {dup!r} exists (or repeats in this request); ids must be new")
        names = set(art.catalog.category_names.tolist())
        for n, it in enumerate(body.items):
            if it.category is not None and it.category not in names:
                raise BundlerlError(f"items[{n}].category={it.category!r} is not a category of this catalogue")
        new = [NewItem(it.id, it.title, float(it.price), it.description, it.category) for it in body.items]
        texts = [f"{it.title}. {it.description}" if it.description.strip() else it.title for it in new]
        with s.lock:
            emb = s.rec.encode(texts, memo=False)
            s.refresh()
            have = s.store.read()
            from bundlerl.serving.item_store import ItemBatch

            # the extended model must build before anything is committed: a bad item is a 422, never a broken store
            s.base.with_items(ItemBatch(have.items + new, np.concatenate([have.embeddings.reshape(-1, emb.shape[1]),
                                                                          emb]), have.version))
            version = s.store.add(new, emb)
            s.refresh()
        return {"version": version, "added": ids}

    @app.get("/v1/items/{item_id}", response_model=ItemOut, responses={404: {"model": ErrorOut}, **_ERRORS})
    async def get_item(item_id: str, s: ServerState = Depends(state)):
        art = s.rec.art
        p = art.position.get(item_id)
        if p is None:
            raise HTTPException(404, f"no item {item_id!r} in this model")
        return {"id": item_id, "title": str(art.catalog.titles[p]), "price": round(float(art.catalog.price[p]), 2)}

    @app.get("/healthz", response_model=Ack)
    async def healthz():
        return {"ok": True, "detail": "alive"}

    @app.get("/readyz", response_model=Ack, responses={503: {"model": ErrorOut}})
    async def readyz():
        if "s" not in holder:
            raise HTTPException(503, "the model is loading")
        return {"ok": True, "detail": "ready"}

    @app.get("/v1/model")
    async def model(s: ServerState = Depends(state)) -> dict:
        m, art = s.rec.art.manifest, s.rec.art
        return {"version": art.version, "created": m["created"], "source": m["source"], "policy": m["policy"],
                "K": art.config.K, "K_max": art.config.K_max, "n_items": int(art.catalog.n_items),
                "n_cold_items": int(art.catalog.n_items - art.n_base_items), "item_store_version": s.items_version,
                "observation": m["observation"], "worker": os.getpid(),
                "encoder": m["encoder"] | {"precision": s.rec.encoder_precision, "identity_served": s.rec.encoder.identity}}

    return app


def app_from_env() -> FastAPI:
    """The app of ``bundlerl serve``'s worker processes (uvicorn's factory), configured by the environment it sets:
    ``BUNDLERL_SERVE_MODEL``, ``BUNDLERL_SERVE_LOGS``, ``BUNDLERL_SERVE_SEED``, ``BUNDLERL_SERVE_FSYNC``,
    ``BUNDLERL_SERVE_MAX_BODY``, ``BUNDLERL_SERVE_MAX_BATCH``, ``BUNDLERL_SERVE_ENCODER`` (precision)."""
    env = os.environ
    return create_app(env["BUNDLERL_SERVE_MODEL"], log_dir=env.get("BUNDLERL_SERVE_LOGS") or None,
                      seed=int(env.get("BUNDLERL_SERVE_SEED", "0")), fsync=env.get("BUNDLERL_SERVE_FSYNC") == "1",
                      max_body=int(env.get("BUNDLERL_SERVE_MAX_BODY", str(MAX_BODY))),
                      max_batch=int(env.get("BUNDLERL_SERVE_MAX_BATCH", str(MAX_BATCH))),
                      encoder_precision=env.get("BUNDLERL_SERVE_ENCODER", "fp32"))
