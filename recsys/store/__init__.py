"""The event store: live events, products and user profiles, durable (SQLite or PostgreSQL).

``open_store(url)`` opens ``sqlite:///FILE`` (or a plain path) or
``postgresql://...``; :mod:`recsys.store.base` describes the protocol,
:mod:`recsys.store.schema` the tables and migrations,
:mod:`recsys.store.training` the data set built from the store.
"""

from __future__ import annotations

from recsys.config import DEFAULT_CONFIG, RecsysConfig
from recsys.store.base import EventStore, StoreError

__all__ = ["DEFAULT_DATABASE_FILE", "EventStore", "StoreError", "open_store"]

DEFAULT_DATABASE_FILE = "events.db"
"""The embedded store's file name in a model directory."""


def open_store(url: str, config: RecsysConfig = DEFAULT_CONFIG, **options: object) -> EventStore:
    """The store at ``url``: ``postgresql://`` / ``postgres://`` -> PostgreSQL, else SQLite."""
    if url.startswith(("postgresql://", "postgres://")):
        from recsys.store.postgres import PostgresStore

        return PostgresStore(url, config, **options)  # type: ignore[arg-type]
    if "://" in url and not url.startswith("sqlite://"):
        raise ValueError(f"database URL {url!r}: expected sqlite:///FILE, a file path or postgresql://...")
    from recsys.store.sqlite import SQLiteStore

    return SQLiteStore(url, config, **options)  # type: ignore[arg-type]
