"""The demo page in a real browser: headless Chromium loads ``/demo`` from a live server (uvicorn in a thread),
signs in with a user's token, reads the user's recommendations, deals and segment, posts a purchase of the
top recommendation and sees the answer change; no console error, no request to anything but the server.
Screenshots go to ``$RECSYS_BROWSER_REPORT/screenshots/`` when set (a run folder), else the test's tmp folder.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from browser_helpers import Watch, chromium

from recsys.service import KeyStore, create_app
from recsys.serving.model_dir import load_model

pytestmark = pytest.mark.browser
NOW = pd.Timestamp("2025-03-01T12:00:00Z")


@pytest.fixture()
def server(model_dir):
    """``(base URL, tokens)`` of the service on a free local port, stopped after the test."""
    import uvicorn

    store = KeyStore()
    tokens = {"user_0": store.add("user_0"), "admin": store.add("ops", admin=True)}
    app = create_app(load_model(model_dir, clock=lambda: NOW), store, clock=lambda: NOW)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the service did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", tokens
    finally:
        uv.should_exit = True
        thread.join(timeout=10)


def _shots(tmp_path: Path) -> Path:
    given = os.environ.get("RECSYS_BROWSER_REPORT")
    out = (Path(given) if given else tmp_path) / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    return out


def test_demo_shows_a_users_deals_and_changes_after_a_purchase(server, tmp_path):
    base, tokens = server
    shots = _shots(tmp_path)
    with chromium(tmp_path / "profile") as context:
        watch = Watch()
        page = watch.attach(context.new_page())
        page.goto(f"{base}/demo", wait_until="load")
        page.fill("#token", tokens["user_0"])
        page.click("#token-form button")
        page.wait_for_selector("#rec-rows tr", timeout=30_000)
        assert page.input_value("#user") == "user_0"
        assert page.text_content("#whoami") == "token of user_0 (that user only)"
        assert page.text_content("#segment").startswith("Segment segment_")
        deals = page.locator("#deal-rows tr")
        assert deals.count() > 0
        first_deal = [c.strip() for c in deals.first.locator("td").all_text_contents()]
        assert first_deal[4].endswith("%") and float(first_deal[3]) < float(first_deal[2])  # deal below original
        assert page.locator("#rec-rows tr").first.locator(".parts").text_content().count("/") == 3
        page.screenshot(path=str(shots / "demo-before.png"), full_page=True)

        top = page.locator("#rt-rows tr").first.get_attribute("data-product")
        page.locator("#rt-rows tr").first.locator("button[data-event=purchase]").click()
        page.wait_for_selector("#changes:not([hidden])", timeout=30_000)
        after = page.locator("#rt-rows tr").evaluate_all("rows => rows.map(r => r.dataset.product)")
        assert top not in after
        assert f"real time (Stage 1): {top} left the list" in page.text_content("#change-list")
        assert page.text_content("#status") == "showing user_0 after the purchase"
        page.screenshot(path=str(shots / "demo-after-purchase.png"), full_page=True)
        page.close()
    assert not watch.console_errors and not watch.page_errors and not watch.failed, watch
    assert watch.external((base + "/", "data:")) == [], watch.requests
