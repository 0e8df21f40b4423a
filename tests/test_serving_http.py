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
#: no keep-alive (each request a fresh connection: either worker may take it); a long timeout (a loaded machine)
C = httpx.Client(timeout=120, limits=httpx.Limits(max_keepalive_connections=0))


@pytest.fixture
def model_copy(tmp_path, served_model):
    folder = tmp_path / "model"
    shutil.copytree(served_model, folder)
    return folder


@pytest.fixture(scope="module")
def live(tmp_path_factory, served_model):
    """One real server with two workers for the module's tests (any worker answers any request)."""
    folder = tmp_path_factory.mktemp("live") / "model"
    shutil.copytree(served_model, folder)
    with server(folder, workers=2) as (url, proc):
        yield url, folder


def test_recommend_batch_feedback_and_reads(live):
    url, folder = live
    m = C.get(f"{url}/v1/model").json()
    assert m["encoder"]["precision"] == "fp32" and m["encoder"]["identity_served"].startswith("all-MiniLM-L6-v2@")
    assert m["n_items"] == 300 + m["n_cold_items"]  # the module's server is shared: other tests may add items first
    body = {"user_id": "alice", "profile_text": "camping and hiking", "k": 3,
            "events": [{"item_id": "SKU0000004", "kind": "view", "timestamp": 1},
                       {"item_id": "SKU0000004", "kind": "purchase", "timestamp": 1, "price": 9.5}],
            "exploration": {"epsilon": 0.1, "floor": 0.03}}
    r = C.post(f"{url}/v1/recommend", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert len(out["bundles"]) == 3 and out["model_version"].startswith("run-")
    assert all(b["propensity"] >= 0.03 / 8 and b["reason"] and b["items"] for b in out["bundles"])
    r = C.post(f"{url}/v1/recommend/batch", json={"requests": [body, {}, {"profile_text": "pens"}]})
    assert r.status_code == 200 and len(r.json()["results"]) == 3
    shown = out["bundles"][0]["items"][0]["id"]
    fb = {"impression_id": out["impression_id"], "click": True, "bought": [shown], "revenue": 12.0}
    assert C.post(f"{url}/v1/feedback", json=fb).status_code == 401
    assert C.post(f"{url}/v1/feedback", json=fb, headers={"X-API-Key": "wrong"}).status_code == 403
    assert C.post(f"{url}/v1/feedback", json=fb, headers=W).status_code == 200
    assert C.get(f"{url}/healthz").json()["ok"] and C.get(f"{url}/readyz").status_code == 200
    assert C.get(f"{url}/v1/items/SKU0000004").json()["id"] == "SKU0000004"
    assert C.get(f"{url}/v1/items/nope").status_code == 404
    assert "/v1/recommend" in C.get(f"{url}/openapi.json").json()["paths"]
    # the journal has the impression (user id only as a salted hash) and the feedback
    text = "".join(p.read_text() for p in (folder / "logs").glob("journal-*.jsonl"))
    assert out["impression_id"] in text and '"feedback"' in text and "alice" not in text


def test_feedback_for_an_impression_no_worker_issued_is_a_404(live):
    """Concurrent requests (batched in the workers) each get their own signed impression id; feedback on any of them
    is accepted by whichever worker takes it, and an unknown, mistyped or forged id is a 404 saying so."""
    url, _ = live
    from concurrent.futures import ThreadPoolExecutor

    def ask(n):
        return C.post(f"{url}/v1/recommend", json={"user_id": f"u{n}", "profile_text": "camping", "k": 2})

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(ask, range(24)))
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers if r.status_code != 200][:1]
    ids = [r.json()["impression_id"] for r in answers]
    assert len(set(ids)) == 24
    for iid in ids[:6]:
        assert C.post(f"{url}/v1/feedback", json={"impression_id": iid, "click": False}, headers=W).status_code == 200
    good = ids[0]
    forged = good[:-1] + ("0" if good[-1] != "0" else "1")
    for bad in ("0123-abc", forged, good.rsplit("-", 1)[0]):
        r = C.post(f"{url}/v1/feedback", json={"impression_id": bad, "click": True}, headers=W)
        assert r.status_code == 404 and "was not issued by this service" in r.json()["detail"], r.text


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
    ('{"exploration": {"epsilon": 0.1, "temperature": 2}}', 422, "not both"),
    ('{"surprise": 1}', 422, "Extra inputs"),
    ('{"profile_text": "' + "x" * 300_000 + '"}', 413, "over 262144 bytes"),
])
def test_bad_input_is_a_4xx_saying_what_is_wrong(live, body, status, says):
    url, _ = live
    r = C.post(f"{url}/v1/recommend", content=body.encode(), headers={"content-type": "application/json"})
    assert r.status_code == status and says in r.text, r.text


def test_items_added_through_one_worker_are_served_by_both(live):
    url, folder = live
    item = {"id": "COLD-1", "title": "Ultralight trail running vest", "price": 45.0, "category": None}
    before = C.get(f"{url}/v1/model").json()["n_cold_items"]  # the module's server is shared (tests run in any order)
    assert C.post(f"{url}/v1/items", json={"items": [item]}).status_code == 401
    r = C.post(f"{url}/v1/items", json={"items": [item]}, headers=W)
    assert r.status_code == 200 and r.json()["added"] == ["COLD-1"]
    assert C.post(f"{url}/v1/items", json={"items": [item]}, headers=W).status_code == 409
    bad = {"id": "COLD-2", "title": "x", "price": 3.0, "category": "no such category"}
    assert C.post(f"{url}/v1/items", json={"items": [bad]}, headers=W).status_code == 422
    workers = {}
    deadline = time.monotonic() + 60
    while len(workers) < 2 and time.monotonic() < deadline:  # fresh connections land on either worker
        m = C.get(f"{url}/v1/model").json()
        workers[m["worker"]] = m["n_cold_items"]
        assert C.get(f"{url}/v1/items/COLD-1").status_code == 200
    assert len(workers) == 2 and set(workers.values()) == {before + 1}, workers
    r = C.post(f"{url}/v1/recommend", json={"profile_text": "trail running vest", "k": 8})
    assert "COLD-1" in {it["id"] for b in r.json()["bundles"] for it in b["items"]}


def test_a_killed_server_loses_no_acknowledged_record_and_keeps_its_items(model_copy, tmp_path):
    """SIGKILL under load: every acknowledged impression is in the journal, which reads back; a restarted server
    serves the items added before the kill."""
    from bundlerl.serving.journal import read_journal

    logs = tmp_path / "logs"
    acked: list[str] = []
    stop_flag = threading.Event()
    with server(model_copy, log_dir=logs) as (url, proc):
        item = {"id": "COLD-9", "title": "Insulated camping mug", "price": 12.0}
        assert C.post(f"{url}/v1/items", json={"items": [item]}, headers=W).status_code == 200
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
        deadline = time.monotonic() + 120
        while len(acked) < 40 and time.monotonic() < deadline:  # a server that answers no request fails, never hangs
            time.sleep(0.01)
        assert len(acked) >= 40, f"only {len(acked)} impressions acknowledged in 120 s"
        stop(proc, signal.SIGKILL)  # mid-stream: requests in flight are lost, not the acknowledged ones
        stop_flag.set()
        for t in threads:
            t.join()
    logged = {r["impression_id"] for r in read_journal(logs) if r["type"] == "impression"}
    assert set(acked) <= logged and len(acked) >= 40
    with server(model_copy, log_dir=logs) as (url, proc):
        assert C.get(f"{url}/v1/items/COLD-9").json()["title"] == "Insulated camping mug"
        assert C.post(f"{url}/v1/recommend", json={}).status_code == 200
    assert len(list(read_journal(logs))) > len(logged)  # the restarted server appends to a journal of its own


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
    from bundlerl.serving.exploration import Exploration, exploring_probabilities
    from bundlerl.serving.journal import Journal, journal_to_log, read_journal

    url, folder = live
    outs = [C.post(f"{url}/v1/recommend", json={"profile_text": f"gift {i}", "exploration": {"epsilon": 0.3}}).json()
            for i in range(5)]
    mine = {o["impression_id"] for o in outs}
    # feedback that names one bought item twice: one item bought (n_bought agrees with bought_items)
    twice = outs[0]["bundles"][0]["items"][0]["id"]
    fb = {"impression_id": outs[0]["impression_id"], "click": True, "bought": [twice, twice], "revenue": 3.0}
    assert C.post(f"{url}/v1/feedback", json=fb, headers=W).status_code == 200
    only = folder.parent / "my-journal"  # this test's impressions (the server's journal holds other tests' too)
    j = Journal(only)
    for rec in read_journal(folder / "logs"):
        if rec["impression_id"] in mine:
            j.append(rec)
    j.close()
    out = folder.parent / "ope-log"
    art = load_artifacts(folder)
    n = journal_to_log(only, out, art)
    ds = LogDataset.open(out, expect_spec=art.manifest["observation"])
    assert ds.n_rows == n == 5
    part = next(ds.parts())
    c = part.columns
    # what off-policy evaluation needs: the logged observation gives back the logged distribution
    again = exploring_probabilities(art.policy, part.observation(), None, Exploration(epsilon=0.3))
    np.testing.assert_allclose(c["action_prob"], again, atol=1e-6)
    np.testing.assert_allclose(c["pscore"], c["action_prob"][np.arange(part.n), c["action"]])
    np.testing.assert_array_equal(c["n_bought"], (c["bought_items"] >= 0).sum(1))
    assert c["n_bought"].sum() == 1


def _fuzz(url: str, per_operation: int) -> int:
    """Run schemathesis on every operation of the live server's OpenAPI schema, positive and negative cases,
    ``per_operation`` examples each (writes with the API key on every other case); returns the number of cases run.
    Fails on any 5xx, undocumented status, wrong content type or response outside its schema."""
    import hypothesis
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.generation.modes import GenerationMode
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    count = 0
    for result in schema.get_all_operations():
        op = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @settings(max_examples=per_operation, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck),
                      phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate])
            @given(op.as_strategy(generation_mode=mode))
            def run(case):
                nonlocal count
                count += 1
                case.call_and_validate(base_url=url, headers=W if count % 2 else None, checks=checks, timeout=30)

            try:
                run()
            except hypothesis.errors.Unsatisfiable:  # no invalid input exists (GET without parameters)
                continue
    return count


def test_fuzz_the_openapi_schema_no_5xx_no_schema_violation(live):
    url, _ = live
    assert _fuzz(url, per_operation=12) >= 100


@pytest.mark.slow
def test_fuzz_the_openapi_schema_with_over_a_thousand_cases(model_copy):
    with server(model_copy) as (url, proc):
        assert _fuzz(url, per_operation=125) >= 1000
