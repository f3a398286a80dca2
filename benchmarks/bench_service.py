"""Load test of the HTTP service: ``recsys serve`` on 127.0.0.1 under concurrent clients.

Usage (from the project root)::

    nice .venv/bin/python benchmarks/bench_service.py --profile thesis
    .venv/bin/python benchmarks/bench_service.py --profile ci --duration 3 --concurrency 50   # a quick look

For each worker count (``--workers 1,2``; two workers share the live history
through a throw-away redis-server, as in production), the script starts
``recsys serve`` with the model of ``--profile`` (trained with ``recsys
train`` when missing), then for each endpoint -- ``realtime`` (Stage 1),
``full`` with deals (Stage 3) and ``deals`` -- and each concurrency
(``--concurrency 50,200``) drives it for ``--duration`` seconds with a
closed-loop load generator: ``--client-processes`` processes, each an
asyncio event loop with ``aiohttp`` (or ``--client httpx``) keep-alive connections, one
coroutine per simulated client sending the next request when the previous
answer arrives. Users are drawn at random from the data set; requests carry
an admin (backend) token. It prints requests/s, p50/p95/p99 latency (client
side, from send to full answer), errors (anything but 200; deal answers of
429 are the rate limit working and counted apart) and each worker's RSS
after the run, and records them in ``reports/benchmarks/bench_service_<profile>.json``
(:func:`recsys.runs.reporting.write_benchmark_manifest`).

The load generator runs on the same 2-core machine as the server and takes
CPU from it: the figures are a lower bound of what the server does alone.

``--py-spy SECONDS`` also samples the (first) worker with py-spy during one
extra ``realtime`` and one ``full`` run and prints where the time goes (the
functions with the most samples, self and total).

Targets (issue 11, 2-core machine, thesis model, 50 clients): realtime >= 1,500
requests/s, full with deals >= 500 requests/s, p99 < 50 ms, no errors but
intended 429s, < 350 MB RSS per worker. The design claims 300+ requests/s and
250-350 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import multiprocessing as mp
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from recsys.runs.project_paths import reports_root

ROOT = Path(__file__).resolve().parent.parent
ENDPOINTS = ("realtime", "full", "deals")
TARGETS = {"realtime": 1500.0, "full": 500.0}
TARGET_P99_MS = 50.0
TARGET_RSS_MB = 350.0


# ---------------------------------------------------------------------------- the load generator
def _request(endpoint: str, user: str) -> tuple[str, str, dict | None]:
    prefix = "/recommendations/enhanced"
    if endpoint == "realtime":
        return "POST", f"{prefix}/realtime", {"user_id": user, "num_recommendations": 10}
    if endpoint == "full":
        return "POST", f"{prefix}/full", {"user_id": user, "num_recommendations": 10, "include_deals": True}
    return "GET", f"{prefix}/deals/{user}?num_deals=5", None


async def _closed_loop(send, endpoint: str, users: list[str], clients: int, duration: float,
                       seed: int) -> tuple[list[float], Counter]:
    """``clients`` concurrent clients, each sending its next request as soon as the last one answered, for
    ``duration`` seconds; ``send(method, path, body)`` returns the status code (or an error's class name)."""
    latencies: list[float] = []
    statuses: Counter = Counter()
    stop = time.perf_counter() + duration

    async def one_client(i: int) -> None:
        rng = random.Random(seed * 100_003 + i)
        while time.perf_counter() < stop:
            method, path, body = _request(endpoint, rng.choice(users))
            start = time.perf_counter()
            statuses[await send(method, path, body)] += 1
            latencies.append(time.perf_counter() - start)

    await asyncio.gather(*(one_client(i) for i in range(clients)))
    return latencies, statuses


async def _drive_aiohttp(base: str, token: str, endpoint: str, users: list[str], clients: int, duration: float,
                         seed: int) -> tuple[list[float], Counter]:
    """The closed loop on aiohttp (a connection pool of ``clients`` keep-alive connections)."""
    import aiohttp

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(base_url=base, connector=connector,
                                     headers={"Authorization": f"Bearer {token}"},
                                     timeout=aiohttp.ClientTimeout(total=30.0)) as session:

        async def send(method: str, path: str, body: dict | None) -> int | str:
            try:
                async with session.request(method, path, json=body) as response:
                    await response.read()
                    return response.status
            except (TimeoutError, aiohttp.ClientError) as err:
                return type(err).__name__

        return await _closed_loop(send, endpoint, users, clients, duration, seed)


async def _drive(base: str, token: str, endpoint: str, users: list[str], clients: int, duration: float,
                 seed: int, client_library: str = "aiohttp") -> tuple[list[float], Counter]:
    if client_library == "aiohttp":
        return await _drive_aiohttp(base, token, endpoint, users, clients, duration, seed)
    import httpx

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}, limits=limits,
                                 timeout=30.0) as client:

        async def send(method: str, path: str, body: dict | None) -> int | str:
            try:
                response = await client.request(method, path, json=body)
                await response.aread()
                return response.status_code
            except httpx.HTTPError as err:
                return type(err).__name__

        return await _closed_loop(send, endpoint, users, clients, duration, seed)


def _generator_process(args: tuple) -> tuple[list[float], dict, float]:
    cpu = time.process_time()
    latencies, statuses = asyncio.run(_drive(*args))
    return latencies, dict(statuses), time.process_time() - cpu


CLIENT_LIBRARY = "aiohttp"


def run_load(pool, base: str, token: str, endpoint: str, users: list[str], clients: int, duration: float,
             processes: int, seed: int) -> dict:
    """One closed-loop run; the clients are split over ``processes`` generator processes."""
    shares = [clients // processes + (1 if p < clients % processes else 0) for p in range(processes)]
    jobs = [(base, token, endpoint, users, n, duration, seed + p, CLIENT_LIBRARY) for p, n in enumerate(shares) if n]
    started = time.perf_counter()
    results = pool.map(_generator_process, jobs)
    elapsed = time.perf_counter() - started
    latencies = np.array([x for lat, _, _ in results for x in lat]) * 1000.0
    client_cpu = sum(cpu for _, _, cpu in results)
    statuses: Counter = Counter()
    for _, st, _ in results:
        statuses.update(st)
    ok = statuses.get(200, 0)
    limited = statuses.get(429, 0) if endpoint == "deals" else 0
    errors = sum(statuses.values()) - ok - limited
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99]) if len(latencies) else (np.nan,) * 3
    return {"requests": int(sum(statuses.values())), "rps": float(sum(statuses.values()) / duration),
            "ok": ok, "rate_limited": limited, "errors": errors, "p50": float(p50), "p95": float(p95),
            "p99": float(p99), "elapsed": elapsed, "statuses": {str(k): v for k, v in statuses.items()},
            "client_cpu_ms": 1000.0 * client_cpu / max(1, sum(statuses.values()))}


# ---------------------------------------------------------------------------- the server
def worker_pids(server_pid: int) -> list[int]:
    """The uvicorn workers (children running Python), or the server itself with one worker."""
    import psutil

    proc = psutil.Process(server_pid)
    workers = [c.pid for c in proc.children(recursive=True) if "python" in c.name().lower()
               and "multiprocessing.resource_tracker" not in " ".join(c.cmdline())]
    return workers or [server_pid]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the workers have used so far."""
    import psutil

    return sum(sum(psutil.Process(p).cpu_times()[:2]) for p in pids)


def rss_mb(pids: list[int]) -> list[float]:
    import psutil

    return [psutil.Process(p).memory_info().rss / 2**20 for p in pids]


def ensure_model(profile: str, seed: int, model: Path) -> Path:
    if not (model / "engine" / "CURRENT").exists():  # engine save format 3: CURRENT names the save sNNNNNN/
        print(f"training the {profile} model into {model} (recsys train) ...", flush=True)
        subprocess.run([sys.executable, "-m", "recsys.cli", "train", "--profile", profile, "--seed", str(seed),
                        "--data-dir", str(ROOT / "data"), "--out", str(model)], check=True)
    return model


def admin_token(keys: Path) -> str:
    from recsys.service.auth import add_key_main

    return add_key_main("bench-backend", True, keys)


def py_spy_summary(pid: int, seconds: float, out: Path, top: int = 15) -> str:
    """Sample ``pid`` with py-spy (collapsed stacks) and list the hottest functions."""
    py_spy = Path(sys.executable).parent / "py-spy"
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(py_spy), "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200",
                    "--format", "raw", "--output", str(out), "--nonblocking"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    self_time: Counter = Counter()
    total_time: Counter = Counter()
    samples = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        samples += n
        frames = [f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0].rsplit("/", 1)[-1] + ")"
                  if " (" in f else f for f in stack.split(";")]
        self_time[frames[-1]] += n
        for frame in set(frames):
            total_time[frame] += n
    lines = [f"  {samples} samples; self time (the function itself):"]
    lines += [f"    {100 * n / samples:5.1f}%  {name}" for name, n in self_time.most_common(top)]
    lines += ["  total time (with callees), project code and the web stack:"]
    interesting = [(name, n) for name, n in total_time.most_common(200)
                   if any(k in name for k in ("engine.py", "realtime", "hybrid", "deals", "generator", "app.py",
                                              "fastapi", "routing", "pydantic", "h11", "httptools", "uvicorn",
                                              "candidates", "knn", "state.py", "json", "encoders"))]
    lines += [f"    {100 * n / samples:5.1f}%  {name}" for name, n in interesting[:top]]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- recording
def record(rows: list[dict], args: argparse.Namespace, load: str, engine_manifest: str, write_manifest) -> None:
    """Every run in ``reports/benchmarks/bench_service_<profile>.csv`` (the notebooks' figures);
    the headline figures at the target's concurrency (50, else the smallest) in the manifest
    ``bench_service_<profile>.json``, which the evaluation's performance table reads."""
    import hashlib

    import pandas as pd

    if not rows:
        print("no runs: nothing recorded")
        return
    columns = ["workers", "endpoint", "clients", "requests", "rps", "p50", "p95", "p99", "errors", "rate_limited",
               "rss_max", "rss_total", "cpu_ms", "client_cpu_ms"]
    table = pd.DataFrame(rows)[columns].rename(columns={
        "rps": "requests_per_s", "p50": "p50_ms", "p95": "p95_ms", "p99": "p99_ms", "rss_max": "rss_mb_per_worker_max",
        "rss_total": "rss_mb_total", "cpu_ms": "server_cpu_ms_per_request",
        "client_cpu_ms": "client_cpu_ms_per_request"})
    csv = reports_root() / "benchmarks" / f"bench_service_{args.profile}.csv"  # beside write_benchmark_manifest's JSON
    csv.parent.mkdir(parents=True, exist_ok=True)
    table.round(3).to_csv(csv, index=False)
    clients = 50 if 50 in set(table["clients"]) else int(table["clients"].min())
    how_all = (f"benchmarks/bench_service.py --profile {args.profile} --duration {args.duration:g}: recsys serve on "
               f"127.0.0.1, {clients} closed-loop clients ({args.client} in {args.client_processes} process(es), "
               f"keep-alive, admin token, random users), client-side latency; load generator on the same "
               f"{os.cpu_count()}-core machine, load average before the runs {load}")
    metrics: dict[str, tuple[float, str]] = {}
    for r in table[table["clients"] == clients].itertuples(index=False):
        key = f"{r.endpoint}/workers_{r.workers}"
        what = f"{r.workers} worker(s){' sharing a redis-server' if r.workers > 1 else ''}, {r.endpoint}"
        metrics[f"service_throughput_requests_per_s/{key}"] = (r.requests_per_s, f"answers per second; {what}; {how_all}")
        metrics[f"service_latency_ms_p50/{key}"] = (r.p50_ms, f"p50; {what}; {how_all}")
        metrics[f"service_latency_ms_p99/{key}"] = (r.p99_ms, f"p99; {what}; {how_all}")
        metrics[f"service_errors/{key}"] = (int(r.errors), f"answers other than 200 (429 deals apart); {what}; {how_all}")
        metrics[f"service_cpu_ms_per_request/{key}"] = (
            r.server_cpu_ms_per_request, f"worker CPU (user+system) per answer; {what}; {how_all}")
    for workers, group in table.groupby("workers"):
        metrics[f"memory_rss_mb_per_worker/workers_{workers}"] = (
            float(group["rss_mb_per_worker_max"].max()), f"largest worker RSS after any run; {workers} worker(s); {how_all}")
    metrics["model_manifest_sha256"] = (hashlib.sha256(engine_manifest.encode()).hexdigest(),
                                        "sha256 of the served model's engine/<CURRENT>/manifest.json")
    path = write_manifest(f"bench_service_{args.profile}", metrics)
    print(f"figures recorded in {path} and {csv}")


# ---------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="thesis", help="model profile: ci | thesis | large")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--model", default=None, help="model directory (default data/models/<profile>)")
    parser.add_argument("--workers", default="1,2", help="comma-separated uvicorn worker counts")
    parser.add_argument("--concurrency", default="50,200", help="comma-separated concurrent clients")
    parser.add_argument("--endpoints", default=",".join(ENDPOINTS))
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before each endpoint's runs")
    parser.add_argument("--client-processes", type=int, default=1, help="load generator processes")
    parser.add_argument("--client", choices=["aiohttp", "httpx"], default="aiohttp",
                        help="load generator's HTTP client (aiohttp costs far less CPU per request than httpx)")
    parser.add_argument("--server-nice", type=int, default=0, help="nice level of the server")
    parser.add_argument("--py-spy", type=float, default=0.0, metavar="SECONDS",
                        help="also profile one worker for this long under realtime and full load")
    args = parser.parse_args(argv)
    global CLIENT_LIBRARY
    CLIENT_LIBRARY = args.client

    from recsys.data.dataset import Dataset  # noqa: F401  (import cost outside the timed runs)
    from recsys.runs.reporting import write_benchmark_manifest
    sys.path.insert(0, str(ROOT / "tests"))  # the test suite's process launchers (throw-away redis, recsys serve)
    from service_processes import redis_server, serve_process

    model = ensure_model(args.profile, args.seed, Path(args.model or ROOT / "data" / "models" / args.profile))
    current = (model / "engine" / "CURRENT").read_text().strip()
    engine_manifest = (model / "engine" / current / "manifest.json").read_text()
    from recsys.serving.engine import RecommendationEngine

    with contextlib.redirect_stderr(io.StringIO()):
        engine = RecommendationEngine.load(model / "engine")
    users = engine.dataset_.users["user_id"].astype(str).tolist()
    n_products = engine.dataset_.n_products
    del engine
    worker_counts = [int(x) for x in args.workers.split(",")]
    concurrencies = [int(x) for x in args.concurrency.split(",")]
    endpoints = [e for e in args.endpoints.split(",") if e]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"model {model} ({args.profile}: {len(users):,} users, {n_products:,} products); "
          f"{os.cpu_count()} cores, load average {load}; server and load generator on this machine")
    print(f"{'workers':>7} {'endpoint':<9} {'clients':>7} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
          f"{'errors':>6} {'429':>6} {'RSS MB/worker':>14} {'server CPU ms/req':>17} {'client CPU ms/req':>17}")

    rows = []
    profiles: list[str] = []
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp, \
            ctx.Pool(args.client_processes) as pool, redis_server() as redis_url:
        keys = Path(tmp) / "keys.json"
        token = admin_token(keys)
        for workers in worker_counts:
            if workers > 1 and redis_url is None:
                print(f"skipping {workers} workers: no redis-server binary (make redis)")
                continue
            with serve_process(model, keys, workers=workers, redis_url=redis_url if workers > 1 else None,
                               nice=args.server_nice, log_path=Path(tmp) / f"serve-{workers}.log",
                               extra=("--rate-limit", "0")) as (base, proc):  # one load generator: one client address
                pids = worker_pids(proc.pid)
                for endpoint in endpoints:
                    if args.warmup > 0:
                        run_load(pool, base, token, endpoint, users, 20, args.warmup, args.client_processes, 7)
                    for clients in concurrencies:
                        cpu_before = cpu_seconds(pids)
                        r = run_load(pool, base, token, endpoint, users, clients, args.duration,
                                     args.client_processes, args.seed)
                        cpu_ms = 1000.0 * (cpu_seconds(pids) - cpu_before) / max(1, r["requests"])
                        rss = rss_mb(pids)
                        r.update(workers=workers, endpoint=endpoint, clients=clients, rss_max=max(rss),
                                 rss_total=sum(rss), cpu_ms=cpu_ms)
                        rows.append(r)
                        print(f"{workers:>7} {endpoint:<9} {clients:>7} {r['rps']:>8.0f} {r['p50']:>8.1f} "
                              f"{r['p95']:>8.1f} {r['p99']:>8.1f} {r['errors']:>6} {r['rate_limited']:>6} "
                              f"{max(rss):>14.0f} {cpu_ms:>17.2f} {r['client_cpu_ms']:>17.2f}", flush=True)
                if args.py_spy > 0 and workers == worker_counts[0]:
                    for endpoint in ("realtime", "full"):
                        out = reports_root() / "benchmarks" / f"bench_service_{args.profile}_pyspy_{endpoint}.txt"
                        result: dict = {}
                        import threading

                        thread = threading.Thread(target=lambda e=endpoint, out_=result: out_.update(run_load(
                            pool, base, token, e, users, concurrencies[0], args.py_spy + 2, args.client_processes,
                            args.seed)))
                        thread.start()
                        time.sleep(1.0)
                        summary = py_spy_summary(pids[0], args.py_spy, out)
                        thread.join()
                        profiles.append(f"py-spy, worker {pids[0]}, {endpoint} at {concurrencies[0]} clients "
                                        f"({result.get('rps', float('nan')):.0f} req/s while sampled):\n{summary}")
    for text in profiles:
        print(text)
    print("targets (50 clients, thesis model): realtime >= 1,500 req/s, full >= 500 req/s, p99 < 50 ms, "
          "no errors but 429s, < 350 MB RSS per worker")
    print(f"  closed loop (Little's law): mean latency = clients / throughput, so p99 < {TARGET_P99_MS:.0f} ms at 50 "
          f"clients needs more than {50 / (TARGET_P99_MS / 1000):,.0f} req/s")
    for r in rows:
        misses = []
        target = TARGETS.get(r["endpoint"])
        if r["clients"] == 50 and target and r["rps"] < target:
            misses.append(f"throughput {r['rps']:.0f} < {target:.0f}")
        if r["clients"] == 50 and r["p99"] >= TARGET_P99_MS:
            misses.append(f"p99 {r['p99']:.1f} ms")
        if r["errors"]:
            misses.append(f"{r['errors']} errors {r['statuses']}")
        if r["rss_max"] >= TARGET_RSS_MB:
            misses.append(f"RSS {r['rss_max']:.0f} MB")
        if misses:
            print(f"  misses: {r['workers']} worker(s), {r['endpoint']}, {r['clients']} clients: {'; '.join(misses)}")
    record(rows, args, load, engine_manifest, write_benchmark_manifest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
