"""Stage 1 benchmark: fit time, peak memory, single-user latency and batch throughput.

Usage (from the project root)::

    .venv/bin/python benchmarks/bench_stage1.py --profile large
    .venv/bin/python benchmarks/bench_stage1.py --profile thesis --users 1000

Measured in process, one thread (BLAS pinned; scipy's sparse products are
single-threaded anyway) unless stated, after a warm-up:

* fit: building the weighted interaction matrix, then fitting the real-time
  recommender (item-item top-k cosine neighbours + demographic fallback);
* single-user latency of ``recommend_one(user, n)`` -- a full answer as a
  DataFrame -- for random users with history (k-NN path) and for unknown
  visitors (fallback path), p50/p95/p99/max over ``--users`` requests each;
  and of "add three views, then recommend" for new visitors;
* batch throughput: top-``n`` for every user of the data set in one call, on
  one thread and on ``--jobs`` threads (``RealtimeConfig.n_jobs``; same output),
  the median of ``--repeats`` runs each;
* peak resident memory of the process (``ru_maxrss``) and the size of the
  neighbour matrix.

The figures are also recorded in ``reports/benchmarks/bench_stage1.json``
(``bench_stage1_<profile>.json`` for a profile other than ``large``), each
with how it was measured, for the evaluation's performance table.

Wall-clock and process CPU time are both printed: on a shared machine the
wall clock includes time the process waited for a core, the CPU time does not.

Targets (issue 3): p99 <= 5 ms per user, >= 20,000 users/s in batch, fit < 60 s.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import sys
import time

for _key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_key, "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from recsys.data import load_or_generate  # noqa: E402
from recsys.interactions import Interactions  # noqa: E402
from recsys.models.knn import KNNConfig  # noqa: E402
from recsys.models.realtime import RealtimeConfig, RealtimeRecommender  # noqa: E402
from recsys.runs.benchmarking import latencies_ms, peak_rss_mb, percentiles  # noqa: E402
from recsys.runs.reporting import write_benchmark_manifest  # noqa: E402

TARGET_P99_MS = 5.0
TARGET_USERS_PER_S = 20_000.0
TARGET_FIT_S = 60.0


def model_mib(model: RealtimeRecommender) -> dict[str, float]:
    """Bytes held by the fitted Stage 1 state (neighbours, live rows, fallback tables), in MiB."""
    def csr(m) -> int:
        return m.data.nbytes + m.indices.nbytes + m.indptr.nbytes

    history = model.history_
    fallback = model.fallback_
    return {
        "neighbours": csr(model.knn_.similarity_) / 2**20,
        "live rows": (csr(history.snapshot().matrix) + csr(history.snapshot().bought)) / 2**20,
        "fallback tables": (fallback.segment_scores_.nbytes + fallback.segment_order_.nbytes) / 2**20,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="large", help="data profile: ci | thesis | large")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--users", type=int, default=2000, help="single-user requests per path")
    parser.add_argument("--n", type=int, default=10, help="recommendations per user")
    parser.add_argument("--k", type=int, default=50, help="neighbours kept per item")
    parser.add_argument("--neighbours", default="item", choices=["item", "user"])
    parser.add_argument("--jobs", type=int, default=2, help="threads for the second batch run")
    parser.add_argument("--repeats", type=int, default=3, help="full batch runs per setting (median reported)")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.jobs < 1:
        parser.error(f"--repeats and --jobs must be >= 1, got {args.repeats} and {args.jobs}")

    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    rng = np.random.default_rng(args.seed)

    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    dataset = load_or_generate(profile=args.profile, seed=args.seed, data_dir=args.data_dir)
    load_s = time.perf_counter() - t0
    gc.collect()
    rss_data = peak_rss_mb()

    t0, c0 = time.perf_counter(), time.process_time()
    interactions = Interactions.from_dataset(dataset)
    matrix_s, matrix_cpu = time.perf_counter() - t0, time.process_time() - c0
    config = RealtimeConfig(neighbours=args.neighbours, knn=KNNConfig(k=args.k))
    t0, c0 = time.perf_counter(), time.process_time()
    model = RealtimeRecommender(config).fit(dataset, interactions)
    fit_s, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
    rss_fit = peak_rss_mb()
    sim = model.knn_.similarity_
    sim_mb = (sim.data.nbytes + sim.indices.nbytes + sim.indptr.nbytes) / 2**20

    user_ids = dataset.users["user_id"].to_numpy(dtype=object)
    with_history = user_ids[np.diff(interactions.matrix.indptr) > 0]
    knn_users = list(rng.choice(with_history, size=args.users, replace=len(with_history) < args.users))
    visitors = [f"visitor_{i}" for i in range(args.users)]
    n = args.n

    def one(user: str) -> pd.DataFrame:
        return model.recommend_one(user, n)

    latencies_ms(one, knn_users[:100] + visitors[:100], cpu=True)  # warm-up
    knn = latencies_ms(one, knn_users, cpu=True)
    knn_lat, knn_cpu = knn.wall_ms, knn.cpu_ms
    fallback = latencies_ms(one, visitors, cpu=True)
    fallback_lat, fallback_cpu = fallback.wall_ms, fallback.cpu_ms
    answered = model.recommend(knn_users[:200] + visitors[:200], n)
    methods = answered.groupby("user_id", sort=False)["method"].first()

    products = dataset.products["product_id"].to_numpy(dtype=object)
    newcomers = [f"newcomer_{i}" for i in range(min(args.users, 500))]
    now = dataset.as_of + pd.Timedelta(hours=1)

    def update_then_answer(user: str) -> pd.DataFrame:
        views = pd.DataFrame({"user_id": user, "product_id": rng.choice(products, 3), "event_type": "view",
                              "timestamp": now})
        model.add_events(views)
        return model.recommend_one(user, n)

    update = latencies_ms(update_then_answer, newcomers, cpu=True)
    update_lat, update_cpu = update.wall_ms, update.cpu_ms
    left_fallback = (model.method_of(newcomers) != "demographic").mean()

    all_users = list(user_ids)

    def timed_batches(jobs: int) -> tuple[pd.DataFrame, float, float]:
        """Median wall and CPU seconds of ``--repeats`` full batches on ``jobs`` threads."""
        model.config = dataclasses.replace(config, n_jobs=jobs)  # same fitted model
        walls, cpus = [], []
        for _ in range(args.repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            frame = model.recommend(all_users, n)
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
        model.config = config
        return frame, float(np.median(walls)), float(np.median(cpus))

    batch, batch_s, batch_cpu = timed_batches(1)
    batch_threads, threads_s, _ = timed_batches(args.jobs)
    assert batch_threads.equals(batch), "threaded batch must equal the single-threaded one"
    rss_end = peak_rss_mb()

    rows = [
        ("data", f"profile={args.profile} seed={args.seed}: {dataset.n_users:,} users, "
                 f"{dataset.n_products:,} products, {len(dataset.events):,} events, {interactions.matrix.nnz:,} "
                 f"user-product pairs (load {load_s:.1f} s)"),
        ("machine", f"{os.cpu_count()} cores; load average {load_before:.1f} before, "
                    f"{os.getloadavg()[0]:.1f} after the run (other processes share the cores)"),
        ("fit: interaction matrix", f"{matrix_s:.2f} s wall, {matrix_cpu:.2f} s CPU"),
        ("fit: real-time model (k-NN + fallback)", f"{fit_s:.2f} s wall, {fit_cpu:.2f} s CPU"),
        ("fit: total", f"{matrix_s + fit_s:.2f} s wall, {matrix_cpu + fit_cpu:.2f} s CPU "
                       f"(target < {TARGET_FIT_S:.0f} s)"),
        ("neighbour matrix", f"{sim.shape[0]:,} x {sim.shape[1]:,}, {sim.nnz:,} entries (k={args.k}), "
                             f"{sim_mb:.1f} MiB CSR float32"),
    ]
    for label, lat, cpu in (("k-NN", knn_lat, knn_cpu), ("fallback", fallback_lat, fallback_cpu),
                            ("add 3 views + answer", update_lat, update_cpu)):
        for kind, values in (("wall", lat), ("CPU", cpu)):
            p = percentiles(values)
            rows.append((f"latency {label} ({kind} ms, {len(values)} requests)",
                         f"p50 {p['p50']:.3f}  p95 {p['p95']:.3f}  p99 {p['p99']:.3f}  max {p['max']:.3f}"))
    rows += [
        ("paths answered (sample)", f"{dict(methods.value_counts())}"),
        ("newcomers on k-NN after 3 views", f"{left_fallback:.1%}"),
        (f"batch top-n, all users (wall, median of {args.repeats})", f"{len(all_users):,} users in {batch_s:.2f} s = "
                                          f"{len(all_users) / batch_s:,.0f} users/s ({len(batch):,} rows; "
                                          f"target >= {TARGET_USERS_PER_S:,.0f})"),
        ("batch top-n, all users (CPU)", f"{batch_cpu:.2f} s CPU = {len(all_users) / batch_cpu:,.0f} users per CPU-second"),
        (f"batch top-n, all users ({args.jobs} threads, wall)",
         f"{threads_s:.2f} s = {len(all_users) / threads_s:,.0f} users/s (identical output)"),
        ("peak RSS (MiB)", f"after load {rss_data:,.0f}; after fit {rss_fit:,.0f}; end {rss_end:,.0f} "
                           "(the data set's DataFrames included)"),
        ("model state (MiB)", ", ".join(f"{k} {v:.1f}" for k, v in model_mib(model).items())),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"Stage 1 benchmark (n={n}, neighbours={args.neighbours}, k={args.k}; 1 thread unless stated)")
    print("-" * (width + 60))
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    checks = {
        "p99 k-NN <= 5 ms (wall)": percentiles(knn_lat)["p99"] <= TARGET_P99_MS,
        "p99 fallback <= 5 ms (wall)": percentiles(fallback_lat)["p99"] <= TARGET_P99_MS,
        "batch >= 20,000 users/s (wall, 1 thread)": len(all_users) / batch_s >= TARGET_USERS_PER_S,
        f"batch >= 20,000 users/s (wall, {args.jobs} threads)": len(all_users) / threads_s >= TARGET_USERS_PER_S,
        "fit < 60 s (wall)": matrix_s + fit_s < TARGET_FIT_S,
    }
    print("-" * (width + 60))
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'MISS'}  {name}")

    load_after = os.getloadavg()[0]
    how = (f"benchmarks/bench_stage1.py --profile {args.profile} --users {args.users} --k {args.k} "
           f"--neighbours {args.neighbours}: {dataset.n_users:,} users, {dataset.n_products:,} products, "
           f"{len(dataset.events):,} events; {os.cpu_count()} cores, load average {load_before:.1f} before / "
           f"{load_after:.1f} after (shared machine)")
    single = f"wall ms of recommend_one(user, n={n}) in process, 1 thread, {args.users} requests"
    name = "bench_stage1" if args.profile == "large" else f"bench_stage1_{args.profile}"
    path = write_benchmark_manifest(name, {
        "latency_ms_p50/stage1_knn": (percentiles(knn_lat)["p50"], f"{single}, users with history; {how}"),
        "latency_ms_p99/stage1_knn": (percentiles(knn_lat)["p99"], f"{single}, users with history; {how}"),
        "latency_ms_p50/stage1_fallback": (percentiles(fallback_lat)["p50"], f"{single}, unknown visitors; {how}"),
        "latency_ms_p99/stage1_fallback": (percentiles(fallback_lat)["p99"], f"{single}, unknown visitors; {how}"),
        "latency_ms_p99/stage1_add_events_then_answer": (
            percentiles(update_lat)["p99"], f"wall ms of add_events(3 views) + recommend_one for "
                                            f"{len(newcomers)} new visitors, 1 thread; {how}"),
        "throughput_users_per_s/stage1_batch": (
            len(all_users) / batch_s, f"users / wall second of recommend(all {len(all_users):,} users, n={n}), "
                                      f"1 thread, median of {args.repeats} runs; {how}"),
        "throughput_users_per_cpu_s/stage1_batch": (
            len(all_users) / batch_cpu, f"users / process CPU second of the same 1-thread batch; {how}"),
        f"throughput_users_per_s/stage1_batch_{args.jobs}_threads": (
            len(all_users) / threads_s, f"users / wall second of the same batch with n_jobs={args.jobs} "
                                        f"threads (identical output); {how}"),
        "fit_seconds/stage1": (matrix_s + fit_s, f"wall s: interaction matrix + RealtimeRecommender.fit; {how}"),
        "memory_peak_rss_mb/stage1": (rss_end, f"peak RSS of the process (data set DataFrames included); {how}"),
    })
    print(f"recorded in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
