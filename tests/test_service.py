"""The HTTP service in process (FastAPI TestClient): paths, fields, auth, bad input, limits, jobs, metrics."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from recsys.cli import main as cli_main
from recsys.service import PREFIX, KeyStore, create_app
from recsys.serving.model_dir import load_model

NOW = pd.Timestamp("2025-03-01T12:00:00Z")
RECOMMENDATION_FIELDS = {"product_id", "name", "category", "price", "score", "reason"}
DEAL_FIELDS = {"product_id", "name", "category", "original_price", "deal_price", "discount_percentage",
               "deal_reason", "deal_expiry", "is_regional_deal", "score"}
PROFILE_FIELDS = {"region", "age_group", "spending_tier", "price_sensitivity"}


@pytest.fixture()
def keys() -> tuple[KeyStore, dict[str, str]]:
    store = KeyStore()
    tokens = {"admin": store.add("ops", admin=True), "user_0": store.add("user_0"), "user_1": store.add("user_1"),
              "stranger": store.add("stranger_42")}
    return store, tokens


@pytest.fixture()
def client(model_dir, keys):
    store, tokens = keys
    app = create_app(load_model(model_dir, clock=lambda: NOW), store, clock=lambda: NOW)
    with TestClient(app) as test_client:
        test_client.tokens = tokens  # type: ignore[attr-defined]
        yield test_client


def auth(client, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.tokens[who]}"}


# ---------------------------------------------------------------------------- paths and fields
def test_realtime_answers_with_the_design_fields_and_the_clock(client):
    r = client.post(f"{PREFIX}/realtime", json={"user_id": "user_0", "num_recommendations": 4}, headers=auth(client, "user_0"))
    assert r.status_code == 200
    body = r.json()
    assert {"recommendations", "method", "stage", "latency_target", "timestamp"} <= set(body)
    assert len(body["recommendations"]) == 4
    assert all(RECOMMENDATION_FIELDS <= set(rec) for rec in body["recommendations"])
    assert body["timestamp"] == "2025-03-01T12:00:00Z"


def test_full_answers_recommendations_deals_profile_strategy(client):
    r = client.post(f"{PREFIX}/full", json={"user_id": "user_0", "num_recommendations": 6, "include_deals": True},
                    headers=auth(client, "user_0"))
    assert r.status_code == 200
    body = r.json()
    assert body["strategy"] == "hybrid_enhanced" and body["timestamp"] == "2025-03-01T12:00:00Z"
    assert len(body["recommendations"]) == 6
    assert PROFILE_FIELDS <= set(body["user_profile"])
    assert body["deals"], "user_0 of the small world gets deals"
    for deal in body["deals"]:
        assert DEAL_FIELDS <= set(deal)
        expiry = pd.Timestamp(deal["deal_expiry"])
        assert deal["deal_expiry"].endswith("Z") and NOW < expiry <= NOW + pd.Timedelta(days=8)
    assert body.get("deals_retry_after_seconds") is None


def test_deals_segments_demo_flow_model_info(client):
    r = client.get(f"{PREFIX}/deals/user_0", params={"num_deals": 3}, headers=auth(client, "user_0"))
    assert r.status_code == 200 and r.json()["num_deals"] <= 3
    assert all(DEAL_FIELDS <= set(d) for d in r.json()["deals"])
    r = client.get(f"{PREFIX}/segments", headers=auth(client, "admin"))
    assert r.status_code == 200
    segments = r.json()["user_segments"]
    assert segments and all({"size", "avg_age", "dominant_region", "dominant_age_group", "avg_price_sensitivity",
                             "dominant_spending_tier"} <= set(s) for s in segments.values())
    assert r.json()["clustering_info"]["n_clusters"] == len(segments)
    r = client.get(f"{PREFIX}/demo-flow", headers=auth(client, "user_1"))
    assert r.status_code == 200 and r.json()["user_id"] == "user_1"
    assert set(r.json()["stages"]) == {"stage_1", "stage_2", "stage_3"}
    r = client.get(f"{PREFIX}/model-info", headers=auth(client, "admin"))
    assert r.status_code == 200 and r.json()["trained"] is True and r.json()["batch_job"] is None


def test_unknown_user_gets_the_fallback(client):
    r = client.post(f"{PREFIX}/realtime", json={"user_id": "stranger_42", "num_recommendations": 3},
                    headers=auth(client, "stranger"))
    assert r.status_code == 200 and r.json()["method"] == "demographic_fallback"
    assert len(r.json()["recommendations"]) == 3
    r = client.post(f"{PREFIX}/full", json={"user_id": "stranger_42"}, headers=auth(client, "stranger"))
    assert r.status_code == 200 and r.json()["deals"] == [] and r.json()["user_profile"]["region"] is None


# ---------------------------------------------------------------------------- security
@pytest.mark.parametrize("header", [None, "Bearer", "Bearer nonsense", "Bearer 0123456789abcdef.wrong", "Basic abc"])
def test_no_or_unknown_token_is_401(client, header):
    headers = {} if header is None else {"Authorization": header}
    r = client.post(f"{PREFIX}/realtime", json={"user_id": "user_0"}, headers=headers)
    assert r.status_code == 401 and r.json()["detail"]
    assert r.headers["www-authenticate"] == "Bearer"


def test_a_user_token_reads_only_its_own_user(client):
    h = auth(client, "user_0")
    for response in (
        client.post(f"{PREFIX}/realtime", json={"user_id": "user_1"}, headers=h),
        client.post(f"{PREFIX}/full", json={"user_id": "user_1"}, headers=h),
        client.get(f"{PREFIX}/deals/user_1", headers=h),
        client.get(f"{PREFIX}/demo-flow", params={"user_id": "user_1"}, headers=h),
    ):
        assert response.status_code == 403
        assert "may read only" in response.json()["detail"]
        assert "region" not in response.text
    r = client.post(f"{PREFIX}/full", json={"user_id": "user_1"}, headers=auth(client, "admin"))
    assert r.status_code == 200 and r.json()["user_id"] == "user_1"


@pytest.mark.parametrize("method, path", [
    ("get", "/segments"), ("get", "/model-info"), ("post", "/batch-process"), ("post", "/train"),
    ("get", "/jobs/batch-process"),
])
def test_admin_paths_refuse_a_user_token(client, method, path):
    r = getattr(client, method)(f"{PREFIX}{path}", headers=auth(client, "user_0"))
    assert r.status_code == 403 and "admin" in r.json()["detail"]


def test_events_need_an_admin_token(client):
    event = {"user_id": "user_0", "product_id": "product_1", "event_type": "view", "timestamp": "2024-12-30T00:00:00Z"}
    r = client.post(f"{PREFIX}/events", json={"events": [event]}, headers=auth(client, "user_0"))
    assert r.status_code == 403


def test_keys_add_prints_the_token_once_and_stores_only_its_hash(tmp_path, capsys):
    path = tmp_path / "keys.json"
    assert cli_main(["keys", "add", "--user", "user_7", "--file", str(path)]) == 0
    assert cli_main(["keys", "add", "--user", "ops", "--admin", "--file", str(path)]) == 0
    tokens = capsys.readouterr().out.split()
    assert len(tokens) == 2
    stored = path.read_text()
    assert all(token not in stored and token.split(".")[1] not in stored for token in tokens)
    assert (path.stat().st_mode & 0o777) == 0o600
    store = KeyStore.load(path)
    user, admin = (store.authenticate(t) for t in tokens)
    assert (user.user_id, user.admin, admin.admin) == ("user_7", False, True)
    assert store.authenticate(tokens[0][:-1] + ("A" if tokens[0][-1] != "A" else "B")) is None
    assert {k["user_id"] for k in json.loads(stored)["keys"]} == {"user_7", "ops"}


def test_tokens_never_appear_in_logs(client, caplog):
    caplog.set_level(logging.DEBUG)
    client.post(f"{PREFIX}/realtime", json={"user_id": "user_0"}, headers=auth(client, "user_0"))
    client.post(f"{PREFIX}/realtime", json={"user_id": "user_1"}, headers=auth(client, "user_0"))
    client.post(f"{PREFIX}/realtime", json={"user_id": "user_0"}, headers={"Authorization": "Bearer leaked.secret"})
    text = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert client.tokens["user_0"] not in text and "leaked.secret" not in text


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("body, field", [
    ({"user_id": "user_0", "num_recommendations": -1}, "num_recommendations"),
    ({"user_id": "user_0", "num_recommendations": 0}, "num_recommendations"),
    ({"user_id": "user_0", "num_recommendations": 10**9}, "num_recommendations"),
    ({"user_id": "user_0", "num_recommendations": "5"}, "num_recommendations"),
    ({"user_id": "user_0", "num_recommendations": 2.5}, "num_recommendations"),
    ({"user_id": "user 0"}, "user_id"),
    ({"user_id": ""}, "user_id"),
    ({"user_id": "u" * 129}, "user_id"),
    ({"user_id": 17}, "user_id"),
    ({"num_recommendations": 3}, "user_id"),
    ({"user_id": "user_0", "include_deals": "yes"}, "include_deals"),
    ({"user_id": "user_0", "colour": "red"}, "colour"),
])
def test_bad_bodies_are_422_naming_the_field(client, body, field):
    path = "/full" if "include_deals" in body else "/realtime"
    r = client.post(f"{PREFIX}{path}", json=body, headers=auth(client, "admin"))
    assert r.status_code == 422
    assert any(error["loc"][-1] == field for error in r.json()["detail"]), r.json()


def test_malformed_json_and_bad_deal_counts_are_422(client):
    h = {**auth(client, "admin"), "Content-Type": "application/json"}
    r = client.post(f"{PREFIX}/realtime", content=b'{"user_id": "user_0",', headers=h)
    assert r.status_code == 422 and r.json()["detail"]
    for num in (0, 1000, "many"):
        r = client.get(f"{PREFIX}/deals/user_0", params={"num_deals": num}, headers=auth(client, "user_0"))
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "num_deals"]


def test_bad_events_are_422_naming_the_field_and_change_nothing(client):
    h = auth(client, "admin")
    good = {"user_id": "fresh_1", "product_id": "product_1", "event_type": "view", "timestamp": "2024-12-30T00:00:00Z"}
    cases = [({**good, "product_id": "no_such_product"}, "product_id"), ({**good, "event_type": "stare"}, "event_type"),
             ({**good, "timestamp": "yesterday"}, "timestamp"), ({**good, "event_type": "review"}, "events"),
             ({**good, "timestamp": "9999-01-01T00:00:00Z"}, "timestamp")]
    for event, field in cases:
        r = client.post(f"{PREFIX}/events", json={"events": [good, event]}, headers=h)
        assert r.status_code == 422, event
        assert any(field in map(str, e["loc"]) for e in r.json()["detail"]), r.json()
    r = client.post(f"{PREFIX}/realtime", json={"user_id": "fresh_1"}, headers=h)
    assert r.json()["method"] == "demographic_fallback"  # nothing of the refused batches was applied


# ---------------------------------------------------------------------------- limits
def test_deals_past_the_rate_limit_are_429_with_retry_after(client):
    h = auth(client, "user_0")
    limit = client.app.state.service.engine.config.deals.rate_limit_requests
    codes = [client.get(f"{PREFIX}/deals/user_0", headers=h).status_code for _ in range(limit)]
    assert codes == [200] * limit
    r = client.get(f"{PREFIX}/deals/user_0", headers=h)
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) >= 1 and r.json()["retry_after_seconds"] > 0
    assert "rate limit" in r.json()["detail"]
    r = client.post(f"{PREFIX}/full", json={"user_id": "user_0", "num_recommendations": 5}, headers=h)
    assert r.status_code == 200
    assert len(r.json()["recommendations"]) == 5 and r.json()["deals"] == []
    assert r.json()["deals_retry_after_seconds"] > 0


# ---------------------------------------------------------------------------- live events
def test_events_count_at_once_in_stage_1(client):
    h = auth(client, "admin")
    before = client.post(f"{PREFIX}/realtime", json={"user_id": "newcomer"}, headers=h).json()
    assert before["method"] == "demographic_fallback"
    events = [{"user_id": "newcomer", "product_id": "product_3", "event_type": "purchase",
               "timestamp": "2024-12-30T10:00:00+01:00"},
              {"user_id": "newcomer", "product_id": "product_4", "event_type": "review", "rating": 5,
               "timestamp": "2024-12-30T11:00:00"}]
    r = client.post(f"{PREFIX}/events", json={"events": events}, headers=h)
    assert r.status_code == 200
    assert r.json() | {"entry_id": None} == {"events": 2, "users_updated": 1, "new_users": ["newcomer"],
                                             "purchases": 1, "shared": False, "durable": False, "entry_id": None}
    after = client.post(f"{PREFIX}/realtime", json={"user_id": "newcomer"}, headers=h).json()
    assert after["method"] == "realtime_knn"
    # the purchase is excluded at once; the reviewed product was not bought, and the k-NN keeps each
    # product's similarity to itself (KNNConfig.self_similarity), so it may come back
    assert "product_3" not in {rec["product_id"] for rec in after["recommendations"]}


# ---------------------------------------------------------------------------- background jobs
def _wait_job(client, kind: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"{PREFIX}/jobs/{kind}", headers=auth(client, "admin")).json()
        if job["status"] != "running":
            return job
        time.sleep(0.05)
    raise AssertionError(f"{kind} job still running after {timeout} s")


def test_batch_process_swaps_in_a_new_version_while_requests_keep_being_answered(client):
    h = auth(client, "admin")
    before = client.get(f"{PREFIX}/model-info", headers=h).json()["served_batch_version"]
    codes: list[int] = []
    stop = threading.Event()

    def load() -> None:
        i = 0
        while not stop.is_set():
            body = {"user_id": f"user_{i % 50}", "num_recommendations": 5, "include_deals": False}
            codes.append(client.post(f"{PREFIX}/full", json=body, headers=h).status_code)
            i += 1

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    r = client.post(f"{PREFIX}/batch-process", headers=h)
    assert r.status_code == 202 and r.json()["job"]["status"] == "running"
    job = _wait_job(client, "batch-process")
    stop.set()
    for t in threads:
        t.join()
    assert job["status"] == "completed", job
    assert codes and set(codes) == {200}
    info = client.get(f"{PREFIX}/model-info", headers=h).json()
    assert info["served_batch_version"] == job["result"]["version"] != before
    assert info["batch_job"]["status"] == "completed"


def test_a_failed_batch_job_leaves_the_previous_model_and_says_why(client, monkeypatch):
    import recsys.serving.engine_batch as engine_batch

    def broken(*args, **kwargs):
        raise OSError("disk full while writing svd.parquet")

    monkeypatch.setattr(engine_batch, "run_batch", broken)
    h = auth(client, "admin")
    before = client.get(f"{PREFIX}/model-info", headers=h).json()["served_batch_version"]
    assert client.post(f"{PREFIX}/batch-process", headers=h).status_code == 202
    job = _wait_job(client, "batch-process")
    assert job["status"] == "failed" and "disk full" in job["error"]
    info = client.get(f"{PREFIX}/model-info", headers=h).json()
    assert info["served_batch_version"] == before and info["batch_job"]["error"] == job["error"]
    assert client.post(f"{PREFIX}/realtime", json={"user_id": "user_0"}, headers=h).status_code == 200


def test_train_replaces_the_engine_and_replays_the_live_events(client):
    h = auth(client, "admin")
    event = {"user_id": "late_user", "product_id": "product_9", "event_type": "cart", "timestamp": "2024-12-30T00:00:00"}
    assert client.post(f"{PREFIX}/events", json={"events": [event]}, headers=h).status_code == 200
    old = client.app.state.service.engine
    assert client.post(f"{PREFIX}/train", headers=h).status_code == 202
    job = _wait_job(client, "train")
    assert job["status"] == "completed" and job["result"]["events_replayed"] == 1, job
    assert client.app.state.service.engine is not old
    r = client.post(f"{PREFIX}/realtime", json={"user_id": "late_user"}, headers=h)
    assert r.json()["method"] == "realtime_knn"


def test_no_job_yet_is_404(client):
    r = client.get(f"{PREFIX}/jobs/train", headers=auth(client, "admin"))
    assert r.status_code == 404 and "no train job" in r.json()["detail"]


# ---------------------------------------------------------------------------- operations
def test_health_metrics_openapi_docs(client):
    assert client.get("/health").json()["status"] == "ok"
    client.post(f"{PREFIX}/realtime", json={"user_id": "user_0"}, headers=auth(client, "user_0"))
    client.post(f"{PREFIX}/realtime", json={"user_id": "user_0", "num_recommendations": 0}, headers=auth(client, "user_0"))
    text = client.get("/metrics").text
    assert 'recsys_http_requests_total{method="POST",path="/recommendations/enhanced/realtime",status="200"} 1.0' in text
    assert 'recsys_http_requests_total{method="POST",path="/recommendations/enhanced/realtime",status="422"} 1.0' in text
    assert 'recsys_http_request_duration_seconds_bucket{le="0.05",method="POST",path="/recommendations/enhanced/realtime"}' in text
    schema = client.get("/openapi.json").json()
    paths = set(schema["paths"])
    for path in ("/realtime", "/full", "/batch-process", "/deals/{user_id}", "/segments", "/demo-flow", "/model-info",
                 "/train", "/events"):
        assert f"{PREFIX}{path}" in paths
    assert schema["components"]["schemas"]["RealtimeRequest"]["properties"]["num_recommendations"]["maximum"] == 100
    assert client.get("/docs").status_code == 200


# ---------------------------------------------------------------------------- single-flight reads of the shared log
def test_concurrent_syncs_share_reads_and_miss_no_entry_appended_before_them(model_dir):
    import asyncio

    from recsys.service.history import LocalEventLog
    from recsys.service.state import ServiceState

    class SlowLog(LocalEventLog):
        """An in-process log that answers like a remote one: asynchronously, slowly."""

        reads = 0
        read_now = None  # no synchronous fast path

        async def read_after(self, cursor):
            SlowLog.reads += 1
            snapshot = await super().read_after(cursor)  # taken when the read starts
            await asyncio.sleep(0.05)
            return snapshot

    async def scenario() -> tuple[int, int]:
        state = ServiceState(load_model(model_dir), SlowLog(), lambda: NOW)
        first = [asyncio.create_task(state.sync()) for _ in range(20)]
        await asyncio.sleep(0.01)  # the first read is in flight; an event arrives; more requests come
        await state.event_log.append([{"user_id": "late", "product_id": "product_1", "event_type": "view",
                                       "timestamp": "2024-12-30T00:00:00", "rating": None}])
        second = [asyncio.create_task(state.sync()) for _ in range(20)]
        await asyncio.gather(*first, *second)
        return SlowLog.reads, state.events_applied

    reads, applied = asyncio.run(scenario())
    assert reads == 2  # 40 concurrent requests, two reads
    assert applied == 1  # the requests after the append saw it


def test_serve_refuses_bad_options_naming_them(model_dir, tmp_path, capsys):
    keys = tmp_path / "keys.json"
    assert cli_main(["serve", "--model", model_dir, "--api-keys", str(keys)]) == 2
    assert "keys file" in capsys.readouterr().err
    assert cli_main(["keys", "add", "--user", "ops", "--admin", "--file", str(keys)]) == 0
    assert cli_main(["serve", "--model", model_dir, "--api-keys", str(keys), "--workers", "2"]) == 2
    assert "--redis" in capsys.readouterr().err
    assert cli_main(["serve", "--model", str(tmp_path), "--api-keys", str(keys)]) == 2
    assert "recsys train" in capsys.readouterr().err


def test_recsys_train_writes_a_model_directory_that_load_model_serves(model_dir, tmp_path):
    """``recsys train --out`` writes ``engine/`` (save format 3: CURRENT + sNNNNNN/) and ``artifacts/``;
    ``load_model`` loads the engine with the model's artifacts directory and the service clock."""
    engine_dir = Path(model_dir) / "engine"
    current = (engine_dir / "CURRENT").read_text().strip()
    assert (engine_dir / current / "manifest.json").is_file()
    engine = load_model(model_dir, clock=lambda: NOW)
    assert engine.artifacts_dir == (Path(model_dir) / "artifacts").resolve()
    assert engine.batch_version == (Path(model_dir) / "artifacts" / "LATEST").read_text().strip()
    assert pd.Timestamp(engine.realtime("user_0", 3)["timestamp"]) == NOW
    with pytest.raises(FileNotFoundError, match="engine/CURRENT"):
        load_model(tmp_path)
