"""Stage 2 benchmark: the batch job's time per step, peak memory and artifact size.

Usage (from the project root)::

    .venv/bin/python benchmarks/bench_stage2.py --profile thesis
    .venv/bin/python benchmarks/bench_stage2.py --profile large

Runs :func:`recsys.stage2.job.run_batch` once on the profile's data set (loaded or
generated through the cache; generation is not timed) into a temporary
directory, one thread (BLAS/OpenMP pinned), and prints the wall-clock
seconds of each step (PureSVD, segmentation, demand, seasonality) and of the
whole publication (fsync, rename, LATEST), the peak resident memory of the
process (``ru_maxrss``) and the size of the published artifacts. Also the
time to load the latest artifacts back (with sha256 verification), which is
what Stages 1 and 3 pay on reload.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

for _key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_key, "1")

from recsys.data import load_or_generate  # noqa: E402
from recsys.runs.benchmarking import peak_rss_mb  # noqa: E402
from recsys.runs.reporting import pin_threads, write_benchmark_manifest  # noqa: E402
from recsys.stage2.artifacts import load_latest  # noqa: E402
from recsys.stage2.job import STEPS, run_batch  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="thesis", help="data profile: ci | thesis | large")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data-dir", default="data")
    args = parser.parse_args(argv)
    pin_threads()
    dataset = load_or_generate(profile=args.profile, seed=args.seed, data_dir=args.data_dir)
    rss_data = peak_rss_mb()
    print(f"profile {args.profile}: {dataset.n_users} users, {dataset.n_products} products, "
          f"{len(dataset.events)} events; peak RSS after loading {rss_data:.1f} MB")
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        artifacts = run_batch(dataset, out)
        total = time.perf_counter() - start
        for step in STEPS:
            seconds = artifacts.manifest["run"]["step_seconds"][step]
            print(f"  step {step:<12} {seconds:8.3f} s")
        print(f"  run_batch total {total:8.3f} s (steps + writing, fsync, rename, LATEST)")
        size = sum(p.stat().st_size for p in Path(artifacts.path).iterdir())
        start = time.perf_counter()
        load_latest(out)
        print(f"  load_latest     {time.perf_counter() - start:8.3f} s (sha256 verified); "
              f"artifacts {size / 1e6:.2f} MB")
    print(f"peak RSS {peak_rss_mb():.1f} MB")
    how = f"benchmarks/bench_stage2.py --profile {args.profile}, seed {args.seed}, one thread"
    metrics = {f"batch_step_seconds/{step}": (artifacts.manifest["run"]["step_seconds"][step], f"wall time; {how}")
               for step in STEPS}
    metrics["batch_seconds/stage2_total"] = (total, f"wall time of run_batch incl. atomic writes; {how}")
    metrics["memory_peak_rss_mb/stage2_batch"] = (peak_rss_mb(), f"peak RSS of the process (data + batch); {how}")
    write_benchmark_manifest(f"bench_stage2_{args.profile}", metrics)
    return 0


if __name__ == "__main__":
    sys.exit(main())
