"""Serving speed: latency and throughput of a real ``bundlerl serve`` process on 127.0.0.1.

Request bodies are replayed from simulated sessions of the model's world: distinct users (one body each, a unique
user id), 0-20 events each (the shown bundles, clicks and purchases of random-policy sessions, truncated at a
uniform draw), the user's profile text; a share (``--new-text``, default 20%) are new users whose profile text was
never seen before (a persona text with a unique suffix) and no events. No response cache (every body differs).
A load generator in this process (asyncio + httpx; its CPU use is reported) sends ``--requests`` bodies per figure
at concurrency 1 (p50 / p99 latency) and 32 (throughput), for 1 and 2 workers; requests with new text are reported
apart. Memory: the workers' RSS before and after each figure. Where the time goes: the same bodies answered in
this process by a :class:`~bundlerl.serving.recommender.Recommender` (its stage timers) and validated by the
request schema, against the HTTP latency.

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


async def _load(url: str, bodies: list[bytes], concurrency: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(per-request latency s, status codes, wall s) of sending every body with ``concurrency`` in flight."""
    import httpx

    lat = np.zeros(len(bodies))
    status = np.zeros(len(bodies), int)
    nxt = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        async def worker():
            nonlocal nxt
            while nxt < len(bodies):
                i = nxt
                nxt += 1
                t0 = time.perf_counter()
                try:
                    r = await client.post("/v1/recommend", content=bodies[i],
                                          headers={"content-type": "application/json"})
                    status[i] = r.status_code
                except httpx.HTTPError:  # a reset or timed-out connection: an error of the figure, not a crash
                    status[i] = -1
                lat[i] = time.perf_counter() - t0

        t0 = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(concurrency)])
        wall = time.perf_counter() - t0
    return lat, status, wall


def figure(url, proc, bodies, new, concurrency) -> dict:
    rss0 = _rss_mb(_workers(proc))
    cpu0 = time.process_time()
    lat, status, wall = asyncio.run(_load(url, bodies, concurrency))
    cpu = time.process_time() - cpu0
    rss1 = _rss_mb(_workers(proc))
    ok = status == 200
    res = {"concurrency": concurrency, "requests": len(bodies), "errors": int((~ok).sum()),
           "transport_errors": int((status == -1).sum()), "wall_s": wall,
           "throughput_rps": len(bodies) / wall, "client_cpu_share": cpu / wall, "rss_mb_before": rss0,
           "rss_mb_after": rss1}
    for name, sel in (("known", ~new), ("new_text", new)):
        if sel.any():
            res[f"p50_ms_{name}"] = float(np.percentile(lat[sel], 50) * 1e3)
            res[f"p99_ms_{name}"] = float(np.percentile(lat[sel], 99) * 1e3)
            res[f"n_{name}"] = int(sel.sum())
    return res


def breakdown(model_dir: Path, bodies: list[bytes], new: np.ndarray, n: int = 2000) -> dict:
    """Mean ms per request of each stage, in process (no HTTP), for requests with known text (the encoder's memo
    warmed by a first pass, as a running server's is) and with new text apart: schema validation, then the
    recommender's stages (``Recommender.last_timings``)."""
    from bundlerl.serving.app import _to_request
    from bundlerl.serving.recommender import Recommender
    from bundlerl.serving.schemas import RecommendIn

    rec = Recommender.load(model_dir)
    K = rec.art.config.K
    reqs = [_to_request(RecommendIn.model_validate_json(b), K, "") for b in bodies[:n]]
    rec.encode(sorted({r.profile_text for r, nw in zip(reqs, new) if r.profile_text and not nw}))
    out = {}
    for name, sel in (("known", ~new[:n]), ("new_text", new[:n])):
        sums: dict[str, float] = {}
        for b in (b for b, s in zip(bodies[:n], sel) if s):
            t0 = time.perf_counter()
            req = _to_request(RecommendIn.model_validate_json(b), K, "")
            sums["validation"] = sums.get("validation", 0.0) + time.perf_counter() - t0
            t0 = time.perf_counter()
            rec.recommend(req)
            sums["total_recommend"] = sums.get("total_recommend", 0.0) + time.perf_counter() - t0
            for k, v in rec.last_timings.items():
                sums[k] = sums.get(k, 0.0) + v
        out[name] = {k: v / max(int(sel.sum()), 1) * 1e3 for k, v in sums.items()}
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, type=Path, help="an exported model folder")
    ap.add_argument("--requests", type=int, default=10_000, help="requests per figure (default 10,000)")
    ap.add_argument("--new-text", type=float, default=0.2, help="share of new users with unseen profile text")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--concurrency", default="1,32")
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
    results = {"breakdown_ms": breakdown(model, bodies, new), "figures": [], "load_average": os.getloadavg()}
    for name, stages in results["breakdown_ms"].items():
        print(f"where the time goes, {name} (in process, mean ms/request):",
              {k: round(v, 3) for k, v in stages.items()}, flush=True)
    start = 0
    for w in (int(x) for x in args.workers.split(",")):
        with server(model, workers=w, log_dir=tmp / f"logs-{w}") as (url, proc):
            for c in (int(x) for x in args.concurrency.split(",")):
                part = slice(start, start + args.requests)
                start += args.requests
                warm = asyncio.run(_load(url, bodies[part][:200], c))  # connections, first-call costs
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
