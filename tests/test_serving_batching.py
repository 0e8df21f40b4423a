"""MicroBatcher (serving's dynamic batching) in isolation: requests that wait together share a batch, each gets its
own result in order, an item's error fails only that item; and the signed impression ids it serves."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bundlerl.serving.batching import MicroBatcher
from bundlerl.serving.impressions import impression_key, is_issued, new_impression_id


def _run(coro):
    return asyncio.run(coro)


def test_waiting_requests_share_batches_and_get_their_own_results():
    sizes, threads = [], set()

    def run(items):
        sizes.append(len(items))
        threads.add(threading.get_ident())
        time.sleep(0.02)  # a batch takes a while: the others queue meanwhile
        return [ValueError(f"bad {x}") if x == 7 else x * 10 for x in items]

    async def main():
        b = MicroBatcher(run, max_batch=8)
        out = await asyncio.gather(*[b.submit(i) for i in range(20)], return_exceptions=True)
        alone = await b.submit(3)  # nothing waits: a batch of one, at once
        b.close()
        return out, alone, b

    out, alone, b = _run(main())
    assert [o for i, o in enumerate(out) if i != 7] == [i * 10 for i in range(20) if i != 7]
    assert isinstance(out[7], ValueError) and "bad 7" in str(out[7])
    assert alone == 30 and sizes[-1] == 1
    assert max(sizes) <= 8 and len(sizes) < 21 and sum(sizes) == 21 == b.items and b.batches == len(sizes)
    assert len(threads) == 1 and threading.get_ident() not in threads  # one compute thread, not the event loop's


def test_a_batch_that_raises_fails_each_of_its_requests():
    def run(items):
        raise RuntimeError("broken model")

    async def main():
        b = MicroBatcher(run)
        out = await asyncio.gather(*[b.submit(i) for i in range(3)], return_exceptions=True)
        b.close()
        return out

    assert all(isinstance(o, RuntimeError) for o in _run(main()))
    with pytest.raises(ValueError, match="max_batch"):
        MicroBatcher(lambda items: items, max_batch=0)


@given(stream=st.integers(0, 2**22), t=st.integers(0, 2**63), seed=st.integers(0, 2**32), pos=st.integers(0, 200),
       salt=st.binary(min_size=1, max_size=40))
def test_impression_ids_verify_only_with_their_key_and_unchanged(stream, t, seed, pos, salt):
    key = impression_key(salt)
    iid = new_impression_id(stream, t, np.random.default_rng(seed), key)
    assert is_issued(iid, key) and len(iid) <= 100
    assert not is_issued(iid, impression_key(salt + b"x"))
    i = pos % len(iid)
    if iid[i] != "-":
        forged = iid[:i] + ("0" if iid[i] != "0" else "1") + iid[i + 1:]
        assert not is_issued(forged, key)
    unsigned = new_impression_id(stream, t, np.random.default_rng(seed))
    assert not is_issued(unsigned, key) and iid.startswith(unsigned)
    for junk in ("", "-", "abc", "a-b-c-d", iid + "0", "é-1-2-0123456789abcdef"):
        assert not is_issued(junk, key)
