"""Batch path side by side with ``implicit`` (issue 23): fit and top-10 throughput, one process, one thread.

Usage (from the project root; the large profile takes about 75 s to generate once)::

    .venv/bin/python benchmarks/bench_batch.py --profile large
    .venv/bin/python benchmarks/bench_batch.py --profile thesis --users 5000

Measured in one process, BLAS and ``implicit`` pinned to one thread, on the same data:

* fit: the project's item k-NN (``ItemKNN``, default inputs: its weighted matrix is built from the
  events inside the timed fit) against ``implicit``'s ``CosineRecommender`` (the same ``K``) on the
  binary matrix; numba's import and the kernels' one-time compilation (or cache load) are timed
  apart, before, as ``implicit``'s import is not timed either;
* top-10 throughput (users/s, purchased items excluded) for ``--users`` users with history:
  PureSVD (``recommend``) against ``implicit``'s ALS (its own batched ``recommend``,
  ``filter_already_liked_items=True``), and the hybrid's batch path (``HybridRecommender.recommend``
  at the design's weights over the engine's strategies: the block path behind ``engine.recommend``;
  the service's ``/full`` answers through the same ``fuse_rows``, one block per micro-batch), with
  its block size and the peak memory one call allocates (``tracemalloc``); its kernels' compilation
  or cache load is timed apart, before (a first call on 64 users);
* ``engine.train(dataset)`` (no tuning): wall time and the peak resident memory of a
  separate child process that only trains (so the peers above do not count), with the
  time and peak memory of each of its steps (``benchmarks/train_steps.py``).

Targets (issue 23): k-NN fit <= implicit cosine fit; hybrid >= 5,000 users/s; PureSVD >=
implicit ALS users/s; ``engine.train`` at large <= 35 s and <= 1.5 GB peak. The figures are
recorded in ``reports/benchmarks/bench_batch_<profile>.json``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

for _key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_key, "1")

import numpy as np  # noqa: E402

from recsys.data import load_or_generate  # noqa: E402
from recsys.interactions import Interactions  # noqa: E402
from recsys.runs.reporting import write_benchmark_manifest  # noqa: E402

_TRAIN_CHILD = Path(__file__).with_name("train_steps.py")  # engine.train step by step, in its own process


def _timed(fn, *args, **kwargs) -> tuple[object, float]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def train_in_child(profile: str, seed: int, data_dir: str) -> dict[str, Any]:
    """``engine.train`` in a fresh process (``benchmarks/train_steps.py``): wall seconds, its peak RSS
    (GiB; ``data_gib``: after loading) and the per-step ``steps`` breakdown (seconds, peak GiB)."""
    import json

    out = subprocess.run([sys.executable, str(_TRAIN_CHILD), "--profile", profile, "--seed", str(seed),
                          "--data-dir", data_dir], check=True, capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def print_train(train: dict[str, Any], figures: dict[str, tuple[float, str]]) -> None:
    """Print ``engine.train``'s figures with the per-step breakdown and add them to ``figures``."""
    print(f"engine.train (no tuning, own process): {train['seconds']:.1f} s, peak RSS {train['peak_gib']:.2f} GiB "
          f"(after loading the data: {train['data_gib']:.2f} GiB; loading took {train['load_s']:.1f} s)")
    for name, step in train["steps"].items():
        peak = "" if step["peak_gib"] != step["peak_gib"] else f", peak {step['peak_gib']:.2f} GiB"
        print(f"  {name:<22} {step['seconds']:7.2f} s ({100 * step['seconds'] / train['seconds']:4.1f} %){peak}")
    figures["engine_train_s"] = (train["seconds"], "engine.train(dataset), no tuning, child process, one thread")
    figures["engine_train_peak_gib"] = (train["peak_gib"], "peak RSS of that child process (its VmHWM)")
    for name, step in train["steps"].items():
        key = name.replace(".", "_")
        figures[f"engine_train_step_{key}_s"] = (step["seconds"], f"engine.train step {name}: seconds (train_steps.py)")
        if step["peak_gib"] == step["peak_gib"]:
            figures[f"engine_train_step_{key}_peak_gib"] = (step["peak_gib"], f"engine.train step {name}: peak RSS "
                                                                               "sampled every 5 ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="large")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--users", type=int, default=20_000, help="users whose top-10 is timed")
    parser.add_argument("--no-train", action="store_true", help="skip the engine.train child process")
    parser.add_argument("--train-only", action="store_true",
                        help="only the engine.train child (recorded as bench_batch_<profile>_train)")
    args = parser.parse_args()
    if args.train_only:
        figures_train: dict[str, tuple[float, str]] = {}
        print_train(train_in_child(args.profile, args.seed, args.data_dir), figures_train)
        print(f"recorded {write_benchmark_manifest(f'bench_batch_{args.profile}_train', figures_train)}")
        return

    import implicit.cpu.als
    import implicit.nearest_neighbours
    from threadpoolctl import threadpool_limits

    # one-time per process, outside the timed fits as implicit's import (and its compiled extension) is:
    # numba's import and the k-NN kernels' compilation, or their load from numba's on-disk cache
    start = time.perf_counter()
    from recsys.models import knn_kernels
    numba_import_s = time.perf_counter() - start
    _, kernels_s = _timed(knn_kernels.warm_up)

    from recsys.models.content import ContentRecommender
    from recsys.models.demographic import DemographicRecommender
    from recsys.models.hybrid import HybridRecommender
    from recsys.models.knn import ItemKNN, KNNConfig
    from recsys.models.svd import PureSVD, SVDConfig

    dataset = load_or_generate(profile=args.profile, seed=args.seed, data_dir=args.data_dir)
    inter = Interactions.from_dataset(dataset)
    binary = inter.matrix.tocsr().astype(np.float32)
    binary.data[:] = 1.0
    rng = np.random.default_rng(args.seed)
    warm = np.flatnonzero(np.diff(inter.matrix.indptr) > 0)
    rows = np.sort(rng.choice(warm, size=min(args.users, len(warm)), replace=False))
    users = list(inter.user_ids[rows])
    print(f"{args.profile}: {dataset.n_users:,} users, {dataset.n_products:,} products, {len(dataset.events):,} events; "
          f"timing top-10 of {len(users):,} users; one thread", flush=True)
    figures: dict[str, tuple[float, str]] = {}
    with threadpool_limits(1):
        knn, knn_s = _timed(ItemKNN(KNNConfig()).fit, dataset, inter)
        cosine = implicit.nearest_neighbours.CosineRecommender(K=KNNConfig().k, num_threads=1)
        _, cosine_s = _timed(cosine.fit, binary, show_progress=False)
        print(f"item k-NN fit {knn_s:.2f} s; implicit cosine fit {cosine_s:.2f} s; ratio {knn_s / cosine_s:.2f}x "
              f"(one-time before: numba import {numba_import_s:.2f} s, k-NN kernels compiled or loaded from "
              f"numba's cache {kernels_s:.2f} s)", flush=True)
        svd, svd_fit_s = _timed(PureSVD(SVDConfig(random_state=args.seed)).fit, dataset, inter)
        als = implicit.cpu.als.AlternatingLeastSquares(factors=64, iterations=15, random_state=args.seed, num_threads=1)
        _, als_fit_s = _timed(als.fit, binary, show_progress=False)
        _, svd_s = _timed(svd.recommend, users, 10)
        _, als_s = _timed(als.recommend, rows, binary[rows], N=10, filter_already_liked_items=True)
        print(f"top-10: PureSVD {len(users) / svd_s:,.0f} users/s (fit {svd_fit_s:.1f} s); implicit ALS "
              f"{len(users) / als_s:,.0f} users/s (fit {als_fit_s:.1f} s); ratio {als_s / svd_s:.2f}x", flush=True)
        parts = {"knn": knn, "svd": svd, "content": ContentRecommender().fit(dataset, inter),
                 "demographic": DemographicRecommender().fit(dataset, inter)}
        hybrid = HybridRecommender.from_fitted(parts, dataset.config.fusion)  # as the engine serves it by default
        # one-time per process, apart as for the k-NN: its kernels compiled, or loaded from numba's cache
        _, hybrid_warm_s = _timed(hybrid.recommend, users[:64], 10)
        _, hybrid_s = _timed(hybrid.recommend, users, 10)
        block_users, hybrid_peak = hybrid_block_memory(hybrid, users[:2_000])
        print(f"top-10: hybrid batch {len(users) / hybrid_s:,.0f} users/s (target 5,000); blocks of {block_users} "
              f"users, peak {hybrid_peak:,.0f} MiB traced above the fitted models (one-time before: first 64 users "
              f"{hybrid_warm_s:.2f} s, its kernels compiled or loaded from numba's cache)", flush=True)
    figures.update({
        "knn_fit_s": (knn_s, "ItemKNN(KNNConfig()).fit, one thread"),
        "implicit_cosine_fit_s": (cosine_s, "implicit CosineRecommender(K=KNNConfig().k).fit on the binary matrix"),
        "knn_numba_import_s": (numba_import_s, "one-time: import of recsys.models.knn_kernels (numba)"),
        "knn_kernels_warm_up_s": (kernels_s, "one-time: knn_kernels.warm_up(), compile or load from numba's cache"),
        "puresvd_top10_users_per_s": (len(users) / svd_s, "PureSVD.recommend(users, 10), purchased excluded"),
        "implicit_als_top10_users_per_s": (len(users) / als_s, "implicit ALS recommend(N=10, filter liked)"),
        "hybrid_top10_users_per_s": (len(users) / hybrid_s, "HybridRecommender.recommend(users, 10), design weights"),
        "hybrid_top10_warm_up_s": (hybrid_warm_s, "one-time: recommend(first 64 users), kernels compiled or loaded"),
        "hybrid_top10_block_users": (block_users, "users per dense block in HybridRecommender.recommend"),
        "hybrid_top10_peak_mib": (hybrid_peak, "tracemalloc peak of HybridRecommender.recommend over 2,000 users"),
    })
    if not args.no_train:
        print_train(train_in_child(args.profile, args.seed, args.data_dir), figures)
    path = write_benchmark_manifest(f"bench_batch_{args.profile}", figures)
    print(f"recorded {path}")


def hybrid_block_memory(hybrid, users: list[str]) -> tuple[int, float]:
    """Users per dense block of ``hybrid.recommend`` and the peak memory (MiB, ``tracemalloc``:
    numpy reports its buffers) that a call over ``users`` allocates on top of the fitted models."""
    import tracemalloc

    block = hybrid.block_users()
    tracemalloc.start()
    try:
        hybrid.recommend(users, 10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return block, peak / 2**20


if __name__ == "__main__":
    main()
