"""README's "Results at a glance" = what recsys.evaluation.headline renders from the report's metrics.

The fixture ``tests/fixtures/readme_metrics_thesis.json`` holds the metrics the block reads, copied from
``reports/thesis/latest/metrics.json`` of a ``make report`` run by ``python -m recsys.evaluation.headline
reports/thesis/latest/metrics.json --fixture tests/fixtures/readme_metrics_thesis.json`` (which rewrites the README
block at the same time). A hand edit of a README number, or a fixture from another run, fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recsys.evaluation.headline import BEGIN, END, MissingMetric, render, replace_block

PROJECT = Path(__file__).resolve().parent.parent
FIXTURE = PROJECT / "tests" / "fixtures" / "readme_metrics_thesis.json"


def test_the_readme_block_is_the_rendering_of_the_reports_metrics() -> None:
    fixture = json.loads(FIXTURE.read_text())
    readme = (PROJECT / "README.md").read_text()
    block, used = render(fixture["metrics"], fixture["profile"], fixture["seed"])
    assert readme[readme.index(BEGIN) + len(BEGIN):readme.index(END)].strip() == block
    assert used == fixture["metrics"]  # the fixture holds exactly what the block reads


def test_no_row_chosen_after_a_look_at_the_test_window_survives() -> None:
    readme = (PROJECT / "README.md").read_text()
    assert "one look at the test window" not in readme and "tuned by TPE 0.123" not in readme


def test_a_missing_metric_is_named() -> None:
    fixture = json.loads(FIXTURE.read_text())
    metrics = {nb: dict(values) for nb, values in fixture["metrics"].items()}
    del metrics["08_evaluation"]["served/validation_best"]
    with pytest.raises(MissingMetric, match="served/validation_best.*08_evaluation"):
        render(metrics, "thesis", 42)


def test_the_markers_must_be_there_once() -> None:
    with pytest.raises(ValueError, match="markers"):
        replace_block("no markers here", "x")
    assert replace_block(f"a\n{BEGIN}\nold\n{END}\nb", "new") == f"a\n{BEGIN}\nnew\n{END}\nb"
