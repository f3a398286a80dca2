"""The event store's tables, their schema versions and the migration path.

Schema version 1 (both dialects; ``?`` placeholders, rewritten for psycopg)::

    schema_version(version PK, applied_at)          one row per applied migration
    events(id PK, user_id, product_id, event_type,   append-only; ``id`` grows with commit order
           ts, rating, quantity, value, session_id,   (assigned by the writer inside the transaction
           received_at)                               that holds the store's write lock)
    products(product_id PK, name, category,          upserts: NULL = not given (the base data
             description, price, cost, stock,         set's value, or the previous upsert's, stays);
             updated_at, revision)                    ``revision``: one counter over both tables,
    user_profiles(user_id PK, region, age_group,     set by each upsert (the workers read the rows
                  spending_tier, updated_at,          changed after the revision they have seen)
                  revision)
    batch_runs(id PK, cutoff_event_id, cutoff_time,  one row per published batch: what it was trained
               started_at, finished_at, info)         on (``info``: JSON)
    locks(name PK, holder, expires_at)               named leases (SQLite; PostgreSQL uses advisory locks)

Migrations: :data:`MIGRATIONS` maps a version to the statements that take
the schema from the previous version to it; :meth:`EventStore.open` applies
the missing ones in order, each in one transaction with its
``schema_version`` row, and refuses a database newer than this code. To add
a table (for instance the deal decisions with their propensities, planned as
version 2: ``deal_decisions(id PK, user_id, product_id, deal_type,
discount, propensity, decided_at, event_id)``), append ``(2, [...])`` here;
never edit an applied version.
"""

from __future__ import annotations

__all__ = ["EVENT_COLUMNS", "MIGRATIONS", "PRODUCT_FIELDS", "PROFILE_FIELDS", "SCHEMA_VERSION", "ddl"]

EVENT_COLUMNS = ("user_id", "product_id", "event_type", "timestamp", "rating", "quantity", "value", "session_id")
"""An event record's fields (``timestamp`` is the column ``ts``); the last three are optional."""
PRODUCT_FIELDS = ("name", "category", "description", "price", "cost", "stock")
PROFILE_FIELDS = ("region", "age_group", "spending_tier")

_TYPES = {
    "sqlite": {"id": "INTEGER", "real": "REAL", "ts": "TEXT", "int": "INTEGER"},
    "postgresql": {"id": "BIGINT", "real": "DOUBLE PRECISION", "ts": "TIMESTAMP", "int": "BIGINT"},
}

_V1 = [
    "CREATE TABLE events (id {id} PRIMARY KEY, user_id TEXT NOT NULL, product_id TEXT NOT NULL, "
    "event_type TEXT NOT NULL, ts {ts} NOT NULL, rating {real}, quantity {int}, value {real}, session_id TEXT, "
    "received_at {ts} NOT NULL)",
    "CREATE TABLE products (product_id TEXT PRIMARY KEY, name TEXT, category TEXT, description TEXT, "
    "price {real}, cost {real}, stock {int}, updated_at {ts} NOT NULL, revision {id} NOT NULL)",
    "CREATE INDEX products_revision ON products (revision)",
    "CREATE TABLE user_profiles (user_id TEXT PRIMARY KEY, region TEXT, age_group TEXT, spending_tier TEXT, "
    "updated_at {ts} NOT NULL, revision {id} NOT NULL)",
    "CREATE INDEX user_profiles_revision ON user_profiles (revision)",
    "CREATE TABLE batch_runs (id {id} PRIMARY KEY, cutoff_event_id {id} NOT NULL, cutoff_time {ts} NOT NULL, "
    "started_at {ts} NOT NULL, finished_at {ts} NOT NULL, info TEXT NOT NULL)",
    "CREATE TABLE locks (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at {real} NOT NULL)",
]

MIGRATIONS: list[tuple[int, list[str]]] = [(1, _V1)]
"""(version, statements with ``{id}``/``{real}``/``{ts}``/``{int}`` type slots), in order."""

SCHEMA_VERSION = MIGRATIONS[-1][0]


def ddl(statements: list[str], dialect: str) -> list[str]:
    """The statements with the dialect's column types filled in."""
    return [s.format(**_TYPES[dialect]) for s in statements]
