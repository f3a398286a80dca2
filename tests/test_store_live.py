"""LiveFeed: a worker's cursor in the store, applied in batches off the event loop."""

from __future__ import annotations

import asyncio
import threading

import pandas as pd

from recsys.store import open_store
from recsys.store.live import LiveFeed


def _events(n, start=0):
    return [{"user_id": f"u{start + i}", "product_id": "p1", "event_type": "view",
             "timestamp": "2024-03-01T10:00:00"} for i in range(n)]


def test_feed_applies_in_batches_from_its_cursor_off_the_loop(tmp_path):
    with open_store(f"sqlite:///{tmp_path}/e.db") as store:
        store.append_events(_events(25))
        batches: list[pd.DataFrame] = []
        threads = set()

        def apply(frame):
            threads.add(threading.get_ident())
            batches.append(frame)

        feed = LiveFeed(store, cursor=5, apply=apply, batch_size=8)  # a model trained through event 5
        asyncio.run(feed.catch_up())
        assert [len(b) for b in batches] == [8, 8, 4]
        assert pd.concat(batches)["id"].tolist() == list(range(6, 26))
        assert feed.cursor == 25 and feed.applied == 20
        assert threading.get_ident() not in threads  # applied in a worker thread
        store.append_events(_events(3, 100))
        assert feed.catch_up_blocking() == 3 and feed.cursor == 28


def test_concurrent_catch_ups_share_reads_and_see_every_prior_event(tmp_path):
    with open_store(f"sqlite:///{tmp_path}/e.db") as store:
        calls = []
        feed = LiveFeed(store, 0, lambda frame: calls.append(len(frame)))

        async def scenario():
            await store.append_events_async(_events(10))
            waiters = [asyncio.create_task(feed.catch_up()) for _ in range(20)]
            await asyncio.sleep(0)
            await store.append_events_async(_events(5, 10))
            last = asyncio.create_task(feed.catch_up())
            await asyncio.gather(*waiters, last)

        asyncio.run(scenario())
        assert feed.cursor == 15 and sum(calls) == 15
        assert len(calls) <= 3  # 21 callers, at most a read in flight and one queued (plus none empty)


def test_overlapping_catch_ups_never_apply_an_event_twice(tmp_path):
    """Two readers at once (a finished run, its queued successor and a new caller racing on the loop, or a
    start-up catch-up beside a request's): the second waits and reads after the cursor the first moved."""
    with open_store(f"sqlite:///{tmp_path}/e.db") as store:
        store.append_events(_events(10))
        ids: list[int] = []
        started = threading.Event()

        def slow_apply(frame):
            started.set()
            threading.Event().wait(0.2)  # long enough for the other reader to arrive while this one applies
            ids.extend(frame["id"].tolist())

        feed = LiveFeed(store, 0, slow_apply)
        first = threading.Thread(target=feed.catch_up_blocking)
        first.start()
        started.wait(5)
        feed.catch_up_blocking()
        first.join()
        assert sorted(ids) == list(range(1, 11)) and feed.cursor == 10


def test_a_caller_arriving_after_the_run_finished_joins_the_queued_run(tmp_path):
    """The race CI met: the run in flight is done but its queued successor has not resumed yet; a new caller
    must wait for that queued run, not start a third one beside it."""
    with open_store(f"sqlite:///{tmp_path}/e.db") as store:
        calls: list[int] = []
        feed = LiveFeed(store, 0, lambda frame: calls.append(len(frame)))

        async def scenario():
            store.append_events(_events(10))
            done = asyncio.get_running_loop().create_future()
            done.set_result(0)
            feed._current = done  # the run in flight has just finished ...
            feed._queued = asyncio.ensure_future(feed._after(done))  # ... its successor not resumed yet
            await feed.catch_up()

        asyncio.run(scenario())
        assert calls == [10] and feed.cursor == 10


def test_feed_applies_product_and_profile_changes_once(tmp_path):
    with open_store(f"sqlite:///{tmp_path}/e.db") as store:
        seen = []
        feed = LiveFeed(store, 0, lambda frame: None,
                        apply_changes=lambda p, u: seen.append((p["product_id"].tolist(), u["user_id"].tolist())))
        store.upsert_products([{"product_id": "p1", "stock": 0}])
        store.upsert_profiles([{"user_id": "u1", "region": "EU"}])
        feed.catch_up_blocking()
        assert seen == [(["p1"], ["u1"])] and feed.revision == store.revision() == 2
        feed.catch_up_blocking()
        assert len(seen) == 1  # nothing new
        store.upsert_products([{"product_id": "p2", "price": 3.0}])
        asyncio.run(feed.catch_up())
        assert seen[-1] == (["p2"], [])


def test_an_up_to_date_feed_returns_without_a_thread(tmp_path, monkeypatch):
    with open_store(f"sqlite:///{tmp_path}/e.db") as store:
        store.append_events(_events(3))
        feed = LiveFeed(store, 0, lambda frame: None)
        asyncio.run(feed.catch_up())
        hops = []
        monkeypatch.setattr(asyncio, "to_thread", lambda *a, **k: hops.append(a))
        asyncio.run(feed.catch_up())  # nothing committed since: the head read says so
        assert feed.cursor == 3 and hops == []
