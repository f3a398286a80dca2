"""Issue 21, replayed in process: limits before the body, revocable keys, redaction, the job lock,
strict events, health and readiness, rounding, offline docs (the process-level findings:
tests/test_service_operator_procs.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from recsys.service import PREFIX, KeyStore, create_app
from recsys.service.auth import KeysFile
from recsys.service.jobs import LocalJobLock, RedisJobLock
from recsys.service.limits import Limits
from recsys.service.redact import redact_text, redact_url
from recsys.service.rounding import round_answer, round_money
from recsys.serving.model_dir import load_model

NOW = pd.Timestamp("2025-03-01T12:00:00Z")


@pytest.fixture(scope="module")
def engine_factory(model_dir):
    return lambda: load_model(model_dir, clock=lambda: NOW)


def _client(engine_factory, keys, **kwargs) -> TestClient:
    return TestClient(create_app(engine_factory(), keys, clock=lambda: NOW, **kwargs))


@pytest.fixture()
def tokens_and_store():
    store = KeyStore()
    return store, {"admin": store.add("ops", admin=True), "user_0": store.add("user_0")}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---------------------------------------------------------------------------- 1. limits before the body
def test_a_declared_large_body_is_413_and_no_token_is_401_before_the_body(engine_factory, tokens_and_store):
    store, tokens = tokens_and_store
    with _client(engine_factory, store, limits=Limits(max_body_bytes=1000)) as client:
        big = b"{" + b" " * 5000 + b"}"
        r = client.post(f"{PREFIX}/events", content=big, headers={"Content-Type": "application/json"})
        assert r.status_code == 401 and r.json()["detail"] == "missing bearer token"
        r = client.post(f"{PREFIX}/events", content=big, headers={**bearer("0123456789abcdef.nope")})
        assert r.status_code == 401
        r = client.post(f"{PREFIX}/events", content=big, headers=bearer(tokens["admin"]))
        assert r.status_code == 413 and "at most 1000" in r.json()["detail"]

        def chunks():  # no Content-Length: counted as it arrives
            for _ in range(10):
                yield b" " * 500

        r = client.post(f"{PREFIX}/events", content=chunks(), headers=bearer(tokens["admin"]))
        assert r.status_code == 413 and "past 1000 bytes" in r.json()["detail"]
        r = client.post(f"{PREFIX}/realtime", json={"user_id": "user_0"}, headers=bearer(tokens["user_0"]))
        assert r.status_code == 200  # a body within the limit goes through


def test_oversized_headers_get_431(engine_factory, tokens_and_store):
    store, tokens = tokens_and_store
    with _client(engine_factory, store) as client:
        r = client.get("/health", headers={"Authorization": "Bearer " + "x" * 100_000})
        assert r.status_code == 431 and "header" in r.json()["detail"]
        r = client.get("/health", headers={f"x-h{i}": "1" for i in range(5000)})
        assert r.status_code == 431 and "header lines" in r.json()["detail"]
        assert client.get("/health").status_code == 200


def test_per_client_rate_and_in_flight_limits_answer_429(engine_factory, tokens_and_store):
    store, tokens = tokens_and_store
    with _client(engine_factory, store, limits=Limits(rate_per_second=1, burst=3)) as client:
        codes = [client.post(f"{PREFIX}/realtime", json={"user_id": "user_0"},
                             headers=bearer(tokens["user_0"])).status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
        r = client.post(f"{PREFIX}/realtime", json={"user_id": "user_0"}, headers=bearer(tokens["user_0"]))
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        assert client.get("/health").status_code == 200  # exempt


def test_the_in_flight_limit_counts_requests_in_progress():
    from recsys.service.limits import LimitsMiddleware

    release = asyncio.Event()

    async def slow_app(scope, receive, send):
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = LimitsMiddleware(slow_app, Limits(max_in_flight_per_client=2), keys=KeyStore, protected="/x")

    async def one() -> int:
        sent: list[dict] = []

        async def send(message):
            sent.append(message)

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        scope = {"type": "http", "path": "/open", "method": "GET", "headers": [], "client": ("10.0.0.1", 1)}
        await middleware(scope, receive, send)
        return sent[0]["status"]

    async def scenario() -> list[int]:
        tasks = [asyncio.ensure_future(one()) for _ in range(3)]
        await asyncio.sleep(0.05)
        release.set()
        return sorted(await asyncio.gather(*tasks))

    assert asyncio.run(scenario()) == [200, 200, 429]


# ---------------------------------------------------------------------------- 2. keys
def test_keys_list_revoke_expire(tmp_path, capsys):
    from recsys.cli import main

    path = tmp_path / "keys.json"
    assert main(["keys", "add", "--user", "alice", "--file", str(path)]) == 0
    token = capsys.readouterr().out.strip()
    assert main(["keys", "add", "--user", "ops", "--admin", "--expires-in-days", "1", "--file", str(path)]) == 0
    capsys.readouterr()
    assert main(["keys", "list", "--file", str(path)]) == 0
    listing = capsys.readouterr().out
    assert "alice" in listing and "ops" in listing and "never" in listing and token not in listing
    assert token.split(".")[1] not in listing
    key_id = token.split(".")[0]
    assert key_id in listing and KeyStore.load(path).describe()[0].fingerprint in listing
    assert main(["keys", "revoke", key_id[:6], "--file", str(path)]) == 0
    assert KeyStore.load(path).authenticate(token) is None
    assert [k.user_id for k in KeyStore.load(path).describe()] == ["ops"]
    assert main(["keys", "revoke", "--user", "nobody", "--file", str(path)]) == 2

    store = KeyStore()
    now = datetime(2025, 1, 1, tzinfo=UTC)
    expiring = store.add("bob", expires_in=timedelta(hours=1), now=now)
    assert store.authenticate(expiring, now=now + timedelta(minutes=59)) is not None
    assert store.authenticate(expiring, now=now + timedelta(hours=1)) is None


def test_a_revoked_key_gets_401_within_seconds_without_restart(engine_factory, tmp_path):
    path = tmp_path / "keys.json"
    store = KeyStore()
    token = store.add("user_0")
    admin = store.add("ops", admin=True)
    store.save(path)
    keys = KeysFile(path, check_seconds=0.2)
    with _client(engine_factory, keys) as client:
        body = {"user_id": "user_0"}
        assert client.post(f"{PREFIX}/realtime", json=body, headers=bearer(token)).status_code == 200
        store.revoke(token.split(".")[0])
        store.save(path)
        started = time.monotonic()
        while client.post(f"{PREFIX}/realtime", json=body, headers=bearer(token)).status_code != 401:
            assert time.monotonic() - started < 5, "revoked key still accepted after 5 s"
            time.sleep(0.05)
        assert client.post(f"{PREFIX}/realtime", json=body, headers=bearer(admin)).status_code == 200
        path.write_text("not json")  # a broken file keeps the keys in force (logged)
        time.sleep(0.3)
        assert client.post(f"{PREFIX}/realtime", json=body, headers=bearer(admin)).status_code == 200


def test_make_serve_reuses_its_development_key():
    makefile = open("Makefile").read()
    serve = makefile[makefile.index("\nserve:"):makefile.index("\nredis:")]
    assert "dev-token" in serve and "test -s" in serve


# ---------------------------------------------------------------------------- 3. secrets
def test_urls_are_redacted():
    assert redact_url("redis://user:s3cret@host:6379/0") == "redis://user:***@host:6379/0"
    assert redact_url("redis://:s3cret@host/0") == "redis://:***@host/0"
    assert redact_url("redis://host:6379/0") == "redis://host:6379/0"
    assert redact_text("failed: redis://u:pw@h:1/0 and postgresql://a:b@db/x") == \
        "failed: redis://u:***@h:1/0 and postgresql://a:***@db/x"


def test_a_redis_outage_logs_no_password_and_few_lines(engine_factory, tokens_and_store, caplog):
    from recsys.service.history import RedisEventLog

    store, tokens = tokens_and_store
    url = "redis://user:TOPSECRET@127.0.0.1:1/0"  # nothing listens on port 1
    app = create_app(engine_factory(), store, clock=lambda: NOW, event_log=RedisEventLog(url, timeout=0.2))
    caplog.set_level(logging.INFO)
    client = TestClient(app)  # no lifespan: the store is down after start
    codes = [client.post(f"{PREFIX}/realtime", json={"user_id": "user_0"}, headers=bearer(tokens["user_0"])).status_code
             for _ in range(20)]
    assert set(codes) == {503}
    text = caplog.text + str(client.get("/health").json())
    assert "TOPSECRET" not in text and "user:***@" in text
    assert sum("shared event log" in r.getMessage() for r in caplog.records) == 1  # throttled: one line per 5 s
    settings_text = repr(__import__("recsys.service.settings", fromlist=["x"]).ServiceSettings(redis_url=url))
    assert "TOPSECRET" not in settings_text


# ---------------------------------------------------------------------------- 5. one job at a time
def test_train_and_batch_process_serialise(engine_factory, tokens_and_store):
    store, tokens = tokens_and_store
    with _client(engine_factory, store) as client:
        admin = bearer(tokens["admin"])
        assert client.post(f"{PREFIX}/train", headers=admin).status_code == 202
        r = client.post(f"{PREFIX}/batch-process", headers=admin)
        assert r.status_code == 409 and "train job is running" in r.json()["detail"]
        assert client.post(f"{PREFIX}/train", headers=admin).status_code == 409
        client.portal.call(client.app.state.service.wait_jobs)
        assert client.post(f"{PREFIX}/batch-process", headers=admin).status_code == 202
        client.portal.call(client.app.state.service.wait_jobs)
        info = client.get(f"{PREFIX}/model-info", headers=admin).json()
        state = client.app.state.service
        assert info["served_batch_version"] == state.engine.batch_version == info["batch_job"]["result"]["version"]


def test_the_redis_job_lock_admits_one_holder_across_processes(redis_url):
    async def scenario():
        a, b = RedisJobLock(redis_url, "t21", ttl_seconds=2), RedisJobLock(redis_url, "t21", ttl_seconds=2)
        assert await a.acquire("train", "job-a") is None
        holder = await b.acquire("batch-process", "job-b")
        assert holder["kind"] == "train" and holder["job_id"] == "job-a"
        await asyncio.sleep(2.5)  # renewed while held: still a's
        assert (await b.acquire("batch-process", "job-b"))["job_id"] == "job-a"
        await b.release("job-a")  # not b's to release
        assert (await b.acquire("batch-process", "job-b"))["job_id"] == "job-a"
        await a.release("job-a")
        assert await b.acquire("batch-process", "job-b") is None
        await b.release("job-b")
        await a.close()
        await b.close()

    asyncio.run(scenario())


def test_the_local_job_lock():
    async def scenario():
        lock = LocalJobLock()
        assert await lock.acquire("train", "1") is None
        assert (await lock.acquire("train", "2"))["job_id"] == "1"
        await lock.release("1")
        assert await lock.acquire("batch-process", "3") is None

    asyncio.run(scenario())


# ---------------------------------------------------------------------------- 6. strict events
def _event(**change):
    event = {"user_id": "user_0", "product_id": None, "event_type": "view", "timestamp": "2025-02-28T10:00:00Z"}
    event.update(change)
    return event


@pytest.mark.parametrize("change, field", [
    ({"event_type": "review", "rating": "4"}, "rating"),
    ({"event_type": "review", "rating": 4.5}, "rating"),
    ({"rating": 4}, "rating on a view"),
    ({"timestamp": 0}, "timestamp"),
    ({"timestamp": 1.7e9}, "timestamp"),
    ({"timestamp": 1.7e12}, "timestamp"),
    ({"timestamp": "1700000000"}, "timestamp"),
    ({"event_type": "purchase", "timestamp": "2099-12-31T00:00:00Z"}, "future"),
])
def test_events_are_strict(engine_factory, tokens_and_store, change, field):
    store, tokens = tokens_and_store
    with _client(engine_factory, store) as client:
        product = _a_product(client, tokens)
        r = client.post(f"{PREFIX}/events", json={"events": [_event(product_id=product, **change)]},
                        headers=bearer(tokens["admin"]))
        assert r.status_code == 422, r.text
        assert "events" in json.dumps(r.json()["detail"])


def _a_product(client, tokens) -> str:
    r = client.post(f"{PREFIX}/realtime", json={"user_id": "user_0"}, headers=bearer(tokens["user_0"]))
    return r.json()["recommendations"][0]["product_id"]


def test_new_users_names_a_user_once(engine_factory, tokens_and_store):
    store, tokens = tokens_and_store
    with _client(engine_factory, store, event_clock_skew_seconds=60) as client:
        product = _a_product(client, tokens)
        post = lambda events: client.post(f"{PREFIX}/events", json={"events": events},  # noqa: E731
                                          headers=bearer(tokens["admin"])).json()
        first = post([_event(user_id="live_9", product_id=product), _event(product_id=product)])
        assert first["new_users"] == ["live_9"]
        assert post([_event(user_id="live_9", product_id=product)])["new_users"] == []
        soon = (NOW + pd.Timedelta(seconds=30)).isoformat()
        ok = post([_event(event_type="review", rating=5, timestamp=soon, product_id=product)])
        assert ok["events"] == 1 and ok["new_users"] == []


# ---------------------------------------------------------------------------- 7. health and readiness
def test_health_is_degraded_and_ready_is_503_when_redis_is_down(engine_factory, tokens_and_store):
    from recsys.service.history import RedisEventLog

    store, _ = tokens_and_store
    app = create_app(engine_factory(), store, clock=lambda: NOW,
                     event_log=RedisEventLog("redis://127.0.0.1:1/0", timeout=0.2))
    client = TestClient(app)
    r = client.get("/health")
    assert r.status_code == 200 and r.json()["status"] == "degraded"
    assert "shared live history" in r.json()["causes"][0]
    r = client.get("/ready")
    assert r.status_code == 503 and r.json()["status"] == "degraded"


def test_health_and_ready_when_all_is_well(engine_factory, tokens_and_store):
    store, _ = tokens_and_store
    with _client(engine_factory, store) as client:
        body = client.get("/health").json()
        assert body["status"] == "ok" and body["causes"] == []
        assert body["batch_version"] == client.app.state.service.engine.batch_version
        assert client.get("/ready").status_code == 200


# ---------------------------------------------------------------------------- 8. rounding
def test_money_to_cents_and_scores_to_four_decimals(engine_factory, tokens_and_store):
    assert round_money(17.824499999999997) == 17.82 and round_money(17.825) == 17.83
    assert round_answer({"score": 74.16666666666667, "deal_price": 17.824499999999997, "n": 3}) == \
        {"score": 74.1667, "deal_price": 17.82, "n": 3}
    store, tokens = tokens_and_store
    with _client(engine_factory, store) as client:
        body = client.post(f"{PREFIX}/full", json={"user_id": "user_0"}, headers=bearer(tokens["user_0"])).json()
    assert body["deals"]
    for deal in body["deals"]:
        for money in ("original_price", "deal_price"):
            assert round(deal[money], 2) == deal[money]
        assert round(deal["score"], 4) == deal["score"]
    for rec in body["recommendations"]:
        assert round(rec["price"], 2) == rec["price"] and round(rec["score"], 4) == rec["score"]


# ---------------------------------------------------------------------------- 10. docs offline
def test_docs_and_redoc_reference_no_external_url(engine_factory, tokens_and_store):
    store, _ = tokens_and_store
    with _client(engine_factory, store) as client:
        for page in ("/docs", "/redoc"):
            r = client.get(page)
            assert r.status_code == 200
            external = re.findall(r"""(?:src|href)\s*=\s*["']?(https?:)?//""", r.text)
            assert not external, f"{page} loads from another host: {external}"
            for asset in re.findall(r"""(?:src|href)=["']?([^"' >]+)""", r.text):
                assert client.get(asset).status_code == 200, asset
        spec = client.get("/openapi.json").json()
        assert spec["info"]["description"].startswith("Personalised e-commerce recommendations")
        assert {"recommendations", "admin", "operations"} <= {t["name"] for t in spec["tags"]}
        assert "\n\nPaths (the design's" not in spec["info"]["description"]
    assert "fastapi-offline==" in open("requirements.lock").read()  # the assets' package is locked
