"""Kept runs: run ids, the latest link, list / compare / prune, checked parameters, a quiet kernel, the HTML report."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import nbformat
import pytest

from recsys.cli import main
from recsys.runs import history
from recsys.runs.execution import kernel_errors
from recsys.runs.parameters import Declared, ParameterError, coerce_declared, declared_parameters, type_prototype
from recsys.runs.runner import NotebookFailed, UsageError, parse_parameter, run_report


def _quiet(*args, **kwargs):
    return None


def _notebook(path: Path, params: str, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


TOY_PARAMS = 'profile = "ci"\nseed = 42\nreports_dir = ""\nscale = 1.0\nranks: list[int] = [5, 10]'
TOY_BODY = (
    "import matplotlib.pyplot as plt\n"
    "from recsys.runs.reporting import Report\n"
    "report = Report.start('01_toy', reports_dir)\n"
    "report.metric('score', 0.5 * scale, 'a toy metric')\n"
    "report.metric('n_ranks', len(ranks))\n"
    "fig, ax = plt.subplots()\n"
    "ax.plot([1, 2, 3], [1, scale, 3])\n"
    "report.figure(fig, 'line', 'a toy line')\n"
    "report.figure(fig, 'recorded', 'from a record', source='the committed record benchmarks/results/x.json')\n"
)


@pytest.fixture
def project(tmp_path: Path) -> dict:
    (tmp_path / "nb").mkdir()
    _notebook(tmp_path / "nb" / "01_toy.ipynb", TOY_PARAMS, TOY_BODY)
    return {"notebooks_dir": tmp_path / "nb", "reports_root": tmp_path / "r", "data_dir": tmp_path / "d",
            "echo": _quiet}


def test_run_ids_sort_in_start_order_and_never_collide(tmp_path):
    when = datetime(2026, 12, 6, 3, 55, 15, tzinfo=UTC)
    assert history.run_id_for(when) == "20261206T035515Z"
    ids = [history.create_run_dir(tmp_path, when)[0] for _ in range(3)]
    assert ids == ["20261206T035515Z", "20261206T035515Z-01", "20261206T035515Z-02"]
    later = history.create_run_dir(tmp_path, datetime(2026, 12, 6, 3, 55, 16, tzinfo=UTC))[0]
    assert sorted([*ids, later]) == [*ids, later]


@pytest.mark.notebooks  # executes notebooks through papermill
def test_runs_are_kept_and_latest_follows_success(project):
    first = run_report("ci", **project)
    second = run_report("ci", parameters={"scale": 2.0}, **project)
    profile_dir = project["reports_root"] / "ci"
    assert first != second and first.parent == second.parent == profile_dir / "runs"
    assert (profile_dir / "latest").is_symlink() and (profile_dir / "latest").resolve() == second.resolve()
    assert json.loads((profile_dir / "latest" / "metrics.json").read_text())["run_id"] == second.name
    record = json.loads((first / "metrics.json").read_text())
    assert record["run_id"] == first.name and record["started"].endswith("+00:00")
    assert record["configuration"]["notebooks"] == ["01_toy"]
    assert [r.run_id for r in history.list_runs(profile_dir)] == [first.name, second.name]
    assert history.resolve_run(profile_dir, "previous") == first


@pytest.mark.notebooks  # executes notebooks through papermill
def test_a_bad_parameter_exits_2_and_leaves_the_previous_run_and_latest(project, capsys):
    good = run_report("ci", **project)
    profile_dir = project["reports_root"] / "ci"
    before = sorted(p.relative_to(profile_dir) for p in profile_dir.rglob("*"))
    code = main(["run", "--profile", "ci", "--notebooks-dir", str(project["notebooks_dir"]), "--reports",
                 str(project["reports_root"]), "--data", str(project["data_dir"]), "-p", "ranks=a,b"])
    err = capsys.readouterr().err
    assert code == 2
    assert "-p ranks=a,b: item 'a': expected an integer (declared type list[int] in 01_toy.ipynb)" in err
    assert sorted(p.relative_to(profile_dir) for p in profile_dir.rglob("*")) == before
    assert (profile_dir / "latest").resolve() == good.resolve()


def test_declared_types_win_over_ambiguous_defaults(tmp_path):
    nb = _notebook(tmp_path / "01_t.ipynb",
                   'n_clusters = None  # type: Optional[int] None: the default\nranks: list[int] = [5]\n'
                   'label = "x"\nmaybe = None  # type: float|None',
                   "x = 1")
    declared = declared_parameters(nb)
    assert declared["n_clusters"] == Declared(None, "Optional[int]")
    assert declared["ranks"] == Declared([5], "list[int]")
    assert declared["label"] == Declared("x", None)
    assert coerce_declared("n_clusters", "6", declared["n_clusters"]) == 6
    assert coerce_declared("n_clusters", "none", declared["n_clusters"]) is None
    assert coerce_declared("ranks", "5,10,20", declared["ranks"]) == [5, 10, 20]
    assert coerce_declared("maybe", "0.5", declared["maybe"]) == 0.5
    with pytest.raises(ParameterError, match=r"-p n_clusters=six: expected an integer \(declared type Optional\[int\]"):
        coerce_declared("n_clusters", "six", declared["n_clusters"], where="01_t.ipynb")
    assert type_prototype("tuple[int,...]") == ((0,), False)
    with pytest.raises(ParameterError, match="declared type 'set\\[int\\]' is not one of"):
        type_prototype("set[int]", where="x")


@pytest.mark.notebooks  # executes notebooks through papermill
def test_a_notebook_gets_only_the_parameters_it_declares_and_the_kernel_is_quiet(tmp_path):
    """No 'Passed unknown parameter' (papermill), no TCP warning (the kernel runs over IPC), a progress line per
    cell; the kernel log beside the executed notebook holds no error (at most ipykernel's shutdown notice)."""
    (tmp_path / "nb").mkdir()
    _notebook(tmp_path / "nb" / "01_plain.ipynb", 'reports_dir = ""',
              "from recsys.runs.reporting import Report\nreport = Report.start('01_plain', reports_dir)\n"
              "report.metric('names', sorted(n for n in ('profile', 'seed', 'data_dir') if n in globals()))\n")
    lines: list[str] = []
    top = run_report("ci", notebooks_dir=tmp_path / "nb", reports_root=tmp_path / "r", data_dir=tmp_path / "d",
                     echo=lambda text="", **kw: lines.append(text))
    assert json.loads((top / "metrics.json").read_text())["metrics"]["01_plain"]["names"] == []
    executed = nbformat.read(top / "notebooks" / "01_plain.ipynb", 4)
    injected = [c.source for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "profile" not in injected[0] and "reports_dir" in injected[0]
    kernel_log = (top / "notebooks" / "01_plain.kernel.log").read_text()
    assert "without encryption" not in kernel_log and "KeyboardInterrupt" not in kernel_log
    assert kernel_errors(top / "notebooks" / "01_plain.kernel.log") == []
    cells = [line for line in lines if re.match(r"\s+cell\s+\d+/\d+\s+[\d.]+ s \(total\s+[\d.]+ s\)", line)]
    assert len(cells) == 3  # the parameters cell, the injected one, the body


@pytest.mark.notebooks  # executes notebooks through papermill
def test_a_kernel_error_fails_the_notebook(tmp_path):
    """A cell that returns but makes the kernel log an error (here: written to the kernel's own stderr)
    is not ok."""
    (tmp_path / "nb").mkdir()
    _notebook(tmp_path / "nb" / "01_noisy.ipynb", 'reports_dir = ""',
              "import sys\nsys.__stderr__.write('[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel.\\n')\n"
              "sys.__stderr__.flush()\n")
    with pytest.raises(NotebookFailed, match="the kernel reported an error: .*KeyboardInterrupt caught"):
        run_report("ci", notebooks_dir=tmp_path / "nb", reports_root=tmp_path / "r", data_dir=tmp_path / "d",
                   echo=_quiet)
    run = sorted((tmp_path / "r" / "ci" / "runs").iterdir())[-1]
    record = json.loads((run / "metrics.json").read_text())
    assert record["status"] == "failed" and record["failed"]["error"].startswith("kernel error:")
    assert not (tmp_path / "r" / "ci" / "latest").exists()


@pytest.mark.notebooks  # executes notebooks through papermill
def test_compare_names_the_changed_metric_and_figures(project, capsys):
    run_report("ci", **project)
    run_report("ci", parameters={"scale": 2.0}, **project)
    code = main(["runs", "compare", "previous", "latest", "--profile", "ci", "--reports", str(project["reports_root"])])
    out = capsys.readouterr().out
    assert code == 0
    assert "metrics beyond the tolerance: 1 of 2 differ" in out and "01_toy:score: 0.5 -> 1.0  (+0.5)" in out
    assert "figures whose bytes differ: 4 of 4" in out and "figures/01_line.png" in out
    assert "parameters.scale" in out
    same = history.compare_runs(*(history.resolve_run(project["reports_root"] / "ci", r) for r in ("latest",) * 2))
    assert same.identical


def test_compare_ignores_the_order_of_blas_entries(tmp_path):
    blas = [{"internal_api": "openblas", "filepath": "/a", "num_threads": 1},
            {"internal_api": "openmp", "filepath": "/b", "num_threads": 1}]
    for name, libs in (("A", blas), ("B", blas[::-1])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps({"metrics": {}, "environment": {"blas": libs}}))
    assert history.compare_runs(tmp_path / "A", tmp_path / "B").environment == []
    changed = [dict(blas[0], num_threads=2), blas[1]]
    (tmp_path / "B" / "metrics.json").write_text(json.dumps({"metrics": {}, "environment": {"blas": changed}}))
    assert history.compare_runs(tmp_path / "A", tmp_path / "B").environment == [
        ("blas[openblas:/a].num_threads", 1, 2)]


@pytest.mark.notebooks  # executes notebooks through papermill
def test_list_and_prune_keep_latest(project, capsys):
    runs = [run_report("ci", **project) for _ in range(3)]
    reports = ["--profile", "ci", "--reports", str(project["reports_root"])]
    assert main(["runs", "list", *reports]) == 0
    listing = capsys.readouterr().out
    assert all(r.name in listing for r in runs) and f"* {runs[-1].name}" in listing
    assert main(["runs", "prune", "--keep", "1", *reports]) == 0
    assert "deleted 2 run(s)" in capsys.readouterr().out
    assert [r.run_id for r in history.list_runs(project["reports_root"] / "ci")] == [runs[-1].name]
    assert main(["runs", "prune", "--keep", "0", *reports]) == 2
    assert "--keep must be at least 1" in capsys.readouterr().err
    assert main(["runs", "compare", "nope", "latest", *reports]) == 2
    assert "no run 'nope'" in capsys.readouterr().err


@pytest.mark.notebooks  # executes notebooks through papermill
def test_a_report_of_the_old_layout_is_moved_into_the_history(project):
    legacy = project["reports_root"] / "ci"
    legacy.mkdir(parents=True)
    (legacy / "summary.md").write_text("old")
    (legacy / "metrics.json").write_text("{}")
    run_report("ci", **project)
    moved = [d for d in (legacy / "runs").iterdir() if d.name.endswith("-legacy")]
    assert len(moved) == 1 and (moved[0] / "summary.md").read_text() == "old"
    assert not (legacy / "summary.md").exists()



@pytest.mark.notebooks  # executes notebooks through papermill
def test_figures_of_notebooks_run_by_hand_are_not_taken_for_a_run(project):
    by_hand = project["reports_root"] / "ci" / "figures"
    by_hand.mkdir(parents=True)
    (by_hand / "01_x.png").write_bytes(b"png")
    run_report("ci", **project)
    assert (by_hand / "01_x.png").exists()
    assert not [d for d in (project["reports_root"] / "ci" / "runs").iterdir() if d.name.endswith("-legacy")]


@pytest.mark.notebooks  # executes notebooks through papermill
def test_summary_and_record_name_where_each_figures_data_came_from(project):
    top = run_report("ci", command_line=["recsys", "run", "--profile", "ci"], **project)
    summary = (top / "summary.md").read_text()
    assert f"a toy line *Data: this run (`{top.name}`).*" in summary
    assert "from a record *Data: the committed record benchmarks/results/x.json.*" in summary
    assert "Command line: `recsys run --profile ci`." in summary
    record = json.loads((top / "metrics.json").read_text())
    assert record["command_line"] == ["recsys", "run", "--profile", "ci"]


@pytest.mark.notebooks  # executes notebooks through papermill
def test_html_report_is_offline_and_links_everything(project):
    run_report("ci", **project)
    top = run_report("ci", parameters={"scale": 3.0}, **project)
    page = (top / "index.html").read_text()
    assert "<script" not in page
    assert not re.findall(r"""(?:src|href)=["'](?:https?:)?//""", page)
    for target in re.findall(r"""(?:src|href)=["']([^"'#]+)["']""", page):
        assert (top / target).resolve().exists(), target
    assert "Compared with the previous run" in page and "01_toy:score" in page
    assert "figures/01_line.png" in page and "a toy line" in page and "committed record" in page
    notebook_page = (top / "notebooks" / "01_toy.html").read_text()
    assert not re.findall(r"""<(?:script|link|img)[^>]+(?:src|href)=["'](?:https?:)?//""", notebook_page)
    assert "data:image/png;base64" in notebook_page


@pytest.mark.notebooks  # executes notebooks through papermill
def test_unknown_parameter_is_still_refused_before_anything_is_written(project):
    with pytest.raises(UsageError, match="declared by no notebook"):
        run_report("ci", parameters=dict([parse_parameter("nope=1")]), **project)
    assert not project["reports_root"].exists()
