"""The service's subcommands, called from :mod:`recsys.cli`:

    recsys keys add --user USER_ID [--admin] [--expires-in-days D] --file KEYS
    recsys keys list --file KEYS
    recsys keys revoke (KEY_ID | --user USER_ID) --file KEYS
    recsys train (--profile ci|thesis|large | --data DIR) --out MODEL_DIR
    recsys serve --model MODEL_DIR --api-keys KEYS [--host 127.0.0.1] [--port 8000] [--workers N]
                 [--redis URL | --redis-url-file FILE] [limits ...]
                 [--database URL] [--batch-every 1h]

The Redis URL is best given in a file (``--redis-url-file``) or the
``RECSYS_REDIS_URL`` environment variable: ``--redis`` shows in the process
list (a warning says so when it holds a password). A revoked key gets 401
from a running service within a second or two (it re-reads a changed keys file).
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from recsys.cli_types import dataset_dir, id_value, in_range, out_dir, writable_dir

__all__ = ["add_service_commands"]


def _one_line(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A ``ValueError`` (a bad keys file, no such key, a bad user id) is one line and exit status 2."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except ValueError as err:
            print(f"recsys keys {args.keys_command}: error: {err}", file=sys.stderr)
            return 2

    return run


@_one_line
def _keys_add(args: argparse.Namespace) -> int:
    from recsys.service.auth import add_key_main

    expires = None if args.expires_in_days is None else timedelta(days=args.expires_in_days)
    token = add_key_main(args.user, args.admin, args.file, expires)
    role = "admin" if args.admin else "user"
    until = f", expires in {args.expires_in_days:g} days" if expires else ""
    print(f"new {role} key for {args.user!r} stored (hash only) in {args.file}{until}; the token, shown this once:",
          file=sys.stderr)
    print(token)
    return 0


@_one_line
def _keys_list(args: argparse.Namespace) -> int:
    from recsys.service.auth import KeyStore

    rows = KeyStore.load(args.file).describe()
    print(f"{'key id':16}  {'fingerprint':12}  {'user':20}  {'admin':5}  {'created (UTC)':20}  expires (UTC)")
    for k in rows:
        expires = "never" if k.expires_at is None else k.expires_at + (" (expired)" if k.expired else "")
        print(f"{k.key_id:16}  {k.fingerprint:12}  {k.user_id[:20]:20}  {'yes' if k.admin else 'no':5}  "
              f"{k.created_at or '-':20}  {expires}")
    print(f"{len(rows)} key(s) in {args.file}", file=sys.stderr)
    return 0


@_one_line
def _keys_revoke(args: argparse.Namespace) -> int:
    from recsys.service.auth import KeyStore

    store = KeyStore.load(args.file)
    removed = store.revoke(args.key_id, args.user)
    store.save(args.file)
    print(f"revoked {len(removed)} key(s) ({', '.join(removed)}) in {args.file}; a running service refuses them "
          "within seconds")
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
    engine = train_model_dir(dataset, out, tune=args.tune, tuning_trials=args.tuning_trials,
                             tuning_budget_seconds=args.tuning_budget)
    chosen = ""
    if args.tune:
        tuning = engine.model_info()["tuning"]
        chosen = (f"; chosen on validation ({tuning['n_trials']} trials, {tuning['seconds']:.0f} s): "
                  f"{tuning['collaborative']} in the collaborative slot, {tuning['fusion']} fusion; {tuning['metric']} "
                  f"{tuning['best_value']:.4f} against {tuning['start_value']:.4f} at the design's settings")
    print(f"trained on {source} ({dataset.n_users:,} users, {dataset.n_products:,} products, "
          f"{len(dataset.events):,} events) in {time.perf_counter() - started:.1f} s; model: {out}{chosen}")
    return 0


def _redis_url(args: argparse.Namespace) -> str | None:
    """The Redis URL: ``--redis``, the first line of ``--redis-url-file``, or ``RECSYS_REDIS_URL``."""
    from recsys.service.redact import read_secret_file, redact_url

    if args.redis_url_file:
        return read_secret_file(args.redis_url_file, "--redis-url-file")
    if args.redis:
        if redact_url(args.redis) != args.redis:
            print("recsys serve: warning: a password on the command line shows in the process list; "
                  "use --redis-url-file or RECSYS_REDIS_URL", file=sys.stderr)
        return args.redis
    from recsys.service.settings import redis_url_from_env

    return redis_url_from_env()


def _serve(args: argparse.Namespace) -> int:
    from recsys.service.limits import Limits
    from recsys.service.loop import parse_interval
    from recsys.service.server import StartupError, serve
    from recsys.store import StoreError

    try:
        limits = Limits(max_body_bytes=args.max_body_bytes, max_header_bytes=args.max_header_bytes,
                        max_headers=args.max_headers, rate_per_second=args.rate_limit, burst=args.burst,
                        max_in_flight_per_client=args.max_in_flight)
        batch_every = None if args.batch_every is None else parse_interval(args.batch_every)
        serve(args.model, args.api_keys, args.host, args.port, args.workers, _redis_url(args), args.redis_prefix,
              args.access_log, limits, args.event_clock_skew, args.limit_concurrency, args.http,
              args.database, batch_every)
    except (ValueError, OSError, StartupError, StoreError) as err:  # a bad option, file or store, named
        print(f"recsys serve: error: {err}", file=sys.stderr)
        return 2
    return 0


def _add_keys(sub: argparse._SubParsersAction) -> None:
    keys = sub.add_parser("keys", help="API keys of the service: add, list, revoke")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    add = keys_sub.add_parser("add", help="create a key; prints its token once, stores only its hash")
    add.add_argument("--user", required=True, type=id_value("--user"),
                     help="the user id the token reads (any id for an admin)")
    add.add_argument("--admin", action="store_true", help="may call every path, for every user")
    add.add_argument("--expires-in-days", type=in_range(float, "--expires-in-days", 1e-6, 36500), default=None,
                     help="the key stops working after this many days (None: never)")
    add.add_argument("--file", required=True, help="keys file (JSON; created if missing)")
    add.set_defaults(func=_keys_add)
    listing = keys_sub.add_parser("list", help="user, admin flag, creation and expiry, key id, fingerprint "
                                               "(never a token)")
    listing.add_argument("--file", required=True, help="keys file")
    listing.set_defaults(func=_keys_list)
    revoke = keys_sub.add_parser("revoke", help="remove a key (a running service refuses it within seconds)")
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("key_id", nargs="?", help="the key id from `recsys keys list` (or a unique prefix)")
    which.add_argument("--user", type=id_value("--user"), help="revoke every key of this user")
    revoke.add_argument("--file", required=True, help="keys file")
    revoke.set_defaults(func=_keys_revoke)


def _add_serve(sub: argparse._SubParsersAction) -> None:
    from recsys.service.limits import Limits

    lim = Limits()
    serve = sub.add_parser("serve", help="serve a model directory over HTTP (FastAPI on uvicorn)")
    serve.add_argument("--model", required=True, help="model directory written by `recsys train`")
    serve.add_argument("--api-keys", required=True, help="keys file written by `recsys keys add`")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=in_range(int, "--port", 1, 65535), default=8000, help="TCP port (1..65535)")
    serve.add_argument("--workers", type=in_range(int, "--workers", 1, 64), default=1,
                       help="uvicorn worker processes (>1 needs Redis)")
    redis = serve.add_mutually_exclusive_group()
    redis.add_argument("--redis", default=None, metavar="URL",
                       help="shared live history, e.g. redis://127.0.0.1:6379/0 (shows in the process list: "
                            "prefer --redis-url-file or RECSYS_REDIS_URL)")
    redis.add_argument("--redis-url-file", default=None, metavar="FILE", help="a file whose first line is the Redis URL")
    serve.add_argument("--redis-prefix", default=None, help="Redis key prefix (None: recsys:<model data hash>)")
    serve.add_argument("--database", default=None, metavar="URL",
                       help="event store: sqlite:///FILE or postgresql://user@host/db (default: SQLite "
                            "events.db in the model directory)")
    serve.add_argument("--batch-every", default=None, metavar="DURATION",
                       help="retrain on the base data plus the store on this schedule, e.g. 1h (one run at a "
                            "time across workers: a lock in the database)")
    serve.add_argument("--access-log", action="store_true", help="log every request line (never headers or tokens)")
    serve.add_argument("--max-body-bytes", type=in_range(int, "--max-body-bytes", 1, 2**31), default=lim.max_body_bytes,
                       help="largest request body (413)")
    serve.add_argument("--max-header-bytes", type=in_range(int, "--max-header-bytes", 256, 2**20),
                       default=lim.max_header_bytes, help="all request headers together (431)")
    serve.add_argument("--max-headers", type=in_range(int, "--max-headers", 8, 10_000), default=lim.max_headers,
                       help="header lines of one request (431)")
    serve.add_argument("--rate-limit", type=in_range(float, "--rate-limit", 0, 1e9), default=lim.rate_per_second,
                       help="requests a second per client address (429); 0: no limit")
    serve.add_argument("--burst", type=in_range(int, "--burst", 1, 10**9), default=lim.burst,
                       help="requests a client may send at once before --rate-limit applies")
    serve.add_argument("--max-in-flight", type=in_range(int, "--max-in-flight", 0, 10**6),
                       default=lim.max_in_flight_per_client, help="requests of one client in progress (429); 0: no limit")
    serve.add_argument("--limit-concurrency", type=in_range(int, "--limit-concurrency", 1, 10**6), default=1024,
                       help="connections and requests of a worker at once (uvicorn answers 503 past it)")
    serve.add_argument("--http", choices=["h11", "httptools"], default="h11",
                       help="HTTP parser: h11 buffers at most 1 MB of request line and headers per connection; "
                            "httptools is faster but buffers any header size")
    serve.add_argument("--event-clock-skew", type=in_range(float, "--event-clock-skew", 0, 86400), default=300.0,
                       help="seconds an event's timestamp may be ahead of the service's clock")
    serve.set_defaults(func=_serve)


def add_service_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``keys``, ``train`` and ``serve`` to the ``recsys`` parser."""
    _add_keys(sub)
    train = sub.add_parser("train", help="train the engine and write a model directory for `recsys serve`")
    source = train.add_mutually_exclusive_group(required=True)
    source.add_argument("--profile", choices=["ci", "thesis", "large"], help="synthetic data of this profile")
    source.add_argument("--data", type=dataset_dir("--data"), help="a directory written by Dataset.save / recsys generate")
    train.add_argument("--seed", type=int, default=42, help="seed of the synthetic data (with --profile)")
    train.add_argument("--data-dir", type=writable_dir("--data-dir"), default="data",
                       help="synthetic data cache (with --profile)")
    train.add_argument("--out", required=True, type=out_dir("--out"), help="model directory to write")
    train.add_argument("--tune", action=argparse.BooleanOptionalAction, default=True,
                       help="serve the configuration that wins on a validation window cut from the training data "
                            "(collaborative slot, fusion weights or the learned fusion; needs the [research] extra); "
                            "--no-tune serves the design's defaults")
    train.add_argument("--tuning-trials", type=in_range(int, "--tuning-trials", 1, 10_000), default=24,
                       help="trials of the search (the binding limit, so a search reproduces)")
    train.add_argument("--tuning-budget", type=in_range(float, "--tuning-budget", 1, 86_400), default=600.0,
                       help="seconds the search may take at most (a safety cap)")
    train.set_defaults(func=_train)
    _add_serve(sub)
