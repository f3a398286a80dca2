"""The HTML report of a run: ``reports/<profile>/runs/<id>/index.html``, readable offline from the file system.

:func:`write_html_report` renders the Jinja2 template ``templates/run.html.j2`` (packaged with
:mod:`recsys.runs`) from the run's ``metrics.json`` and notebook manifests: status, headline metrics,
a gallery of every figure with its caption and data source, every table (the first rows, the CSV linked),
the executed notebooks rendered to HTML by nbconvert (``notebooks/<name>.html``, the template
``templates/notebook_offline``: the lab template without any script or style fetched from the network),
the environment record, and the comparison with the previous successful run of the profile
(:func:`recsys.runs.history.compare_runs`). Every link is relative, CSS is inline, there is no JavaScript:
the page works from ``file://`` without a network. A run of several seeds gets a page per seed and a top
page with the spread across seeds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from recsys.runs import history
from recsys.runs.summary import figure_source

__all__ = ["TEMPLATES", "render_notebook_html", "write_html_report"]

TEMPLATES = Path(__file__).parent / "templates"
TABLE_ROWS = 15
KEY_PACKAGES = ("numpy", "scipy", "pandas", "scikit-learn", "scikit-surprise", "implicit", "matplotlib", "papermill")


def _environment(jinja: Any) -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=jinja2.select_autoescape(["html",
                             "j2"]), undefined=jinja2.ChainableUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = _fmt
    return env


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1e5 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10000 else str(value)
    if isinstance(value, (list, dict)):
        text = json.dumps(value, default=str)
        return text if len(text) <= 120 else text[:117] + "..."
    return str(value)


def render_notebook_html(notebook: Path, out: Path) -> Path:
    """``notebook`` as a self-contained HTML page (images embedded, nothing fetched from the network)."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(extra_template_basedirs=[str(TEMPLATES)], template_name="notebook_offline",
                            embed_images=True)
    body, _ = exporter.from_filename(str(notebook))
    out.write_text(body, encoding="utf-8")
    return out


def _table_html(csv: Path) -> tuple[str, int]:
    frame = pd.read_csv(csv, keep_default_na=False, na_values=[""])
    shown = frame.head(TABLE_ROWS)
    html = shown.to_html(index=False, border=0, classes="data", na_rep="", float_format=lambda v: f"{v:.4f}",
                         escape=True)
    return html, len(frame)


def _manifests(run_dir: Path, notebooks: list[str] | None) -> list[dict[str, Any]]:
    manifests = [json.loads(p.read_text()) for p in sorted((run_dir / "artifacts").glob("*.json"))]
    return [m for m in manifests if notebooks is None or m["notebook"] in notebooks]


def _sections(run_dir: Path, record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One section per notebook that succeeded: metrics, figures (with data source), tables, notebook link."""
    ok = [n["notebook"] for n in record.get("notebooks", []) if n.get("status") == "ok"] or None
    sections = []
    for manifest in _manifests(run_dir, ok):
        name = manifest["notebook"]
        executed = run_dir / "notebooks" / f"{name}.ipynb"
        link = None
        if executed.exists():
            render_notebook_html(executed, executed.with_suffix(".html"))
            link = f"notebooks/{name}.html"
        tables = []
        for table in manifest.get("tables", []):
            csv = run_dir / table["csv"]
            if csv.exists():
                html, rows = _table_html(csv)
                tables.append({**table, "html": html, "rows": rows})
        figures = [{**f, "source_text": figure_source(f, record).strip("*")} for f in manifest.get("figures", [])]
        metrics = [{"name": k, "value": v["value"], "description": v.get("description", "")}
                   for k, v in sorted(manifest.get("metrics", {}).items())]
        sections.append({"notebook": name, "link": link, "metrics": metrics, "figures": figures, "tables": tables})
    return sections


def _environment_rows(environment: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    if not environment:
        return []
    git = environment.get("git") or {}
    blas = sorted(f"{b.get('internal_api', b.get('user_api'))} {b.get('version', '')} "
                  f"({b.get('num_threads')} thread(s))" for b in environment.get("blas", []))
    packages = environment.get("packages") or {}
    return [
        ("Python", f"{environment.get('python')} ({environment.get('python_implementation')})"),
        ("OS", str(environment.get("os"))),
        ("CPU", f"{environment.get('cpu')} ({environment.get('cpu_count')} logical cores)"),
        ("BLAS", "; ".join(blas) or "none found"),
        ("threads", ", ".join(f"{k}={v}" for k, v in sorted((environment.get("thread_env") or {}).items()))),
        ("git commit", f"{git.get('commit')}" + (" (uncommitted changes)" if git.get("dirty") else "")),
        ("packages", ", ".join(f"{n} {packages[n]}" for n in KEY_PACKAGES if n in packages)
         + f" ({len(packages)} in all: metrics.json)"),
    ]


def _comparison(run_dir: Path) -> dict[str, Any] | None:
    """The comparison with the previous successful run of the same profile, if the run sits in a history."""
    top = run_dir if run_dir.parent.name == history.RUNS else run_dir.parent
    if top.parent.name != history.RUNS:
        return None
    previous = history.previous_run(top.parent.parent, top.name)
    if previous is None:
        return None
    if top is not run_dir:
        previous = previous / run_dir.name
        if not (previous / "metrics.json").exists():
            return None
    comparison = history.compare_runs(previous, run_dir)
    prefix = "../" * (len(run_dir.relative_to(top.parent.parent).parts))
    return {"c": comparison, "previous_link": f"{prefix}{previous.relative_to(top.parent.parent).as_posix()}/index.html"}


def _write_page(run_dir: Path, record: Mapping[str, Any], extra: Mapping[str, Any]) -> Path:
    env = _environment(None)
    page = env.get_template("run.html.j2").render(
        record=record, sections=_sections(run_dir, record) if "seeds" not in record else [],
        environment=_environment_rows(record.get("environment")), comparison=_comparison(run_dir),
        **extra,
    )
    out = run_dir / "index.html"
    out.write_text(page, encoding="utf-8")
    return out


def write_html_report(run_dir: Path) -> Path:
    """Write ``index.html`` (and one HTML page per executed notebook) into ``run_dir``; return its path."""
    record = json.loads((run_dir / "metrics.json").read_text())
    if "seeds" not in record:
        return _write_page(run_dir, record, {"seed_pages": [], "across": None})
    seed_pages = []
    for seed in record.get("completed_seeds", []):
        seed_dir = run_dir / f"seed_{seed}"
        seed_record = json.loads((seed_dir / "metrics.json").read_text())
        _write_page(seed_dir, seed_record, {"seed_pages": [], "across": None})
        seed_pages.append({"seed": seed, "link": f"seed_{seed}/index.html"})
    across = run_dir / "metrics_across_seeds.csv"
    across_html = _table_html(across)[0] if across.exists() and across.stat().st_size > 0 else None
    return _write_page(run_dir, record, {"seed_pages": seed_pages, "across": across_html})
