"""The papermill runner: parameters, failures, summaries, multi-seed spread, and a smoke run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from recsys.runner import (
    PROJECT_ROOT,
    NotebookFailed,
    aggregate_seed_metrics,
    discover_notebooks,
    parse_parameter,
    run_report,
)


def test_parse_parameter_reads_literals_and_text():
    assert parse_parameter("test_days=21") == ("test_days", 21)
    assert parse_parameter("weights=[0.5, 0.5]") == ("weights", [0.5, 0.5])
    assert parse_parameter("flag=True") == ("flag", True)
    assert parse_parameter("name=hello world") == ("name", "hello world")


@pytest.mark.parametrize("bad", ["novalue", "1abc=3", "=3"])
def test_parse_parameter_rejects_malformed(bad):
    with pytest.raises(ValueError, match="parameter"):
        parse_parameter(bad)


def _notebook(path: Path, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(
        'profile = "ci"\nseed = 42\ndata_dir = "../data"\nreports_dir = "../reports/ci"\nextra = 1'
    )
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def _recording_notebook(path: Path) -> Path:
    return _notebook(
        path,
        "from recsys.reporting import Report\n"
        "report = Report.start('01_toy', reports_dir)\n"
        "report.metric('seed_times_extra', seed * extra, 'a toy metric')\n",
    )


def test_discover_notebooks_orders_and_filters(tmp_path):
    for name in ("02_b.ipynb", "01_a.ipynb", "notes.ipynb"):
        (tmp_path / name).write_text("{}")
    assert [p.name for p in discover_notebooks(tmp_path)] == ["01_a.ipynb", "02_b.ipynb"]
    assert [p.name for p in discover_notebooks(tmp_path, ["02"])] == ["02_b.ipynb"]
    with pytest.raises(ValueError, match="no notebook"):
        discover_notebooks(tmp_path, ["07"])


def test_unknown_parameter_is_refused(tmp_path):
    (tmp_path / "nb").mkdir()
    _recording_notebook(tmp_path / "nb" / "01_toy.ipynb")
    with pytest.raises(ValueError, match="declared by no notebook"):
        run_report("ci", parameters={"nope": 1}, notebooks_dir=tmp_path / "nb", reports_root=tmp_path / "r")


def test_failing_notebook_names_notebook_and_cell(tmp_path):
    (tmp_path / "nb").mkdir()
    _notebook(tmp_path / "nb" / "01_broken.ipynb", "raise ValueError('boom in the chapter')")
    with pytest.raises(NotebookFailed, match=r"01_broken.ipynb failed in cell .*ValueError: boom in the chapter"):
        run_report("ci", notebooks_dir=tmp_path / "nb", reports_root=tmp_path / "r", data_dir=tmp_path / "d",
                   echo=lambda *a, **k: None)


def test_multi_seed_run_reports_spread(tmp_path):
    (tmp_path / "nb").mkdir()
    _recording_notebook(tmp_path / "nb" / "01_toy.ipynb")
    top = run_report("ci", seeds=[1, 2, 3], parameters={"extra": 10}, notebooks_dir=tmp_path / "nb",
                     reports_root=tmp_path / "r", data_dir=tmp_path / "d", echo=lambda *a, **k: None)
    table = pd.read_csv(top / "metrics_across_seeds.csv")
    row = table.set_index("metric").loc["seed_times_extra"]
    assert row["mean"] == pytest.approx(20.0)
    assert row["std"] == pytest.approx(10.0)
    assert row["n_seeds"] == 3
    assert "seed 2" in (top / "summary.md").read_text()
    assert json.loads((top / "seed_3" / "metrics.json").read_text()) == {"01_toy": {"seed_times_extra": 30}}


def test_aggregate_ignores_non_numeric_metrics():
    table = aggregate_seed_metrics({1: {"nb": {"a": 1.0, "b": "text"}}, 2: {"nb": {"a": 3.0, "b": "x"}}})
    assert list(table["metric"]) == ["a"]
    assert table.loc[0, "mean"] == 2.0


@pytest.mark.slow
def test_ci_profile_smoke_run(tmp_path):
    """`recsys run --profile ci` executes every notebook and writes the summary."""
    result = subprocess.run(
        [sys.executable, "-m", "recsys.cli", "run", "--profile", "ci", "--reports", str(tmp_path / "reports"),
         "--data", str(tmp_path / "data")],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=1800,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = tmp_path / "reports" / "ci"
    summary = (report / "summary.md").read_text()
    notebooks = discover_notebooks(PROJECT_ROOT / "notebooks")
    for nb in notebooks:
        assert (report / "notebooks" / nb.name).exists()
        assert f"## {nb.stem}" in summary
    figures = json.loads((report / "metrics.json").read_text())
    assert set(figures) == {nb.stem for nb in notebooks}
    pngs = sorted((report / "figures").glob("*.png"))
    assert pngs and all(p.with_suffix(".pdf").exists() for p in pngs)


def test_summary_keeps_the_region_na_as_text(tmp_path):
    """'NA' (North America) is a region, not a missing value, in the summary's tables."""
    from recsys.reporting import Report
    from recsys.runner import write_summary

    report = Report.start("01_toy", tmp_path)
    report.table(pd.DataFrame({"region": ["EU", "NA"], "users": [3, 4]}), "regions", "users by region")
    text = write_summary(tmp_path, profile="ci", seed=1, parameters={}).read_text()
    assert "| NA | 4 |" in text
    assert "nan" not in text
