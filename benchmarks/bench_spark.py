"""Stage 2 in memory vs on Spark: wall time per step and peak driver memory.

Usage (from the project root)::

    .venv/bin/python benchmarks/bench_spark.py --profile large            # both paths, large profile
    .venv/bin/recsys generate --profile xl --out data/xl-42                # once: ~50M events, streamed
    .venv/bin/python benchmarks/bench_spark.py --profile xl --data data/xl-42 --paths spark

Each (profile, path) runs in its own subprocess (``--run``), so one path's
memory never counts against the other. The in-memory path is
:func:`recsys.stage2.job.run_batch` on the loaded ``Dataset`` (loading is timed
apart); the Spark path is :func:`recsys.spark.job.run_spark_batch` on the
saved parquet, Spark ``local[2]`` (``--master``), JVM heap
``--driver-memory`` (in local mode the driver's heap also runs the tasks).
Peak memory is the largest sum of the resident set sizes of the process
and all its children (the JVM), sampled every 0.2 s with psutil: for Spark
that is the Python driver plus the JVM. At the peak, the split by process
(JVM, Python driver, pyspark workers) is recorded too, each with the part
that is not file-backed (RSS minus shared pages: the heaps, without the page
cache of the shuffle and parquet files the JVM maps), and the peak of that
part. CPU seconds (user + system of the
same processes) are reported beside the wall time: on a shared machine the
wall time depends on the other jobs, the CPU time much less. Figures are merged into
``reports/benchmarks/bench_spark.json`` (one key per profile and path).
Machine: 2 cores shared with other jobs; the runs are niced.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

for _key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_key, "1")

import psutil  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "reports" / "benchmarks" / "bench_spark.json"


def process_kind(proc: psutil.Process) -> str:
    """``jvm`` (Spark's Java process), ``python worker`` (pyspark's daemon and
    workers) or ``python driver`` (this process)."""
    name = proc.name()
    if name.startswith("java"):
        return "jvm"
    if proc.pid != os.getpid() and any("pyspark" in part for part in proc.cmdline()):
        return "python worker"
    return "python driver" if proc.pid == os.getpid() else name


class PeakMemory:
    """Largest summed RSS of this process and its descendants; at that moment,
    the RSS of each process kind (:func:`process_kind`) and the part of it
    that is not file-backed (RSS minus shared: heaps and buffers, without the
    page cache of files the process maps, e.g. Spark's shuffle blocks); the
    peak of that anonymous part as well; and the CPU seconds (user + system,
    last sample of each process). Sampled in a thread."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval, self.peak, self.peak_anonymous, self._stop = interval, 0, 0, threading.Event()
        self.at_peak: dict[str, int] = {}
        self.anonymous_at_peak: dict[str, int] = {}
        self._cpu: dict[int, float] = {}
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        me = psutil.Process()
        rss: dict[str, int] = {}
        anonymous: dict[str, int] = {}
        for proc in [me, *me.children(recursive=True)]:
            try:
                kind = process_kind(proc)  # not cached: the JVM starts as pyspark's spark-class script, then execs java
                info = proc.memory_info()
                rss[kind] = rss.get(kind, 0) + info.rss
                anonymous[kind] = anonymous.get(kind, 0) + info.rss - getattr(info, "shared", 0)
                times = proc.cpu_times()
                self._cpu[proc.pid] = times.user + times.system
            except psutil.Error:
                pass
        total = sum(rss.values())
        if total > self.peak:
            self.at_peak, self.anonymous_at_peak = rss, anonymous
        self.peak_anonymous = max(self.peak_anonymous, sum(anonymous.values()))
        return total

    @property
    def cpu_seconds(self) -> float:
        return sum(self._cpu.values())

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.peak = max(self.peak, self._sample())
        self._stop.set()
        self._thread.join()

    @property
    def mb(self) -> float:
        return self.peak / 2**20


def run_memory(profile: str, seed: int, data_dir: str) -> dict:
    from recsys.data import load_or_generate
    from recsys.runs.reporting import pin_threads
    from recsys.stage2.job import run_batch

    pin_threads()
    with PeakMemory() as peak:
        t0 = time.perf_counter()
        dataset = load_or_generate(profile=profile, seed=seed, data_dir=data_dir)
        load = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            artifacts = run_batch(dataset, out)
            total = time.perf_counter() - t0
    return {"events": len(dataset.events), "users": dataset.n_users, "products": dataset.n_products,
            "load_seconds": load, "job_seconds": total, "steps": artifacts.manifest["run"]["step_seconds"],
            "peak_mb": peak.mb, "cpu_seconds": peak.cpu_seconds}


def run_spark(data: str, master: str, driver_memory: str, partitions: int, rank: int, max_iter: int,
              max_items_per_user: int | None) -> dict:
    from recsys.spark.collaborative import ALSConfig
    from recsys.spark.job import SparkBatchConfig, run_spark_batch
    from recsys.spark.neighbours import NeighbourConfig
    from recsys.spark.session import spark_session

    config = SparkBatchConfig(als=ALSConfig(rank=rank, max_iter=max_iter),
                              neighbours=NeighbourConfig(max_items_per_user=max_items_per_user))
    with PeakMemory() as peak:
        t0 = time.perf_counter()
        spark = spark_session(master, shuffle_partitions=partitions, driver_memory=driver_memory)
        start = time.perf_counter() - t0
        with tempfile.TemporaryDirectory(dir=ROOT / "data") as out:
            t0 = time.perf_counter()
            artifacts = run_spark_batch(spark, str(Path(data).resolve()), out, config)
            total = time.perf_counter() - t0
        spark.stop()
    m = artifacts.manifest
    return {"events": m["n_events"], "users": m["n_users"], "products": m["n_products"],
            "session_start_seconds": start, "job_seconds": total, "read_seconds": m["engine"]["read_seconds"],
            "steps": m["run"]["step_seconds"], "peak_mb": peak.mb, "peak_anonymous_mb": peak.peak_anonymous / 2**20,
            "peak_by_process_mb": {k: v / 2**20 for k, v in peak.at_peak.items()},
            "anonymous_at_peak_by_process_mb": {k: v / 2**20 for k, v in peak.anonymous_at_peak.items()},
            "cpu_seconds": peak.cpu_seconds, "master": master, "driver_memory": driver_memory,
            "shuffle_partitions": partitions, "als_rank": rank, "als_max_iter": max_iter,
            "neighbours_max_items_per_user": max_items_per_user}


def record(profile: str, path: str, result: dict, how: str) -> None:
    from recsys.runs.reporting import write_benchmark_manifest

    metrics = {}
    if REPORT.exists():
        previous = json.loads(REPORT.read_text())["metrics"]
        metrics = {k: (v["value"], v["description"]) for k, v in previous.items()}
    prefix = f"{profile}_{path}"
    metrics[f"{prefix}_events"] = (result["events"], f"events in the {profile} data set")
    metrics[f"{prefix}_job_seconds"] = (round(result["job_seconds"], 1), f"Stage 2 wall time, {how}")
    metrics[f"{prefix}_peak_mb"] = (round(result["peak_mb"]), f"peak RSS of driver process tree (MB), {how}")
    metrics[f"{prefix}_cpu_seconds"] = (round(result["cpu_seconds"], 1),
                                        f"CPU seconds (user + system) of the process tree incl. loading, {how}")
    for step, seconds in result["steps"].items():
        metrics[f"{prefix}_step_{step}_seconds"] = (round(seconds, 1), f"step {step} wall time, {how}")
    if "peak_anonymous_mb" in result:
        metrics[f"{prefix}_peak_anonymous_mb"] = (round(result["peak_anonymous_mb"]),
                                                  f"peak RSS without file-backed pages (MB), {how}")
    anonymous = result.get("anonymous_at_peak_by_process_mb", {})
    for kind, mb in result.get("peak_by_process_mb", {}).items():
        key = kind.replace(" ", "_")
        metrics[f"{prefix}_peak_{key}_mb"] = (round(mb), f"RSS of the {kind} process(es) at the peak (MB), {how}")
        metrics[f"{prefix}_peak_{key}_anonymous_mb"] = (
            round(anonymous.get(kind, 0.0)), f"of which not file-backed (MB), {how}")
    write_benchmark_manifest("bench_spark", metrics)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="large")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data-dir", default="data", help="data cache of load_or_generate (in-memory path)")
    parser.add_argument("--data", default=None, help="saved data set for Spark (default: the profile's cache dir)")
    parser.add_argument("--paths", default="memory,spark")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="3g")
    parser.add_argument("--shuffle-partitions", type=int, default=16)
    parser.add_argument("--als-rank", type=int, default=50)
    parser.add_argument("--als-max-iter", type=int, default=10)
    parser.add_argument("--max-items-per-user", type=int, default=None)
    parser.add_argument("--run", choices=["memory", "spark"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.run == "memory":
        print(json.dumps(run_memory(args.profile, args.seed, args.data_dir)))
        return 0
    if args.run == "spark":
        import logging

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
        print(json.dumps(run_spark(args.data, args.master, args.driver_memory, args.shuffle_partitions,
                                   args.als_rank, args.als_max_iter, args.max_items_per_user)))
        return 0

    data = args.data
    if data is None and "spark" in args.paths:
        from recsys.data import load_or_generate
        from recsys.data.cache import cache_key, resolve_params

        data = str(Path(args.data_dir) / f"{args.profile}-{cache_key(resolve_params(args.profile, args.seed))}")
        if not (Path(data) / "manifest.json").exists():  # generate and cache it once (not timed)
            load_or_generate(profile=args.profile, seed=args.seed, data_dir=args.data_dir)
    for path in args.paths.split(","):
        cmd = [sys.executable, __file__, "--run", path, "--profile", args.profile, "--seed", str(args.seed),
               "--data-dir", args.data_dir, "--master", args.master, "--driver-memory", args.driver_memory,
               "--shuffle-partitions", str(args.shuffle_partitions), "--als-rank", str(args.als_rank),
               "--als-max-iter", str(args.als_max_iter)]
        if data:
            cmd += ["--data", data]
        if args.max_items_per_user:
            cmd += ["--max-items-per-user", str(args.max_items_per_user)]
        out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout  # stderr: the log
        result = json.loads(out.strip().splitlines()[-1])
        if path == "memory":
            how = f"in memory (pandas/scipy, 1 thread), profile {args.profile}, {result['events']:,} events"
        else:
            how = (f"Spark {args.master}, JVM heap {args.driver_memory}, {args.shuffle_partitions} shuffle "
                   f"partitions, ALS rank {args.als_rank} x {args.als_max_iter} iterations, neighbours "
                   f"cap {args.max_items_per_user}, profile {args.profile}, {result['events']:,} events")
        print(f"{args.profile:6s} {path:7s} job {result['job_seconds']:8.1f} s  cpu {result['cpu_seconds']:8.1f} s  "
              f"peak {result['peak_mb']:8.0f} MB"
              f"  ({how})")
        for step, seconds in result["steps"].items():
            print(f"    step {step:<14} {seconds:8.1f} s")
        anonymous = result.get("anonymous_at_peak_by_process_mb", {})
        for kind, mb in result.get("peak_by_process_mb", {}).items():
            print(f"    at the peak: {kind:<14} {mb:8.0f} MB RSS, {anonymous.get(kind, 0):8.0f} MB not file-backed")
        if "peak_anonymous_mb" in result:
            print(f"    peak without file-backed pages {result['peak_anonymous_mb']:8.0f} MB")
        record(args.profile, path, result, how)
    print(f"recorded in {REPORT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
