"""Serving speed: latency and throughput of a real ``bundlerl serve`` process on 127.0.0.1.

Request bodies are replayed from simulated sessions of the model's world: distinct users (one body each, a unique
user id), 0-20 events each (the shown bundles, clicks and purchases of random-policy sessions, truncated at a
uniform draw), the user's profile text; a share (``--new-text``, default 20%) are new users whose profile text was
never seen before (a persona text with a unique suffix) and no events. No response cache (every body differs).
A load generator in this process (a raw-socket HTTP/1.1 keep-alive client on asyncio/uvloop; its CPU use is
reported) sends ``--requests`` bodies per figure at concurrency 1 (p50 / p99 latency) and 32 (throughput), for 1 and
2 workers; requests with new text are reported apart. Each figure also reports the server's CPU ms per request (its
processes' CPU time over the requests: what the targets depend on, whatever else the shared machine runs), the load
average over it, and the workers' RSS before and after. Where the time goes: the same bodies answered in this
process by a :class:`~bundlerl.serving.recommender.Recommender` (its stage timers, CPU ms per request), one at a time
and in batches of 32 (the server's dynamic batching), and validated by the request schema.

    python benchmarks/bench_serving.py --model MODEL_DIR                  # export one first (bundlerl export)
    python benchmarks/bench_serving.py --model MODEL_DIR --requests 2000  # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def session_bodies(model_dir: Path, n: int, new_share: float, seed: int = 0) -> tuple[list[bytes], np.ndarray]:
    """(``n`` JSON bodies, (n,) bool "new profile text") from simulated sessions of the model's world."""
    from bundlerl.env.config import EnvConfig
    from bundlerl.env.session import SessionBatch
    from bundlerl.env.world import build_world

    manifest = json.loads((model_dir / "manifest.json").read_text())
    world = build_world(EnvConfig.from_dict(manifest["env_config"]), progress=False)
    rng = np.random.default_rng(seed)
    rows = 256
    bodies, new = [], []
    ids = world.observable_catalog.item_ids
    while len(bodies) < n:
        batch = SessionBatch(world, world.config, rows)
        batch.seed_rows(np.arange(rows), [np.random.default_rng(rng.integers(2**63)) for _ in range(rows)])
        batch.reset_rows()
        events: list[list[dict]] = [[] for _ in range(rows)]
        alive = np.ones(rows, bool)
        for t in range(8):
            m = batch.action_masks()
            out = batch.step(np.argmax(rng.random(m.shape) * m, axis=1))
            for i in np.flatnonzero(alive):
                shown = out.shown[i][out.shown[i] >= 0]
                events[i] += [{"item_id": str(ids[j]), "kind": "view", "timestamp": t} for j in shown]
                if out.click[i]:
                    events[i].append({"item_id": str(ids[shown[0]]), "kind": "click", "timestamp": t})
                events[i] += [{"item_id": str(ids[j]), "kind": "purchase", "timestamp": t}
                              for j in out.shown[i][out.bought[i]]]
            alive &= ~(out.terminated | out.truncated)
        for i in range(rows):
            u = len(bodies)
            text = str(world.personas.texts[batch.log.persona[i]])
            if rng.random() < new_share:
                body = {"user_id": f"user-{u}", "profile_text": f"{text} (new shopper {u}, likes item {rng.integers(1e9)})"}
                new.append(True)
            else:
                body = {"user_id": f"user-{u}", "profile_text": text,
                        "events": events[i][: int(rng.integers(0, 21))]}
                new.append(False)
            body["k"] = 3
            bodies.append(json.dumps(body).encode())
            if len(bodies) == n:
                break
    return bodies, np.array(new)


def _rss_mb(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            pass
    return total


def _workers(proc) -> list[int]:
    """The server's process and its children (the uvicorn workers)."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(proc.pid)], capture_output=True, text=True).stdout
    return [proc.pid] + [int(p) for p in out.split()]


def _request_bytes(host: str, port: int, path: str, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def _load(url: str, bodies: list[bytes], concurrency: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(per-request latency s, status codes, wall s) of sending every body with ``concurrency`` in flight.

    The load generator is a raw-socket HTTP/1.1 keep-alive client on asyncio (uvloop's loop when installed): one
    connection per concurrent sender, requests pre-serialised, the response read by its Content-Length. httpx spent
    more CPU per request than the server at a few hundred requests/s on this 2-core machine; this spends ~0.1 ms. A
    connection error or a response without Content-Length counts as status -1 (an error of the figure), and the
    sender reconnects."""
    from urllib.parse import urlsplit

    u = urlsplit(url)
    host, port = u.hostname, u.port
    reqs = [_request_bytes(host, port, "/v1/recommend", b) for b in bodies]
    lat = np.zeros(len(bodies))
    status = np.zeros(len(bodies), int)
    nxt = 0

    async def sender():
        nonlocal nxt
        reader = writer = None
        while nxt < len(reqs):
            i = nxt
            nxt += 1
            t0 = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                writer.write(reqs[i])
                head = await reader.readuntil(b"\r\n\r\n")
                status[i] = int(head[9:12])
                length = -1
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length < 0:
                    raise ConnectionError("no Content-Length")
                await reader.readexactly(length)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                status[i] = -1
                if writer is not None:
                    writer.close()
                reader = writer = None
            lat[i] = time.perf_counter() - t0
        if writer is not None:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*[sender() for _ in range(concurrency)])
    wall = time.perf_counter() - t0
    return lat, status, wall


def _run(coro):
    """Run ``coro`` on uvloop's event loop when installed (the cheaper client), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def _cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` so far (/proc/PID/stat), 0 for a process that is gone."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / tick


def figure(url, proc, bodies, new, concurrency) -> dict:
    """One figure: every body sent at ``concurrency``; latency percentiles apart for known and new text, throughput,
    errors, the server's RSS before and after, the server's CPU ms per request (its processes' CPU time over the
    requests: what the targets depend on, whatever else the machine runs), the client's CPU share and the load
    average over the figure."""
    pids = _workers(proc)
    rss0 = _rss_mb(pids)
    srv0 = _cpu_s(pids)
    load0 = os.getloadavg()[0]
    cpu0 = time.process_time()
    lat, status, wall = _run(_load(url, bodies, concurrency))
    cpu = time.process_time() - cpu0
    srv = _cpu_s(pids) - srv0
    rss1 = _rss_mb(pids)
    ok = status == 200
    res = {"concurrency": concurrency, "requests": len(bodies), "errors": int((~ok).sum()),
           "transport_errors": int((status == -1).sum()), "wall_s": wall,
           "throughput_rps": len(bodies) / wall, "server_cpu_ms_per_request": srv / len(bodies) * 1e3,
           "server_cpu_share": srv / wall, "client_cpu_ms_per_request": cpu / len(bodies) * 1e3,
           "client_cpu_share": cpu / wall, "rss_mb_before": rss0, "rss_mb_after": rss1,
           "load_average_1min": [load0, os.getloadavg()[0]]}
    for name, sel in (("all", np.ones(len(new), bool)), ("known", ~new), ("new_text", new)):
        if sel.any():
            res[f"p50_ms_{name}"] = float(np.percentile(lat[sel], 50) * 1e3)
            res[f"p99_ms_{name}"] = float(np.percentile(lat[sel], 99) * 1e3)
            res[f"n_{name}"] = int(sel.sum())
    return res


def fidelity(model_dir: Path, bodies: list[bytes], new: np.ndarray, precision: str, n: int = 300) -> dict:
    """What ``precision``'s encoder costs in fidelity on ``n`` new profile texts, against the float32 encoder in the
    same process: cosine of each vector to its float32 vector (mean, 1st percentile, min) and the share of each
    text's top-10 catalogue neighbours (inner product with the catalogue embeddings) kept, and of its top 1."""
    from bundlerl.encoders import SentenceEncoder
    from bundlerl.encoders.onnx_sentence import OnnxSentenceEncoder
    from bundlerl.serving.artifacts import load_artifacts

    art = load_artifacts(model_dir)
    base = SentenceEncoder(art.manifest["encoder"]["name"])
    texts = sorted({str(json.loads(b)["profile_text"]) for b, nw in zip(bodies, new) if nw})[:n]
    ref = OnnxSentenceEncoder(base).encode(texts)
    got = OnnxSentenceEncoder(base, precision=precision).encode(texts)
    cos = (ref * got).sum(axis=1)
    cat = art.catalog.embeddings
    top_ref, top_got = (np.argsort(-(v @ cat.T), axis=1)[:, :10] for v in (ref, got))
    kept = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top_ref, top_got)])
    return {"precision": precision, "texts": len(texts), "cos_mean": float(cos.mean()),
            "cos_p1": float(np.percentile(cos, 1)), "cos_min": float(cos.min()), "top10_kept": float(kept),
            "top1_kept": float(np.mean(top_ref[:, 0] == top_got[:, 0]))}


def breakdown(model_dir: Path, bodies: list[bytes], new: np.ndarray, n: int = 2000, precision: str = "fp32") -> dict:
    """Where the time goes, in process (no HTTP): per request, the CPU ms (``time.process_time``) and the mean wall ms
    of each stage (schema validation, then ``Recommender.last_timings``: encoding, user state, candidates, policy,
    ranking with reasons), answered one at a time (``batch_1``: what a worker does at concurrency 1; known and new
    text apart) and in batches of 32 of the mix as it arrives (``batch_32``: what dynamic batching does under load).
    Known texts are warm in the encoder's memo (a running server has seen them); new texts are fresh in each part
    (``bodies[:n]`` one at a time, ``bodies[n:2n]`` in batches)."""
    from bundlerl.serving.app import _to_request
    from bundlerl.serving.recommender import Recommender
    from bundlerl.serving.schemas import RecommendIn

    rec = Recommender.load(model_dir, encoder_precision=precision)
    K = rec.art.config.K
    rec.encode(sorted({str(json.loads(b).get("profile_text")) for b, nw in zip(bodies[:2 * n], new) if not nw}))
    rec.recommend(_to_request(RecommendIn.model_validate_json(bodies[0]), K, ""))  # first-call costs

    def run(part: list[bytes], batch: int) -> dict:
        sums: dict[str, float] = {}
        c0 = time.process_time()
        for lo in range(0, len(part), batch):
            t0 = time.perf_counter()
            reqs = [_to_request(RecommendIn.model_validate_json(b), K, "") for b in part[lo:lo + batch]]
            sums["validation"] = sums.get("validation", 0.0) + time.perf_counter() - t0
            rec.recommend_batch(reqs)
            for k, v in rec.last_timings.items():
                sums[k] = sums.get(k, 0.0) + v
        cpu = time.process_time() - c0
        return {"cpu_ms": cpu / len(part) * 1e3, "n": len(part),
                **{f"{k}_ms": v / len(part) * 1e3 for k, v in sums.items()}}

    one, many = bodies[:n], bodies[n:2 * n]
    parts = {"known": [b for b, s in zip(one, new[:n]) if not s], "new_text": [b for b, s in zip(one, new[:n]) if s]}
    return {"batch_1": {name: run(part, 1) for name, part in parts.items() if part},
            "batch_32": {"mix": run(many, 32)}}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, type=Path, help="an exported model folder")
    ap.add_argument("--requests", type=int, default=10_000, help="requests per figure (default 10,000)")
    ap.add_argument("--new-text", type=float, default=0.2, help="share of new users with unseen profile text")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--concurrency", default="1,32")
    ap.add_argument("--max-batch", type=int, default=None,
                    help="the server's --max-batch (default: its own; 1 turns dynamic batching off)")
    from bundlerl.encoders.onnx_sentence import PRECISIONS

    ap.add_argument("--encoder-precision", choices=PRECISIONS, default="fp32",
                    help="the server's --encoder-precision (default fp32); int8 also prints its fidelity to fp32")
    ap.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = ap.parse_args(argv)

    from _serving import API_KEY, server

    tmp = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    model = tmp / "model"
    shutil.copytree(args.model, model, ignore=shutil.ignore_patterns("logs", "items"))
    t0 = time.perf_counter()
    n_bodies = args.requests * len(args.concurrency.split(",")) * len(args.workers.split(","))
    bodies, new = session_bodies(model, n_bodies, args.new_text)
    print(f"{len(bodies):,} bodies from simulated sessions in {time.perf_counter() - t0:.1f} s "
          f"({new.mean():.0%} new text; mean {np.mean([len(json.loads(b).get('events', [])) for b in bodies]):.1f} "
          f"events)", flush=True)
    results = {"breakdown_ms": breakdown(model, bodies, new, n=min(2000, len(bodies) // 2),
                                         precision=args.encoder_precision),
               "figures": [], "load_average": os.getloadavg()}
    if args.encoder_precision != "fp32":
        results["fidelity"] = fidelity(model, bodies, new, args.encoder_precision)
        print("fidelity to the fp32 encoder (new profile texts):",
              {k: (round(v, 4) if isinstance(v, float) else v) for k, v in results["fidelity"].items()}, flush=True)
    for batch, parts in results["breakdown_ms"].items():
        for name, stages in parts.items():
            print(f"where the time goes, {batch}, {name} (in process, per request):",
                  {k: round(v, 3) for k, v in stages.items()}, flush=True)
    start = 0
    for w in (int(x) for x in args.workers.split(",")):
        extra = (("--encoder-precision", args.encoder_precision)
                 + (() if args.max_batch is None else ("--max-batch", str(args.max_batch))))
        with server(model, workers=w, log_dir=tmp / f"logs-{w}", extra=extra) as (url, proc):
            for c in (int(x) for x in args.concurrency.split(",")):
                part = slice(start, start + args.requests)
                start += args.requests
                warm = _run(_load(url, bodies[part][:200], c))  # connections, first-call costs
                del warm
                res = {"workers": w, **figure(url, proc, bodies[part], new[part], c)}
                results["figures"].append(res)
                print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in res.items()}),
                      flush=True)
    results["load_average_end"] = os.getloadavg()
    results["client_rusage_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    shutil.rmtree(tmp, ignore_errors=True)
    del API_KEY


if __name__ == "__main__":
    main()
