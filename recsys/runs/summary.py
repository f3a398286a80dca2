"""``summary.md`` and ``metrics.json`` of a run (one seed, and the spread across seeds).

:func:`write_summary` reads the manifests (``artifacts/<notebook>.json``) of the notebooks that succeeded and
writes ``metrics.json`` (status, failure, parameters, wall time per notebook, headline metrics, the run record:
id, start time, command line, configuration, input data hashes, and the environment) and ``summary.md``, which
lists every figure (with the run or committed record its data came from), table and metric with its notebook.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["Timing", "aggregate_seed_metrics", "write_multi_seed_summary", "write_summary"]


@dataclass
class Timing:
    """One notebook's outcome in a run: ``ok``, ``failed`` (a cell raised) or ``kernel error``."""

    notebook: str
    seconds: float
    status: str = "ok"


def _manifests(report_dir: Path, notebooks: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The artifact manifests of ``report_dir``; only those of ``notebooks`` when given."""
    manifests = [json.loads(p.read_text()) for p in sorted((report_dir / "artifacts").glob("*.json"))]
    if notebooks is None:
        return manifests
    keep = set(notebooks)
    return [m for m in manifests if m["notebook"] in keep]


def _markdown_table(df: pd.DataFrame, max_rows: int = 25) -> str:
    shown = df.head(max_rows)
    header = "| " + " | ".join(str(c) for c in shown.columns) + " |"
    rule = "|" + "|".join("---" for _ in shown.columns) + "|"

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return "" if v != v else f"{v:.4f}"  # NaN: an empty cell
        return str(v).replace("|", "\\|")

    rows = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    more = [f"\n*({len(df) - max_rows} more rows in the CSV)*"] if len(df) > max_rows else []
    return "\n".join([header, rule, *rows, *more])


def _collect_metrics(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        m["notebook"]: {name: entry["value"] for name, entry in sorted(m.get("metrics", {}).items())}
        for m in manifests
    }


def _failure_record(failure: Any | None) -> dict[str, Any] | None:
    if failure is None:
        return None
    return {"notebook": failure.notebook, "cell": failure.cell, "error": failure.error}


def _environment_lines(environment: Mapping[str, Any] | None) -> list[str]:
    if not environment:
        return []
    git = environment.get("git", {})
    commit = git.get("commit")
    state = "unknown (not a git work tree)" if commit is None else (
        f"`{commit[:12]}`" + (" with uncommitted changes (dirty)" if git.get("dirty") else " (clean)"))
    blas = "; ".join(
        f"{b.get('internal_api', b.get('user_api'))} {b.get('version', '')} ({b.get('num_threads')} thread(s))".strip()
        for b in environment.get("blas", [])
    ) or "none found"
    packages = environment.get("packages", {})
    key = ("numpy", "scipy", "pandas", "scikit-learn", "scikit-surprise", "matplotlib", "papermill")
    lines = [
        "## Environment",
        "",
        f"- Python {environment.get('python')} ({environment.get('python_implementation')}) on {environment.get('os')}",
        f"- CPU: {environment.get('cpu')} ({environment.get('cpu_count')} logical cores, {environment.get('machine')})",
        f"- BLAS: {blas}",
        f"- git commit: {state}",
        "- key packages: " + ", ".join(f"{n} {packages[n]}" for n in key if n in packages),
        f"- every package version ({len(packages)}): `metrics.json` -> `environment.packages`",
        "",
    ]
    return lines


def figure_source(figure: Mapping[str, Any], run: Mapping[str, Any] | None) -> str:
    """Where a figure's data came from, for its caption: the committed record the notebook named
    (``report.figure(..., source=...)``), else this run."""
    if figure.get("source"):
        return f"*Data: {figure['source']}.*"
    run_id = (run or {}).get("run_id")
    return f"*Data: this run (`{run_id}`).*" if run_id else "*Data: this run.*"


def _run_lines(run: Mapping[str, Any] | None) -> list[str]:
    """The run's id, start, command line and inputs, for the top of ``summary.md``."""
    if not run:
        return []
    command = run.get("command_line")
    lines = [f"Run `{run.get('run_id')}`, started {run.get('started')} (UTC)"
             + (f", {run['seconds']:.0f} s" if run.get("seconds") is not None else "") + "."]
    if command:
        lines.append(f"Command line: `{' '.join(command) if isinstance(command, list) else command}`.")
    inputs = run.get("inputs") or []
    if inputs:
        lines += ["", "| input data set | path | content hash |", "|---|---|---|"]
        lines += [f"| {i['name']} | `{i['path']}` | `{i['hash'][:16]}` ({i['hash_kind']}) |" for i in inputs]
    return [*lines, ""]


def _notebook_lines(manifest: Mapping[str, Any], report_dir: Path, run: Mapping[str, Any] | None) -> list[str]:
    """One notebook's section of ``summary.md``: metrics, tables, figures (with their data source)."""
    lines: list[str] = []
    name = manifest["notebook"]
    lines += [f"## {name}", "", f"Executed notebook: [notebooks/{name}.ipynb](notebooks/{name}.ipynb)", ""]
    if manifest.get("metrics"):
        lines += ["| metric | value | description |", "|---|---|---|"]
        for metric, entry in sorted(manifest["metrics"].items()):
            value = entry["value"]
            shown = f"{value:.4f}" if isinstance(value, float) else json.dumps(value)
            lines.append(f"| `{metric}` | {shown} | {entry.get('description', '')} |")
        lines.append("")
    for table in manifest.get("tables", []):
        lines += [f"**Table {table['name']}**: {table['caption']} ([csv]({table['csv']}), [tex]({table['tex']}))", ""]
        csv = report_dir / table["csv"]
        if csv.exists():
            lines += [_markdown_table(pd.read_csv(csv, keep_default_na=False, na_values=[""])), ""]
    for figure in manifest.get("figures", []):
        lines += [
            f"**Figure {figure['name']}**: {figure['caption']} {figure_source(figure, run)} "
            f"([pdf]({figure['pdf']}))",
            "",
            f"![{figure['name']}]({figure['png']})",
            "",
        ]
    return lines


def write_summary(
    report_dir: Path,
    profile: str,
    seed: int,
    parameters: Mapping[str, Any],
    timings: Sequence[Timing] = (),
    failure: Any | None = None,
    not_run: Sequence[str] = (),
    environment: Mapping[str, Any] | None = None,
    config_file: Path | None = None,
    run: Mapping[str, Any] | None = None,
) -> Path:
    """``metrics.json`` and ``summary.md`` from the manifests of the notebooks that succeeded
    (all manifests when ``timings`` is empty, for a summary written outside a run); ``run`` (id, start
    time, command line, configuration, inputs) is added to the record and shown at the top."""
    succeeded = [t.notebook for t in timings if t.status == "ok"] if timings else None
    manifests = _manifests(report_dir, succeeded)
    metrics = _collect_metrics(manifests)
    record = {
        "profile": profile,
        "seed": int(seed),
        "status": "failed" if failure is not None else "ok",
        "failed": _failure_record(failure),
        "not_run": list(not_run),
        "parameters": {k: v for k, v in sorted(parameters.items())},
        "config_file": config_file.name if config_file is not None else None,
        "notebooks": [{"notebook": t.notebook, "status": t.status, "seconds": round(t.seconds, 1)} for t in timings],
        "metrics": metrics,
        "environment": dict(environment) if environment else None,
        **dict(run or {}),
    }
    (report_dir / "metrics.json").write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
    lines = [f"# recsys report: profile `{profile}`, seed {seed}", "", *_run_lines(run)]
    if failure is not None:
        lines += [
            f"**FAILED: notebook `{failure.notebook}`, cell {failure.cell}: {failure.error}**",
            "",
            f"The run stopped there ([executed notebook with the traceback](notebooks/{failure.notebook}.ipynb))"
            + (f"; not run: {', '.join(f'`{n}`' for n in not_run)}" if not_run else "")
            + ". Only the notebooks that succeeded in this run are reported below.",
            "",
        ]
    lines += [
        "Generated by `recsys run`; every figure, table and metric below names the notebook that made it.",
        f"Parameters: `{json.dumps(dict(parameters), sort_keys=True, default=str)}`." if parameters
        else "Parameters: defaults.",
        f"Configuration file: [{config_file.name}]({os.path.relpath(config_file, report_dir)})." if config_file
        else "Configuration: defaults (no `--config`).",
        "",
    ]
    if timings:
        lines += ["| notebook | status | wall time (s) |", "|---|---|---|"]
        lines += [f"| {t.notebook} | {t.status} | {t.seconds:.1f} |" for t in timings]
        lines += [f"| {n} | not run | |" for n in not_run]
        lines.append("")
    lines += _environment_lines(environment)
    for manifest in manifests:
        lines += _notebook_lines(manifest, report_dir, run)
    path = report_dir / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def aggregate_seed_metrics(per_seed: Mapping[int, Mapping[str, Mapping[str, Any]]]) -> pd.DataFrame:
    """Numeric metrics across seeds: ``notebook, metric, mean, std, min, max,
    n_seeds`` (:func:`recsys.evaluation.statistics.aggregate_seeds`; std is NaN for a single seed)."""
    from recsys.evaluation.statistics import aggregate_seeds

    columns = ["notebook", "metric", "mean", "std", "min", "max", "n_seeds"]
    tables = {
        seed: pd.DataFrame(
            [(nb, metric, float(v)) for nb, values in metrics.items() for metric, v in values.items()
             if isinstance(v, (int, float)) and not isinstance(v, bool)],
            columns=["notebook", "metric", "value"],
        )
        for seed, metrics in per_seed.items()
    }
    if not tables or all(t.empty for t in tables.values()):
        return pd.DataFrame(columns=columns)
    out = aggregate_seeds(tables, value="value", by=("notebook", "metric"))
    return out.sort_values(["notebook", "metric"], kind="stable").reset_index(drop=True)[columns]


def write_multi_seed_summary(
    top: Path,
    profile: str,
    seeds: Sequence[int],
    seed_dirs: Sequence[Path],
    parameters: Mapping[str, Any],
    environment: Mapping[str, Any] | None = None,
    failure: Any | None = None,
    failed_seed: int | None = None,
    config_file: Path | None = None,
    run: Mapping[str, Any] | None = None,
) -> Path:
    """The top-level summary of a multi-seed run over the seeds whose run completed (``seed_dirs``)."""
    completed = [int(d.name.removeprefix("seed_")) for d in seed_dirs]
    per_seed = {seed: json.loads((d / "metrics.json").read_text())["metrics"] for seed, d in zip(completed, seed_dirs,
                                                                                                   strict=True)}
    table = aggregate_seed_metrics(per_seed)
    top.mkdir(parents=True, exist_ok=True)
    table.to_csv(top / "metrics_across_seeds.csv", index=False, float_format="%.6f", lineterminator="\n")
    record = {
        "profile": profile,
        "seeds": [int(s) for s in seeds],
        "completed_seeds": completed,
        "status": "failed" if failure is not None else "ok",
        "failed": _failure_record(failure),
        "parameters": dict(parameters),
        "config_file": config_file.name if config_file is not None else None,
        "metrics": {str(s): m for s, m in per_seed.items()},
        "environment": dict(environment) if environment else None,
        **dict(run or {}),
    }
    (top / "metrics.json").write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
    lines = [f"# recsys report: profile `{profile}`, seeds {', '.join(map(str, seeds))}", "", *_run_lines(run)]
    if failure is not None:
        lines += [
            f"**FAILED: notebook `{failure.notebook}`, cell {failure.cell}: {failure.error}** (seed {failed_seed}). "
            f"The run stopped there; the figures below cover only the seeds that completed: "
            f"{', '.join(map(str, completed)) or 'none'}.",
            "",
        ]
    lines += [
        "Mean and spread (sample standard deviation, min, max) of every numeric headline metric across seeds "
        "(data generation and every model seeded by the run's seed). Per-seed reports: "
        + ", ".join(f"[seed {s}]({d.relative_to(top)}/summary.md)" for s, d in zip(completed, seed_dirs, strict=True)),
        f"Parameters: `{json.dumps(dict(parameters), sort_keys=True, default=str)}`." if parameters
        else "Parameters: defaults.",
        f"Configuration file: [{config_file.name}]({config_file.name})." if config_file else "",
        "",
        _markdown_table(table, max_rows=len(table) or 1),
        "",
    ]
    for name, caption, aggregated in _tables_across_seeds(top, seed_dirs):
        csv = f"{name}_across_seeds.csv"
        aggregated.to_csv(top / csv, index=False, float_format="%.6f", lineterminator="\n")
        lines += [
            f"## Table {name} across seeds",
            "",
            f"{caption} Mean and spread across seeds ([csv]({csv})).",
            "",
            _markdown_table(aggregated, max_rows=len(aggregated) or 1),
            "",
        ]
    lines += _environment_lines(environment)
    path = top / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _tables_across_seeds(top: Path, seed_dirs: Sequence[Path]) -> list[tuple[str, str, pd.DataFrame]]:
    """Every table a notebook declared with ``across_seeds={"by": [...], "value": column}``,
    aggregated over the seeds (:func:`recsys.evaluation.statistics.aggregate_seeds`)."""
    from recsys.evaluation.statistics import aggregate_seeds

    declared: dict[str, dict[str, Any]] = {}
    for seed_dir in seed_dirs:
        for manifest in _manifests(seed_dir):
            for table in manifest.get("tables", []):
                if table.get("across_seeds"):
                    declared.setdefault(table["name"], table)
    out = []
    for name, table in declared.items():
        spec = table["across_seeds"]
        frames = {}
        for seed_dir in seed_dirs:
            csv = seed_dir / table["csv"]
            if csv.exists():
                frames[int(seed_dir.name.removeprefix("seed_"))] = pd.read_csv(csv, keep_default_na=False,
                                                                              na_values=[""])
        if frames:
            out.append((name, table["caption"], aggregate_seeds(frames, value=spec["value"], by=tuple(spec["by"]))))
    return out


