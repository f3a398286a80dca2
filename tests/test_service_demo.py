"""The demo page of the service (recsys/service/demo.py) in process: the page and its packaged files, who may
see and post what, the fields the page shows, and an answer that changes after a posted purchase."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from recsys.service import KeyStore, create_app
from recsys.serving.model_dir import load_model

NOW = pd.Timestamp("2025-03-01T12:00:00Z")


@pytest.fixture()
def client(model_dir):
    store = KeyStore()
    tokens = {"admin": store.add("ops", admin=True), "user_0": store.add("user_0"), "user_1": store.add("user_1")}
    app = create_app(load_model(model_dir, clock=lambda: NOW), store, clock=lambda: NOW)
    with TestClient(app) as test_client:
        test_client.tokens = tokens  # type: ignore[attr-defined]
        yield test_client


def auth(client, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.tokens[who]}"}


def test_the_page_and_its_files_are_served_without_anything_external(client):
    page = client.get("/demo")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script src="/demo/demo.js"' in page.text and 'href="/demo/demo.css"' in page.text
    for name, kind in (("demo.js", "javascript"), ("demo.css", "text/css")):
        r = client.get(f"/demo/{name}")
        assert r.status_code == 200 and kind in r.headers["content-type"]
        assert not re.search(r"https?://", r.text), f"{name} names an external URL"
    assert not re.search(r"""(?:src|href)=["']https?://""", page.text)
    assert client.get("/demo/secret.py").status_code == 404


def test_a_user_sees_recommendations_with_contributions_deals_and_segment(client):
    me = client.get("/demo/api/me", headers=auth(client, "user_0")).json()
    assert me == {"user_id": "user_0", "admin": False, "suggested_users": ["user_0"]}
    view = client.get("/demo/api/users/user_0", headers=auth(client, "user_0"))
    assert view.status_code == 200
    body = view.json()
    rec = body["recommendations"][0]
    assert set(rec["contributions"]) == {"knn", "svd", "content", "demographic"} and rec["reason"]
    assert sum(rec["contributions"].values()) == pytest.approx(rec["score"], abs=1e-4)
    assert body["deals"], "user_0 of the small world gets deals"
    deal = body["deals"][0]
    assert {"original_price", "deal_price", "discount_percentage", "deal_reason", "deal_expiry"} <= set(deal)
    assert deal["deal_price"] < deal["original_price"]
    assert body["segment"]["name"].startswith("segment_") and "users" in body["segment"]["summary"]
    assert body["profile"]["region"] is not None


def test_own_data_only_for_a_users_token(client):
    assert client.get("/demo/api/users/user_1", headers=auth(client, "user_0")).status_code == 403
    event = {"user_id": "user_1", "product_id": "product_0", "event_type": "view"}
    assert client.post("/demo/api/events", json=event, headers=auth(client, "user_0")).status_code == 403
    assert client.get("/demo/api/users/user_1").status_code == 401
    admin = client.get("/demo/api/me", headers=auth(client, "admin")).json()
    assert admin["admin"] is True and admin["suggested_users"][0] == "user_0"
    assert client.get("/demo/api/users/user_1", headers=auth(client, "admin")).status_code == 200


def test_bad_events_are_refused_naming_the_field(client):
    headers = auth(client, "user_0")
    r = client.post("/demo/api/events", json={"user_id": "user_0", "product_id": "nope", "event_type": "view"},
                    headers=headers)
    assert r.status_code == 422 and "unknown product 'nope'" in r.text
    r = client.post("/demo/api/events", json={"user_id": "user_0", "product_id": "product_0", "event_type": "review"},
                    headers=headers)
    assert r.status_code == 422 and "event_type" in r.text


def test_a_posted_purchase_changes_the_answer(client):
    """The purchase counts at once in the Stage 1 real-time list (the product leaves it); Stage 3 and the deals
    see it after the next training."""
    headers = auth(client, "user_0")
    before = client.get("/demo/api/users/user_0", headers=headers).json()
    assert before["realtime_method"] == "realtime_knn"
    top = before["realtime"][0]["product_id"]
    r = client.post("/demo/api/events", json={"user_id": "user_0", "product_id": top, "event_type": "purchase"},
                    headers=headers)
    assert r.status_code == 200
    assert r.json()["event"]["timestamp"].startswith("2025-03-01T12:00:00")
    after = client.get("/demo/api/users/user_0", headers=headers).json()
    assert top not in [rec["product_id"] for rec in after["realtime"]]
