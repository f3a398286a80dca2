"""The deal rate limit in Redis (:class:`RedisRateLimiter`) against a real redis-server, with an injected clock."""

from __future__ import annotations

import contextlib
import random
import threading
import time
import uuid

import pandas as pd
import pytest
import redis
from fake_clock import Clock
from fastapi.testclient import TestClient
from service_processes import free_port, redis_server

from recsys.deals.rate_limit import RateLimiter, RateLimitExceeded
from recsys.service import PREFIX, KeyStore, create_app
from recsys.service.history import SharedStoreUnavailable
from recsys.service.rate_limit_redis import RedisRateLimiter, SharedRateLimitUnavailable
from recsys.serving.model_dir import load_model

pytestmark = pytest.mark.processes  # a redis-server per module

WALL = 1_767_225_600.0  # 2026-01-01T00:00:00Z: a wall-clock time, as in service


@pytest.fixture()
def clock() -> Clock:
    clock = Clock()
    clock.now = WALL
    return clock


def limiter(url: str, requests: int, window: float, clock, prefix: str | None = None) -> RedisRateLimiter:
    return RedisRateLimiter(url, requests, window, prefix or f"test:{uuid.uuid4().hex[:8]}", clock)


def test_refuses_past_the_limit_says_when_to_retry_and_does_not_count_refusals(redis_url, clock):
    lim = limiter(redis_url, 3, 60.0, clock)
    for _ in range(3):
        lim.acquire("alice")
        clock.now += 5
    assert lim.remaining("alice") == 0 and lim.remaining("bob") == 3
    with pytest.raises(RateLimitExceeded, match=r"retry in 45\.0 s") as info:
        lim.acquire("alice")
    assert info.value.retry_after == pytest.approx(45.0) and info.value.limit == 3 and info.value.key == "alice"
    for _ in range(5):  # refused calls are not counted: they do not push the retry time back
        clock.now += 1
        with pytest.raises(RateLimitExceeded) as info:
            lim.acquire("alice")
    assert info.value.retry_after == pytest.approx(40.0)
    lim.acquire("bob")  # other users are unaffected
    clock.now += 40.0  # the first call leaves the window (a call exactly `window` old is out)
    assert lim.remaining("alice") == 1
    lim.acquire("alice")
    with pytest.raises(RateLimitExceeded, match=r"retry in 5\.0 s"):
        lim.acquire("alice")
    clock.now += 60.0
    assert lim.remaining("alice") == 3


def test_same_answers_as_the_in_process_limiter_on_a_random_schedule(redis_url, clock):
    """Model-based: every acquire/remaining answer (accepted, retry_after, remaining) equals the in-process one."""
    local_clock = Clock()
    local_clock.now = clock.now
    shared, local = limiter(redis_url, 3, 10.0, clock), RateLimiter(3, 10.0, local_clock)
    rng = random.Random(11)
    outcomes = {"accepted": 0, "refused": 0}
    for _ in range(300):
        step = rng.choice([0.0, 0.0, 0.25, 0.5, 1.0, 2.5, 10.0])  # exact binary fractions: no rounding differences
        clock.now += step
        local_clock.now += step
        user = rng.choice(["u1", "u2"])
        if rng.random() < 0.2:
            assert shared.remaining(user) == local.remaining(user)
            continue
        answers = []
        for lim in (shared, local):
            try:
                lim.acquire(user)
                answers.append(None)
            except RateLimitExceeded as err:
                answers.append(err.retry_after)
        assert answers[0] == pytest.approx(answers[1]) if answers[1] is not None else answers[0] is None
        outcomes["accepted" if answers[1] is None else "refused"] += 1
    assert min(outcomes.values()) > 30, outcomes  # the schedule exercises both answers


def test_acquire_many_answers_as_acquire_in_turn_in_one_round_trip(redis_url, clock):
    """A batch of requests (a user may repeat): the same answers as the in-process limiter's
    acquire calls in that order, refusals not counted."""
    local_clock = Clock()
    local_clock.now = clock.now
    shared, local = limiter(redis_url, 2, 30.0, clock), RateLimiter(2, 30.0, local_clock)
    batch = ["ann", "bob", "ann", "ann", "cid", "bob", "ann"]
    for _ in range(2):  # the second round after the window: the same answers again
        got, want = shared.acquire_many(batch), local.acquire_many(batch)
        assert [r is None for r in got] == [r is None for r in want] == [True, True, True, False, True, True, False]
        for g, w in zip(got, want, strict=True):
            if w is not None:
                assert g.key == w.key and g.retry_after == pytest.approx(w.retry_after)
        clock.now += 40
        local_clock.now += 40
    clock.now -= 40
    local_clock.now -= 40
    assert shared.remaining("ann") == local.remaining("ann") == 0
    assert shared.acquire_many([]) == []


def test_atomic_across_clients(redis_url):
    """Eight clients (own connections) race for one user's calls: exactly `requests` get through."""
    prefix = f"test:{uuid.uuid4().hex[:8]}"
    limiters = [RedisRateLimiter(redis_url, 25, 60.0, prefix) for _ in range(8)]
    accepted = []
    start = threading.Barrier(len(limiters))

    def hammer(lim: RedisRateLimiter) -> None:
        start.wait()
        ok = 0
        for _ in range(20):
            with contextlib.suppress(RateLimitExceeded):
                lim.acquire("carol")
                ok += 1
        accepted.append(ok)

    threads = [threading.Thread(target=hammer, args=(lim,)) for lim in limiters]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(accepted) == 25 and limiters[0].remaining("carol") == 0


def test_keys_are_prefixed_and_expire_once_idle(redis_url):
    prefix = f"test:{uuid.uuid4().hex[:8]}"
    lim = RedisRateLimiter(redis_url, 2, 0.3, prefix)  # the real wall clock: Redis expires keys in real time
    lim.acquire("dave")
    client = redis.Redis.from_url(redis_url)
    key = f"{prefix}:deal-rate:dave"
    assert lim.key("dave") == key and client.zcard(key) == 1
    assert 0 < client.pttl(key) <= 300
    deadline = time.monotonic() + 5
    while client.exists(key) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not client.exists(key)
    client.close()


def test_reset_forgets_one_user_or_every_user_of_its_prefix_only(redis_url, clock):
    prefix = f"test:{uuid.uuid4().hex[:8]}"
    lim, neighbour = limiter(redis_url, 1, 60.0, clock, prefix), limiter(redis_url, 1, 60.0, clock, prefix + "x")
    for user in ("a", "b", "c*"):
        lim.acquire(user)
    neighbour.acquire("a")
    lim.reset("a")
    assert lim.remaining("a") == 1 and lim.remaining("b") == 0
    lim.reset()
    assert [lim.remaining(u) for u in ("a", "b", "c*")] == [1, 1, 1]
    assert neighbour.remaining("a") == 0  # another prefix (another service) keeps its counts


def test_validates_like_the_in_process_limiter(redis_url):
    from recsys.config import ConfigError

    for bad in ((0, 60), (3, 0), (True, 60), (3, float("inf"))):
        with pytest.raises(ConfigError):
            RedisRateLimiter(redis_url, *bad)


def test_redis_down_raises_a_shared_store_error_not_a_rate_limit():
    lim = RedisRateLimiter(f"redis://127.0.0.1:{free_port()}/0", 3, 60.0)  # nothing listens there
    for call in (lambda: lim.acquire("erin"), lambda: lim.remaining("erin"), lambda: lim.reset("erin")):
        with pytest.raises(SharedRateLimitUnavailable, match="shared deal rate limit at redis://") as info:
            call()
        assert isinstance(info.value, SharedStoreUnavailable) and not isinstance(info.value, RateLimitExceeded)
    with pytest.raises(ConnectionError, match="does not answer"):
        lim.ping()


# ---------------------------------------------------------------------------- in the service
NOW = pd.Timestamp("2025-03-01T12:00:00Z")


def test_the_service_answers_503_not_500_when_the_limit_store_is_down(model_dir):
    keys = KeyStore()
    token = keys.add("user_0")
    headers = {"Authorization": f"Bearer {token}"}
    with contextlib.ExitStack() as redis_up:
        url = redis_up.enter_context(redis_server())
        if url is None:
            pytest.skip("no redis-server binary")
        engine = load_model(model_dir, clock=lambda: NOW)
        lim = RedisRateLimiter.for_deals(engine.config.deals, url, "test:down")
        app = create_app(engine, keys, clock=lambda: NOW, rate_limiter=lim)
        with TestClient(app) as client:
            assert client.get(f"{PREFIX}/deals/user_0", headers=headers).status_code == 200
            redis_up.close()  # Redis stops while the service runs
            r = client.get(f"{PREFIX}/deals/user_0", headers=headers)
            assert r.status_code == 503 and r.headers["retry-after"] == "1", r.text
            assert r.json()["detail"] == "the shared deal rate limit is unavailable; retry shortly"
            r = client.post(f"{PREFIX}/full", json={"user_id": "user_0", "include_deals": True}, headers=headers)
            assert r.status_code == 503
            r = client.post(f"{PREFIX}/realtime", json={"user_id": "user_0"}, headers=headers)
            assert r.status_code == 200  # paths without deals do not need the limit store


def test_the_service_counts_deals_in_redis_and_answers_429(redis_url, model_dir):
    keys = KeyStore()
    headers = {"Authorization": f"Bearer {keys.add('user_1')}"}
    engine = load_model(model_dir, clock=lambda: NOW)
    prefix = f"test:{uuid.uuid4().hex[:8]}"
    lim = RedisRateLimiter.for_deals(engine.config.deals, redis_url, prefix)
    limit = engine.config.deals.rate_limit_requests
    with TestClient(create_app(engine, keys, clock=lambda: NOW, rate_limiter=lim)) as client:
        codes = [client.get(f"{PREFIX}/deals/user_1", headers=headers).status_code for _ in range(limit + 1)]
        assert codes == [200] * limit + [429]
    assert redis.Redis.from_url(redis_url).zcard(f"{prefix}:deal-rate:user_1") == limit


def test_the_service_answers_503_when_the_shared_history_store_is_down(model_dir):
    """The same answer for the event log (``SharedLogUnavailable``) as for the limit: one handler for both."""
    from recsys.service.history import RedisEventLog

    keys = KeyStore()
    headers = {"Authorization": f"Bearer {keys.add('ops', admin=True)}"}
    with contextlib.ExitStack() as redis_up:
        url = redis_up.enter_context(redis_server())
        if url is None:
            pytest.skip("no redis-server binary")
        engine = load_model(model_dir, clock=lambda: NOW)
        app = create_app(engine, keys, clock=lambda: NOW, event_log=RedisEventLog(url, "test:log-down"),
                         rate_limiter=RedisRateLimiter.for_deals(engine.config.deals, url, "test:log-down"))
        with TestClient(app) as client:
            assert client.post(f"{PREFIX}/realtime", json={"user_id": "user_0"}, headers=headers).status_code == 200
            redis_up.close()
            r = client.post(f"{PREFIX}/realtime", json={"user_id": "user_0"}, headers=headers)
            assert r.status_code == 503 and r.headers["retry-after"] == "1", r.text
            assert r.json()["detail"] == "the shared live history is unavailable; retry shortly"
            assert client.get("/health").status_code == 200
