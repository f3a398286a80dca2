"""The event store: the durable source of truth for live events, products and user profiles.

Protocol (group commit). Every write is an *operation* put on a queue; one
writer thread per store drains the queue, writes everything it found (up to
``max_batch_rows`` rows) in **one** transaction, commits, and only then
resolves each operation's future: a caller's acknowledgement always follows
the commit that holds its rows, and concurrent callers share one commit (one
fsync) instead of paying one each. If a batch fails, each of its operations
is retried alone, so one bad operation fails only its own caller.

Event ids: inside the transaction the writer first takes the store's write
lock (SQLite ``BEGIN IMMEDIATE``; PostgreSQL a transaction advisory lock),
then numbers the new events from ``MAX(id) + 1``. Writers of several
processes are thereby serialised, so ids grow in commit order and a reader
that has seen every id up to ``X`` never later finds a smaller new one:
"the events after id X" is a complete cursor.

Reads (``events``, ``products``, ``profiles``, ...) use a separate connection
and never wait for the writer beyond the database's own isolation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from recsys.config import DEFAULT_CONFIG, RecsysConfig
from recsys.store.records import event_rows, product_rows, profile_rows
from recsys.store.schema import MIGRATIONS, PRODUCT_FIELDS, PROFILE_FIELDS, SCHEMA_VERSION, ddl

__all__ = ["EVENT_FRAME_COLUMNS", "EventStore", "StoreError", "utc_now"]

log = logging.getLogger("recsys.store")

EVENT_FRAME_COLUMNS = ["id", "user_id", "product_id", "event_type", "timestamp", "rating", "quantity", "value",
                       "session_id"]
_EVENT_DTYPES = {"id": "int64", "user_id": object, "product_id": object, "event_type": object,
                 "timestamp": "datetime64[ns]", "rating": "float64", "quantity": "float64", "value": "float64",
                 "session_id": object}
_REVISION_SQL = ("SELECT MAX(r) FROM (SELECT COALESCE(MAX(revision), 0) AS r FROM products "
                 "UNION ALL SELECT COALESCE(MAX(revision), 0) FROM user_profiles) AS revisions")
_EVENT_SELECT = "SELECT id, user_id, product_id, event_type, ts, rating, quantity, value, session_id FROM events"


class StoreError(RuntimeError):
    """The database cannot be used (unreachable, or a schema this code does not know)."""


def utc_now() -> datetime:
    """The wall clock as a naive UTC datetime (the store's time convention)."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class _Op:
    kind: str
    rows: Sequence[Any]
    future: Future = field(default_factory=Future)
    payload: Any = None  # the rows prepared for the dialect's bulk insert (built by the caller's thread)


class EventStore(ABC):
    """Base of the SQLite and PostgreSQL stores (see the module doc for the protocol).

    Writes: :meth:`append_events`, :meth:`upsert_products`,
    :meth:`upsert_profiles`, :meth:`record_batch_run` (blocking until
    committed) and their ``*_async`` forms for an event loop. Reads:
    :meth:`events`, :meth:`last_event_id`, :meth:`products`,
    :meth:`profiles`, :meth:`last_batch_run`, :meth:`counts`."""

    dialect: str = ""

    def __init__(self, url: str, config: RecsysConfig = DEFAULT_CONFIG, max_batch_rows: int = 20_000) -> None:
        self.url = url
        self.config = config
        self.max_batch_rows = max_batch_rows
        self.commits = 0  # transactions committed by the writer (group commit: <= operations)
        # what this store's writer knows of the event ids (see foreign_events_after)
        self._own_last = 0  # the highest id this writer gave (recorded before its commit)
        self._foreign_last = 0  # the highest id another writer had committed when this one last wrote
        self._queue: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._read_lock = threading.Lock()
        self._reader = self._connect()
        self._migrate()
        self._closed = False
        self._writer = threading.Thread(target=self._write_loop, name=f"recsys-store-writer-{self.dialect}",
                                        daemon=True)
        self._writer.start()

    # ------------------------------------------------------------------ dialect
    @abstractmethod
    def _connect(self) -> Any:
        """A new DB-API connection (transactions begun explicitly by :meth:`_begin_write`)."""

    @abstractmethod
    def _begin_write(self, cur: Any) -> None:
        """Begin a transaction holding the store's write lock."""

    def _sql(self, text: str) -> str:
        return text

    def _ts_param(self, value: datetime) -> Any:
        return value

    def _ts_column(self, values: list[Any]) -> pd.Series:
        return pd.to_datetime(pd.Series(values, dtype=object)).astype("datetime64[ns]")

    def _begin_read(self, cur: Any) -> None:
        """Begin a read transaction (one snapshot for several statements)."""
        cur.execute("BEGIN")

    # ------------------------------------------------------------------ schema
    def _migrate(self) -> None:
        """Apply the missing migrations in order, each with its ``schema_version`` row, in one transaction."""
        conn = self._connect()
        try:
            cur = conn.cursor()
            self._begin_write(cur)
            cur.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT)")
            cur.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version")
            current = int(cur.fetchone()[0])
            if current > SCHEMA_VERSION:
                conn.rollback()
                raise StoreError(f"{self.safe_url}: database schema version {current} is newer than this recsys "
                                 f"knows ({SCHEMA_VERSION}); upgrade recsys")
            for version, statements in MIGRATIONS:
                if version > current:
                    for statement in ddl(statements, self.dialect):
                        cur.execute(statement)
                    cur.execute(self._sql("INSERT INTO schema_version VALUES (?, ?)"),
                                (version, utc_now().isoformat()))
                    log.info("%s: schema migrated to version %d", self.safe_url, version)
            conn.commit()
        finally:
            conn.close()

    def schema_version(self) -> int:
        return int(self._read_one("SELECT MAX(version) FROM schema_version")[0])

    @property
    def safe_url(self) -> str:
        """The URL without a password."""
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(self.url)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
            return urlunsplit(parts._replace(netloc=netloc))
        return self.url

    # ------------------------------------------------------------------ writes
    def _submit(self, kind: str, rows: Sequence[Any], payload: Any = None) -> Future:
        if self._closed:
            raise StoreError(f"{self.safe_url}: the store is closed")
        op = _Op(kind, rows, payload=payload)
        self._queue.put(op)
        return op.future

    def _event_rows(self, records: Sequence[Mapping[str, Any]]) -> list[tuple]:
        """Checked rows with the time already in the database's form (the caller's thread does that work)."""
        ts = self._ts_param
        return [(u, p, k, ts(t), r, q, v, s) for u, p, k, t, r, q, v, s in event_rows(records)]

    def _event_payload(self, rows: list[tuple]) -> Any:
        """The rows as :meth:`_insert_events` takes them (default: the rows)."""
        return rows

    def _insert_events(self, cur: Any, first: int, ops: list[_Op], now: Any) -> None:
        """Insert the events of ``ops``, in order, with ids from ``first`` (default: ``executemany``)."""
        rows = [row for op in ops for row in op.rows]
        cur.executemany(self._sql("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
                        [(first + i, *row, now) for i, row in enumerate(rows)])

    def _submit_events(self, records: Sequence[Mapping[str, Any]]) -> Future:
        rows = self._event_rows(records)
        return self._submit("events", rows, self._event_payload(rows))

    def append_events(self, records: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
        """Append events durably; returns the ``(first, last)`` ids given to them (after the commit)."""
        return self._submit_events(records).result()

    async def append_events_async(self, records: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
        """:meth:`append_events` for an event loop: awaits the commit without blocking the loop."""
        return await asyncio.wrap_future(self._submit_events(records))

    def upsert_products(self, records: Sequence[Mapping[str, Any]]) -> int:
        """Insert or update products (fields left out keep their value); returns the rows written."""
        return self._submit("products", product_rows(records)).result()

    async def upsert_products_async(self, records: Sequence[Mapping[str, Any]]) -> int:
        return await asyncio.wrap_future(self._submit("products", product_rows(records)))

    def upsert_profiles(self, records: Sequence[Mapping[str, Any]]) -> int:
        """Insert or update user profiles (fields left out keep their value); returns the rows written."""
        return self._submit("profiles", profile_rows(records, self.config)).result()

    async def upsert_profiles_async(self, records: Sequence[Mapping[str, Any]]) -> int:
        return await asyncio.wrap_future(self._submit("profiles", profile_rows(records, self.config)))

    def record_batch_run(self, cutoff_event_id: int, cutoff_time: datetime, started_at: datetime,
                         info: Mapping[str, Any]) -> int:
        """Record a published batch (what it was trained on); returns its id."""
        row = (int(cutoff_event_id), cutoff_time, started_at, json.dumps(dict(info), sort_keys=True, default=str))
        return self._submit("batch_run", [row]).result()

    def _write_loop(self) -> None:
        conn = None
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                break
            ops, rows = [first], len(first.rows)
            while rows < self.max_batch_rows:
                try:
                    op = self._queue.get_nowait()
                except queue.Empty:
                    break
                if op is None:
                    stop = True
                    break
                ops.append(op)
                rows += len(op.rows)
            conn = self._commit_ops(conn, ops)
        if conn is not None:
            conn.close()

    def _commit_ops(self, conn: Any, ops: list[_Op]) -> Any:
        """Write ``ops`` in one transaction and resolve their futures; alone each if the batch fails.
        Returns the connection to use next (a new one after a connection error)."""
        try:
            if conn is None:
                conn = self._connect()
            results = self._transaction(conn, ops)
        except Exception as err:
            conn = self._discard(conn)
            if len(ops) > 1:
                for op in ops:
                    conn = self._commit_ops(conn, [op])
                return conn
            ops[0].future.set_exception(StoreError(f"{self.safe_url}: {type(err).__name__}: {err}"))
            return conn
        self.commits += 1
        for op, result in zip(ops, results, strict=True):
            op.future.set_result(result)
        return conn

    def _discard(self, conn: Any) -> Any:
        """Roll back; a connection that cannot roll back is closed (None: reconnect next time)."""
        if conn is None:
            return None
        try:
            conn.rollback()
            return conn
        except Exception:
            with contextlib.suppress(Exception):
                conn.close()
            return None

    def _transaction(self, conn: Any, ops: list[_Op]) -> list[Any]:
        known = self._own_last, self._foreign_last
        try:
            return self._write(conn, ops)
        except BaseException:
            self._own_last, self._foreign_last = known  # nothing of this transaction was committed
            raise

    def _write(self, conn: Any, ops: list[_Op]) -> list[Any]:
        cur = conn.cursor()
        self._begin_write(cur)
        now = self._ts_param(utc_now())
        results: dict[int, Any] = {}
        events = [op for op in ops if op.kind == "events"]
        if events:  # one insert for every request's events: ids in queue order
            cur.execute("SELECT COALESCE(MAX(id), 0) FROM events")
            before = int(cur.fetchone()[0])
            if before > self._own_last:  # ids this writer did not give: another writer's
                self._foreign_last = before
            first = before + 1
            self._insert_events(cur, first, events, now)
            for op in events:
                results[id(op)] = (first, first + len(op.rows) - 1)
                first += len(op.rows)
            self._own_last = first - 1  # before the commit: a reader never sees an id of ours unrecorded
        for op in ops:
            if op.kind == "events":
                continue
            if op.kind in ("products", "profiles"):
                results[id(op)] = self._upsert(cur, op.kind, op.rows, now)
            elif op.kind == "batch_run":
                cutoff_id, cutoff_time, started, info = op.rows[0]
                cur.execute("SELECT COALESCE(MAX(id), 0) FROM batch_runs")
                run_id = int(cur.fetchone()[0]) + 1
                cur.execute(self._sql("INSERT INTO batch_runs VALUES (?, ?, ?, ?, ?, ?)"),
                            (run_id, cutoff_id, self._ts_param(cutoff_time), self._ts_param(started), now, info))
                results[id(op)] = run_id
            elif op.kind == "lock":
                results[id(op)] = self._lease(cur, *op.rows[0])
            else:  # pragma: no cover - the kinds above are the only ones submitted
                raise ValueError(f"unknown store operation {op.kind!r}")
        conn.commit()
        return [results[id(op)] for op in ops]

    def _upsert(self, cur: Any, kind: str, rows: Sequence[tuple], now: Any) -> int:
        """Insert or merge ``rows``; every row written gets the next store revision (under the write lock)."""
        table, key, fields = (("products", "product_id", PRODUCT_FIELDS) if kind == "products"
                              else ("user_profiles", "user_id", PROFILE_FIELDS))
        cur.execute(_REVISION_SQL)
        revision = int(cur.fetchone()[0]) + 1
        columns = ", ".join((key, *fields, "updated_at", "revision"))
        marks = ", ".join("?" * (len(fields) + 3))
        updates = ", ".join(f"{f} = COALESCE(excluded.{f}, {table}.{f})" for f in fields)
        cur.executemany(self._sql(f"INSERT INTO {table} ({columns}) VALUES ({marks}) ON CONFLICT ({key}) "
                                  f"DO UPDATE SET {updates}, updated_at = excluded.updated_at, "
                                  f"revision = excluded.revision"),
                        [(*row, now, revision) for row in rows])
        return len(rows)

    # ------------------------------------------------------------------ leases (one batch at a time)
    def _lease(self, cur: Any, name: str, holder: str, ttl: float) -> bool:
        """Take (or renew) lease ``name`` for ``holder`` unless another holder's has not expired;
        ``ttl <= 0`` releases it."""
        now = time.time()
        if ttl <= 0:
            cur.execute(self._sql("DELETE FROM locks WHERE name = ? AND holder = ?"), (name, holder))
            return True
        cur.execute(self._sql("DELETE FROM locks WHERE name = ? AND (expires_at < ? OR holder = ?)"),
                    (name, now, holder))
        cur.execute(self._sql("SELECT holder FROM locks WHERE name = ?"), (name,))
        if cur.fetchone() is not None:
            return False
        cur.execute(self._sql("INSERT INTO locks VALUES (?, ?, ?)"), (name, holder, now + ttl))
        return True

    @contextlib.contextmanager
    def exclusive(self, name: str, holder: str, ttl: float = 3600.0) -> Iterator[bool]:
        """``with store.exclusive("batch", holder) as mine:`` -- ``mine`` is True for exactly one holder
        at a time across every process using this database (a lease row that expires after ``ttl`` s,
        so a crashed holder cannot block forever); released on exit."""
        mine = self._submit("lock", [(name, holder, ttl)]).result()
        try:
            yield mine
        finally:
            if mine:
                self._submit("lock", [(name, holder, 0.0)]).result()

    # ------------------------------------------------------------------ reads
    def _read_all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._read_lock:
            cur = self._reader.cursor()
            try:
                cur.execute(self._sql(sql), tuple(params))
                rows = cur.fetchall()
            finally:
                self._reader.rollback()
            return rows

    def _read_one(self, sql: str, params: Sequence[Any] = ()) -> tuple:
        return self._read_all(sql, params)[0]

    def last_event_id(self) -> int:
        """The id of the newest committed event (0: none)."""
        return int(self._read_one("SELECT COALESCE(MAX(id), 0) FROM events")[0])

    def head_now(self) -> tuple[int, int] | None:
        """``(last_event_id, revision)`` when the dialect reads them without blocking for long (an
        embedded file: microseconds, on the caller's thread); None when it takes a round trip (a server)."""
        return None

    def foreign_events_after(self, cursor: int) -> bool:
        """Whether another writer (another worker, process or machine) had committed an event with
        ``id > cursor`` when this store's writer last wrote -- so, for the ids below the first of a
        write that returned, exactly whether one of them is another writer's. No I/O.

        Each transaction of this writer reads, under the write lock, the largest id before its own;
        ids above the last id it gave before are another writer's, and the largest of those is kept
        (``_foreign_last``, never decreasing). A later foreign write can only make the answer a
        cautious "yes", never a false "no"."""
        return self._foreign_last > int(cursor)

    def users_between(self, after: int, before: int) -> set[str]:
        """The users of the events with ``after < id < before`` (one range scan by id)."""
        if before <= after + 1:
            return set()
        rows = self._read_all("SELECT DISTINCT user_id FROM events WHERE id > ? AND id < ?", [int(after), int(before)])
        return {str(row[0]) for row in rows}

    def events(self, after: int = 0, through: int | None = None, limit: int | None = None) -> pd.DataFrame:
        """Events with ``after < id <= through`` (oldest first, at most ``limit``), columns
        :data:`EVENT_FRAME_COLUMNS`; ``timestamp`` naive UTC ``datetime64[ns]``."""
        sql, params = f"{_EVENT_SELECT} WHERE id > ?", [int(after)]
        if through is not None:
            sql, params = sql + " AND id <= ?", [*params, int(through)]
        sql += " ORDER BY id"
        if limit is not None:
            sql, params = sql + " LIMIT ?", [*params, int(limit)]
        rows = self._read_all(sql, params)
        if not rows:  # the common case of a worker that is up to date: no frame to build
            return pd.DataFrame({c: pd.Series(dtype=t) for c, t in _EVENT_DTYPES.items()})
        columns = list(zip(*rows, strict=True))
        frame = pd.DataFrame({
            "id": np.asarray(columns[0], dtype=np.int64),
            "user_id": pd.Series(columns[1], dtype=object),
            "product_id": pd.Series(columns[2], dtype=object),
            "event_type": pd.Series(columns[3], dtype=object),
            "timestamp": self._ts_column(list(columns[4])),
            "rating": pd.to_numeric(pd.Series(columns[5], dtype=object)).astype("float64"),
            "quantity": pd.to_numeric(pd.Series(columns[6], dtype=object)).astype("float64"),
            "value": pd.to_numeric(pd.Series(columns[7], dtype=object)).astype("float64"),
            "session_id": pd.Series(columns[8], dtype=object),
        })
        return frame

    def products(self, after_revision: int = 0) -> pd.DataFrame:
        """Stored products (changed after ``after_revision``): ``product_id``, :data:`PRODUCT_FIELDS`
        (None/NaN where never given), ``updated_at``, ``revision``."""
        return self._frame("SELECT product_id, name, category, description, price, cost, stock, updated_at, revision "
                           "FROM products WHERE revision > ? ORDER BY product_id",
                           ["product_id", *PRODUCT_FIELDS, "updated_at", "revision"], after_revision)

    def profiles(self, after_revision: int = 0) -> pd.DataFrame:
        """Stored user profiles (changed after ``after_revision``): ``user_id``, :data:`PROFILE_FIELDS`
        (None where never given), ``updated_at``, ``revision``."""
        return self._frame("SELECT user_id, region, age_group, spending_tier, updated_at, revision FROM user_profiles "
                           "WHERE revision > ? ORDER BY user_id",
                           ["user_id", *PROFILE_FIELDS, "updated_at", "revision"], after_revision)

    def revision(self) -> int:
        """The newest product/profile revision (0: no upsert yet)."""
        return int(self._read_one(_REVISION_SQL)[0])

    def _frame(self, sql: str, columns: list[str], after_revision: int) -> pd.DataFrame:
        rows = self._read_all(sql, (int(after_revision),))
        frame = pd.DataFrame.from_records(rows, columns=columns)
        frame["updated_at"] = self._ts_column(frame["updated_at"].tolist())
        for column in ("price", "cost", "stock"):  # numbers, NaN where never given
            if column in frame:
                frame[column] = pd.to_numeric(frame[column].astype(object).where(frame[column].notna(), np.nan))
        return frame

    def last_batch_run(self) -> dict[str, Any] | None:
        """The newest recorded batch run (``cutoff_event_id``, ``cutoff_time``, ``info``, ...), or None."""
        rows = self._read_all("SELECT id, cutoff_event_id, cutoff_time, started_at, finished_at, info "
                              "FROM batch_runs ORDER BY id DESC LIMIT 1")
        if not rows:
            return None
        run_id, cutoff, cutoff_time, started, finished, info = rows[0]
        times = self._ts_column([cutoff_time, started, finished])
        return {"id": int(run_id), "cutoff_event_id": int(cutoff), "cutoff_time": times[0],
                "started_at": times[1], "finished_at": times[2], "info": json.loads(info)}

    def counts(self) -> dict[str, int]:
        """Rows per table: ``events``, ``products``, ``profiles``, ``last_event_id``."""
        row = self._read_one("SELECT (SELECT COUNT(*) FROM events), (SELECT COUNT(*) FROM products), "
                             "(SELECT COUNT(*) FROM user_profiles), (SELECT COALESCE(MAX(id), 0) FROM events)")
        return dict(zip(("events", "products", "profiles", "last_event_id"), map(int, row), strict=True))

    # ------------------------------------------------------------------ life cycle
    def close(self) -> None:
        """Commit what is queued, stop the writer, close the connections."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._writer.join()
        with self._read_lock:
            self._reader.close()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
