"""Headless Chromium for the browser tests: the system's browser (Debian's ``chromium``) driven by Playwright.

No browser is downloaded: Playwright launches ``/usr/bin/chromium`` (or ``$RECSYS_CHROMIUM``) with a fresh
user-data-dir and flags that keep it from calling home. A :class:`Watch` records every console error, page
error and request of a page, so a test can assert that nothing failed and nothing left the machine (or the
local server). Where Playwright or the browser is missing the tests skip, saying what to install.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium_path() -> str | None:
    """The system Chromium: ``$RECSYS_CHROMIUM``, else ``chromium`` on the PATH."""
    explicit = os.environ.get("RECSYS_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).exists() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class Watch:
    """Console errors, uncaught page errors and every requested URL of one page."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> Any:
        page.on("console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("requestfailed", lambda r: self.failed.append(f"{r.url}: {r.failure}"))
        return page

    def external(self, allowed: tuple[str, ...]) -> list[str]:
        """Requests whose URL starts with none of ``allowed`` (``file://``, ``data:``, the local server)."""
        return [u for u in self.requests if not u.startswith(allowed)]


@contextmanager
def chromium(user_data_dir: Path) -> Iterator[Any]:
    """A persistent headless Chromium context on a fresh profile folder; skips when it cannot start."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        pytest.skip("browser tests need the Python package playwright (pip install -e '.[dev]')")
    executable = chromium_path()
    if executable is None:
        pytest.skip("no system Chromium: install it with 'apt-get install -y chromium chromium-driver' "
                    "(.ci/run does so as root) or set RECSYS_CHROMIUM")
    with sync_playwright() as playwright:
        try:
            context = playwright.chromium.launch_persistent_context(
                str(user_data_dir), executable_path=executable, headless=True, args=CHROMIUM_FLAGS,
                viewport={"width": 1280, "height": 900})
        except Error as error:
            pytest.skip(f"Chromium at {executable} did not start: {str(error).splitlines()[0]}")
        try:
            yield context
        finally:
            context.close()
