"""The service on the event store: durable events, restarts, live products and profiles, the loop."""

from __future__ import annotations

import os
import shutil
import signal
import time

import httpx
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from service_processes import serve_process

from recsys.service import PREFIX, KeyStore, create_app
from recsys.serving.model_dir import ensure_base, load_current
from recsys.store import open_store

NOW = pd.Timestamp("2025-03-01T12:00:00Z")


@pytest.fixture()
def model_copy(model_dir, tmp_path):
    """A private copy of the module's model directory (train jobs write into it)."""
    return shutil.copytree(model_dir, tmp_path / "model")


def _client(model, database):
    keys = KeyStore()
    token = keys.add("ops", admin=True)
    engine, version = load_current(model, clock=lambda: NOW)
    store = open_store(database, engine.config)
    app = create_app(engine, keys, clock=lambda: NOW, model_dir=model, engine_version=version, store=store,
                     base_dir=ensure_base(model, engine, version))
    client = TestClient(app)
    client.headers["Authorization"] = f"Bearer {token}"
    return client


def _view(user, product="product_3", ts="2024-12-30T10:00:00"):
    return {"user_id": user, "product_id": product, "event_type": "view", "timestamp": ts}


def _method(client, user):
    return client.post(f"{PREFIX}/realtime", json={"user_id": user}).json()["method"]


def _wait_job(client, kind):
    for _ in range(600):
        job = client.get(f"{PREFIX}/jobs/{kind}").json()
        if job["status"] != "running":
            return job
        time.sleep(0.1)
    raise TimeoutError(kind)


def test_events_survive_a_restart_and_train_counts_them(model_copy, tmp_path):
    database = f"sqlite:///{tmp_path}/events.db"
    with _client(model_copy, database) as client:
        answer = client.post(f"{PREFIX}/events", json={"events": [_view("newcomer"), _view("newcomer", "product_4")]})
        assert answer.status_code == 200 and answer.json()["durable"] is True
        assert _method(client, "newcomer") == "realtime_knn"
    with _client(model_copy, database) as client:  # a restart: the store is replayed before the first answer
        assert _method(client, "newcomer") == "realtime_knn"
        assert client.get("/health").json()["events_applied"] == 2
        before = client.get(f"{PREFIX}/model-info").json()["training_data"]
        assert before["cutoff_event_id"] == 0
        assert client.post(f"{PREFIX}/train").status_code == 202
        job = _wait_job(client, "train")
        assert job["status"] == "completed", job
        info = client.get(f"{PREFIX}/model-info").json()
        assert info["training_data"]["events"] == before["events"] + 2
        assert info["training_data"]["users"] == before["users"] + 1
        assert info["training_data"]["cutoff_event_id"] == 2
        assert client.get("/health").json()["events_applied"] == 0  # entries before the cutoff: not replayed
        assert _method(client, "newcomer") == "realtime_knn"  # now from the trained model
        client.post(f"{PREFIX}/events", json={"events": [_view("third")]})
        assert client.get("/health").json()["events_applied"] == 1
    with open_store(database) as store:
        assert store.last_batch_run()["cutoff_event_id"] == 2


def test_stock_zero_removes_a_deal_and_profiles_apply_at_once(model_copy, tmp_path):
    with _client(model_copy, f"sqlite:///{tmp_path}/events.db") as client:
        deals = client.get(f"{PREFIX}/deals/user_0").json()["deals"]
        product = deals[0]["product_id"]
        assert client.put(f"{PREFIX}/products", json={"products": [{"product_id": product, "stock": 0}]}).json() == {
            "written": 1}
        assert product not in [d["product_id"] for d in client.get(f"{PREFIX}/deals/user_0").json()["deals"]]
        fallback = client.post(f"{PREFIX}/realtime", json={"user_id": "fresh"}).json()["recommendations"]
        assert client.put(f"{PREFIX}/profiles", json={"profiles": [
            {"user_id": "fresh", "region": "Asia", "age_group": "senior", "spending_tier": "premium"}]}).status_code == 200
        profiled = client.post(f"{PREFIX}/realtime", json={"user_id": "fresh"}).json()["recommendations"]
        assert [r["product_id"] for r in profiled] != [r["product_id"] for r in fallback]
        bad = client.put(f"{PREFIX}/profiles", json={"profiles": [{"user_id": "fresh", "region": "Mars"}]})
        assert bad.status_code == 422 and "region" in str(bad.json()["detail"])
        bad = client.put(f"{PREFIX}/products", json={"products": [{"product_id": product, "price": -1}]})
        assert bad.status_code == 422
        # a new product: events on it are stored now, and it joins the catalogue at the next train
        assert client.post(f"{PREFIX}/events", json={"events": [_view("fresh", "brand-new")]}).status_code == 422
        client.put(f"{PREFIX}/products", json={"products": [{"product_id": "brand-new", "name": "Lamp",
                                                             "category": "Home", "price": 20.0, "stock": 4}]})
        assert client.post(f"{PREFIX}/events", json={"events": [_view("fresh", "brand-new")]}).status_code == 200
        client.post(f"{PREFIX}/train")
        assert _wait_job(client, "train")["status"] == "completed"
        info = client.get(f"{PREFIX}/model-info").json()["training_data"]
        assert info["products"] == 151 and info["cutoff_event_id"] == 1
        # the stock change survives the new model: stored rows are applied to it
        assert product not in [d["product_id"] for d in client.get(f"{PREFIX}/deals/user_0").json()["deals"]]


def test_a_second_batch_waits_for_the_stores_lock(model_copy, tmp_path):
    database = f"sqlite:///{tmp_path}/events.db"
    with _client(model_copy, database) as client, open_store(database) as other:
        with other.exclusive("batch", "another-machine") as mine:
            assert mine
            client.post(f"{PREFIX}/batch-process")
            job = _wait_job(client, "batch-process")
        assert job["status"] == "failed" and "batch lock" in job["error"]


def test_recsys_serve_loses_no_acknowledged_event_to_sigkill(model_copy, tmp_path):
    keys = tmp_path / "keys.json"
    from recsys.service.auth import add_key_main

    token = add_key_main("ops", True, keys)
    h = {"Authorization": f"Bearer {token}"}
    with serve_process(model_copy, keys, log_path=tmp_path / "serve1.log") as (base, process):
        for i in range(20):
            r = httpx.post(f"{base}{PREFIX}/events", headers=h, json={"events": [_view(f"killed-{i}")]})
            assert r.status_code == 200
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert (model_copy / "events.db").exists()
    with serve_process(model_copy, keys, log_path=tmp_path / "serve2.log") as (base, _):
        health = httpx.get(f"{base}/health").json()
        assert health["events_applied"] == 20
        answer = httpx.post(f"{base}{PREFIX}/realtime", headers=h, json={"user_id": "killed-19"}).json()
        assert answer["method"] == "realtime_knn"
