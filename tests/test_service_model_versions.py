"""A ``train`` job's engine reaches every worker: saved into the model directory, published, loaded by the others.

Two :class:`ServiceState` objects sharing one in-process log and one model
directory play two workers here (fast, deterministic); the same protocol over
Redis with two real uvicorn workers is in ``tests/test_service_workers.py``.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from recsys.cli import main as cli_main
from recsys.deals.rate_limit import RateLimitExceeded
from recsys.service import PREFIX, KeyStore, create_app
from recsys.service.history import LocalEventLog
from recsys.service.state import ServiceState
from recsys.serving.model_dir import current_version, load_current, load_model

NOW = pd.Timestamp("2025-03-01T12:00:00Z")
EVENT = {"user_id": "late_user", "product_id": "product_9", "event_type": "purchase",
         "timestamp": "2024-12-30T00:00:00", "rating": None}


@pytest.fixture(scope="module")
def trained_model(small_dataset, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("versions-model")
    small_dataset.save(root / "data")
    assert cli_main(["train", "--data", str(root / "data"), "--out", str(root / "model"), "--no-tune"]) == 0
    return root / "model"


@pytest.fixture()
def model(trained_model, tmp_path) -> Path:
    """A fresh copy per test: train jobs write into it."""
    return Path(shutil.copytree(trained_model, tmp_path / "model"))


def worker(model: Path, log: LocalEventLog) -> ServiceState:
    engine, version = load_current(model, clock=lambda: NOW)
    return ServiceState(engine, log, lambda: NOW, model_dir=model, engine_version=version)


async def train(state: ServiceState) -> dict:
    await state.start_job("train")
    await state.wait_jobs()
    return await state.job("train")


def test_a_trained_engine_is_saved_published_and_loaded_by_the_other_worker(model):
    async def scenario() -> None:
        log = LocalEventLog()
        a, b = worker(model, log), worker(model, log)
        assert a.engine_version == b.engine_version == "s000001"
        await a.append_events([EVENT])
        await b.sync()
        for _ in range(a.engine.config.deals.rate_limit_requests):  # b's user_0 uses up the deal limit
            await b.deals_batcher.submit(5, "user_0")
        job = await train(a)
        assert job["status"] == "completed" and job["result"]["engine_version"] == "s000002", job
        assert a.engine_version == current_version(model) == "s000002" and a.events_applied == 1
        old = b.engine
        await b.sync()  # sees the published version: loads it in the background ...
        assert b.engine is old and b.engine_version == "s000001"  # ... while still serving the old one
        await b.wait_engine_load()
        assert b.engine is not old and b.engine_version == "s000002" and b.engine_load_error is None
        assert b.events_applied == 1  # the log replayed once onto the loaded engine
        assert b.engine.realtime("late_user", 5) == a.engine.realtime("late_user", 5)
        assert b.engine.realtime("late_user", 5)["method"] == "realtime_knn"
        with pytest.raises(RateLimitExceeded):  # the worker's limiter counts for the new engine: the limit holds
            await b.deals_batcher.submit(5, "user_0")
        await b.sync()
        assert b.engine_version == "s000002" and b._engine_load.done()  # nothing more to load

    asyncio.run(scenario())
    saved = load_model(model, clock=lambda: NOW)  # the save is the trained model, without the live events
    assert saved.realtime("late_user", 5)["method"] == "demographic_fallback"


def test_a_failed_load_leaves_the_worker_on_its_model_and_says_why(model, monkeypatch):
    import recsys.service.state as state_module

    attempts = []

    def unmounted(*args, **kwargs):
        attempts.append(args)
        raise OSError("model directory not mounted on this machine")

    async def scenario() -> None:
        log = LocalEventLog()
        a, b = worker(model, log), worker(model, log)
        assert (await train(a))["status"] == "completed"
        monkeypatch.setattr(state_module, "load_current", unmounted)
        old = b.engine
        await b.sync()
        await b.wait_engine_load()
        assert b.engine is old and b.engine_version == "s000001"
        assert "s000002 not loaded: OSError: model directory not mounted" in b.engine_load_error
        await b.sync()
        await b.wait_engine_load()
        assert len(attempts) == 1  # not retried on every request; the next published version is
        assert b.engine.realtime("user_0", 3)["recommendations"]

    asyncio.run(scenario())


def test_a_train_job_whose_save_fails_changes_nothing_anywhere(model, monkeypatch):
    import recsys.service.state as state_module

    def disk_full(*args, **kwargs):
        raise OSError("disk full while writing matrix.npz")

    monkeypatch.setattr(state_module, "save_staged", disk_full)  # the train job's save (the crash-safe order)
    latest = (model / "artifacts" / "LATEST").read_text()

    async def scenario() -> None:
        log = LocalEventLog()
        a = worker(model, log)
        old = a.engine
        job = await train(a)
        assert job["status"] == "failed" and "disk full" in job["error"]
        assert a.engine is old and a.engine_version == "s000001" and log.read_now("0-0").engine_version is None

    asyncio.run(scenario())
    assert current_version(model) == "s000001"
    assert (model / "artifacts" / "LATEST").read_text() == latest  # the new Stage 2 version stayed staged


def test_service_reports_the_served_engine_version_and_keeps_the_deal_limit_over_a_train(model):
    keys = KeyStore()
    admin = {"Authorization": f"Bearer {keys.add('ops', admin=True)}"}
    user = {"Authorization": f"Bearer {keys.add('user_0')}"}
    engine = load_model(model, clock=lambda: NOW)
    with TestClient(create_app(engine, keys, clock=lambda: NOW, model_dir=model)) as client:
        info = client.get(f"{PREFIX}/model-info", headers=admin).json()
        assert info["served_engine_version"] == "s000001" and info["engine_load_error"] is None
        assert client.get("/health").json()["engine_version"] == "s000001"
        limit = engine.config.deals.rate_limit_requests
        codes = [client.get(f"{PREFIX}/deals/user_0", headers=user).status_code for _ in range(limit + 1)]
        assert codes == [200] * limit + [429]
        assert client.post(f"{PREFIX}/train", headers=admin).status_code == 202
        deadline = time.monotonic() + 120
        while (job := client.get(f"{PREFIX}/jobs/train", headers=admin).json())["status"] == "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert job["status"] == "completed", job
        info = client.get(f"{PREFIX}/model-info", headers=admin).json()
        assert info["served_engine_version"] == job["result"]["engine_version"] == "s000002"
        assert client.app.state.service.engine is not engine
        r = client.get(f"{PREFIX}/deals/user_0", headers=user)
        assert r.status_code == 429, "a train job must not reset the users' deal limits"
