"""Run the numbered notebooks headlessly with papermill and write the report.

``run_report(profile="thesis", seeds=(42,))`` executes every
``notebooks/NN_*.ipynb`` (of the working directory, or ``notebooks_dir``) in
order into ``reports/<profile>/`` (one seed) or ``reports/<profile>/seed_<s>/``
(several seeds), with the parameters ``profile, seed, data_dir, reports_dir``,
``config_file`` (the copied ``--config`` file, for notebooks that declare it)
and any ``-p name=value`` the caller gives. Threads are pinned in the kernels'
environment.

Honest runs: the report folder is emptied at the start, so nothing from an
earlier run is shown as current. If a notebook fails, the run stops there and
still writes ``summary.md`` and ``metrics.json``, which name the failed
notebook, its cell and the error, and list only results of notebooks that
succeeded in this run; :class:`NotebookFailed` is raised afterwards.
``metrics.json`` and ``summary.md`` also record the environment (Python, OS,
CPU, BLAS, package versions, git commit and dirty flag) and each notebook's
wall time. With several seeds the top-level summary reports the mean and
spread of every metric across seeds, and aggregates every table a notebook
declared with ``report.table(..., across_seeds={"by": [...], "value": ...})``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from recsys.runs import project_paths
from recsys.runs.parameters import ParameterError, coerce, declared_defaults, split_assignment
from recsys.runs.reporting import THREAD_ENV, pin_threads

__all__ = [
    "CommandLineValue",
    "NotebookFailed",
    "UsageError",
    "aggregate_seed_metrics",
    "discover_notebooks",
    "parse_parameter",
    "run_report",
    "write_summary",
]

PROFILES = ("ci", "thesis", "large")
RESERVED_PARAMETERS = ("profile", "seed", "data_dir", "reports_dir", "config_file")
CONFIG_COPY = "config.toml"


class NotebookFailed(RuntimeError):
    """A notebook raised; the message names the notebook and the cell."""

    def __init__(self, message: str, notebook: str = "", cell: int | None = None, error: str = "") -> None:
        super().__init__(message)
        self.notebook, self.cell, self.error = notebook, cell, error


class UsageError(ValueError):
    """A user error in the run's arguments (bad parameter, seed, notebook selection or path)."""


class CommandLineValue(str):
    """A ``-p`` value as typed on the command line: converted, per notebook, to the type of
    that notebook's default (:func:`recsys.runs.parameters.coerce`)."""


def parse_parameter(text: str) -> tuple[str, CommandLineValue]:
    """``"name=value"`` -> ``(name, CommandLineValue(value))``; typed later against each notebook."""
    name, raw = split_assignment(text)
    return name, CommandLineValue(raw)


def discover_notebooks(notebooks_dir: Path, only: Iterable[str] | None = None) -> list[Path]:
    """``NN_*.ipynb`` in reading order, optionally only those whose number or
    name is in ``only``."""
    if not notebooks_dir.is_dir():
        raise UsageError(
            f"notebooks folder {notebooks_dir} does not exist; run from the project folder or pass --notebooks-dir"
        )
    found = sorted(p for p in notebooks_dir.glob("[0-9][0-9]_*.ipynb"))
    if only:
        wanted = set(only)
        found = [p for p in found if p.stem in wanted or p.stem.split("_", 1)[0] in wanted]
        missing = sorted(w for w in wanted if not any(p.stem == w or p.stem.split("_", 1)[0] == w for p in found))
        if missing:
            raise UsageError(f"--notebooks: no notebook in {notebooks_dir} matches {missing}")
    if not found:
        raise UsageError(f"no numbered notebooks (NN_name.ipynb) in {notebooks_dir}")
    return found


@dataclass
class _Timing:
    notebook: str
    seconds: float
    status: str = "ok"


@dataclass
class _SeedRun:
    seed: int
    out: Path
    timings: list[_Timing] = field(default_factory=list)
    failure: NotebookFailed | None = None
    not_run: list[str] = field(default_factory=list)


def _register_tuple_translator(kernel_name: str = "python3") -> None:
    """papermill writes a tuple parameter as the *string* ``"(5, 10)"``; for our kernel it is
    written as a tuple literal (every other type as papermill's Python translator does)."""
    from papermill.translators import PythonTranslator, papermill_translators

    class _TupleTranslator(PythonTranslator):
        @classmethod
        def translate(cls, val: Any) -> str:
            if isinstance(val, tuple):
                items = ", ".join(cls.translate(v) for v in val)
                return f"({items},)" if len(val) == 1 else f"({items})"
            return super().translate(val)

        @classmethod
        def translate_list(cls, val: list[Any]) -> str:
            return "[" + ", ".join(cls.translate(v) for v in val) + "]"

    papermill_translators.register(kernel_name, _TupleTranslator)


def _execute(notebook: Path, output: Path, parameters: Mapping[str, Any]) -> None:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    _register_tuple_translator()
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
            f"{error.ename}: {error.evalue}\n  executed notebook with the traceback: {output}",
            notebook=notebook.stem, cell=error.cell_index, error=f"{error.ename}: {error.evalue}",
        ) from error


def _typed_parameters(
    parameters: Mapping[str, Any], declared: Mapping[Path, Mapping[str, Any]]
) -> dict[Path, dict[str, Any]]:
    """Per notebook, the given parameters it declares, command-line text typed by its defaults."""
    unknown = set(parameters) - set().union(*(d.keys() for d in declared.values()))
    if unknown:
        raise UsageError(f"parameter(s) {sorted(unknown)} are declared by no notebook's parameters cell")
    typed: dict[Path, dict[str, Any]] = {}
    for path, defaults in declared.items():
        typed[path] = {}
        for name, value in parameters.items():
            if name not in defaults:
                continue
            if isinstance(value, CommandLineValue):
                value = coerce(name, str(value), defaults[name], where=path.name)
            typed[path][name] = value
    return typed


def _clear_report(top: Path) -> None:
    """Empty the report folder so that nothing of an earlier run is read as a result of this one."""
    if top.exists():
        shutil.rmtree(top)
    top.mkdir(parents=True)


def run_report(
    profile: str = "thesis",
    seeds: Sequence[int] = (42,),
    parameters: Mapping[str, Any] | None = None,
    notebooks: Iterable[str] | None = None,
    reports_root: Path | None = None,
    data_dir: Path | None = None,
    notebooks_dir: Path | None = None,
    config_file: Path | None = None,
    echo: Any = print,
) -> Path:
    """Execute the notebooks for each seed; return the top-level report folder.

    Paths default to ``notebooks/``, ``reports/`` (or ``$RECSYS_REPORTS``) and ``data/`` of the working
    directory. Raises :class:`UsageError` (or ``ConfigError``) before running
    anything when an argument is wrong, and :class:`NotebookFailed` after the
    summary is written when a notebook fails."""
    from recsys.config_file import load_config_file
    from recsys.runs.environment import environment_record

    if profile not in PROFILES:
        raise UsageError(f"--profile: unknown profile {profile!r}; expected one of {list(PROFILES)}")
    if not seeds:
        raise UsageError("--seeds must name at least one seed")
    parameters = dict(parameters or {})
    for reserved in RESERVED_PARAMETERS:
        if reserved in parameters:
            raise UsageError(f"-p {reserved}: set by the runner; use the matching option instead")
    cwd = Path.cwd()
    notebooks_dir = Path(notebooks_dir or cwd / "notebooks").resolve()
    reports_root = project_paths.reports_root(reports_root or None)
    data_dir = Path(data_dir or cwd / "data").resolve()
    paths = discover_notebooks(notebooks_dir, notebooks)
    declared = {p: declared_defaults(p) for p in paths}
    try:
        typed = _typed_parameters(parameters, declared)
    except ParameterError as error:
        raise UsageError(str(error)) from error
    if config_file is not None:
        load_config_file(config_file)  # validate before running anything (ConfigError names the key)
    os.environ.update(THREAD_ENV)
    pin_threads()  # the environment record then shows the BLAS thread count the kernels use
    environment = environment_record(notebooks_dir.parent)

    top = reports_root / profile
    _clear_report(top)
    config_copy = None
    if config_file is not None:
        config_copy = top / CONFIG_COPY
        shutil.copyfile(config_file, config_copy)
    runs: list[_SeedRun] = []
    for seed in seeds:
        out = top if len(seeds) == 1 else top / f"seed_{seed}"
        (out / "notebooks").mkdir(parents=True, exist_ok=True)
        run = _SeedRun(seed=int(seed), out=out)
        for i, notebook in enumerate(paths, 1):
            if run.failure is not None:
                run.not_run.append(notebook.stem)
                continue
            echo(f"[{profile} seed={seed}] ({i}/{len(paths)}) {notebook.name} ...", end="", flush=True)
            started = time.perf_counter()
            base = {"profile": profile, "seed": int(seed), "data_dir": str(data_dir), "reports_dir": str(out)}
            if config_copy is not None and "config_file" in declared[notebook]:
                base["config_file"] = str(config_copy)
            try:
                _execute(notebook, out / "notebooks" / notebook.name, {**base, **typed[notebook]})
            except NotebookFailed as failure:
                run.failure = failure
                run.timings.append(_Timing(notebook.stem, time.perf_counter() - started, "failed"))
                echo(" FAILED", flush=True)
                continue
            run.timings.append(_Timing(notebook.stem, time.perf_counter() - started))
            echo(f" {run.timings[-1].seconds:.1f} s", flush=True)
        write_summary(out, profile=profile, seed=seed, parameters=parameters, timings=run.timings,
                      failure=run.failure, not_run=run.not_run, environment=environment,
                      config_file=config_copy)
        runs.append(run)
        if run.failure is not None:
            break
    if len(seeds) > 1:
        write_multi_seed_summary(top, profile, seeds, [r.out for r in runs if r.failure is None], parameters,
                                 environment=environment, failure=runs[-1].failure, failed_seed=runs[-1].seed,
                                 config_file=config_copy)
    echo(f"report: {top / 'summary.md'}")
    if runs[-1].failure is not None:
        raise runs[-1].failure
    return top


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


def _failure_record(failure: NotebookFailed | None) -> dict[str, Any] | None:
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


def write_summary(
    report_dir: Path,
    profile: str,
    seed: int,
    parameters: Mapping[str, Any],
    timings: Sequence[_Timing] = (),
    failure: NotebookFailed | None = None,
    not_run: Sequence[str] = (),
    environment: Mapping[str, Any] | None = None,
    config_file: Path | None = None,
) -> Path:
    """``metrics.json`` and ``summary.md`` from the manifests of the notebooks that succeeded
    (all manifests when ``timings`` is empty, for a summary written outside a run)."""
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
    }
    (report_dir / "metrics.json").write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
    lines = [f"# recsys report: profile `{profile}`, seed {seed}", ""]
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
    failure: NotebookFailed | None = None,
    failed_seed: int | None = None,
    config_file: Path | None = None,
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
    }
    (top / "metrics.json").write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
    lines = [f"# recsys report: profile `{profile}`, seeds {', '.join(map(str, seeds))}", ""]
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


def main_run(args: Any) -> int:
    """``recsys run``: user errors raise :class:`UsageError`/``ConfigError`` (the CLI exits 2);
    a failed notebook returns 1 after the summary is written."""
    parameters = dict(parse_parameter(p) for p in args.parameter or [])
    try:
        run_report(
            profile=args.profile,
            seeds=args.seeds or [42],
            parameters=parameters,
            notebooks=args.notebooks.split(",") if args.notebooks else None,
            reports_root=Path(args.reports) if args.reports else None,
            data_dir=Path(args.data) if args.data else None,
            notebooks_dir=Path(args.notebooks_dir) if args.notebooks_dir else None,
            config_file=Path(args.config) if args.config else None,
        )
    except NotebookFailed as error:
        print(f"\nFAILED: {error}", file=sys.stderr)
        return 1
    return 0
