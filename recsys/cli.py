"""Command line: ``recsys generate | run | batch``.

    recsys generate --profile ci --seed 42 --out data/ci-42
    recsys run --profile thesis [--seeds 1,2,3] [-p test_days=21 ...]
    recsys batch --data data/ci-42 --out data/ci-42-batch [--engine spark --master local[2]]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _generate(args: argparse.Namespace) -> int:
    from recsys.data.cache import resolve_params
    from recsys.data.synthetic_stream import STREAMED_PROFILES, generate_main

    if args.profile in STREAMED_PROFILES:  # too large for memory: partitioned parquet, chunk by chunk
        return generate_main(args.profile, args.seed, Path(args.out), args.quiet)
    from recsys.data.synthetic import generate

    dataset = generate(**resolve_params(args.profile, args.seed), progress=not args.quiet)
    dataset.meta["profile"] = args.profile
    out = dataset.save(Path(args.out))
    rows = ", ".join(f"{name}={len(getattr(dataset, name)):,}" for name in ("users", "products", "events"))
    print(f"wrote {out} ({rows}; content hash {dataset.content_hash()[:12]})")
    return 0


def _run(args: argparse.Namespace) -> int:
    from recsys.runner import main_run

    return main_run(args)


def _batch(args: argparse.Namespace) -> int:
    from recsys.batch import batch_main

    if args.engine == "spark":
        from recsys.spark.job import spark_batch_main

        path = spark_batch_main(args.data, Path(args.out), args.master, args.shuffle_partitions, args.driver_memory)
    else:
        path = batch_main(Path(args.data), Path(args.out))
    print(f"batch artifacts: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recsys", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="generate a synthetic data set and save it as parquet")
    gen.add_argument("--profile", choices=["ci", "thesis", "large", "xl"], default="ci")
    gen.add_argument("--seed", type=int, default=42)
    gen.add_argument("--out", required=True, help="output directory")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    gen.set_defaults(func=_generate)

    run = sub.add_parser("run", help="execute all numbered notebooks with papermill into reports/<profile>/")
    run.add_argument("--profile", choices=["ci", "thesis", "large"], default="thesis")
    run.add_argument("--seeds", default=None, help="comma-separated seeds, e.g. 1,2,3 (default 42)")
    run.add_argument("-p", "--parameter", action="append", metavar="NAME=VALUE",
                     help="set a notebook parameter (repeatable); applied to every notebook that declares it")
    run.add_argument("--notebooks", default=None, help="comma-separated notebook numbers or names (default: all)")
    run.add_argument("--reports", default=None, help="reports root (default: <project>/reports)")
    run.add_argument("--data", default=None, help="data cache directory (default: <project>/data)")
    run.set_defaults(func=_run)

    batch = sub.add_parser("batch", help="recompute all Stage 2 artifacts atomically")
    batch.add_argument("--data", required=True, help="a directory written by Dataset.save / recsys generate")
    batch.add_argument("--out", required=True, help="artifact directory (versions + LATEST pointer)")
    batch.add_argument("--engine", choices=["memory", "spark"], default="memory",
                       help="memory: pandas/scipy in this process; spark: Apache Spark (pip install recsys[spark])")
    batch.add_argument("--master", default="local[2]", help="Spark master: local[n], spark://host:port, yarn, k8s://...")
    batch.add_argument("--shuffle-partitions", type=int, default=8, help="spark.sql.shuffle.partitions (Spark only)")
    batch.add_argument("--driver-memory", default="2g", help="spark.driver.memory (Spark only)")
    batch.set_defaults(func=_batch)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
