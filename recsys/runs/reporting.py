"""Thesis figures, tables and metrics, saved byte-stably, with a manifest per notebook.

A notebook opens with ``report = Report.start("02_stage1_realtime_knn", reports_dir)``
and then calls ``report.figure(fig, "name", "caption")``,
``report.table(df, "name", "caption")`` and ``report.metric("name", value, "what it is")``.
Figures go to ``figures/`` as PDF and PNG with every volatile byte
(creation dates, software version) removed; tables to ``tables/`` as CSV and
LaTeX; everything is listed in ``artifacts/<notebook>.json``, from which
``recsys run`` writes ``metrics.json`` and ``summary.md``. :func:`performance_metrics_table`
sets the design's performance claims beside the values a run recorded.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys.runs import project_paths
from recsys.serialization import jsonable

__all__ = ["Report", "DESIGN_PERFORMANCE_CLAIMS", "legend_outside", "plain_log_axis", "recorded_source", "performance_metrics_table", "pin_threads", "set_thesis_style",
           "set_display_precision", "rounded", "save_figure", "save_table", "write_benchmark_manifest",
           "DISPLAY_DECIMALS", "THREAD_ENV"]

THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "PYTHONHASHSEED": "0",
}


def pin_threads() -> None:
    """Pin BLAS/OpenMP to one thread: floating-point results (KMeans inertia,
    randomized SVD) depend on the thread count."""
    for key, value in THREAD_ENV.items():
        os.environ.setdefault(key, value)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


DISPLAY_DECIMALS = 3
"""Decimals of every number a notebook shows: a headline metric carries its meaning in three,
and floating-point noise from another CPU or BLAS build (around 1e-9 relative) stays below them."""


def set_display_precision(decimals: int = DISPLAY_DECIMALS) -> None:
    """Show floats in pandas frames and series (text and HTML) and numpy arrays at ``decimals``."""
    import numpy

    pd.set_option("display.precision", decimals)
    numpy.set_printoptions(precision=decimals, suppress=True)


def rounded(value: Any, decimals: int = DISPLAY_DECIMALS) -> Any:
    """``value`` with every float (also inside dicts, lists and tuples) rounded to ``decimals``, for printing."""
    if isinstance(value, (float, np.floating)):
        return round(float(value), decimals)
    if isinstance(value, dict):
        return {k: rounded(v, decimals) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(rounded(v, decimals) for v in value)
    return value


INLINE_DPI = 96
"""Resolution of the figures shown inline in notebooks (the saved PNG uses ``savefig.dpi``)."""


def set_thesis_style() -> None:
    """One print-ready matplotlib style for every figure, byte-stable output.

    In a notebook kernel, figures are shown inline as PNG at :data:`INLINE_DPI`
    without the software stamp (so a re-executed notebook stores the same bytes);
    elsewhere the non-interactive Agg backend is used.
    """
    import matplotlib

    if not _in_notebook():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(context="paper", style="whitegrid", palette="colorblind", font="DejaVu Sans")
    plt.rcParams.update(
        {
            "figure.dpi": INLINE_DPI,
            "savefig.dpi": 200,
            "savefig.bbox": "tight",
            "figure.figsize": (6.0, 3.6),
            "axes.titlesize": 10,
            "axes.labelsize": 9,
            "legend.fontsize": 8,
            "xtick.labelsize": 8,
            "ytick.labelsize": 8,
            "pdf.fonttype": 42,
            "ps.fonttype": 42,
            "svg.hashsalt": "recsys",
            "path.simplify": True,
        }
    )
    if _in_notebook():
        _show_figures_inline()


def recorded_source(path: str | os.PathLike[str]) -> str:
    """The data source of a figure drawn from a benchmark record rather than from the run (for
    ``report.figure(..., source=...)``): the committed record (``benchmarks/results/``) or one written on this
    machine by a benchmark script (``reports/benchmarks/``)."""
    parts = Path(path).resolve().parts
    shown = "/".join(parts[-3:])
    if parts[-3:-1] == ("benchmarks", "results"):
        return f"the committed benchmark record {shown}, not this run"
    return f"the benchmark record {shown}, written on this machine by a benchmark script, not this run"


def plain_log_axis(ax: Any, which: str = "x") -> None:
    """A log axis with plain tick labels (``50, 100, 200, 500``, never ``6x10^1``): major ticks at 1, 2 and 5
    times each power of ten, labelled with ``%g``; minor ticks unlabelled."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def legend_outside(ax: Any, where: str = "right", **kwargs: Any) -> Any:
    """The axes' legend outside the plotting area (``right``: beside it, top-aligned; ``below``: under the
    x label), so it covers no data; ``savefig(bbox_inches="tight")`` keeps it in the saved file."""
    if where == "below":
        placement = {"loc": "upper center", "bbox_to_anchor": (0.5, -0.18), "ncol": kwargs.pop("ncol", 3)}
    else:
        placement = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0}
    return ax.legend(**{"frameon": False, **placement, **kwargs})


def _show_figures_inline() -> None:
    """Inline PNG figures in the kernel, whatever ``MPLBACKEND`` says, without volatile metadata."""
    import matplotlib.pyplot as plt
    from IPython import get_ipython
    from matplotlib_inline.backend_inline import set_matplotlib_formats

    if "inline" not in plt.get_backend().lower():
        get_ipython().run_line_magic("matplotlib", "inline")
    set_matplotlib_formats("png", bbox_inches="tight", metadata={"Software": None})


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython

        return get_ipython() is not None and "IPKernelApp" in get_ipython().config
    except Exception:
        return False


def save_figure(fig: Any, path_without_suffix: Path) -> list[Path]:
    """Save ``fig`` as PDF and PNG without dates or software stamps."""
    path_without_suffix.parent.mkdir(parents=True, exist_ok=True)
    pdf = path_without_suffix.with_suffix(".pdf")
    png = path_without_suffix.with_suffix(".png")
    fig.savefig(pdf, metadata={"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None})
    fig.savefig(png, metadata={"Software": None})
    return [pdf, png]


def save_table(df: pd.DataFrame, path_without_suffix: Path, float_format: str = "%.4f") -> list[Path]:
    """Save ``df`` as CSV and as a LaTeX tabular (booktabs)."""
    path_without_suffix.parent.mkdir(parents=True, exist_ok=True)
    csv = path_without_suffix.with_suffix(".csv")
    tex = path_without_suffix.with_suffix(".tex")
    df.to_csv(csv, index=False, float_format=float_format, lineterminator="\n")
    tex.write_text(_latex(df, float_format))
    return [csv, tex]


def _latex(df: pd.DataFrame, float_format: str) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, (float, np.floating)):
            return "" if math.isnan(v) else float_format % v
        text = str(v)
        for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"), ("$", r"\$")):
            text = text.replace(a, b)
        return text

    cols = [cell(c) for c in df.columns]
    align = "".join("r" if pd.api.types.is_numeric_dtype(df[c]) else "l" for c in df.columns)
    lines = [f"\\begin{{tabular}}{{{align}}}", "\\toprule", " & ".join(cols) + r" \\", "\\midrule"]
    lines += [" & ".join(cell(v) for v in row) + r" \\" for row in df.itertuples(index=False)]
    lines += ["\\bottomrule", "\\end{tabular}", ""]
    return "\n".join(lines)


@dataclass
class Report:
    """Collects one notebook's figures, tables and headline metrics."""

    notebook: str
    root: Path
    figures: list[dict[str, str]] = field(default_factory=list)
    tables: list[dict[str, str]] = field(default_factory=list)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def start(cls, notebook: str, reports_dir: str | Path) -> Report:
        """Pin threads, set the figure style and the display precision, and open the notebook's report."""
        pin_threads()
        set_thesis_style()
        set_display_precision()
        root = Path(reports_dir)
        for sub in ("figures", "tables", "artifacts"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        report = cls(notebook=notebook, root=root)
        report._write()
        return report

    @property
    def prefix(self) -> str:
        return self.notebook.split("_", 1)[0]

    def figure(self, fig: Any, name: str, caption: str, source: str | None = None) -> Path:
        """Save a figure as ``figures/<NN>_<name>.{pdf,png}``; returns the PNG path.

        ``source``: where the data came from when it is not this run (e.g. ``"the committed benchmark record
        benchmarks/results/bench_spark.json"``); the summary's caption says so."""
        stem = f"{self.prefix}_{name}"
        pdf, png = save_figure(fig, self.root / "figures" / stem)
        self.figures = [f for f in self.figures if f["name"] != stem]
        entry = {"name": stem, "caption": caption, "pdf": f"figures/{pdf.name}", "png": f"figures/{png.name}"}
        if source:
            entry["source"] = source
        self.figures.append(entry)
        self._write()
        return png

    def table(self, df: pd.DataFrame, name: str, caption: str, float_format: str = "%.4f",
              across_seeds: dict[str, Any] | None = None) -> Path:
        """Save a table as ``tables/<NN>_<name>.{csv,tex}``; returns the CSV path.

        ``across_seeds={"by": [key columns], "value": column}`` asks a multi-seed
        ``recsys run`` to report the mean and spread of ``value`` per key across seeds."""
        stem = f"{self.prefix}_{name}"
        csv, tex = save_table(df, self.root / "tables" / stem, float_format)
        self.tables = [t for t in self.tables if t["name"] != stem]
        entry = {"name": stem, "caption": caption, "csv": f"tables/{csv.name}", "tex": f"tables/{tex.name}"}
        if across_seeds is not None:
            missing = [c for c in (*across_seeds["by"], across_seeds["value"]) if c not in df.columns]
            if missing:
                raise ValueError(f"across_seeds names column(s) {missing} that table {name!r} lacks")
            entry["across_seeds"] = {"by": list(across_seeds["by"]), "value": across_seeds["value"]}
        self.tables.append(entry)
        self._write()
        return csv

    def metric(self, name: str, value: Any, description: str = "") -> Any:
        """Record a headline metric (rounded to 6 decimals in the manifest)."""
        self.metrics[name] = {"value": jsonable(value, 6), "description": description}
        self._write()
        return value

    def _write(self) -> None:
        manifest = {
            "notebook": self.notebook,
            "figures": self.figures,
            "tables": self.tables,
            "metrics": self.metrics,
        }
        path = self.root / "artifacts" / f"{self.notebook}.json"
        path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def write_benchmark_manifest(
    name: str, metrics: dict[str, tuple[Any, str]], reports_root: str | Path | None = None
) -> Path:
    """Record a benchmark's figures as ``<reports root>/benchmarks/<name>.json`` in the
    notebooks' manifest format (``metrics: {metric: {value, description}}``),
    so the evaluation's "Performance Metrics" table can cite them. The
    description must say how the value was measured (profile, users, threads).
    The reports root: ``reports_root``, else ``$RECSYS_REPORTS``, else ``./reports``
    (:func:`recsys.runs.project_paths.reports_root`)."""
    path = project_paths.reports_root(reports_root) / "benchmarks" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    manifest = {
        "notebook": name,
        "figures": [],
        "tables": [],
        "metrics": {key: {"value": jsonable(value, 6), "description": how} for key, (value, how) in metrics.items()},
    }
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path


# -- the design's claims: the design's "Performance Metrics" table ----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Claim:
    metric: str
    claim: str
    patterns: tuple[str, ...]  # regexes over "<notebook>:<metric name>" of recorded metrics


DESIGN_PERFORMANCE_CLAIMS: tuple[_Claim, ...] = (
    _Claim("Stage 1 Latency", "30-80ms", (r"(stage1|stage_1|realtime|real_time).*latency", r"latency.*(stage1|realtime)")),
    _Claim("Stage 3 Latency", "150-300ms", (r"(stage3|stage_3|full|hybrid).*latency", r"latency.*(stage3|full)")),
    _Claim("Throughput", "300+ requests/second", (r"throughput", r"requests_per_s", r"\brps\b")),
    _Claim("Memory Usage", "250-350MB (ML service)", (r"memory", r"\brss\b", r"_mb\b")),
    _Claim("Deal Generation Rate", "3-7 deals per user", (r"deals?_per_user", r"deal.*rate")),
    _Claim("User Segmentation Accuracy", "85-92%", (r"segment.*(accuracy|ari)", r"(accuracy|ari).*segment")),
    _Claim("Recommendation Diversity", "70-85%", (r"diversity",)),
)


def _recorded_metrics(reports_dir: Path, exclude_notebooks: Sequence[str]) -> list[dict[str, Any]]:
    """Headline metrics of the manifests in ``artifacts/`` (notebooks) and of
    benchmark manifests (same format) in ``reports_dir/benchmarks/`` and in the nearest
    ``benchmarks/`` folder of an ancestor (the reports root's, written by ``make benchmarks``),
    if present."""
    rows = []
    paths = sorted((reports_dir / "artifacts").glob("*.json"))
    paths += sorted((reports_dir / "benchmarks").glob("*.json"))
    # the reports root's benchmarks/: reports/<profile>/runs/<id>[/seed_<s>] (or the old reports/<profile>)
    for ancestor in list(reports_dir.parents)[:4]:
        if (ancestor / "benchmarks").is_dir():
            paths += sorted((ancestor / "benchmarks").glob("*.json"))
            break
    for path in paths:
        try:
            manifest = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"{path} is not a readable report manifest: {error}") from error
        notebook = manifest.get("notebook", path.stem)
        if notebook in exclude_notebooks:
            continue
        for name, entry in sorted(manifest.get("metrics", {}).items()):
            rows.append({"source": f"{notebook}:{name}", "value": entry.get("value"),
                         "description": entry.get("description", "")})
    return rows


def performance_metrics_table(
    reports_dir: str | Path,
    measured: Mapping[str, Sequence[tuple[str, Any, str]]] | None = None,
    exclude_notebooks: Sequence[str] = ("08_evaluation",),
) -> pd.DataFrame:
    """The design's "Performance Metrics" table with measured values beside the claims.

    Columns ``metric, design_claim, measured, how_measured, source``. For each
    design row, every numeric headline metric recorded in this run's
    ``reports_dir/artifacts/*.json`` (and ``reports_dir/benchmarks/*.json``
    if a benchmark wrote one) whose ``notebook:name`` matches the row's
    patterns is listed, with its recorded description as the method;
    manifests of ``exclude_notebooks`` (the caller itself) are skipped.
    ``measured`` adds the caller's own values: design metric -> list of
    ``(name, value, how)``. A row with nothing recorded says "not measured
    in this run"; no number is ever filled in otherwise."""
    recorded = _recorded_metrics(Path(reports_dir), tuple(exclude_notebooks))
    measured = dict(measured or {})
    known = {c.metric for c in DESIGN_PERFORMANCE_CLAIMS}
    unknown = sorted(set(measured) - known)
    if unknown:
        raise ValueError(f"unknown design metric(s) {unknown}; expected among {sorted(known)}")
    rows = []
    for claim in DESIGN_PERFORMANCE_CLAIMS:
        found = [(r["source"], r["value"], r["description"]) for r in recorded
                 if isinstance(r["value"], (int, float)) and not isinstance(r["value"], bool)
                 and any(re.search(p, r["source"], flags=re.IGNORECASE) for p in claim.patterns)]
        found += [(name, value, how) for name, value, how in measured.get(claim.metric, [])]
        if not found:
            rows.append({"metric": claim.metric, "design_claim": claim.claim, "measured": "not measured in this run",
                         "how_measured": "", "source": ""})
            continue
        for source, value, how in found:
            rows.append({"metric": claim.metric, "design_claim": claim.claim, "measured": _fmt(value),
                         "how_measured": how, "source": source})
    return pd.DataFrame(rows)


def _fmt(value: Any) -> str:
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return f"{float(value):.4g}"
