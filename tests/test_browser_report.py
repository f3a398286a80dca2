"""The HTML report in a real browser: headless Chromium opens ``index.html`` from the file system, offline.

By default the report is a small run made here; ``RECSYS_BROWSER_REPORT=reports/ci/latest`` checks a real
one (``make report PROFILE=ci``) instead. Every figure must load, no console error may appear and no request
may leave the file system; screenshots are saved into the run's ``screenshots/``.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from browser_helpers import Watch, chromium

from recsys.runs.runner import run_report

pytestmark = [pytest.mark.browser, pytest.mark.notebooks]  # the toy run executes a notebook
LOCAL = ("file://", "data:")


def _toy_run(tmp_path: Path) -> Path:
    (tmp_path / "nb").mkdir()
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('reports_dir = ""\nscale = 1.0')
    params.metadata["tags"] = ["parameters"]
    body = nbformat.v4.new_code_cell(
        "import matplotlib.pyplot as plt\nimport pandas as pd\nfrom recsys.runs.reporting import Report\n"
        "report = Report.start('01_toy', reports_dir)\nreport.metric('score', 0.5 * scale, 'a toy metric')\n"
        "fig, ax = plt.subplots()\nax.plot([1, 2, 3], [1, scale, 3])\nreport.figure(fig, 'line', 'a toy line')\n"
        "plt.show()\nreport.table(pd.DataFrame({'a': [1, 2]}), 'tab', 'a toy table')\n")
    nb.cells = [params, body]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "nb" / "01_toy.ipynb")
    kwargs = dict(notebooks_dir=tmp_path / "nb", reports_root=tmp_path / "r", data_dir=tmp_path / "d",
                  echo=lambda *a, **k: None)
    run_report("ci", **kwargs)
    return run_report("ci", parameters={"scale": 2.0}, **kwargs)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("RECSYS_BROWSER_REPORT")
    if given:
        path = Path(given).resolve()
        assert (path / "index.html").exists(), f"RECSYS_BROWSER_REPORT={given} has no index.html"
        return path
    return _toy_run(tmp_path_factory.mktemp("browser-report"))


def _check_page(context, url: str, screenshot: Path) -> dict:
    watch = Watch()
    page = watch.attach(context.new_page())
    page.goto(url, wait_until="load")
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")  # lazy images load too
    page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=30_000)
    images = page.evaluate("Array.from(document.images).map(i => [i.getAttribute('src'), i.naturalWidth])")
    page.evaluate("window.scrollTo(0, 0)")
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(screenshot), full_page=False)
    title = page.title()
    page.close()
    assert not watch.console_errors and not watch.page_errors and not watch.failed, watch
    assert watch.external(LOCAL) == [], f"requests that leave the file system: {watch.external(LOCAL)}"
    return {"images": images, "title": title}


def test_the_report_opens_offline_with_every_figure(run_dir, tmp_path):
    with chromium(tmp_path / "profile") as context:
        index = _check_page(context, (run_dir / "index.html").as_uri(), run_dir / "screenshots" / "index.png")
        assert index["title"].startswith("recsys run")
        broken = [src for src, width in index["images"] if width == 0]
        assert index["images"] and not broken, f"figures that did not load: {broken}"
        pngs = sorted(p.relative_to(run_dir).as_posix() for p in (run_dir / "figures").glob("*.png"))
        assert sorted(src for src, _ in index["images"]) == pngs
        for page in sorted((run_dir / "notebooks").glob("*.html")):
            shown = _check_page(context, page.as_uri(), run_dir / "screenshots" / f"{page.stem}.png")
            assert all(width > 0 for _, width in shown["images"])
    assert (run_dir / "screenshots" / "index.png").stat().st_size > 10_000
