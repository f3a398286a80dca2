"""Run the numbered notebooks headlessly with papermill and write the report.

``run_report(profile="thesis", seeds=(42,))`` executes every
``notebooks/NN_*.ipynb`` in order into ``reports/<profile>/`` (one seed) or
``reports/<profile>/seed_<s>/`` (several seeds), with the parameters
``profile, seed, data_dir, reports_dir`` plus any ``-p name=value`` the
caller gives. Threads are pinned in the kernels' environment. Afterwards the
notebooks' artifact manifests become ``metrics.json`` and ``summary.md``;
with several seeds the top-level summary reports the mean and spread of
every metric across seeds.
"""

from __future__ import annotations

import ast
import json
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from recsys.reporting import THREAD_ENV

__all__ = ["NotebookFailed", "discover_notebooks", "parse_parameter", "run_report", "write_summary", "PROJECT_ROOT"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROFILES = ("ci", "thesis", "large")


class NotebookFailed(RuntimeError):
    """A notebook raised; the message names the notebook and the cell."""


def parse_parameter(text: str) -> tuple[str, Any]:
    """``"name=value"`` -> ``(name, value)``; the value is read as a Python
    literal (number, bool, None, list, quoted string) or else kept as text."""
    if "=" not in text:
        raise ValueError(f"parameter {text!r} must look like name=value")
    name, raw = text.split("=", 1)
    name = name.strip()
    if not name.isidentifier():
        raise ValueError(f"parameter name {name!r} is not a valid Python identifier")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return name, value


def discover_notebooks(notebooks_dir: Path, only: Iterable[str] | None = None) -> list[Path]:
    """``NN_*.ipynb`` in reading order, optionally only those whose number or
    name is in ``only``."""
    found = sorted(p for p in notebooks_dir.glob("[0-9][0-9]_*.ipynb"))
    if only:
        wanted = set(only)
        found = [p for p in found if p.stem in wanted or p.stem.split("_", 1)[0] in wanted]
        if not found:
            raise ValueError(f"no notebook in {notebooks_dir} matches {sorted(wanted)}")
    if not found:
        raise ValueError(f"no numbered notebooks (NN_name.ipynb) in {notebooks_dir}")
    return found


def _declared_parameters(notebook: Path) -> set[str]:
    import papermill

    return set(papermill.inspect_notebook(str(notebook)).keys())


@dataclass
class _Timing:
    notebook: str
    seconds: float


def _execute(notebook: Path, output: Path, parameters: Mapping[str, Any]) -> None:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    try:
        papermill.execute_notebook(
            str(notebook),
            str(output),
            parameters=dict(parameters),
            kernel_name="python3",
            cwd=str(notebook.parent),
            progress_bar=False,
            log_output=False,
        )
    except PapermillExecutionError as error:
        raise NotebookFailed(
            f"{notebook.name} failed in cell {error.cell_index} (execution count {error.exec_count}): "
            f"{error.ename}: {error.evalue}\n  executed notebook with the traceback: {output}"
        ) from error


def run_report(
    profile: str = "thesis",
    seeds: Sequence[int] = (42,),
    parameters: Mapping[str, Any] | None = None,
    notebooks: Iterable[str] | None = None,
    reports_root: Path | None = None,
    data_dir: Path | None = None,
    notebooks_dir: Path | None = None,
    echo: Any = print,
) -> Path:
    """Execute the notebooks for each seed; return the top-level report folder."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; expected one of {list(PROFILES)}")
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    parameters = dict(parameters or {})
    for reserved in ("profile", "seed", "data_dir", "reports_dir"):
        if reserved in parameters:
            raise ValueError(f"parameter {reserved!r} is set by the runner; use the matching option instead")
    notebooks_dir = (notebooks_dir or PROJECT_ROOT / "notebooks").resolve()
    reports_root = (reports_root or PROJECT_ROOT / "reports").resolve()
    data_dir = (data_dir or PROJECT_ROOT / "data").resolve()
    paths = discover_notebooks(notebooks_dir, notebooks)
    declared = {p: _declared_parameters(p) for p in paths}
    unknown = set(parameters) - set().union(*declared.values())
    if unknown:
        raise ValueError(f"parameter(s) {sorted(unknown)} are declared by no notebook's parameters cell")
    os.environ.update(THREAD_ENV)

    top = reports_root / profile
    seed_dirs: list[Path] = []
    for seed in seeds:
        out = top if len(seeds) == 1 else top / f"seed_{seed}"
        (out / "notebooks").mkdir(parents=True, exist_ok=True)
        timings = []
        for i, notebook in enumerate(paths, 1):
            echo(f"[{profile} seed={seed}] ({i}/{len(paths)}) {notebook.name} ...", end="", flush=True)
            started = time.perf_counter()
            given = {k: v for k, v in parameters.items() if k in declared[notebook]}
            base = {"profile": profile, "seed": int(seed), "data_dir": str(data_dir), "reports_dir": str(out)}
            _execute(notebook, out / "notebooks" / notebook.name, {**base, **given})
            timings.append(_Timing(notebook.stem, time.perf_counter() - started))
            echo(f" {timings[-1].seconds:.1f} s", flush=True)
        write_summary(out, profile=profile, seed=seed, parameters=parameters, timings=timings)
        seed_dirs.append(out)
    if len(seeds) > 1:
        write_multi_seed_summary(top, profile, seeds, seed_dirs, parameters)
    echo(f"report: {top / 'summary.md'}")
    return top


def _manifests(report_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((report_dir / "artifacts").glob("*.json"))]


def _markdown_table(df: pd.DataFrame, max_rows: int = 25) -> str:
    shown = df.head(max_rows)
    header = "| " + " | ".join(str(c) for c in shown.columns) + " |"
    rule = "|" + "|".join("---" for _ in shown.columns) + "|"

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4f}"
        return str(v).replace("|", "\\|")

    rows = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    more = [f"\n*({len(df) - max_rows} more rows in the CSV)*"] if len(df) > max_rows else []
    return "\n".join([header, rule, *rows, *more])


def _collect_metrics(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        m["notebook"]: {name: entry["value"] for name, entry in sorted(m.get("metrics", {}).items())}
        for m in manifests
    }


def write_summary(
    report_dir: Path,
    profile: str,
    seed: int,
    parameters: Mapping[str, Any],
    timings: Sequence[_Timing] = (),
) -> Path:
    """``metrics.json`` and ``summary.md`` from the notebooks' manifests."""
    manifests = _manifests(report_dir)
    metrics = _collect_metrics(manifests)
    (report_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    lines = [
        f"# recsys report: profile `{profile}`, seed {seed}",
        "",
        "Generated by `recsys run`; every figure, table and metric below names the notebook that made it.",
        f"Parameters: `{json.dumps(dict(parameters), sort_keys=True)}`." if parameters else "Parameters: defaults.",
        "",
    ]
    if timings:
        lines += ["| notebook | run time (s) |", "|---|---|"]
        lines += [f"| {t.notebook} | {t.seconds:.1f} |" for t in timings]
        lines.append("")
    for manifest in manifests:
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
                f"**Figure {figure['name']}**: {figure['caption']} ([pdf]({figure['pdf']}))",
                "",
                f"![{figure['name']}]({figure['png']})",
                "",
            ]
    path = report_dir / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def aggregate_seed_metrics(per_seed: Mapping[int, Mapping[str, Mapping[str, Any]]]) -> pd.DataFrame:
    """Numeric metrics across seeds: ``notebook, metric, mean, std, min, max,
    n_seeds`` (:func:`recsys.statistics.aggregate_seeds`; std is NaN for a single seed)."""
    from recsys.statistics import aggregate_seeds

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
    top: Path, profile: str, seeds: Sequence[int], seed_dirs: Sequence[Path], parameters: Mapping[str, Any]
) -> Path:
    per_seed = {seed: json.loads((d / "metrics.json").read_text()) for seed, d in zip(seeds, seed_dirs, strict=True)}
    table = aggregate_seed_metrics(per_seed)
    top.mkdir(parents=True, exist_ok=True)
    table.to_csv(top / "metrics_across_seeds.csv", index=False, float_format="%.6f", lineterminator="\n")
    (top / "metrics.json").write_text(json.dumps({str(s): m for s, m in per_seed.items()}, indent=2, sort_keys=True) + "\n")
    lines = [
        f"# recsys report: profile `{profile}`, seeds {', '.join(map(str, seeds))}",
        "",
        "Mean and spread (sample standard deviation, min, max) of every numeric headline metric across seeds "
        "(data generation and every model seeded by the run's seed). Per-seed reports: "
        + ", ".join(f"[seed {s}]({d.relative_to(top)}/summary.md)" for s, d in zip(seeds, seed_dirs, strict=True)),
        f"Parameters: `{json.dumps(dict(parameters), sort_keys=True)}`." if parameters else "Parameters: defaults.",
        "",
        _markdown_table(table, max_rows=len(table) or 1),
        "",
    ]
    comparison = _comparison_across_seeds(top)
    if comparison is not None:
        comparison.to_csv(top / "comparison_across_seeds.csv", index=False, float_format="%.6f", lineterminator="\n")
        lines += [
            "## Model comparison across seeds (08_evaluation)",
            "",
            "Each model's test-window metric (mean over users) per seed, then mean and spread across seeds "
            "([csv](comparison_across_seeds.csv)).",
            "",
            _markdown_table(comparison, max_rows=len(comparison) or 1),
            "",
        ]
    path = top / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _comparison_across_seeds(top: Path) -> pd.DataFrame | None:
    """The evaluation notebook's model x metric table aggregated across seeds, if it ran."""
    from recsys.evaluation.comparison import aggregate_seeds, read_seed_tables

    try:
        tables = read_seed_tables(top, "08_comparison.csv")
    except FileNotFoundError:
        return None
    return aggregate_seeds(tables)


def main_run(args: Any) -> int:
    parameters = dict(parse_parameter(p) for p in args.parameter or [])
    seeds = [int(s) for s in str(args.seeds).split(",") if s.strip()] if args.seeds else [42]
    try:
        run_report(
            profile=args.profile,
            seeds=seeds,
            parameters=parameters,
            notebooks=args.notebooks.split(",") if args.notebooks else None,
            reports_root=Path(args.reports) if args.reports else None,
            data_dir=Path(args.data) if args.data else None,
        )
    except NotebookFailed as error:
        print(f"\nFAILED: {error}", file=sys.stderr)
        return 1
    return 0
