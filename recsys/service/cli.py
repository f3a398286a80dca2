"""The service's subcommands, called from :mod:`recsys.cli`:

    recsys keys add --user USER_ID [--admin] --file KEYS
    recsys train (--profile ci|thesis|large | --data DIR) --out MODEL_DIR
    recsys serve --model MODEL_DIR --api-keys KEYS [--host 127.0.0.1] [--port 8000] [--workers N] [--redis URL]
                 [--database URL] [--batch-every 1h]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_service_commands"]


def _keys_add(args: argparse.Namespace) -> int:
    from recsys.service.auth import add_key_main

    token = add_key_main(args.user, args.admin, args.file)
    role = "admin" if args.admin else "user"
    print(f"new {role} key for {args.user!r} stored (hash only) in {args.file}; the token, shown this once:",
          file=sys.stderr)
    print(token)
    return 0


def _train(args: argparse.Namespace) -> int:
    import time

    from recsys.data.dataset import Dataset
    from recsys.serving.model_dir import train_model_dir

    out = Path(args.out)
    if args.data:
        dataset = Dataset.load(args.data)
        source = f"data {args.data}"
    else:
        from recsys.data import load_or_generate

        dataset = load_or_generate(profile=args.profile, seed=args.seed, data_dir=args.data_dir)
        source = f"profile {args.profile}, seed {args.seed}"
    started = time.perf_counter()
    train_model_dir(dataset, out)
    print(f"trained on {source} ({dataset.n_users:,} users, {dataset.n_products:,} products, "
          f"{len(dataset.events):,} events) in {time.perf_counter() - started:.1f} s; model: {out}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from recsys.service.loop import parse_interval
    from recsys.service.server import serve
    from recsys.store import StoreError

    try:
        batch_every = None if args.batch_every is None else parse_interval(args.batch_every)
        serve(args.model, args.api_keys, args.host, args.port, args.workers, args.redis, args.redis_prefix,
              args.access_log, args.database, batch_every)
    except (ValueError, FileNotFoundError, StoreError) as err:  # a bad option, file or database, named
        print(f"recsys serve: {err}", file=sys.stderr)
        return 2
    return 0


def add_service_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``keys``, ``train`` and ``serve`` to the ``recsys`` parser."""
    keys = sub.add_parser("keys", help="API keys of the service")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    add = keys_sub.add_parser("add", help="create a key; prints its token once, stores only its hash")
    add.add_argument("--user", required=True, help="the user id the token reads (any id for an admin)")
    add.add_argument("--admin", action="store_true", help="may call every path, for every user")
    add.add_argument("--file", required=True, help="keys file (JSON; created if missing)")
    add.set_defaults(func=_keys_add)

    train = sub.add_parser("train", help="train the engine and write a model directory for `recsys serve`")
    source = train.add_mutually_exclusive_group(required=True)
    source.add_argument("--profile", choices=["ci", "thesis", "large"], help="synthetic data of this profile")
    source.add_argument("--data", help="a directory written by Dataset.save / recsys generate")
    train.add_argument("--seed", type=int, default=42)
    train.add_argument("--data-dir", default="data", help="synthetic data cache (with --profile)")
    train.add_argument("--out", required=True, help="model directory to write")
    train.set_defaults(func=_train)

    serve = sub.add_parser("serve", help="serve a model directory over HTTP (FastAPI on uvicorn)")
    serve.add_argument("--model", required=True, help="model directory written by `recsys train`")
    serve.add_argument("--api-keys", required=True, help="keys file written by `recsys keys add`")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (>1 needs --redis)")
    serve.add_argument("--redis", default=None, metavar="URL", help="shared live history, e.g. redis://127.0.0.1:6379/0")
    serve.add_argument("--redis-prefix", default=None, help="Redis key prefix (default: recsys:<model data hash>)")
    serve.add_argument("--database", default=None, metavar="URL",
                       help="event store: sqlite:///FILE or postgresql://user@host/db (default: SQLite "
                            "events.db in the model directory)")
    serve.add_argument("--batch-every", default=None, metavar="DURATION",
                       help="retrain on the base data plus the store on this schedule, e.g. 1h (one run at a "
                            "time across workers: a lock in the database)")
    serve.add_argument("--access-log", action="store_true", help="log every request line (never headers or tokens)")
    serve.set_defaults(func=_serve)
