"""The HTTP service as a real ``bundlerl serve`` process on 127.0.0.1: endpoints, API key, size limit, bad input as
4xx, the item store shared by two workers and kept over a restart, the journal surviving a kill, the journal as an
offline-evaluation log, and a schemathesis fuzz of the OpenAPI schema (no 5xx, no response outside the schema)."""

from __future__ import annotations

import shutil
import signal
import threading
import time

import httpx
import numpy as np
import pytest
from _serving import API_KEY, server, stop

W = {"X-API-Key": API_KEY}


@pytest.fixture
def model_copy(tmp_path, served_model):
    folder = tmp_path / "model"
    shutil.copytree(served_model, folder)
    return folder


@pytest.fixture(scope="module")
def live(tmp_path_factory, served_model):
    folder = tmp_path_factory.mktemp("live") / "model"
    shutil.copytree(served_model, folder)
    with server(folder) as (url, proc):
        yield url, folder


def test_recommend_batch_feedback_and_reads(live):
    url, folder = live
    ids = [httpx.get(f"{url}/v1/model").json()["n_items"]]
    assert ids[0] == 300
    body = {"user_id": "alice", "profile_text": "camping and hiking", "k": 3,
            "events": [{"item_id": "SKU0000004", "kind": "view", "timestamp": 1},
                       {"item_id": "SKU0000004", "kind": "purchase", "timestamp": 1, "price": 9.5}],
            "exploration": {"epsilon": 0.1, "floor": 0.01}}
    r = httpx.post(f"{url}/v1/recommend", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert len(out["bundles"]) == 3 and out["model_version"].startswith("run-")
    assert all(b["propensity"] >= 0.01 and b["reason"] and b["items"] for b in out["bundles"])
    r = httpx.post(f"{url}/v1/recommend/batch", json={"requests": [body, {}, {"profile_text": "pens"}]})
    assert r.status_code == 200 and len(r.json()["results"]) == 3
    shown = out["bundles"][0]["items"][0]["id"]
    fb = {"impression_id": out["impression_id"], "click": True, "bought": [shown], "revenue": 12.0}
    assert httpx.post(f"{url}/v1/feedback", json=fb).status_code == 401
    assert httpx.post(f"{url}/v1/feedback", json=fb, headers={"X-API-Key": "wrong"}).status_code == 403
    assert httpx.post(f"{url}/v1/feedback", json=fb, headers=W).status_code == 200
    assert httpx.get(f"{url}/healthz").json()["ok"] and httpx.get(f"{url}/readyz").status_code == 200
    assert httpx.get(f"{url}/v1/items/SKU0000004").json()["id"] == "SKU0000004"
    assert httpx.get(f"{url}/v1/items/nope").status_code == 404
    assert "/v1/recommend" in httpx.get(f"{url}/openapi.json").json()["paths"]
    # the journal has the impression (user id only as a salted hash) and the feedback
    text = "".join(p.read_text() for p in (folder / "logs").glob("journal-*.jsonl"))
    assert out["impression_id"] in text and '"feedback"' in text and "alice" not in text


@pytest.mark.parametrize("body, status, says", [
    ('{"k": 9}', 422, "at most K=8"),
    ('{"k": 0}', 422, "greater than or equal to 1"),
    ('{"k": "three"}', 422, "valid integer"),
    ('{bad json', 422, "JSON decode error"),
    ('', 422, "Field required"),
    ('[]', 422, "valid dictionary"),
    ('{"events": [{"item_id": "nope", "kind": "view", "timestamp": 1}]}', 422, "events[0].item_id='nope'"),
    ('{"events": [{"item_id": "SKU0000001", "kind": "hover", "timestamp": 1}]}', 422, "view"),
    ('{"exclude": ["nope"]}', 422, "exclude[0]='nope'"),
    ('{"price_cap": -1}', 422, "greater than 0"),
    ('{"exploration": {"epsilon": 2}}', 422, "less than or equal to 1"),
    ('{"surprise": 1}', 422, "Extra inputs"),
    ('{"profile_text": "' + "x" * 300_000 + '"}', 413, "over 262144 bytes"),
])
def test_bad_input_is_a_4xx_saying_what_is_wrong(live, body, status, says):
    url, _ = live
    r = httpx.post(f"{url}/v1/recommend", content=body.encode(), headers={"content-type": "application/json"})
    assert r.status_code == status and says in r.text, r.text


def test_items_added_through_one_worker_are_served_by_both_and_survive_a_restart(model_copy):
    with server(model_copy, workers=2) as (url, proc):
        item = {"id": "COLD-1", "title": "Ultralight trail running vest", "price": 45.0, "category": None}
        assert httpx.post(f"{url}/v1/items", json={"items": [item]}).status_code == 401
        r = httpx.post(f"{url}/v1/items", json={"items": [item]}, headers=W)
        assert r.status_code == 200 and r.json() == {"version": 1, "added": ["COLD-1"]}
        assert httpx.post(f"{url}/v1/items", json={"items": [item]}, headers=W).status_code == 409
        bad = {"id": "COLD-2", "title": "x", "price": 3.0, "category": "no such category"}
        assert httpx.post(f"{url}/v1/items", json={"items": [bad]}, headers=W).status_code == 422
        workers = {}
        deadline = time.monotonic() + 60
        while len(workers) < 2 and time.monotonic() < deadline:  # fresh connections land on either worker
            m = httpx.get(f"{url}/v1/model").json()
            workers[m["worker"]] = m["n_cold_items"]
            assert httpx.get(f"{url}/v1/items/COLD-1").status_code == 200
        assert len(workers) == 2 and set(workers.values()) == {1}, workers
    with server(model_copy) as (url, proc):
        assert httpx.get(f"{url}/v1/items/COLD-1").json()["title"] == "Ultralight trail running vest"
        r = httpx.post(f"{url}/v1/recommend", json={"profile_text": "trail running vest", "k": 8})
        assert "COLD-1" in {it["id"] for b in r.json()["bundles"] for it in b["items"]}


def test_a_killed_server_loses_no_acknowledged_record_and_leaves_a_readable_journal(model_copy, tmp_path):
    from bundlerl.serving.journal import read_journal

    logs = tmp_path / "logs"
    acked: list[str] = []
    stop_flag = threading.Event()
    with server(model_copy, log_dir=logs) as (url, proc):
        def client():
            with httpx.Client() as c:
                while not stop_flag.is_set():
                    try:
                        r = c.post(f"{url}/v1/recommend", json={"profile_text": "tents", "k": 2}, timeout=5)
                    except httpx.HTTPError:
                        return
                    if r.status_code == 200:
                        acked.append(r.json()["impression_id"])

        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        while len(acked) < 40:
            time.sleep(0.01)
        stop(proc, signal.SIGKILL)  # mid-stream: requests in flight are lost, not the acknowledged ones
        stop_flag.set()
        for t in threads:
            t.join()
    logged = {r["impression_id"] for r in read_journal(logs) if r["type"] == "impression"}
    assert set(acked) <= logged and len(acked) >= 40


def test_a_torn_last_line_is_dropped_and_a_damaged_one_refused(tmp_path):
    from bundlerl.serving.journal import Journal, JournalError, read_journal

    j = Journal(tmp_path)
    j.append({"type": "impression", "impression_id": "a"})
    j.append({"type": "feedback", "impression_id": "a"})
    j.close()
    with open(j.path, "ab") as fh:
        fh.write(b'{"type": "impre')  # a writer killed mid-line
    assert [r["type"] for r in read_journal(tmp_path)] == ["impression", "feedback"]
    data = j.path.read_bytes().replace(b'"feedback"', b'"feedb\x00ck', 1)
    j.path.write_bytes(data)
    with pytest.raises(JournalError, match="line 2"):
        list(read_journal(tmp_path))


def test_the_journal_is_an_offline_evaluation_log(live):
    from bundlerl.evaluation.logs.loader import LogDataset
    from bundlerl.serving.artifacts import load_artifacts
    from bundlerl.serving.journal import journal_to_log

    url, folder = live
    for i in range(5):
        httpx.post(f"{url}/v1/recommend", json={"profile_text": f"gift {i}", "exploration": {"epsilon": 0.3}})
    out = folder.parent / "ope-log"
    n = journal_to_log(folder / "logs", out, load_artifacts(folder))
    ds = LogDataset.open(out)
    assert ds.n_rows == n >= 5
    part = next(ds.parts())
    assert np.allclose(part.columns["action_prob"].sum(axis=1), 1.0) if hasattr(part, "columns") else True
