"""The event store on PostgreSQL (the design's database), through psycopg 3.

``postgresql://user:password@host:port/dbname``. The writer's transaction
takes the transaction-level advisory lock :data:`WRITE_LOCK` first, so the
writers of every worker and machine commit one at a time and event ids grow
in commit order (:mod:`recsys.store.base`). :meth:`PostgresStore.exclusive`
is a session-level advisory lock on its own connection: released by the
server if the holder dies, so a crashed batch never blocks the next one.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from typing import Any

from recsys.config import DEFAULT_CONFIG, RecsysConfig
from recsys.store.base import EventStore, StoreError

__all__ = ["WRITE_LOCK", "PostgresStore", "advisory_key"]


def advisory_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for ``name``."""
    return int.from_bytes(hashlib.sha256(f"recsys:{name}".encode()).digest()[:8], "big", signed=True)


WRITE_LOCK = advisory_key("store-writer")


class PostgresStore(EventStore):
    """The store in a PostgreSQL database (see the module doc)."""

    dialect = "postgresql"

    def __init__(self, url: str, config: RecsysConfig = DEFAULT_CONFIG, max_batch_rows: int = 20_000,
                 connect_timeout: float = 10.0) -> None:
        self._connect_timeout = connect_timeout
        super().__init__(url, config, max_batch_rows)

    def _connect(self) -> Any:
        import psycopg

        try:
            return psycopg.connect(self.url, connect_timeout=int(self._connect_timeout))
        except psycopg.OperationalError as err:
            raise StoreError(f"PostgreSQL at {self.safe_url} does not answer: {err}".strip()) from None

    def _begin_write(self, cur: Any) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))

    def _sql(self, text: str) -> str:
        return text.replace("?", "%s")

    @contextlib.contextmanager
    def exclusive(self, name: str, holder: str, ttl: float = 3600.0) -> Iterator[bool]:
        """A session advisory lock on a connection of its own (``ttl`` unused: the server releases
        the lock when the holder's connection ends)."""
        conn = self._connect()
        conn.autocommit = True
        try:
            mine = bool(conn.execute("SELECT pg_try_advisory_lock(%s)", (advisory_key(name),)).fetchone()[0])
            yield mine
        finally:
            conn.close()  # ends the session: the lock, if held, is released
