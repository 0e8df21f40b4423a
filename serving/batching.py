"""Dynamic batching: the recommendation requests that wait together in a worker are answered by one vectorised call.

A worker computes on one thread (:class:`MicroBatcher`'s compute thread; the event loop stays free to read and
answer sockets meanwhile). A request is queued; when the compute thread is free the queue is taken whole (at most
``max_batch``) and handed to ``run`` as one batch. Nothing ever waits for a batch to fill: a batch starts as soon as
the previous one ends, so at concurrency 1 every batch holds one request and the latency is the single request's,
while under load the requests that arrived during a batch share the next one, and with it the fixed costs of a call
(the FAISS search, the candidate builder's and the ONNX policy's per-call work, the encoder's forward pass): a batch
of 32 costs ~0.6 ms of CPU per request against ~1.7 ms one at a time (BENCHMARKS.md, Serving).

This is not a response cache: every request is answered from its own body, and ``Recommender.recommend_batch`` of a
batch equals its requests one by one (``tests/test_serving_recommender.py``).
"""

from __future__ import annotations

import asyncio
import collections
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

__all__ = ["MicroBatcher"]


class MicroBatcher:
    """Queue of requests answered in batches on one compute thread (see the module docstring).

    :param run: called on the compute thread with a list of queued items; returns one result per item, in order,
        each a value or an exception instance (that item's error); an exception it raises fails the whole batch.
    :param max_batch: the largest batch (positive).
    """

    def __init__(self, run: Callable[[list[Any]], Sequence[Any]], max_batch: int = 32):
        if int(max_batch) < 1:
            raise ValueError(f"max_batch={max_batch}; it must be at least 1")
        self._run = run
        self.max_batch = int(max_batch)
        self._pending: collections.deque[tuple[Any, asyncio.Future]] = collections.deque()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="bundlerl-compute")
        self._task: asyncio.Task | None = None
        #: batches run and items answered so far (how much batching happened)
        self.batches = 0
        self.items = 0

    async def submit(self, item: Any) -> Any:
        """The result of ``item`` (computed in some batch); raises the item's error."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._pending.append((item, fut))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain())
        return await fut

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on the compute thread, between batches (for work that must not interleave with them)."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            batch = [self._pending.popleft() for _ in range(min(self.max_batch, len(self._pending)))]
            batch = [(item, fut) for item, fut in batch if not fut.done()]  # a client that left: not computed
            if not batch:
                continue
            try:
                results = await loop.run_in_executor(self._pool, self._run, [item for item, _ in batch])
            except Exception as err:  # noqa: BLE001 - the whole batch failed: each request gets the error
                results = [err] * len(batch)
            self.batches += 1
            self.items += len(batch)
            for (_, fut), res in zip(batch, results):
                if fut.done():
                    continue
                if isinstance(res, BaseException):
                    fut.set_exception(res)
                else:
                    fut.set_result(res)

    def close(self) -> None:
        """Finish the running batch and stop the compute thread."""
        self._pool.shutdown(wait=True)
