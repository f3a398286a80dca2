"""Errors that say whose fault they are: invalid input is 422, a server fault a logged 500 without internals."""

from __future__ import annotations

import logging

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from recsys.deals.rate_limit import RateLimiter
from recsys.models.base import MAX_N, check_n
from recsys.service import PREFIX, KeyStore, create_app
from recsys.serving.catalogue import Catalogue
from recsys.serving.model_dir import load_model
from recsys.validation import InvalidRequest

NOW = pd.Timestamp("2025-03-01T12:00:00Z")
SECRET = "/srv/models/s000001/svd.parquet: index 17 out of range"  # what a 500 must not leak


@pytest.fixture()
def client(model_dir):
    keys = KeyStore()
    admin = keys.add("ops", admin=True)
    app = create_app(load_model(model_dir, clock=lambda: NOW), keys, clock=lambda: NOW,
                     rate_limiter=RateLimiter(2, 60.0))
    with TestClient(app) as test_client:
        test_client.headers["Authorization"] = f"Bearer {admin}"
        yield test_client


def _bug(*args, **kwargs):
    raise ValueError(SECRET)  # a plain ValueError from a bug, not an invalid request


@pytest.mark.parametrize(("method", "path", "body"), [
    ("post", "/realtime", {"user_id": "user_0"}),
    ("post", "/full", {"user_id": "user_0"}),
    ("get", "/demo-flow?user_id=user_0", None),
])
def test_a_bug_inside_the_engine_is_a_logged_500_without_internals(client, monkeypatch, caplog, method, path, body):
    monkeypatch.setattr(Catalogue, "records", _bug)  # deep inside every recommendation answer
    caplog.set_level(logging.ERROR, logger="recsys.service")
    kwargs = {"json": body} if body is not None else {}
    r = getattr(client, method)(f"{PREFIX}{path}", **kwargs)
    assert r.status_code == 500
    request_id = r.json()["request_id"]
    assert r.json() == {"detail": "internal error", "request_id": request_id} and len(request_id) == 32
    assert r.headers["x-request-id"] == request_id and SECRET not in r.text
    (record,) = [rec for rec in caplog.records if request_id in rec.getMessage()]
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert record.exc_info[0] is ValueError and SECRET in caplog.text  # the traceback is in the log
    assert 'status="500"' in client.get("/metrics").text  # counted like any answer


def test_an_invalid_request_raised_in_the_engine_is_422_naming_it(client, monkeypatch):
    def refuse(*args, **kwargs):
        raise InvalidRequest("num_recommendations must be at most 1000, got 5000")

    monkeypatch.setattr(Catalogue, "records", refuse)
    r = client.post(f"{PREFIX}/realtime", json={"user_id": "user_0"})
    assert r.status_code == 422 and r.json() == {"detail": "num_recommendations must be at most 1000, got 5000"}


@pytest.mark.parametrize("user_id", ["a b", "", "x" * 129, "user_0\n"])
def test_a_bad_user_id_is_422(client, user_id):
    r = client.post(f"{PREFIX}/realtime", json={"user_id": user_id})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "user_id"]


def test_a_bad_user_id_in_the_path_is_422(client):
    r = client.get(f"{PREFIX}/deals/a%20b")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["path", "user_id"]


def test_the_engine_checks_raise_invalid_request(model_dir):
    engine = load_model(model_dir)
    for call in (lambda: engine.realtime("a b"), lambda: engine.realtime(5), lambda: engine.realtime("user_0", 0),
                 lambda: engine.deals("user_0", 0), lambda: engine.full("user_0", True),
                 lambda: engine.recommend(["user_0"], strategy="nope"), lambda: check_n(MAX_N + 1)):
        with pytest.raises(InvalidRequest):
            call()


def test_the_deals_path_counts_with_the_limiter_the_service_passes(client):
    engine = client.app.state.service.engine
    answers = [client.get(f"{PREFIX}/deals/user_0").status_code for _ in range(3)]
    assert answers == [200, 200, 429]  # the service's limiter: 2 per minute
    assert engine.rate_limiter.remaining("user_0") == engine.config.deals.rate_limit_requests  # the engine's: unused
