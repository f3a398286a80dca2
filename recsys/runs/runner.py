"""Run the numbered notebooks headlessly with papermill; keep every run.

``run_report(profile="thesis", seeds=(42,))`` executes every ``notebooks/NN_*.ipynb`` (of the working
directory, or ``notebooks_dir``) in order into a new run folder ``reports/<profile>/runs/<run-id>/`` (one
seed) or its ``seed_<s>/`` subfolders (several seeds); the run id is the UTC start time
(:mod:`recsys.runs.history`). ``reports/<profile>/latest`` points to the newest run that succeeded and is
moved only when a run succeeds, so ``reports/<profile>/latest/metrics.json`` is always a good run's.

Each notebook gets only the parameters its ``parameters`` cell declares: ``profile, seed, data_dir,
reports_dir, config_file`` (the copied ``--config`` file) and any ``-p name=value`` the caller gives,
typed by the notebook's declared type or default (:mod:`recsys.runs.parameters`). Every argument is
checked before anything is written: a wrong one raises :class:`UsageError` and leaves the reports folder
as it was. Threads are pinned in the kernels' environment.

Honest runs: if a notebook fails (a cell raises, or its kernel logs an error), the run stops there and
still writes ``summary.md`` and ``metrics.json`` naming the failed notebook, its cell and the error, with
only the results of notebooks that succeeded; :class:`NotebookFailed` is raised afterwards and ``latest``
stays where it was. ``metrics.json`` records the run id, start time, command line, configuration,
content hash of every input data set, the environment and each notebook's wall time; ``index.html``
(:mod:`recsys.runs.html`) shows the run in a browser, compared with the previous one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recsys.runs import history, project_paths
from recsys.runs.parameters import Declared, ParameterError, coerce_declared, declared_parameters, split_assignment
from recsys.runs.reporting import THREAD_ENV, pin_threads
from recsys.runs.summary import Timing, aggregate_seed_metrics, write_multi_seed_summary, write_summary

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
class _SeedRun:
    seed: int
    out: Path
    timings: list[Timing] = field(default_factory=list)
    failure: NotebookFailed | None = None
    not_run: list[str] = field(default_factory=list)


def _execute(notebook: Path, output: Path, parameters: Mapping[str, Any],
             progress: Callable[[str], None] | None) -> None:
    from papermill.exceptions import PapermillExecutionError

    from recsys.runs.execution import KernelError, execute_notebook

    try:
        execute_notebook(notebook, output, parameters, progress=progress)
    except PapermillExecutionError as error:
        raise NotebookFailed(
            f"{notebook.name} failed in cell {error.cell_index} (execution count {error.exec_count}): "
            f"{error.ename}: {error.evalue}\n  executed notebook with the traceback: {output}",
            notebook=notebook.stem, cell=error.cell_index, error=f"{error.ename}: {error.evalue}",
        ) from error
    except KernelError as error:
        raise NotebookFailed(f"{error}\n  executed notebook: {output}", notebook=notebook.stem,
                             error=f"kernel error: {error.line}") from error


def _typed_parameters(
    parameters: Mapping[str, Any], declared: Mapping[Path, Mapping[str, Declared]]
) -> dict[Path, dict[str, Any]]:
    """Per notebook, the given parameters it declares, command-line text typed by its declared types."""
    unknown = set(parameters) - set().union(*(d.keys() for d in declared.values()))
    if unknown:
        raise UsageError(f"parameter(s) {sorted(unknown)} are declared by no notebook's parameters cell")
    typed: dict[Path, dict[str, Any]] = {}
    for path, params in declared.items():
        typed[path] = {}
        for name, value in parameters.items():
            if name not in params:
                continue
            if isinstance(value, CommandLineValue):
                value = coerce_declared(name, str(value), params[name], where=path.name)
            typed[path][name] = value
    return typed


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _input_records(run_started: float, declared: Mapping[Path, Mapping[str, Declared]],
                   typed: Mapping[Path, Mapping[str, Any]], data_dir: Path, profile: str, seed: int,
                   config_file: Path | None) -> list[dict[str, Any]]:
    """The content hash of every input data set of one seed's run: the synthetic data set of (profile, seed,
    configuration) and any other data set written to ``data_dir`` during the run (``Dataset.content_hash``),
    the Online Retail file and every file or folder a notebook's ``*_file``/``*_path``/``*_dir`` parameter
    names (sha256 of the bytes; a folder: of its JSON files)."""
    from recsys.config_file import load_config_file
    from recsys.data.cache import cache_key, resolve_params

    records: dict[str, dict[str, Any]] = {}

    def dataset(directory: Path, name: str) -> None:
        manifest = directory / "manifest.json"
        if manifest.is_file():
            content = json.loads(manifest.read_text()).get("content_hash")
            if content:
                records[str(directory)] = {"name": name, "path": str(directory), "hash": content,
                                           "hash_kind": "Dataset.content_hash"}

    def file(path: Path, name: str) -> None:
        if path.is_file():
            records[str(path)] = {"name": name, "path": str(path), "hash": _sha256(path), "hash_kind": "sha256"}
        elif path.is_dir():
            for json_file in sorted(path.glob("*.json")):
                file(json_file, name)

    if any("data_dir" in d and "profile" in d for d in declared.values()):
        recsys_config = load_config_file(config_file).recsys
        expected = data_dir / f"{profile}-{cache_key(resolve_params(profile, seed), recsys_config)}"
        dataset(expected, f"synthetic, profile {profile}, seed {seed}")
    for manifest in sorted(data_dir.glob("*/manifest.json")) if data_dir.is_dir() else []:
        if manifest.stat().st_mtime >= run_started and str(manifest.parent) not in records:
            dataset(manifest.parent, f"data set written during the run ({manifest.parent.name})")
    for path, params in declared.items():
        values = {name: d.default for name, d in params.items()} | dict(typed.get(path, {}))
        if "online_retail_path" in values:
            from recsys.data.online_retail import resolve_online_retail_path

            file(resolve_online_retail_path(values["online_retail_path"]), "UCI Online Retail")
        for name, value in sorted(values.items()):
            if name in RESERVED_PARAMETERS or not isinstance(value, str) or not value:
                continue
            if name.endswith(("_file", "_path", "_dir")):
                file((path.parent / value).resolve(), f"{path.stem}: {name}")
    return sorted(records.values(), key=lambda r: (r["name"], r["path"]))


@dataclass
class _Plan:
    """A checked run: what to execute, with which parameters, where."""

    profile: str
    seeds: list[int]
    paths: list[Path]
    declared: dict[Path, dict[str, Declared]]
    typed: dict[Path, dict[str, Any]]
    parameters: dict[str, Any]
    profile_dir: Path
    data_dir: Path
    config_file: Path | None


def _plan(profile: str, seeds: Sequence[int], parameters: Mapping[str, Any] | None, notebooks: Iterable[str] | None,
          reports_root: Path | None, data_dir: Path | None, notebooks_dir: Path | None,
          config_file: Path | None) -> _Plan:
    """Check every argument; raise :class:`UsageError` (or ``ConfigError``) before anything is written."""
    from recsys.config_file import load_config_file

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
    paths = discover_notebooks(notebooks_dir, notebooks)
    try:
        declared = {p: declared_parameters(p) for p in paths}
        typed = _typed_parameters(parameters, declared)
    except ParameterError as error:
        raise UsageError(str(error)) from error
    if config_file is not None:
        load_config_file(config_file)  # validate before running anything (ConfigError names the key)
    root = project_paths.reports_root(reports_root or None)
    return _Plan(profile, [int(s) for s in seeds], paths, declared, typed, parameters, root / profile,
                 Path(data_dir or cwd / "data").resolve(), config_file)


def _run_seed(plan: _Plan, seed: int, out: Path, config_copy: Path | None, echo: Any, progress: bool) -> _SeedRun:
    """Execute the plan's notebooks for one seed into ``out`` (stops at the first failure)."""
    (out / "notebooks").mkdir(parents=True, exist_ok=True)
    run = _SeedRun(seed=seed, out=out)
    for i, notebook in enumerate(plan.paths, 1):
        if run.failure is not None:
            run.not_run.append(notebook.stem)
            continue
        echo(f"[{plan.profile} seed={seed}] ({i}/{len(plan.paths)}) {notebook.name}", flush=True)
        started = time.perf_counter()
        base = {"profile": plan.profile, "seed": seed, "data_dir": str(plan.data_dir), "reports_dir": str(out)}
        if config_copy is not None:
            base["config_file"] = str(config_copy)
        given = {k: v for k, v in base.items() if k in plan.declared[notebook]}  # only what it declares
        try:
            _execute(notebook, out / "notebooks" / notebook.name, {**given, **plan.typed[notebook]},
                     progress=(lambda line: echo(line, flush=True)) if progress else None)
        except NotebookFailed as failure:
            run.failure = failure
            run.timings.append(Timing(notebook.stem, time.perf_counter() - started, "failed"))
            echo(f"  FAILED after {run.timings[-1].seconds:.1f} s: {failure.error}", flush=True)
            continue
        run.timings.append(Timing(notebook.stem, time.perf_counter() - started))
        echo(f"  done in {run.timings[-1].seconds:.1f} s", flush=True)
    return run


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
    command_line: Sequence[str] | None = None,
    progress: bool = True,
    html: bool = True,
) -> Path:
    """Execute the notebooks for each seed into a new run folder; return it.

    Paths default to ``notebooks/``, ``reports/`` (or ``$RECSYS_REPORTS``) and ``data/`` of the working
    directory. Raises :class:`UsageError` (or ``ConfigError``) before writing anything when an argument is
    wrong, and :class:`NotebookFailed` after the summary is written when a notebook fails. ``progress``: a
    line per executed cell (through ``echo``); ``html``: write ``index.html``."""
    from recsys.runs.environment import environment_record

    plan = _plan(profile, seeds, parameters, notebooks, reports_root, data_dir, notebooks_dir, config_file)
    os.environ.update(THREAD_ENV)
    pin_threads()  # the environment record then shows the BLAS thread count the kernels use
    environment = environment_record(plan.paths[0].parent.parent)
    started_at, started = datetime.now(UTC), time.perf_counter()
    history.migrate_legacy_report(plan.profile_dir)
    run_id, top = history.create_run_dir(plan.profile_dir, started_at)
    config_copy = None
    if config_file is not None:
        config_copy = top / CONFIG_COPY
        shutil.copyfile(config_file, config_copy)
    echo(f"run {run_id}: {len(plan.paths)} notebook(s) x {len(plan.seeds)} seed(s) into {top}", flush=True)
    record: dict[str, Any] = {
        "run_id": run_id,
        "started": started_at.isoformat(timespec="seconds"),
        "command_line": list(command_line) if command_line is not None else None,
        "configuration": {
            "config_file": CONFIG_COPY if config_copy else None,
            "config_sha256": _sha256(config_copy) if config_copy else None,
            "parameters_typed": {p.stem: v for p, v in plan.typed.items() if v},
            "notebooks": [p.stem for p in plan.paths],
        },
    }
    runs: list[_SeedRun] = []
    for seed in plan.seeds:
        out = top if len(plan.seeds) == 1 else top / f"seed_{seed}"
        run = _run_seed(plan, seed, out, config_copy, echo, progress)
        seed_record = {**record, "inputs": _input_records(started_at.timestamp(), plan.declared, plan.typed,
                                                          plan.data_dir, plan.profile, seed, config_copy),
                       "seconds": round(time.perf_counter() - started, 1)}
        write_summary(out, profile=plan.profile, seed=seed, parameters=plan.parameters, timings=run.timings,
                      failure=run.failure, not_run=run.not_run, environment=environment,
                      config_file=config_copy, run=seed_record)
        runs.append(run)
        if run.failure is not None:
            break
    if len(plan.seeds) > 1:
        record["seconds"] = round(time.perf_counter() - started, 1)
        record["inputs"] = [i for r in runs for i in json.loads((r.out / "metrics.json").read_text())["inputs"]]
        write_multi_seed_summary(top, plan.profile, plan.seeds, [r.out for r in runs if r.failure is None],
                                 plan.parameters, environment=environment, failure=runs[-1].failure,
                                 failed_seed=runs[-1].seed, config_file=config_copy, run=record)
    if runs[-1].failure is None:
        history.mark_latest(plan.profile_dir, run_id)
    if html:
        from recsys.runs.html import write_html_report

        echo(f"html report: {write_html_report(top)}", flush=True)
    echo(f"report: {top / 'summary.md'}" + ("" if runs[-1].failure else f" (now {plan.profile_dir / 'latest'})"))
    if runs[-1].failure is not None:
        raise runs[-1].failure
    return top


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
            command_line=getattr(args, "command_line", None) or ["recsys", *sys.argv[1:]],
            progress=not getattr(args, "quiet", False),
        )
    except NotebookFailed as error:
        print(f"\nFAILED: {error}", file=sys.stderr)
        return 1
    return 0
