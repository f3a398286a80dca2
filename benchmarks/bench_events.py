"""Durable events: ``POST /events`` throughput, ack-to-visible latency, restart with a long log.

Usage (from the project root)::

    nice .venv/bin/python benchmarks/bench_events.py --profile thesis
    .venv/bin/python benchmarks/bench_events.py --profile ci --duration 3 --restart-events 10000   # a quick look

Every run starts ``recsys serve`` on 127.0.0.1 with the model of
``--profile`` (trained with ``recsys train`` when missing) and a fresh event
store: SQLite (the embedded default: WAL, synchronous=FULL, group commit)
and, with ``--postgres``, a throw-away PostgreSQL server
(:mod:`recsys.store.cluster`); with one worker, then with two sharing a
throw-away redis-server (``--workers 2 --redis``). Then, on each:

1. **throughput**: ``--concurrency`` closed-loop clients (aiohttp,
   keep-alive, an admin token) post events for ``--duration`` seconds, first
   one event per request, then ``--batch`` events per request. Every 200 is
   an acknowledgement *after* the commit (durable). Printed: requests/s,
   events/s, p50/p99 latency, the server's CPU per request (every worker).
2. **ack -> visible**: ``--visible-samples`` times, a client posts one view
   of a new user and then asks ``/realtime`` for that user 4 times, each on a
   new connection (so on any worker); the time from the 200 of the post to
   each answer, p50/p99, and the answers that did not count the event yet
   (stale), overall and per worker (each answer's worker is told by a
   ``GET /health`` on the same connection). First every worker answers a
   warm-up request, so that the events of the throughput run are applied
   before the first probe.
3. **restart**: for each of ``--restart-events`` (default 10k, 100k, 1M
   events since the last batch, written into the store before the start),
   the time from starting ``recsys serve`` to the first 200 of ``/realtime``
   of a user whose events are in the log (model load + catching up).

Targets (issue 20, 2-core machine, one worker, embedded store): >= 2,000
single-event requests/s, >= 20,000 events/s in 100-event requests, an
acknowledged event visible on every worker within 1 s at p99, a restart with
1M events since the last batch answering within 60 s. The load generator
runs on the same machine and takes CPU from the server: the figures are a
lower bound of what the server does alone. Figures are recorded in
``reports/benchmarks/bench_events_<profile>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import psutil

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "/recommendations/enhanced"
NO_CLIENT_LIMIT = ("--rate-limit", "1000000", "--burst", "1000000")
"""The load generator is one client address: the per-client request limit (1,000/s) would refuse it."""
TARGETS = {"single_rps": 2000.0, "batch_events_per_s": 20_000.0, "visible_p99_s": 1.0, "restart_1m_s": 60.0}


def _event(user: str, product: str, kind: str = "view", when: str = "2024-06-01T12:00:00") -> dict:
    return {"user_id": user, "product_id": product, "event_type": kind, "timestamp": when}


async def _post_loop(base: str, token: str, products: list[str], per_request: int, clients: int,
                     duration: float, when: str) -> tuple[list[float], Counter]:
    import aiohttp

    latencies: list[float] = []
    statuses: Counter = Counter()
    stop = time.perf_counter() + duration
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(base_url=base, connector=connector,
                                     headers={"Authorization": f"Bearer {token}"},
                                     timeout=aiohttp.ClientTimeout(total=60.0)) as session:

        async def client(i: int) -> None:
            rng = np.random.default_rng(i)
            n = 0
            while time.perf_counter() < stop:
                body = {"events": [_event(f"bench-{i}-{n}-{k}", products[int(rng.integers(len(products)))], "view",
                                          when) for k in range(per_request)]}
                n += 1
                start = time.perf_counter()
                try:
                    async with session.post(f"{PREFIX}/events", json=body) as response:
                        await response.read()
                        statuses[response.status] += 1
                except (TimeoutError, aiohttp.ClientError) as err:
                    statuses[type(err).__name__] += 1
                latencies.append(time.perf_counter() - start)

        await asyncio.gather(*(client(i) for i in range(clients)))
    return latencies, statuses


def throughput(base: str, token: str, products: list[str], per_request: int, clients: int, duration: float,
               when: str) -> dict:
    latencies, statuses = asyncio.run(_post_loop(base, token, products, per_request, clients, duration, when))
    ms = np.array(latencies) * 1000
    ok = statuses.get(200, 0)
    return {"per_request": per_request, "clients": clients, "requests_per_s": ok / duration,
            "events_per_s": ok * per_request / duration, "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "errors": int(sum(statuses.values()) - ok),
            "statuses": {str(k): v for k, v in statuses.items()}}


def visibility(base: str, token: str, products: list[str], samples: int, when: str, workers: int,
               probes: int = 4) -> dict:
    """After each posted view of a new user is acknowledged, ``probes`` ``/realtime`` requests for that
    user, each on a new connection (so they land on any worker): the seconds from the acknowledgement to
    each answer, and how many answers did not count the event yet (stale: the fallback)."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"}
    host, port = urlsplit(base).hostname, urlsplit(base).port
    delays, stale, pids = [], [], []
    answered: set[int] = set()
    for _ in range(20 * workers):  # every worker applies what is stored first (the throughput run's events)
        with httpx.Client(base_url=base, headers=headers, timeout=120) as client:  # a new connection each
            client.post(f"{PREFIX}/realtime", json={"user_id": "warm-up"}).raise_for_status()
            answered.add(client.get("/health").json()["pid"])
        if len(answered) == workers:
            break
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        for i in range(samples):
            user = f"visible-{os.getpid()}-{i}"
            client.post(f"{PREFIX}/events", json={"events": [_event(user, products[i % len(products)], "view", when)]}
                        ).raise_for_status()
            acked = time.perf_counter()
            for _ in range(probes):  # a plain new connection each (an httpx.Client costs ~ms to build)
                connection = http.client.HTTPConnection(host, port, timeout=30)
                connection.request("POST", f"{PREFIX}/realtime", body=json.dumps({"user_id": user}),
                                   headers={**headers, "Content-Type": "application/json"})
                answer = json.loads(connection.getresponse().read())
                delays.append(time.perf_counter() - acked)
                stale.append(answer.get("method") != "realtime_knn")
                connection.request("GET", "/health")  # the same connection, so the same worker: which one
                pids.append(json.loads(connection.getresponse().read())["pid"])
                connection.close()
    seconds, stale_flags, pid_of = np.array(delays), np.array(stale), np.array(pids)
    workers = [{"answers": int((pid_of == pid).sum()), "stale": int(stale_flags[pid_of == pid].sum()),
                "p50_s": float(np.percentile(seconds[pid_of == pid], 50)),
                "p99_s": float(np.percentile(seconds[pid_of == pid], 99))} for pid in sorted(set(pids))]
    return {"samples": samples, "answers": len(delays), "stale": int(stale_flags.sum()),
            "p50_s": float(np.percentile(seconds, 50)), "p99_s": float(np.percentile(seconds, 99)),
            "max_s": float(seconds.max()), "workers": workers}


def fill_store(url: str, n: int, users: list[str], products: list[str], when: pd.Timestamp, seed: int) -> str:
    """``n`` stored events (views, carts, purchases of known and new users), written in 10k-event
    appends; returns a user whose events are in the log."""
    from recsys.store import open_store

    rng = np.random.default_rng(seed)
    kinds = np.array(["view", "view", "view", "cart", "purchase"])
    pool = users[: max(1, len(users) // 2)] + [f"live-{i}" for i in range(max(1, n // 20))]
    with open_store(url) as store:
        for start in range(0, n, 10_000):
            m = min(10_000, n - start)
            u = rng.integers(len(pool), size=m)
            p = rng.integers(len(products), size=m)
            k = rng.integers(len(kinds), size=m)
            stamp = (when + pd.Timedelta(seconds=start // 1000)).isoformat()
            store.append_events([{"user_id": pool[a], "product_id": products[b], "event_type": kinds[c],
                                  "timestamp": stamp} for a, b, c in zip(u, p, k, strict=True)])
    return pool[-1]


def restart_time(model: Path, keys: Path, database: str, user: str, token: str, log_path: Path) -> float:
    """Seconds from starting ``recsys serve`` to the first 200 of ``/realtime`` for ``user``."""
    import httpx

    sys.path.insert(0, str(ROOT / "tests"))
    from service_processes import free_port

    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    started = time.perf_counter()
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "recsys.cli", "serve", "--model", str(model), "--api-keys",
                                    str(keys), "--port", str(port), "--database", database],
                                   stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"recsys serve exited with {process.returncode}; see {log_path}")
            try:
                answer = httpx.post(f"http://127.0.0.1:{port}{PREFIX}/realtime", timeout=120,
                                    headers={"Authorization": f"Bearer {token}"},
                                    json={"user_id": user, "num_recommendations": 5})
                if answer.status_code == 200:
                    assert answer.json()["method"] == "realtime_knn", answer.text[:200]
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=60)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="thesis", help="model profile: ci | thesis | large")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--model", default=None, help="model directory (default data/models/<profile>)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per throughput run")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--batch", type=int, default=100, help="events per request of the batched run")
    parser.add_argument("--visible-samples", type=int, default=200)
    parser.add_argument("--restart-events", default="10000,100000,1000000")
    parser.add_argument("--postgres", action="store_true", help="also run against a throw-away PostgreSQL")
    parser.add_argument("--train-events", type=int, default=100_000,
                        help="stored events for the train-time run (0: skip it)")
    parser.add_argument("--only-train", action="store_true", help="only the train-time run (no service runs)")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT / "tests"))
    from service_processes import redis_server, serve_process

    from recsys.data.dataset import Dataset
    from recsys.runs.reporting import write_benchmark_manifest
    from recsys.service.auth import add_key_main
    from recsys.store.cluster import postgres_server

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_service import ensure_model

    model = ensure_model(args.profile, args.seed, Path(args.model or ROOT / "data" / "models" / args.profile))
    base = Dataset.load(model / "base") if (model / "base").exists() else None
    if base is None:
        current = (model / "engine" / "CURRENT").read_text().strip()
        base = Dataset.load(model / "engine" / current / "data")
    users, products = base.users["user_id"].tolist(), base.products["product_id"].tolist()
    when = base.as_of + pd.Timedelta(hours=1)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"model {model} ({args.profile}: {len(users):,} users, {len(products):,} products, {len(base.events):,} "
          f"events); {os.cpu_count()} cores, load average {load}")
    metrics: dict[str, tuple[float, str]] = {}
    how = (f"benchmarks/bench_events.py --profile {args.profile}: recsys serve on 127.0.0.1; aiohttp "
           f"closed-loop clients on the same {os.cpu_count()}-core machine (load average before: {load})")
    if args.train_events:
        seconds, report = train_time(model, args.train_events, users, products, when, args.seed)
        print(f"train on base + {args.train_events:,} stored events (thesis model's configuration, in process): "
              f"{seconds:.1f} s; trained on {report['events']:,} events, {report['users']:,} users", flush=True)
        metrics[f"events_train_seconds/sqlite/events_{args.train_events}"] = (
            seconds, f"recsys.service.loop.train_on_store: training data set built from base + {args.train_events} "
                     f"stored events, Stages 1-3 fitted; one process; {how}")
    if args.only_train:
        path = write_benchmark_manifest(f"bench_events_{args.profile}_train", metrics)
        print(f"figures recorded in {path}")
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-events-") as tmp, postgres_server() as (pg_url, pg_reason), \
            redis_server() as redis_url:
        tmp = Path(tmp)
        keys = tmp / "keys.json"
        token = add_key_main("bench-backend", True, keys)
        stores = [("sqlite", lambda name: f"sqlite:///{tmp / name}.db")]
        if args.postgres:
            if pg_url is None:
                print(f"PostgreSQL skipped: {pg_reason}")
            else:
                stores.append(("postgresql", lambda name: _pg_database(pg_url, name)))
        for store_name, url_of in stores:
            for workers in (1, 2):
                if workers > 1 and redis_url is None:
                    print("2 workers skipped: no redis-server binary")
                    continue
                with serve_process(model, keys, workers=workers, redis_url=redis_url if workers > 1 else None,
                                   extra=("--database", url_of(f"throughput{workers}"), *NO_CLIENT_LIMIT),
                                   log_path=tmp / f"serve-{store_name}-{workers}.log") as (url, process):
                    for per_request in (1, args.batch):
                        record_throughput(metrics, store_name, workers, process, url, token, products, per_request,
                                          args, when.isoformat(), how)
                    record_visibility(metrics, store_name, workers,
                                      visibility(url, token, products, args.visible_samples, when.isoformat(),
                                                 workers), how)
            for n in [int(x) for x in args.restart_events.split(",") if x]:
                database = url_of(f"restart{n}")
                started = time.perf_counter()
                user = fill_store(database, n, users, products, when, args.seed)
                filled = time.perf_counter() - started
                seconds = restart_time(model, keys, database, user, token, tmp / f"restart-{store_name}-{n}.log")
                print(f"{store_name}: restart with {n:,} events since the last batch: first answer after "
                      f"{seconds:.1f} s (store filled in {filled:.0f} s)", flush=True)
                metrics[f"events_restart_to_first_answer_s/{store_name}/events_{n}"] = (
                    seconds, f"recsys serve start to the first /realtime 200 of a user in the log, {n} events since "
                             f"the last batch; {how}")
    print("targets (1 worker, embedded store): >= 2,000 single-event req/s, >= 20,000 events/s in 100-event "
          "requests, ack -> visible p99 <= 1 s, restart with 1M events <= 60 s")
    path = write_benchmark_manifest(f"bench_events_{args.profile}", metrics)
    print(f"figures recorded in {path}")
    return 0


def train_time(model: Path, n: int, users: list[str], products: list[str], when: pd.Timestamp,
               seed: int) -> tuple[float, dict]:
    """Seconds of :func:`recsys.service.loop.train_on_store` over ``n`` stored events (a fresh SQLite store)."""
    from recsys.service.loop import train_on_store
    from recsys.serving.model_dir import load_current
    from recsys.store import open_store

    engine, _ = load_current(model)
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        engine.artifacts_dir = Path(tmp) / "artifacts"  # the new engine's Stage 2 versions: not the model's
        url = f"sqlite:///{tmp}/events.db"
        fill_store(url, n, users, products, when, seed)
        with open_store(url) as store:
            started = time.perf_counter()
            new, report = train_on_store(engine, store, model / "base", engine.now)
            return time.perf_counter() - started, report


def _cpu_seconds(process: subprocess.Popen) -> float:
    """User + system CPU of ``recsys serve``: the process and its workers (uvicorn's children)."""
    root = psutil.Process(process.pid)
    total = 0.0
    for p in [root, *root.children(recursive=True)]:
        try:
            total += sum(p.cpu_times()[:2])
        except psutil.NoSuchProcess:
            pass
    return total


def record_throughput(metrics: dict, store_name: str, workers: int, process: subprocess.Popen, url: str, token: str,
                      products: list[str], per_request: int, args: argparse.Namespace, when: str, how: str) -> None:
    throughput(url, token, products, per_request, 10, 1.0, when)  # warm-up
    cpu = _cpu_seconds(process)
    r = throughput(url, token, products, per_request, args.concurrency, args.duration, when)
    cpu_ms = 1000 * (_cpu_seconds(process) - cpu) / max(1, r["requests_per_s"] * args.duration)
    print(f"{store_name}, {workers} worker(s): {per_request:>4} event(s)/request, {args.concurrency} clients: "
          f"{r['requests_per_s']:,.0f} req/s, {r['events_per_s']:,.0f} events/s, p50 {r['p50_ms']:.1f} ms, "
          f"p99 {r['p99_ms']:.1f} ms, errors {r['errors']}; server CPU {cpu_ms:.3f} ms/request (one core's worth: "
          f"{1000 / cpu_ms:,.0f} req/s, {1000 * per_request / cpu_ms:,.0f} events/s)", flush=True)
    key = f"{store_name}/events_per_request_{per_request}" + (f"/workers_{workers}" if workers > 1 else "")
    what = (f"{per_request} event(s) per request, {args.concurrency} clients, {args.duration:g} s, {workers} "
            f"worker(s){' sharing a redis-server' if workers > 1 else ''}; {how}")
    metrics[f"events_durable_requests_per_s/{key}"] = (r["requests_per_s"], f"2xx per second; {what}")
    metrics[f"events_durable_events_per_s/{key}"] = (r["events_per_s"], f"events acknowledged per second; {what}")
    metrics[f"events_post_latency_ms_p99/{key}"] = (r["p99_ms"], f"p99 of POST /events; {what}")
    metrics[f"events_errors/{key}"] = (r["errors"], f"answers other than 200; {what}")
    metrics[f"events_server_cpu_ms_per_request/{key}"] = (cpu_ms, f"server CPU (user+system, every worker) per "
                                                                  f"2xx; {what}")


def record_visibility(metrics: dict, store_name: str, workers: int, v: dict, how: str) -> None:
    per_worker = "; ".join(f"worker {i + 1}: {w['answers']} answers, p50 {w['p50_s'] * 1000:.1f} ms, p99 "
                           f"{w['p99_s'] * 1000:.1f} ms, {w['stale']} stale" for i, w in enumerate(v["workers"]))
    print(f"{store_name}, {workers} worker(s): ack -> answer of /realtime on a new connection: p50 "
          f"{v['p50_s'] * 1000:.1f} ms, p99 {v['p99_s'] * 1000:.1f} ms, max {v['max_s'] * 1000:.1f} ms; "
          f"{v['stale']} of {v['answers']} answers without the event ({per_worker})", flush=True)
    what = f"{workers} worker(s){' sharing a redis-server' if workers > 1 else ''}; {v['answers']} answers; {how}"
    metrics[f"events_ack_to_visible_s_p50/{store_name}/workers_{workers}"] = (v["p50_s"], f"p50; {what}")
    metrics[f"events_ack_to_visible_s_p99/{store_name}/workers_{workers}"] = (v["p99_s"], f"p99; {what}")
    metrics[f"events_stale_answers/{store_name}/workers_{workers}"] = (v["stale"], f"answers after the "
                                                                                   f"acknowledgement without the "
                                                                                   f"event; {what}")
    worst = max(v["workers"], key=lambda w: w["p99_s"])
    metrics[f"events_ack_to_visible_s_p99_worst_worker/{store_name}/workers_{workers}"] = (
        worst["p99_s"], f"p99 of the worker with the largest p99 (each answer's worker told by GET /health on its "
                        f"connection; answers per worker: {[w['answers'] for w in v['workers']]}); {what}")
    metrics[f"events_visible_workers_answering/{store_name}/workers_{workers}"] = (
        len(v["workers"]), f"workers that answered probes (every worker must: the probes use new connections); {what}")


def _pg_database(server_url: str, name: str) -> str:
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    return server_url.rsplit("/", 1)[0] + f"/{name}"


if __name__ == "__main__":
    sys.exit(main())
