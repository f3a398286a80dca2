"""The papermill runner: typed parameters, honest failures, summaries, multi-seed spread."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from recsys.runs.runner import (
    CommandLineValue,
    NotebookFailed,
    UsageError,
    aggregate_seed_metrics,
    discover_notebooks,
    parse_parameter,
    run_report,
)


def test_parse_parameter_keeps_the_text_for_typing_later():
    assert parse_parameter("test_days=21") == ("test_days", "21")
    assert isinstance(parse_parameter("svd_ranks=5,10")[1], CommandLineValue)
    assert parse_parameter("name=hello world") == ("name", "hello world")


@pytest.mark.parametrize("bad", ["novalue", "1abc=3", "=3"])
def test_parse_parameter_rejects_malformed(bad):
    with pytest.raises(ValueError, match="-p"):
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
        "from recsys.runs.reporting import Report\n"
        "report = Report.start('01_toy', reports_dir)\n"
        "report.metric('seed_times_extra', seed * extra, 'a toy metric')\n",
    )


def test_discover_notebooks_orders_and_filters(tmp_path):
    for name in ("02_b.ipynb", "01_a.ipynb", "notes.ipynb"):
        (tmp_path / name).write_text("{}")
    assert [p.name for p in discover_notebooks(tmp_path)] == ["01_a.ipynb", "02_b.ipynb"]
    assert [p.name for p in discover_notebooks(tmp_path, ["02"])] == ["02_b.ipynb"]
    with pytest.raises(UsageError, match=r"--notebooks: no notebook .*\['07'\]"):
        discover_notebooks(tmp_path, ["07"])
    with pytest.raises(UsageError, match="does not exist"):
        discover_notebooks(tmp_path / "nowhere")


def test_unknown_parameter_is_refused(tmp_path):
    (tmp_path / "nb").mkdir()
    _recording_notebook(tmp_path / "nb" / "01_toy.ipynb")
    with pytest.raises(UsageError, match="declared by no notebook"):
        run_report("ci", parameters={"nope": 1}, notebooks_dir=tmp_path / "nb", reports_root=tmp_path / "r")


@pytest.mark.notebooks  # executes notebooks through papermill
def test_failing_notebook_names_notebook_and_cell(tmp_path):
    (tmp_path / "nb").mkdir()
    _notebook(tmp_path / "nb" / "01_broken.ipynb", "raise ValueError('boom in the chapter')")
    with pytest.raises(NotebookFailed, match=r"01_broken.ipynb failed in cell .*ValueError: boom in the chapter"):
        run_report("ci", notebooks_dir=tmp_path / "nb", reports_root=tmp_path / "r", data_dir=tmp_path / "d",
                   echo=lambda *a, **k: None)


@pytest.mark.notebooks  # executes notebooks through papermill
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
    assert json.loads((top / "seed_3" / "metrics.json").read_text())["metrics"] == {"01_toy": {"seed_times_extra": 30}}
    index = (top / "index.html").read_text()
    assert all(f'href="seed_{s}/index.html"' in index for s in (1, 2, 3)) and "seed_times_extra" in index
    assert "01_toy:seed_times_extra" not in index  # a first run: nothing to compare with
    assert "seed_times_extra" in (top / "seed_2" / "index.html").read_text()


def test_aggregate_ignores_non_numeric_metrics():
    table = aggregate_seed_metrics({1: {"nb": {"a": 1.0, "b": "text"}}, 2: {"nb": {"a": 3.0, "b": "x"}}})
    assert list(table["metric"]) == ["a"]
    assert table.loc[0, "mean"] == 2.0


def test_summary_keeps_the_region_na_as_text(tmp_path):
    """'NA' (North America) is a region, not a missing value, in the summary's tables."""
    from recsys.runs.reporting import Report
    from recsys.runs.runner import write_summary

    report = Report.start("01_toy", tmp_path)
    report.table(pd.DataFrame({"region": ["EU", "NA"], "users": [3, 4]}), "regions", "users by region")
    text = write_summary(tmp_path, profile="ci", seed=1, parameters={}).read_text()
    assert "| NA | 4 |" in text
    assert "nan" not in text


def _quiet(*args, **kwargs):
    return None


@pytest.mark.notebooks  # executes notebooks through papermill
def test_command_line_values_take_the_type_of_each_notebooks_default(tmp_path):
    """`-p ranks=5,10` reaches the notebook as a tuple of ints, as its default is."""
    (tmp_path / "nb").mkdir()
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(
        'profile = "ci"\nseed = 42\ndata_dir = ""\nreports_dir = ""\nranks = (5, 10, 20)\nalpha = 0.5\n'
        'label = "x"\nflag = False'
    )
    params.metadata["tags"] = ["parameters"]
    body = nbformat.v4.new_code_cell(
        "from recsys.runs.reporting import Report\n"
        "report = Report.start('01_types', reports_dir)\n"
        "report.metric('types', [type(v).__name__ for v in (ranks, ranks[0], alpha, label, flag)])\n"
        "report.metric('values', [list(ranks), alpha, label, flag])\n"
    )
    nb.cells = [params, body]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "nb" / "01_types.ipynb")
    given = dict(parse_parameter(p) for p in ("ranks=5,10", "alpha=1", "label=5", "flag=true"))
    top = run_report("ci", parameters=given, notebooks_dir=tmp_path / "nb", reports_root=tmp_path / "r",
                     data_dir=tmp_path / "d", echo=_quiet)
    metrics = json.loads((top / "metrics.json").read_text())["metrics"]["01_types"]
    assert metrics["types"] == ["tuple", "int", "float", "str", "bool"]
    assert metrics["values"] == [[5, 10], 1.0, "5", True]
    with pytest.raises(UsageError, match=r"-p ranks=5,x: item .x.: expected an integer"):
        run_report("ci", parameters=dict([parse_parameter("ranks=5,x")]), notebooks_dir=tmp_path / "nb",
                   reports_root=tmp_path / "r", echo=_quiet)


@pytest.mark.notebooks  # executes notebooks through papermill
def test_a_failed_run_writes_an_honest_summary(tmp_path):
    """The failed notebook is named with its cell in the failed run's own folder; its partial manifest is not
    reported; notebooks after it are marked as not run; the earlier good run and ``latest`` stay as they were."""
    nb_dir = tmp_path / "nb"
    nb_dir.mkdir()
    _recording_notebook(nb_dir / "01_toy.ipynb")
    _notebook(nb_dir / "02_later.ipynb",
              "from recsys.runs.reporting import Report\nreport = Report.start('02_later', reports_dir)\n"
              "report.metric('old_result', 1.0, 'from the earlier run')\n")
    kwargs = dict(notebooks_dir=nb_dir, reports_root=tmp_path / "r", data_dir=tmp_path / "d", echo=_quiet)
    good = run_report("ci", **kwargs)
    assert "old_result" in (good / "summary.md").read_text()
    latest = tmp_path / "r" / "ci" / "latest"
    assert latest.resolve() == good.resolve()
    good_summary = (good / "summary.md").read_bytes()

    _notebook(nb_dir / "02_later.ipynb",
              "from recsys.runs.reporting import Report\nreport = Report.start('02_later', reports_dir)\n"
              "report.metric('partial', 2.0, 'recorded before the failure')\n"
              "raise RuntimeError('the chapter broke')")
    _notebook(nb_dir / "03_after.ipynb", "x = 1")
    with pytest.raises(NotebookFailed, match="02_later.ipynb failed in cell"):
        run_report("ci", **kwargs)
    failed = sorted((tmp_path / "r" / "ci" / "runs").iterdir())[-1]
    assert failed != good
    summary = (failed / "summary.md").read_text()
    record = json.loads((failed / "metrics.json").read_text())
    assert "FAILED: notebook `02_later`, cell 2: RuntimeError: the chapter broke" in summary
    assert "old_result" not in summary and "partial" not in summary
    assert "| 03_after | not run | |" in summary
    assert record["status"] == "failed"
    assert record["failed"] == {"notebook": "02_later", "cell": 2, "error": "RuntimeError: the chapter broke"}
    assert record["not_run"] == ["03_after"]
    assert set(record["metrics"]) == {"01_toy"}
    assert [n["status"] for n in record["notebooks"]] == ["ok", "failed"]
    assert "FAILED" in (failed / "index.html").read_text()
    assert latest.resolve() == good.resolve() and (good / "summary.md").read_bytes() == good_summary


@pytest.mark.notebooks  # executes notebooks through papermill
def test_summary_records_the_environment_and_the_configuration(tmp_path):
    (tmp_path / "nb").mkdir()
    nb = _recording_notebook(tmp_path / "nb" / "01_toy.ipynb")
    notebook = nbformat.read(nb, 4)
    notebook.cells[0].source += '\nconfig_file = ""'
    notebook.cells[1].source += "\nreport.metric('config_given', config_file.endswith('config.toml'))\n"
    nbformat.write(notebook, nb)
    config = tmp_path / "my.toml"
    config.write_text("[deals]\nmax_deals = 5\n")
    top = run_report("ci", notebooks_dir=tmp_path / "nb", reports_root=tmp_path / "r", data_dir=tmp_path / "d",
                     config_file=config, echo=_quiet)
    assert (top / "config.toml").read_text() == config.read_text()
    record = json.loads((top / "metrics.json").read_text())
    assert record["metrics"]["01_toy"]["config_given"] is True
    assert record["config_file"] == "config.toml"
    environment = record["environment"]
    assert environment["python"].count(".") == 2 and environment["cpu"] and environment["os"]
    assert "numpy" in environment["packages"] and "papermill" in environment["packages"]
    assert set(environment["git"]) == {"commit", "dirty"}
    assert record["notebooks"][0]["seconds"] > 0
    summary = (top / "summary.md").read_text()
    assert "## Environment" in summary and "BLAS:" in summary and "[config.toml](config.toml)" in summary


def test_a_bad_config_file_is_refused_before_anything_runs(tmp_path):
    from recsys.config import ConfigError

    (tmp_path / "nb").mkdir()
    _recording_notebook(tmp_path / "nb" / "01_toy.ipynb")
    config = tmp_path / "bad.toml"
    config.write_text("[fusion]\nknn = 'x'\n")
    with pytest.raises(ConfigError, match=r"fusion\.knn"):
        run_report("ci", notebooks_dir=tmp_path / "nb", reports_root=tmp_path / "r", config_file=config, echo=_quiet)
    assert not (tmp_path / "r").exists()


@pytest.mark.notebooks  # executes notebooks through papermill
def test_a_declared_table_is_aggregated_across_seeds(tmp_path):
    (tmp_path / "nb").mkdir()
    _notebook(tmp_path / "nb" / "01_tab.ipynb",
              "import pandas as pd\nfrom recsys.runs.reporting import Report\n"
              "report = Report.start('01_tab', reports_dir)\n"
              "report.table(pd.DataFrame({'model': ['a', 'b'], 'metric': ['m', 'm'], 'mean': [seed, 2 * seed]}),\n"
              "             'scores', 'toy scores', across_seeds={'by': ['model', 'metric'], 'value': 'mean'})\n")
    top = run_report("ci", seeds=[1, 3], notebooks_dir=tmp_path / "nb", reports_root=tmp_path / "r",
                     data_dir=tmp_path / "d", echo=_quiet)
    table = pd.read_csv(top / "01_scores_across_seeds.csv").set_index("model")
    assert table.loc["a", "mean"] == pytest.approx(2.0) and table.loc["b", "mean"] == pytest.approx(4.0)
    assert "## Table 01_scores across seeds" in (top / "summary.md").read_text()


def test_summary_tables_show_missing_values_as_empty_cells(tmp_path):
    from recsys.runs.reporting import Report
    from recsys.runs.runner import write_summary

    report = Report.start("01_toy", tmp_path)
    report.table(pd.DataFrame({"metric": ["latency", "rate"], "measured": [float("nan"), 0.5]}), "claims", "toy")
    text = write_summary(tmp_path, profile="ci", seed=1, parameters={}).read_text()
    assert "| latency |  |" in text and "| rate | 0.5000 |" in text
