"""The run history of a profile: ``reports/<profile>/runs/<run-id>/`` and the ``latest`` link.

Layout::

    reports/<profile>/
      runs/20261206T035515Z/     one folder per run (the id is its UTC start time, sortable)
      runs/20261206T041003Z/
      latest -> runs/20261206T041003Z   moved only when a run succeeds (an atomic rename of a new symlink)

A run id is ``YYYYMMDDTHHMMSSZ`` of the start time in UTC; a second run started in the same second
gets ``-01``, ``-02``, ... appended, so ids sort in start order. Nothing here deletes a run but
:func:`prune`, which never deletes the run ``latest`` points to.

:func:`compare_runs` says what changed between two runs: headline metrics whose values differ by more than
``abs_tol + rel_tol * |a|`` (the ``math.isclose`` rule; text and booleans must be equal), figures whose
bytes differ (sha256), and environment entries that differ, as flattened dotted keys in sorted order
(BLAS libraries are keyed by API and file path, so their listing order does not matter).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "LATEST",
    "RUNS",
    "Comparison",
    "HistoryError",
    "RunInfo",
    "RunNotFound",
    "compare_runs",
    "create_run_dir",
    "format_comparison",
    "format_runs",
    "latest_run",
    "list_runs",
    "mark_latest",
    "migrate_legacy_report",
    "previous_run",
    "prune",
    "resolve_run",
    "run_id_for",
]

RUNS = "runs"
LATEST = "latest"
_ID_FORMAT = "%Y%m%dT%H%M%SZ"


class HistoryError(ValueError):
    """A user error about the run history (a bad ``--keep``, an unknown run)."""


class RunNotFound(HistoryError):
    """A run reference (id, unique id prefix, ``latest``, ``previous`` or a folder) that names no run."""


@dataclass(frozen=True)
class RunInfo:
    """One run as ``recsys runs list`` shows it (read from its ``metrics.json``)."""

    run_id: str
    path: Path
    status: str
    started: str | None
    seconds: float | None
    seeds: list[int]
    notebooks: int
    commit: str | None
    dirty: bool | None
    command: str | None
    is_latest: bool = False


def run_id_for(started: datetime) -> str:
    """``YYYYMMDDTHHMMSSZ`` of ``started`` in UTC (a naive time is taken as UTC)."""
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    return started.astimezone(UTC).strftime(_ID_FORMAT)


def create_run_dir(profile_dir: Path, started: datetime) -> tuple[str, Path]:
    """Create ``profile_dir/runs/<id>/`` for a run started at ``started`` (exclusively: a run started in the
    same second gets the next free ``-NN`` suffix); return the id and the folder."""
    base = run_id_for(started)
    runs = profile_dir / RUNS
    runs.mkdir(parents=True, exist_ok=True)
    for n in range(100):
        run_id = base if n == 0 else f"{base}-{n:02d}"
        try:
            (runs / run_id).mkdir()
        except FileExistsError:
            continue
        return run_id, runs / run_id
    raise RuntimeError(f"more than 100 runs started in the second {base} under {runs}")


def mark_latest(profile_dir: Path, run_id: str) -> Path:
    """Point ``profile_dir/latest`` at ``runs/<run_id>`` (relative link, replaced atomically)."""
    link = profile_dir / LATEST
    tmp = profile_dir / f".{LATEST}.{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(Path(RUNS) / run_id, target_is_directory=True)
    os.replace(tmp, link)
    return link


def latest_run(profile_dir: Path) -> str | None:
    """The id ``latest`` points to, or ``None`` when there is no successful run."""
    link = profile_dir / LATEST
    if not link.is_symlink():
        return None
    return Path(os.readlink(link)).name


def migrate_legacy_report(profile_dir: Path) -> Path | None:
    """Move a report of the old runner (``metrics.json`` and the rest directly in ``reports/<profile>/``) into
    ``runs/<id>-legacy/`` (id from its ``metrics.json`` time), so it is neither lost nor read as the current
    run. Without a ``metrics.json`` there nothing moves: figures and tables there come from notebooks run by
    hand (their default ``reports_dir``: JupyterLab, ``make notebooks``, nbval), not from a run."""
    stamp = profile_dir / "metrics.json"
    if not stamp.is_file() or stamp.is_symlink():
        return None
    legacy = [p for p in profile_dir.iterdir() if p.name not in (RUNS, LATEST) and not p.name.startswith(".")]
    when = datetime.fromtimestamp(stamp.stat().st_mtime, UTC)
    target = profile_dir / RUNS / f"{run_id_for(when)}-legacy"
    target.mkdir(parents=True, exist_ok=True)
    for path in legacy:
        shutil.move(str(path), str(target / path.name))
    return target


def _run_dirs(profile_dir: Path) -> list[Path]:
    runs = profile_dir / RUNS
    return sorted((p for p in runs.iterdir() if p.is_dir() and not p.is_symlink()), key=lambda p: p.name) \
        if runs.is_dir() else []


def _read_record(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "metrics.json"
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {"status": "unreadable"}


def _info(run_dir: Path, latest: str | None) -> RunInfo:
    record = _read_record(run_dir)
    git = (record.get("environment") or {}).get("git") or {}
    seeds = record.get("seeds") or ([record["seed"]] if "seed" in record else [])
    timings = record.get("notebooks") or []
    command = record.get("command_line")
    return RunInfo(
        run_id=run_dir.name,
        path=run_dir,
        status=record.get("status", "incomplete"),
        started=record.get("started"),
        seconds=record.get("seconds"),
        seeds=[int(s) for s in seeds],
        notebooks=len(timings) if timings else len(record.get("metrics") or {}),
        commit=git.get("commit"),
        dirty=git.get("dirty"),
        command=" ".join(command) if isinstance(command, list) else command,
        is_latest=run_dir.name == latest,
    )


def list_runs(profile_dir: Path) -> list[RunInfo]:
    """Every run of the profile, oldest first (a run folder without ``metrics.json`` is ``incomplete``)."""
    latest = latest_run(profile_dir)
    return [_info(d, latest) for d in _run_dirs(profile_dir)]


def previous_run(profile_dir: Path, run_id: str) -> Path | None:
    """The newest successful run started before ``run_id`` (what the HTML report compares with)."""
    earlier = [d for d in _run_dirs(profile_dir) if d.name < run_id]
    for run_dir in reversed(earlier):
        if _read_record(run_dir).get("status") == "ok":
            return run_dir
    return None


def resolve_run(profile_dir: Path, ref: str) -> Path:
    """A run folder from ``ref``: ``latest``, ``previous`` (the successful run before latest), a run id, a unique
    prefix of one, or a path to a run folder."""
    dirs = _run_dirs(profile_dir)
    if ref == LATEST:
        latest = latest_run(profile_dir)
        if latest is None:
            raise RunNotFound(f"{profile_dir}: no successful run yet (no {LATEST} link)")
        return profile_dir / RUNS / latest
    if ref == "previous":
        latest = latest_run(profile_dir)
        found = previous_run(profile_dir, latest) if latest else None
        if found is None:
            raise RunNotFound(f"{profile_dir}: no successful run before {LATEST}")
        return found
    exact = [d for d in dirs if d.name == ref]
    if exact:
        return exact[0]
    prefixed = [d for d in dirs if d.name.startswith(ref)]
    if len(prefixed) == 1:
        return prefixed[0]
    if len(prefixed) > 1:
        raise RunNotFound(f"run {ref!r} is ambiguous in {profile_dir / RUNS}: {[d.name for d in prefixed]}")
    path = Path(ref)
    if (path / "metrics.json").is_file():
        return path
    known = ", ".join(d.name for d in dirs[-5:]) or "none"
    raise RunNotFound(f"no run {ref!r} in {profile_dir / RUNS} (newest: {known})")


def prune(profile_dir: Path, keep: int, dry_run: bool = False) -> list[Path]:
    """Delete all but the newest ``keep`` runs; the run ``latest`` points to is always kept. Returns the
    deleted (or, with ``dry_run``, the would-be deleted) folders."""
    if keep < 1:
        raise HistoryError(f"--keep must be at least 1, got {keep}")
    latest = latest_run(profile_dir)
    dirs = _run_dirs(profile_dir)
    doomed = [d for d in dirs[: max(len(dirs) - keep, 0)] if d.name != latest]
    if not dry_run:
        for d in doomed:
            shutil.rmtree(d)
    return doomed


# -- comparison -------------------------------------------------------------------------------------------------------
@dataclass
class Comparison:
    """What differs between run ``a`` and run ``b`` (see the module docstring for the rules)."""

    a: str
    b: str
    metrics: list[tuple[str, Any, Any]] = field(default_factory=list)
    metrics_compared: int = 0
    figures_changed: list[str] = field(default_factory=list)
    figures_only_a: list[str] = field(default_factory=list)
    figures_only_b: list[str] = field(default_factory=list)
    figures_compared: int = 0
    environment: list[tuple[str, Any, Any]] = field(default_factory=list)
    settings: list[tuple[str, Any, Any]] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not (self.metrics or self.figures_changed or self.figures_only_a or self.figures_only_b
                    or self.environment or self.settings)

    def as_dict(self) -> dict[str, Any]:
        return {
            "a": self.a, "b": self.b, "metrics_compared": self.metrics_compared,
            "metrics": [{"metric": k, "a": x, "b": y} for k, x, y in self.metrics],
            "figures_compared": self.figures_compared, "figures_changed": self.figures_changed,
            "figures_only_a": self.figures_only_a, "figures_only_b": self.figures_only_b,
            "environment": [{"key": k, "a": x, "b": y} for k, x, y in self.environment],
            "settings": [{"key": k, "a": x, "b": y} for k, x, y in self.settings],
        }


def _metric_items(record: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    metrics = record.get("metrics") or {}
    if "seeds" in record:  # multi-seed: {seed: {notebook: {metric: value}}}
        for seed, per_notebook in metrics.items():
            for notebook, values in per_notebook.items():
                for name, value in values.items():
                    yield f"seed {seed} {notebook}:{name}", value
        return
    for notebook, values in metrics.items():
        for name, value in values.items():
            yield f"{notebook}:{name}", value


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _differs(x: Any, y: Any, rel_tol: float, abs_tol: float) -> bool:
    if _numeric(x) and _numeric(y):
        if math.isnan(x) and math.isnan(y):
            return False
        return not math.isclose(x, y, rel_tol=rel_tol, abs_tol=abs_tol)
    return x != y


def _figure_hashes(run_dir: Path) -> dict[str, str]:
    out = {}
    for path in sorted(run_dir.rglob("figures/*")):
        if path.is_file():
            out[path.relative_to(run_dir).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for key in sorted(value, key=str):
            yield from _flatten(value[key], f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list) and prefix.endswith("blas"):
        # libraries keyed by API and file, so their listing order (threadpoolctl's load order) does not matter
        for lib in value:
            key = f"{lib.get('internal_api', lib.get('user_api'))}:{lib.get('filepath', '')}"
            for name in sorted(k for k in lib if k not in ("filepath",)):
                yield f"{prefix}[{key}].{name}", lib[name]
    else:
        yield prefix, value


def _dict_changes(a: Any, b: Any) -> list[tuple[str, Any, Any]]:
    fa, fb = dict(_flatten(a)), dict(_flatten(b))
    return [(k, fa.get(k), fb.get(k)) for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)]


def compare_runs(a_dir: Path, b_dir: Path, rel_tol: float = 1e-6, abs_tol: float = 1e-9) -> Comparison:
    """Metrics beyond the tolerance, figures whose bytes differ, environment and settings differences."""
    ra, rb = _read_record(a_dir), _read_record(b_dir)
    if not ra or not rb:
        missing = a_dir if not ra else b_dir
        raise RunNotFound(f"{missing} has no metrics.json (an incomplete run)")
    out = Comparison(a=a_dir.name, b=b_dir.name)
    ma, mb = dict(_metric_items(ra)), dict(_metric_items(rb))
    out.metrics_compared = len(set(ma) | set(mb))
    out.metrics = [(k, ma.get(k), mb.get(k)) for k in sorted(set(ma) | set(mb))
                   if k not in ma or k not in mb or _differs(ma[k], mb[k], rel_tol, abs_tol)]
    fa, fb = _figure_hashes(a_dir), _figure_hashes(b_dir)
    out.figures_compared = len(set(fa) | set(fb))
    out.figures_changed = sorted(k for k in set(fa) & set(fb) if fa[k] != fb[k])
    out.figures_only_a, out.figures_only_b = sorted(set(fa) - set(fb)), sorted(set(fb) - set(fa))
    out.environment = _dict_changes(ra.get("environment") or {}, rb.get("environment") or {})
    settings = ("profile", "seed", "seeds", "parameters", "configuration", "inputs")
    out.settings = _dict_changes({k: ra.get(k) for k in settings}, {k: rb.get(k) for k in settings})
    return out


def _short(value: Any, width: int = 60) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= width else text[: width - 3] + "..."


def format_comparison(c: Comparison, show: int = 50) -> str:
    """Plain-text report of a comparison (what ``recsys runs compare`` prints)."""
    lines = [f"compare {c.a} (A) with {c.b} (B)"]

    def section(title: str, rows: list[tuple[str, Any, Any]], total: int | None = None) -> None:
        of = f" of {total}" if total is not None else ""
        lines.append(f"{title}: {len(rows)}{of} differ")
        for key, x, y in rows[:show]:
            delta = f"  ({y - x:+.6g})" if _numeric(x) and _numeric(y) else ""
            lines.append(f"  {key}: {_short(x)} -> {_short(y)}{delta}")
        if len(rows) > show:
            lines.append(f"  ... {len(rows) - show} more (--json for all)")

    section("metrics beyond the tolerance", c.metrics, c.metrics_compared)
    lines.append(f"figures whose bytes differ: {len(c.figures_changed)} of {c.figures_compared}")
    lines += [f"  {name}" for name in c.figures_changed[:show]]
    if c.figures_only_a or c.figures_only_b:
        lines.append(f"figures only in A: {len(c.figures_only_a)}; only in B: {len(c.figures_only_b)}")
        lines += [f"  A only: {n}" for n in c.figures_only_a[:show]] + [f"  B only: {n}" for n in c.figures_only_b[:show]]
    section("settings (profile, seeds, parameters, configuration, inputs)", c.settings)
    section("environment", c.environment)
    return "\n".join(lines)


def format_runs(runs: list[RunInfo]) -> str:
    """One line per run, oldest first; ``*`` marks the run ``latest`` points to."""
    if not runs:
        return "no runs"
    lines = [f"  {'run id':<22} {'status':<10} {'seeds':<10} {'notebooks':>9} {'wall (s)':>9}  commit"]
    for r in runs:
        commit = (r.commit or "?")[:10] + ("+dirty" if r.dirty else "")
        seconds = f"{r.seconds:.0f}" if r.seconds is not None else ""
        seeds = ",".join(map(str, r.seeds))
        lines.append(f"{'*' if r.is_latest else ' '} {r.run_id:<22} {r.status:<10} {seeds:<10} {r.notebooks:>9} "
                     f"{seconds:>9}  {commit}")
    return "\n".join(lines)
