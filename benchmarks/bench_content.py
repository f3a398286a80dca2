"""Content scoring benchmark (:mod:`recsys.models.content`): the served float32 path against the float64
reference it replaced, on a profile's data set, one thread.

Usage (from the project root)::

    .venv/bin/python benchmarks/bench_content.py --profile large --data-dir /path/to/data
    .venv/bin/python benchmarks/bench_content.py --profile ci --users 400

* **float32** (served): ``ContentRecommender.score_block`` -- the compiled profile builder
  (``profiles_table``, terms x users float32) and the float32 cosine kernel;
* **float64 reference**: ``user_profiles`` (scipy: rows, sparse product, ``toarray``, mean, norm) and
  scipy's ``X @ P^T`` with the float64 item vectors -- the values the content strategy served before
  float32 (its compiled kernel gave scipy's bits).

Each is timed in blocks of ``--block`` users (the hybrid's block at large is 104) and one user at a
time (the service), the two paths alternating ``--repeats`` times; printed: median microseconds per
user (wall and process CPU: on a shared machine the CPU time is the fairer figure), the profiles
alone, and the largest ``|float32 - float64|`` score over all timed users and products.
"""

from __future__ import annotations

import argparse
import os
import time

for _key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_key, "1")

from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402

from recsys.data import load_or_generate  # noqa: E402
from recsys.interactions import Interactions  # noqa: E402
from recsys.models.content import ContentRecommender  # noqa: E402


def per_user_us(call: Callable[[np.ndarray], object], rows: np.ndarray, block: int) -> tuple[float, float]:
    """Wall and process-CPU microseconds per user of ``call`` over ``rows`` in blocks of ``block``."""
    start, start_cpu = time.perf_counter(), time.process_time()
    for first in range(0, len(rows), block):
        call(rows[first : first + block])
    return ((time.perf_counter() - start) / len(rows) * 1e6, (time.process_time() - start_cpu) / len(rows) * 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="large")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--users", type=int, default=2080, help="users timed in blocks (one at a time: a tenth)")
    parser.add_argument("--block", type=int, default=104, help="users per block (the hybrid's at large)")
    parser.add_argument("--repeats", type=int, default=5, help="alternating runs of each path")
    parser.add_argument("--data-dir", default="data")
    args = parser.parse_args()

    dataset = load_or_generate(profile=args.profile, seed=args.seed, data_dir=args.data_dir)
    inter = Interactions.from_dataset(dataset)
    model = ContentRecommender().fit(dataset, inter)
    vectors = model.item_vectors_
    warm = np.flatnonzero(np.diff(inter.matrix.indptr) > 0)
    rows = np.sort(np.random.default_rng(args.seed).choice(warm, size=min(args.users, len(warm)), replace=False))
    print(f"{args.profile}: {vectors.shape[0]:,} products x {vectors.shape[1]:,} terms ({vectors.nnz:,} entries), "
          f"{len(rows):,} users with history; one thread", flush=True)

    def float32_block(block_rows: np.ndarray) -> np.ndarray:
        return model.score_block(block_rows)[0]

    def float64_block(block_rows: np.ndarray) -> np.ndarray:
        return np.asarray(vectors @ model.user_profiles(block_rows).T).T

    worst = 0.0
    for first in range(0, len(rows), args.block):
        part = rows[first : first + args.block]
        worst = max(worst, float(np.abs(float32_block(part) - float64_block(part)).max()))
    print(f"max |float32 - float64| content score over {len(rows):,} users x {vectors.shape[0]:,} products: "
          f"{worst:.3e}")
    one = rows[: max(1, len(rows) // 10)]
    cases = [(f"blocks of {args.block}", rows, args.block), ("one user at a time", one, 1),
             (f"profiles only, blocks of {args.block}", rows, args.block)]
    for label, case_rows, block in cases:
        if label.startswith("profiles"):
            paths = {"float32": model.profiles_table, "float64": model.user_profiles}
        else:
            paths = {"float32": float32_block, "float64": float64_block}
        for call in paths.values():
            call(case_rows[:block])  # compile or load from numba's cache, warm the caches
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in paths}
        for _ in range(args.repeats):
            for name, call in paths.items():
                times[name].append(per_user_us(call, case_rows, block))
        wall = {name: float(np.median([t[0] for t in got])) for name, got in times.items()}
        cpu = {name: float(np.median([t[1] for t in got])) for name, got in times.items()}
        print(f"{label} ({len(case_rows):,} users, median of {args.repeats}): float32 {wall['float32']:.1f} us/user "
              f"(CPU {cpu['float32']:.1f}), float64 reference {wall['float64']:.1f} us/user (CPU {cpu['float64']:.1f}); "
              f"{cpu['float64'] / cpu['float32']:.2f}x by CPU time", flush=True)


if __name__ == "__main__":
    main()
