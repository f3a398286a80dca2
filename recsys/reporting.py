"""Thesis figures, tables and metrics, saved byte-stably, with a manifest per notebook.

A notebook opens with ``report = Report.start("02_stage1_realtime_knn", reports_dir)``
and then calls ``report.figure(fig, "name", "caption")``,
``report.table(df, "name", "caption")`` and ``report.metric("name", value, "what it is")``.
Figures go to ``figures/`` as PDF and PNG with every volatile byte
(creation dates, software version) removed; tables to ``tables/`` as CSV and
LaTeX; everything is listed in ``artifacts/<notebook>.json``, from which
``recsys run`` writes ``metrics.json`` and ``summary.md``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys.serialization import jsonable

__all__ = ["Report", "pin_threads", "set_thesis_style", "save_figure", "save_table", "write_benchmark_manifest",
           "THREAD_ENV"]

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


def set_thesis_style() -> None:
    """One print-ready matplotlib style for every figure, byte-stable output."""
    import matplotlib

    matplotlib.use("Agg") if not _in_notebook() else None
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(context="paper", style="whitegrid", palette="colorblind", font="DejaVu Sans")
    plt.rcParams.update(
        {
            "figure.dpi": 110,
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
        """Pin threads, set the figure style, and open the notebook's report."""
        pin_threads()
        set_thesis_style()
        root = Path(reports_dir)
        for sub in ("figures", "tables", "artifacts"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        report = cls(notebook=notebook, root=root)
        report._write()
        return report

    @property
    def prefix(self) -> str:
        return self.notebook.split("_", 1)[0]

    def figure(self, fig: Any, name: str, caption: str) -> Path:
        """Save a figure as ``figures/<NN>_<name>.{pdf,png}``; returns the PNG path."""
        stem = f"{self.prefix}_{name}"
        pdf, png = save_figure(fig, self.root / "figures" / stem)
        self.figures = [f for f in self.figures if f["name"] != stem]
        self.figures.append({"name": stem, "caption": caption, "pdf": f"figures/{pdf.name}", "png": f"figures/{png.name}"})
        self._write()
        return png

    def table(self, df: pd.DataFrame, name: str, caption: str, float_format: str = "%.4f") -> Path:
        """Save a table as ``tables/<NN>_<name>.{csv,tex}``; returns the CSV path."""
        stem = f"{self.prefix}_{name}"
        csv, tex = save_table(df, self.root / "tables" / stem, float_format)
        self.tables = [t for t in self.tables if t["name"] != stem]
        self.tables.append({"name": stem, "caption": caption, "csv": f"tables/{csv.name}", "tex": f"tables/{tex.name}"})
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
    """Record a benchmark's figures as ``reports/benchmarks/<name>.json`` in the
    notebooks' manifest format (``metrics: {metric: {value, description}}``),
    so the evaluation's seed "Performance Metrics" table can cite them. The
    description must say how the value was measured (profile, users, threads)."""
    root = Path(reports_root) if reports_root is not None else Path(__file__).resolve().parent.parent / "reports"
    path = root / "benchmarks" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    manifest = {
        "notebook": name,
        "figures": [],
        "tables": [],
        "metrics": {key: {"value": jsonable(value, 6), "description": how} for key, (value, how) in metrics.items()},
    }
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path
