"""The embedded event store: one SQLite file in WAL mode (no setup).

``sqlite:///path/to/events.db`` (or a plain path). WAL lets readers read
while the writer writes; ``synchronous=FULL`` fsyncs the WAL at every commit,
so an acknowledged event survives a crash of the process *and* of the
machine, and the group commit of :mod:`recsys.store.base` shares that fsync
among every request that arrived meanwhile. Several processes may open the
same file: ``BEGIN IMMEDIATE`` takes SQLite's write lock for the whole
transaction (``busy_timeout`` waits for it).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from recsys.config import DEFAULT_CONFIG, RecsysConfig
from recsys.store.base import _REVISION_SQL, EventStore

__all__ = ["SQLiteStore", "sqlite_path"]

_INSERT_JSON = ("INSERT INTO events SELECT ?1 + key, " + ", ".join(f"json_extract(value, '$[{i}]')" for i in range(8))
                + ", ?2 FROM json_each(?3)")

_HEAD_SQL = f"SELECT (SELECT COALESCE(MAX(id), 0) FROM events), ({_REVISION_SQL})"


def sqlite_path(url: str) -> Path:
    """``sqlite:///relative.db``, ``sqlite:////abs/path.db`` or a plain path -> the file's path."""
    if url.startswith("sqlite://"):
        rest = url[len("sqlite://"):]
        if not rest.startswith("/") or rest == "/":
            raise ValueError(f"database URL {url!r}: expected sqlite:///FILE (three slashes)")
        return Path(rest[1:])
    return Path(url)


class SQLiteStore(EventStore):
    """The store in one SQLite file (see the module doc)."""

    dialect = "sqlite"

    def __init__(self, url: str, config: RecsysConfig = DEFAULT_CONFIG, max_batch_rows: int = 20_000,
                 synchronous: str = "FULL", busy_timeout_ms: int = 30_000) -> None:
        self.path = sqlite_path(url)
        if not self.path.parent.is_dir():
            raise FileNotFoundError(f"database {url}: folder {self.path.parent} does not exist")
        self._synchronous = synchronous
        self._busy_timeout_ms = busy_timeout_ms
        self._probe_lock = threading.Lock()
        super().__init__(url, config, max_batch_rows)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        return conn

    def _begin_write(self, cur: Any) -> None:
        cur.execute("BEGIN IMMEDIATE")

    def _event_payload(self, rows: list[tuple]) -> bytes:
        """The rows as one JSON array (on the caller's thread; orjson where installed, as with the service)."""
        try:
            import orjson
        except ImportError:  # the core install: the standard library's
            return json.dumps(rows, separators=(",", ":")).encode()
        return orjson.dumps(rows)

    def _insert_events(self, cur: Any, first: int, ops: list[Any], now: Any) -> None:
        """One statement for the whole batch: SQLite expands one JSON array itself (``json_each``), so the
        writer thread does not take the GIL back once per row (``executemany`` does, and under a busy
        event loop each take can wait for the interpreter's switch interval)."""
        payload = b"[" + b",".join(op.payload[1:-1] for op in ops if len(op.payload) > 2) + b"]"
        cur.execute(_INSERT_JSON, (first, now, payload.decode()))

    def _ts_param(self, value: datetime) -> str:
        return value.isoformat(sep=" ", timespec="microseconds")

    def _ts_column(self, values: list[Any]) -> pd.Series:
        return pd.to_datetime(pd.Series(values, dtype=object), format="ISO8601").astype("datetime64[ns]")

    def head_now(self) -> tuple[int, int]:
        """``(last_event_id, revision)`` from a connection of its own (two index lookups, a few
        microseconds: cheap enough for the event loop; WAL readers never wait for the writer)."""
        with self._probe_lock:
            probe = self.__dict__.get("_probe")
            if probe is None:
                probe = self._probe = self._connect()
            event_id, revision = probe.execute(_HEAD_SQL).fetchone()
        return int(event_id), int(revision)

    def close(self) -> None:
        super().close()
        with self._probe_lock:
            probe = self.__dict__.pop("_probe", None)
            if probe is not None:
                probe.close()

    def journal_mode(self) -> str:
        return str(self._read_one("PRAGMA journal_mode")[0])
