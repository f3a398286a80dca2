"""Synthetic data generation benchmark: wall time, peak memory and rows per frame.

Usage (from the project root)::

    .venv/bin/python benchmarks/bench_generate.py --profile large
    .venv/bin/python benchmarks/bench_generate.py --profile thesis --no-io

Measured in one process, in order: ``generate(**profile, seed)`` (with its
progress bar unless ``--no-progress``), then ``Dataset.save`` into a
temporary directory, then ``Dataset.load`` back (which re-validates and
re-checks the content hash). Peak RSS is the process's high-water mark
(``resource.getrusage``) after each phase, so it is cumulative.

Target (issue 2, large profile): generation under 2 minutes and under 4 GiB
peak memory on the 2-core machine, at least 5 million events.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from recsys.data import PROFILES, Dataset, generate
from recsys.runs.benchmarking import peak_rss_gib
from recsys.runs.reporting import write_benchmark_manifest


def dir_size_mib(directory: Path) -> float:
    return sum(p.stat().st_size for p in directory.iterdir()) / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="large")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-io", action="store_true", help="skip the save/load phases")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)

    params = PROFILES[args.profile].params()
    print(f"profile {args.profile}: {params}, seed {args.seed}")
    t0 = time.perf_counter()
    dataset = generate(**params, seed=args.seed, progress=not args.no_progress)
    t_gen = time.perf_counter() - t0
    rss_gen = peak_rss_gib()

    rows = {"users": dataset.n_users, "products": dataset.n_products, "events": len(dataset.events),
            "sessions": dataset.meta["sessions"], "censored events": dataset.meta["censored_events"]}
    print("\nrows per frame")
    for name, count in rows.items():
        print(f"  {name:<16}{count:>12,}")
    print("events by type")
    for kind, count in dataset.events["event_type"].value_counts().items():
        print(f"  {kind:<16}{count:>12,}")
    print(f"  events per user {len(dataset.events) / dataset.n_users:>12.1f}")

    print("\nphase         wall s   peak RSS GiB (cumulative)")
    print(f"  generate  {t_gen:>8.1f}   {rss_gen:>8.2f}")
    if not args.no_io:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            dataset.save(tmp)
            t_save = time.perf_counter() - t0
            print(f"  save      {t_save:>8.1f}   {peak_rss_gib():>8.2f}   ({dir_size_mib(Path(tmp)):.0f} MiB on disk)")
            del dataset
            t0 = time.perf_counter()
            Dataset.load(tmp)
            t_load = time.perf_counter() - t0
            print(f"  load      {t_load:>8.1f}   {peak_rss_gib():>8.2f}")
    ok = t_gen < 120 and rss_gen < 4 and (args.profile != "large" or rows["events"] >= 5_000_000)
    how = f"benchmarks/bench_generate.py --profile {args.profile}, seed {args.seed}, one process"
    write_benchmark_manifest(f"bench_generate_{args.profile}", {
        "generate_seconds": (t_gen, f"wall time of generate(); {how}"),
        "generate_memory_peak_rss_gib": (rss_gen, f"peak RSS during generation; {how}"),
        "events": (rows["events"], f"events generated; {how}"),
    })
    print(f"\ntarget (generate < 120 s, peak < 4 GiB{', >= 5M events' if args.profile == 'large' else ''}): "
          f"{'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
