"""The event store (recsys.store) on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid

import pandas as pd
import pytest

from recsys.store import StoreError, open_store
from recsys.store.schema import SCHEMA_VERSION


def _fresh_postgres(url: str) -> str:
    """A new empty database on the session's server (each test its own)."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/events.db"
    return _fresh_postgres(request.getfixturevalue("postgres_url"))


def _event(user="u1", product="p1", kind="view", ts="2024-03-01T10:00:00", **extra):
    return {"user_id": user, "product_id": product, "event_type": kind, "timestamp": ts, **extra}


def test_append_read_back_in_id_order(store_url):
    with open_store(store_url) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert store.append_events([_event()]) == (1, 1)
        assert store.append_events([_event("u2", "p2", "review", "2024-03-02T11:30:00+02:00", rating=4.0),
                                    _event("u2", "p3", "purchase", quantity=2, value=19.5, session_id="s9")]) == (2, 3)
        frame = store.events()
        assert frame["id"].tolist() == [1, 2, 3]
        assert frame["user_id"].tolist() == ["u1", "u2", "u2"]
        assert frame["timestamp"].dtype == "datetime64[ns]"
        assert frame["timestamp"].iloc[1] == pd.Timestamp("2024-03-02 09:30:00")  # aware -> naive UTC
        assert frame["rating"].iloc[1] == 4.0 and pd.isna(frame["rating"].iloc[0])
        assert (frame["quantity"].iloc[2], frame["value"].iloc[2], frame["session_id"].iloc[2]) == (2, 19.5, "s9")
        assert store.events(after=1)["id"].tolist() == [2, 3]
        assert store.events(after=0, through=2)["id"].tolist() == [1, 2]
        assert store.events(after=0, limit=1)["id"].tolist() == [1]
        assert store.last_event_id() == 3
        assert store.counts() == {"events": 3, "products": 0, "profiles": 0, "last_event_id": 3}


def test_concurrent_appends_share_commits_and_get_unique_contiguous_ids(store_url):
    with open_store(store_url) as store, open_store(store_url) as other:  # two writers: two processes' stores
        acks: list[tuple[int, int]] = []
        lock = threading.Lock()

        def write(target, n):
            for _ in range(n):
                ack = target.append_events([_event(), _event("u2")])
                with lock:
                    acks.append(ack)

        threads = [threading.Thread(target=write, args=(s, 50)) for s in (store, store, store, other, other)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ids = sorted(i for first, last in acks for i in range(first, last + 1))
        assert ids == list(range(1, 501))
        assert all(last - first == 1 for first, last in acks)
        assert store.events()["id"].tolist() == ids
        assert store.commits + other.commits < len(acks)  # group commit: fewer transactions than requests


def test_upserts_keep_fields_left_out(store_url):
    with open_store(store_url) as store:
        store.upsert_products([{"product_id": "p9", "name": "Lamp", "category": "Home", "description": "a lamp",
                                "price": 30.0, "cost": 12.0, "stock": 4}])
        store.upsert_products([{"product_id": "p9", "stock": 0, "price": 25.0}, {"product_id": "p10", "cost": 3.0}])
        products = store.products().set_index("product_id")
        assert products.loc["p9", ["name", "category", "price", "cost", "stock"]].tolist() == [
            "Lamp", "Home", 25.0, 12.0, 0]
        assert pd.isna(products.loc["p10", "name"]) and pd.isna(products.loc["p10", "price"])
        store.upsert_profiles([{"user_id": "new1", "region": "EU", "age_group": "adult"}])
        store.upsert_profiles([{"user_id": "new1", "spending_tier": "premium"}])
        profile = store.profiles().set_index("user_id").loc["new1"]
        assert (profile["region"], profile["age_group"], profile["spending_tier"]) == ("EU", "adult", "premium")


@pytest.mark.parametrize("record, message", [
    (_event(kind="click"), "events[0].event_type"),
    (_event(kind="review"), "events[0].rating"),
    (_event(rating=3.0), "events[0].rating"),
    (_event(ts="yesterday"), "events[0].timestamp"),
    (_event(user="has space"), "events[0].user_id"),
    (_event(quantity=-1), "events[0].quantity"),
    (_event(value=float("inf")), "events[0].value"),
])
def test_bad_events_are_refused_naming_the_field(tmp_path, record, message):
    with open_store(f"sqlite:///{tmp_path}/e.db") as store:
        with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
            store.append_events([record])
        assert store.last_event_id() == 0


@pytest.mark.parametrize("kind, record, message", [
    ("products", {"product_id": "p1", "price": 0.0}, r"products\[0\].price: must be > 0"),
    ("products", {"product_id": "p1", "stock": 1.5}, r"products\[0\].stock: expected a whole number"),
    ("products", {"product_id": "p1", "colour": "red"}, r"unknown field\(s\) \['colour'\]"),
    ("profiles", {"user_id": "u1", "region": "Mars"}, r"profiles\[0\].region: 'Mars' is not one of"),
    ("profiles", {"user_id": "u1", "age_group": "7-9"}, r"profiles\[0\].age_group"),
])
def test_bad_upserts_are_refused_naming_the_field(tmp_path, kind, record, message):
    with open_store(f"sqlite:///{tmp_path}/e.db") as store:
        upsert = store.upsert_products if kind == "products" else store.upsert_profiles
        with pytest.raises(ValueError, match=message):
            upsert([record])


def test_reopen_keeps_data_and_refuses_a_newer_schema(store_url):
    with open_store(store_url) as store:
        store.append_events([_event()])
    with open_store(store_url) as store:  # migrations are not applied twice
        assert store.last_event_id() == 1 and store.schema_version() == SCHEMA_VERSION
        store._read_all("SELECT 1")  # the reader works
        conn = store._connect()
        cur = conn.cursor()
        store._begin_write(cur)
        cur.execute(store._sql("INSERT INTO schema_version VALUES (?, ?)"), (SCHEMA_VERSION + 1, "later"))
        conn.commit()
        conn.close()
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1} is newer"):
        open_store(store_url)


def test_exclusive_admits_one_holder_at_a_time(store_url):
    with open_store(store_url) as store, open_store(store_url) as other:
        with store.exclusive("batch", "worker-1") as first:
            with other.exclusive("batch", "worker-2") as second:
                assert (first, second) == (True, False)
        with other.exclusive("batch", "worker-2") as again:
            assert again


def test_sqlite_store_is_in_wal_mode_and_names_bad_urls(tmp_path):
    with open_store(str(tmp_path / "plain.db")) as store:
        assert store.journal_mode() == "wal"
    with pytest.raises(ValueError, match="expected sqlite:///FILE"):
        open_store("mysql://host/db")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_store(f"sqlite:///{tmp_path}/missing/e.db")


def test_postgres_unreachable_is_a_store_error():
    with pytest.raises(StoreError, match="does not answer"):
        open_store("postgresql://nobody@127.0.0.1:1/none", connect_timeout=1)


_WRITER = """
import sys
from recsys.store import open_store
store = open_store(sys.argv[1])
print("ready", flush=True)
i = 0
while True:
    first, last = store.append_events([{"user_id": f"u{i}", "product_id": "p1", "event_type": "view",
                                        "timestamp": "2024-03-01T10:00:00"}] * 10)
    print(last, flush=True)  # the acknowledgement: after the commit
    i += 1
"""


@pytest.mark.processes
def test_acknowledged_events_survive_sigkill(store_url):
    process = subprocess.Popen([sys.executable, "-c", _WRITER, store_url], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert process.stdout.readline().strip() == "ready"
        acked = 0
        while acked < 2000:
            acked = int(process.stdout.readline())
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    with open_store(store_url) as store:
        ids = store.events()["id"].tolist()
    assert len(ids) >= acked and ids[:acked] == list(range(1, acked + 1))


def test_foreign_writes_are_told_from_own_ones_without_io(store_url):
    with open_store(store_url) as mine, open_store(store_url) as other:
        assert mine.append_events([_event("a"), _event("b")]) == (1, 2)
        assert not mine.foreign_events_after(0)  # every id so far is this writer's
        other.append_events([_event("c")])  # id 3: another writer's
        assert not mine.foreign_events_after(0)  # not seen until this writer writes again
        assert mine.append_events([_event("d")]) == (4, 4)
        assert mine.foreign_events_after(2) and not mine.foreign_events_after(3)
        assert other.foreign_events_after(1) and not other.foreign_events_after(2)  # id 4: not seen until it writes
        assert mine.users_between(after=0, before=4) == {"a", "b", "c"}
        assert mine.users_between(after=3, before=4) == set()


def test_a_failed_write_does_not_count_as_this_writers_ids(tmp_path):
    with open_store(f"sqlite:///{tmp_path}/e.db") as mine, open_store(f"sqlite:///{tmp_path}/e.db") as other:
        mine.append_events([_event("a")])
        original = mine._insert_events

        def broken(*args):
            raise RuntimeError("disk full")

        mine._insert_events = broken
        with pytest.raises(StoreError, match="disk full"):
            mine.append_events([_event("b")])
        mine._insert_events = original
        other.append_events([_event("c")])  # takes id 2, the id the failed write had given
        mine.append_events([_event("d")])
        assert mine.foreign_events_after(1)


def test_sqlite_head_reads_the_newest_committed_id_and_revision(tmp_path):
    with open_store(f"sqlite:///{tmp_path}/e.db") as store, open_store(f"sqlite:///{tmp_path}/e.db") as other:
        assert store.head_now() == (0, 0)
        other.append_events([_event("a"), _event("b")])
        other.upsert_products([{"product_id": "p9", "price": 3.0}])
        assert store.head_now() == (2, 1)
