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

from recsys.config import DEFAULT_CONFIG
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
        assert _method(client, "third") == "realtime_knn"  # a read applies what was stored before it
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


@pytest.mark.processes
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


@pytest.fixture()
def restartable_redis():
    """A redis-server without persistence on a fixed free port; ``restart()`` empties it."""
    import subprocess

    from service_processes import free_port

    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no redis-server binary: install it (apt-get install -y redis-server; `make redis`)")
    port = free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    state = {}

    def start():
        import redis

        state["process"] = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=port)
        for _ in range(200):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def restart():
        state["process"].kill()
        state["process"].wait()
        start()

    start()
    yield f"redis://127.0.0.1:{port}/0", restart
    state["process"].kill()
    state["process"].wait()


@pytest.mark.processes
def test_two_workers_on_postgres_survive_sigkill_and_an_empty_redis(model_copy, tmp_path, postgres_url,
                                                                      restartable_redis):
    from recsys.service.auth import add_key_main

    redis_url, restart_redis = restartable_redis
    keys = tmp_path / "keys.json"
    h = {"Authorization": f"Bearer {add_key_main('ops', True, keys)}"}
    database = _fresh_postgres(postgres_url)
    args = dict(workers=2, redis_url=redis_url, extra=("--database", database))

    def fresh(method, url, **kw):  # a new connection each time: requests spread over both workers
        with httpx.Client(timeout=60) as client:
            return client.request(method, url, headers=h, **kw)

    def methods(base, user):
        seen = {}
        for _ in range(60):
            answer = fresh("POST", f"{base}{PREFIX}/realtime", json={"user_id": user})
            if answer.status_code == 503:  # the first use of a connection to the restarted Redis; retry after
                assert answer.headers["retry-after"] == "1"
                continue
            assert answer.status_code == 200, answer.text
            seen[fresh("GET", f"{base}/health").json()["pid"]] = answer.json()["method"]
        return seen

    with serve_process(model_copy, keys, log_path=tmp_path / "serve1.log", **args) as (base, process):
        events = [_view("pg-user", p) for p in ("product_3", "product_4", "product_5")]
        assert fresh("POST", f"{base}{PREFIX}/events", json={"events": events}).json()["durable"] is True
        seen = methods(base, "pg-user")
        assert len(seen) == 2 and set(seen.values()) == {"realtime_knn"}
        restart_redis()
        assert set(methods(base, "pg-user").values()) == {"realtime_knn"}
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    with serve_process(model_copy, keys, log_path=tmp_path / "serve2.log", **args) as (base, _):
        seen = methods(base, "pg-user")
        assert len(seen) == 2 and set(seen.values()) == {"realtime_knn"}
        assert fresh("POST", f"{base}{PREFIX}/train").status_code == 202
        for _ in range(1200):
            job = fresh("GET", f"{base}{PREFIX}/jobs/train").json()
            if job["status"] != "running":
                break
            time.sleep(0.1)
        assert job["status"] == "completed", job
        assert job["result"]["training_data"]["cutoff_event_id"] == 3
        infos = {}
        for _ in range(200):
            info = fresh("GET", f"{base}{PREFIX}/model-info").json()
            infos[info["worker_pid"]] = info["training_data"]
            if len(infos) == 2 and all(i["cutoff_event_id"] == 3 for i in infos.values()):
                break
            time.sleep(0.1)
        assert len(infos) == 2 and {i["cutoff_event_id"] for i in infos.values()} == {3}
        assert set(methods(base, "pg-user").values()) == {"realtime_knn"}


def _fresh_postgres(url: str) -> str:
    import uuid

    import psycopg

    name = f"s_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return url.rsplit("/", 1)[0] + f"/{name}"


def test_batch_every_runs_the_loop_once_per_interval(model_copy, tmp_path):
    from recsys.service.loop import parse_interval

    assert (parse_interval("1h"), parse_interval("30m"), parse_interval("90"), parse_interval("1.5s")) == (
        3600.0, 1800.0, 90.0, 1.5)
    with pytest.raises(ValueError, match="positive duration"):
        parse_interval("soon")
    database = f"sqlite:///{tmp_path}/events.db"
    keys = KeyStore()
    token = keys.add("ops", admin=True)
    engine, version = load_current(model_copy, clock=lambda: NOW)
    app = create_app(engine, keys, clock=lambda: NOW, model_dir=model_copy, engine_version=version,
                     store=open_store(database, engine.config), base_dir=ensure_base(model_copy, engine, version),
                     batch_every=1.0)
    with TestClient(app) as client, open_store(database) as store:
        client.headers["Authorization"] = f"Bearer {token}"
        client.post(f"{PREFIX}/events", json={"events": [_view("scheduled")]})
        for _ in range(600):
            run = store.last_batch_run()
            if run is not None:
                break
            time.sleep(0.1)
        assert run is not None and run["cutoff_event_id"] == 1 and run["info"]["kind"] == "batch-process"
        assert _wait_job(client, "batch-process")["status"] == "completed"
        info = client.get(f"{PREFIX}/model-info").json()["training_data"]
        assert info["cutoff_event_id"] == 1


def test_new_users_without_reading_the_store_unless_another_worker_wrote(model_copy, tmp_path):
    database = f"sqlite:///{tmp_path}/events.db"
    with _client(model_copy, database) as a, _client(model_copy, database) as b:
        feed = a.app.state.service.feed
        post = a.post(f"{PREFIX}/events", json={"events": [_view("n1"), _view("n1", "product_4")]}).json()
        assert post["new_users"] == ["n1"]
        again = a.post(f"{PREFIX}/events", json={"events": [_view("n1"), _view("n2")]}).json()
        assert again["new_users"] == ["n2"] and feed.cursor == 0  # known from its own posts: the store not read
        assert b.post(f"{PREFIX}/events", json={"events": [_view("n1"), _view("n3")]}).json()["new_users"] == ["n3"]
        store, scans = a.app.state.service.store, []
        scan = store.users_between
        store.users_between = lambda after, before: scans.append((after, before)) or scan(after, before)
        # another worker wrote ids 5-6: the next post of this one reads which users those name, once
        assert a.post(f"{PREFIX}/events", json={"events": [_view("n3"), _view("n4")]}).json()["new_users"] == ["n4"]
        assert a.post(f"{PREFIX}/events", json={"events": [_view("n3"), _view("n5")]}).json()["new_users"] == ["n5"]
        assert scans == [(4, 7)]  # ids 5-6 only (1-4 are its own), before its 7-8; no scan for 9-10
        assert _method(a, "n4") == "realtime_knn" and feed.cursor == 10  # a read applies every stored event
        assert a.get("/health").json()["events_applied"] == 10


def _latest(model):
    return (model / "artifacts" / "LATEST").read_text().strip()


def test_a_train_that_dies_after_its_save_leaves_a_loadable_consistent_model(model_copy, tmp_path, monkeypatch):
    import recsys.service.state_store as state_store
    from recsys.serving import model_dir as model_dir_module

    database = f"sqlite:///{tmp_path}/events.db"
    before = _latest(model_copy)

    def dying(engine, model, staging):  # the process dies between the engine save and the Stage 2 publication
        def crash():
            raise RuntimeError("killed after the engine save")

        return model_dir_module.save_staged(engine, model, staging, fail_after_save=crash)

    with _client(model_copy, database) as client:
        client.post(f"{PREFIX}/events", json={"events": [_view("crash-user"), _view("crash-user", "product_4")]})
        monkeypatch.setattr(state_store, "save_staged", dying)
        client.post(f"{PREFIX}/train")
        assert "killed after the engine save" in _wait_job(client, "train")["error"]
    monkeypatch.undo()
    assert _latest(model_copy) == before  # the new Stage 2 version was never published ...
    engine, version = load_current(model_copy)  # ... and the load rolls it forward from the save
    assert version == "s000002" and engine.training_data()["cutoff_event_id"] == 2
    assert _latest(model_copy) == engine.batch_version != before
    assert not list(model_copy.glob(".tmp-*"))
    with _client(model_copy, database) as client:  # serves, trains and batches on as usual
        assert _method(client, "crash-user") == "realtime_knn"
        client.post(f"{PREFIX}/batch-process")
        assert _wait_job(client, "batch-process")["status"] == "completed"
        served = client.get(f"{PREFIX}/model-info").json()["served_batch_version"]
        assert _latest(model_copy) == served


def test_a_failed_training_leaves_the_artifacts_untouched(model_copy, tmp_path, monkeypatch):
    from recsys.stage2 import job

    before = sorted(p.name for p in (model_copy / "artifacts").iterdir())

    def broken(*args, **kwargs):
        raise RuntimeError("segmentation failed")

    with _client(model_copy, f"sqlite:///{tmp_path}/events.db") as client:
        monkeypatch.setitem(job.STEPS, "segments", broken)
        client.post(f"{PREFIX}/train")
        failed = _wait_job(client, "train")
    assert failed["status"] == "failed" and "segmentation failed" in failed["error"]
    assert sorted(p.name for p in (model_copy / "artifacts").iterdir()) == before
    assert (model_copy / "engine" / "CURRENT").read_text().strip() == "s000001"
    assert not list(model_copy.glob(".tmp-*"))


def test_a_new_product_is_recommended_by_content_on_every_worker_at_once(model_copy, tmp_path, small_dataset):
    database = f"sqlite:///{tmp_path}/events.db"
    user = small_dataset.events["user_id"].value_counts().index[0]
    top = small_dataset.events[small_dataset.events["user_id"] == user]["product_id"].value_counts().index[0]
    like = small_dataset.products.set_index("product_id").loc[top]
    product = {"product_id": "new-kettle", "name": like["name"], "category": like["category"],
               "description": like["description"], "price": 19.5, "cost": 9.0, "stock": 3}
    with _client(model_copy, database) as a, _client(model_copy, database) as b:
        assert a.put(f"{PREFIX}/products", json={"products": [product]}).status_code == 200
        for client in (a, b):  # the writer at once; the other worker at its next answer (it reads the store)
            answer = client.post(f"{PREFIX}/realtime", json={"user_id": user, "num_recommendations": 5}).json()
            assert answer["recommendations"][-1]["product_id"] == "new-kettle"
        assert a.post(f"{PREFIX}/events", json={"events": [_view("fan", "new-kettle")]}).status_code == 200
        a.post(f"{PREFIX}/train")
        assert _wait_job(a, "train")["status"] == "completed"  # now in the catalogue: Stage 1 and the hybrid
        assert a.get(f"{PREFIX}/model-info").json()["training_data"]["products"] == small_dataset.n_products + 1


def test_with_a_store_sync_reads_only_the_published_versions_from_the_log(model_copy, tmp_path):
    from recsys.service.history import LocalEventLog

    class NoStreamLog(LocalEventLog):
        """A shared log like Redis (no in-process read); its event stream must not be read with a store."""

        read_now = None
        versions_read = 0

        async def read_after(self, cursor):
            raise AssertionError("the event stream was read although the events come from the store")

        async def read_versions(self):
            self.versions_read += 1
            return await super().read_versions()

    keys = KeyStore()
    token = keys.add("ops", admin=True)
    engine, version = load_current(model_copy, clock=lambda: NOW)
    log = NoStreamLog()
    app = create_app(engine, keys, clock=lambda: NOW, model_dir=model_copy, engine_version=version, event_log=log,
                     store=open_store(f"sqlite:///{tmp_path}/events.db", engine.config),
                     base_dir=ensure_base(model_copy, engine, version))
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        client.post(f"{PREFIX}/events", json={"events": [_view("v1"), _view("v1", "not-yet")]})  # 422: unknown
        client.put(f"{PREFIX}/products", json={"products": [{"product_id": "stored-only", "price": 4.0}]})
        client.post(f"{PREFIX}/events", json={"events": [_view("v1"), _view("v1", "stored-only")]})
        assert _method(client, "v1") == "realtime_knn" and log.versions_read > 0
        health = client.get("/health").json()
        # what answers use: the event of a product not in the served catalogue is stored, not applied
        assert health["events_applied"] == 1 and client.app.state.service.events_not_in_catalogue == 1


def test_a_new_product_is_in_the_full_answer_and_the_deals_at_once(model_copy, tmp_path, small_dataset):
    """A product upserted with text like a user's most viewed one: the last place of their Stage 3 answer
    and, for a user whose stronger deals leave room, a deal; stock 0 removes both, a cost above price -
    margin removes the deal."""
    events = small_dataset.events
    views = events[events["event_type"] == "view"]
    products = small_dataset.products.set_index("product_id")

    def like(user):
        model = products.loc[views[views["user_id"] == user]["product_id"].value_counts().index[0]]
        price = float(products.loc[products["category"] == model["category"], "price"].min())
        return {"product_id": "new-desk", "name": model["name"], "category": model["category"],
                "description": model["description"], "price": price, "cost": round(0.4 * price, 2), "stock": 5}

    def answers(client, user):
        full = client.post(f"{PREFIX}/full", json={"user_id": user, "num_recommendations": 10}).json()
        deals = client.get(f"{PREFIX}/deals/{user}", params={"num_deals": 7}).json()["deals"]
        return full["recommendations"], {d["product_id"]: d for d in deals}

    with _client(model_copy, f"sqlite:///{tmp_path}/events.db") as client:
        for user in views["user_id"].value_counts().index[:20]:
            product = like(user)
            assert client.put(f"{PREFIX}/products", json={"products": [product]}).status_code == 200
            recommendations, deals = answers(client, user)
            if "new-desk" in deals and recommendations[-1]["product_id"] == "new-desk":
                break
        else:
            raise AssertionError("no user of the 20 most viewing got a new product like their favourite both in "
                                 "their full answer (content cosine >= 0.3) and a deal")
        assert recommendations[-1]["reason"].startswith("New product similar to")
        deal = deals["new-desk"]
        assert deal["deal_reason"].startswith("New product similar to") and deal["original_price"] == product["price"]
        assert deal["deal_price"] >= product["cost"] * (1 + DEFAULT_CONFIG.deals.min_margin) - 1e-6
        client.put(f"{PREFIX}/products", json={"products": [{"product_id": "new-desk", "stock": 0}]})
        recommendations, deals = answers(client, user)
        assert "new-desk" not in deals and "new-desk" not in [r["product_id"] for r in recommendations]
        client.put(f"{PREFIX}/products", json={"products": [{"product_id": "new-desk", "stock": 5,
                                                             "cost": 0.99 * product["price"]}]})
        recommendations, deals = answers(client, user)
        assert recommendations[-1]["product_id"] == "new-desk" and "new-desk" not in deals
