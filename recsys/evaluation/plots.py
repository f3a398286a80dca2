"""Figures of the evaluation chapter, drawn from the tidy tables of
:mod:`recsys.evaluation.comparison` (deterministic: no randomness, fixed order).

Models and groups are shown by their readable names (:mod:`recsys.runs.names`), legends sit outside the
data, and log axes have plain tick labels (:func:`recsys.runs.reporting.plain_log_axis`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from recsys.evaluation.comparison import METRIC_LABELS
from recsys.runs.names import group_label, model_label, model_labels
from recsys.runs.reporting import legend_outside, plain_log_axis

__all__ = ["metric_bars", "sweep_facets", "timing_bars", "tradeoff_scatter"]

_GROUP_COLORS: Mapping[str, str] = {"baseline": "#999999", "single": "#0173b2", "hybrid": "#de8f05",
                                    "ablation": "#029e73"}


def _label(metric: str, k: int) -> str:
    base = METRIC_LABELS.get(metric, metric)
    return f"{base}@{k}" if metric not in ("novelty",) else base


def metric_bars(table: pd.DataFrame, metrics: Sequence[str], k: int = 10, ncols: int = 2):
    """Horizontal bars of ``mean`` per model with ``[ci_low, ci_high]`` error
    bars, one panel per metric; bars coloured by model group."""
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(table["model"]))
    nrows = int(np.ceil(len(metrics) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.3 * ncols, 0.22 * len(models) * nrows + 0.8), sharey=True,
                             squeeze=False)
    for ax, metric in zip(axes.ravel(), metrics, strict=False):
        part = table[table["metric"] == metric].set_index("model").reindex(models)
        y = np.arange(len(models))
        mean = part["mean"].to_numpy(dtype=float)
        low = np.nan_to_num(mean - part["ci_low"].to_numpy(dtype=float), nan=0.0)
        high = np.nan_to_num(part["ci_high"].to_numpy(dtype=float) - mean, nan=0.0)
        colors = [_GROUP_COLORS.get(g, "#555555") for g in part["group"]]
        ax.barh(y, mean, xerr=[low, high], color=colors, error_kw={"elinewidth": 0.8, "capsize": 1.5})
        ax.set_yticks(y, model_labels(models))
        ax.invert_yaxis()
        ax.set_title(_label(metric, k))
    for ax in axes.ravel()[len(metrics):]:
        ax.set_visible(False)
    present = [g for g in _GROUP_COLORS if g in set(table["group"])]
    handles = [plt.Rectangle((0, 0), 1, 1, color=_GROUP_COLORS[g]) for g in present]
    fig.tight_layout()
    fig.legend(handles, [group_label(g) for g in present], loc="upper center", ncol=2, frameon=False,
               bbox_to_anchor=(0.5, 0.0))
    return fig


def sweep_facets(sweep: pd.DataFrame, metric: str = "ndcg", k: int = 10, best: Mapping[str, float] | None = None):
    """The weight sweep over the 4-simplex as a facet grid: one heat map per
    demographic weight, k-NN weight on x, SVD weight on y (content weight is
    the rest, ``1 - knn - svd - demographic``); cells off the simplex are blank.
    ``best`` (a weight dict) is marked with a star."""
    import matplotlib.pyplot as plt

    levels = np.round(np.sort(sweep["demographic"].unique()), 6)
    knn_levels = np.round(np.sort(sweep["knn"].unique()), 6)
    svd_levels = np.round(np.sort(sweep["svd"].unique()), 6)
    vmin, vmax = float(sweep[metric].min()), float(sweep[metric].max())
    ncols = min(len(levels), 3 if len(levels) <= 6 else 4)
    nrows = int(np.ceil(len(levels) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.9 * ncols + 1.0, 1.9 * nrows + 0.2), squeeze=False,
                             sharex=True, sharey=True, layout="constrained")
    image = None
    for i, (ax, level) in enumerate(zip(axes.ravel(), levels, strict=False)):
        part = sweep[np.isclose(sweep["demographic"], level)]
        grid = np.full((len(svd_levels), len(knn_levels)), np.nan)
        grid[np.searchsorted(svd_levels, np.round(part["svd"], 6)),
             np.searchsorted(knn_levels, np.round(part["knn"], 6))] = part[metric]
        image = ax.imshow(grid, origin="lower", cmap="viridis", vmin=vmin, vmax=vmax, aspect="equal")
        ax.set_xticks(range(len(knn_levels)), [f"{v:g}" for v in knn_levels], fontsize=6)
        ax.set_yticks(range(len(svd_levels)), [f"{v:g}" for v in svd_levels], fontsize=6)
        ax.tick_params(labelbottom=True)
        ax.set_title(f"demographic = {level:g}", fontsize=8)
        if i % ncols == 0:
            ax.set_ylabel("SVD weight", fontsize=7)
        if i + ncols >= len(levels):
            ax.set_xlabel("k-NN weight", fontsize=7)
        ax.grid(False)
        if best is not None and np.isclose(best["demographic"], level):
            ax.plot(np.searchsorted(knn_levels, round(best["knn"], 6)),
                    np.searchsorted(svd_levels, round(best["svd"], 6)), marker="*", color="red", markersize=9)
    for ax in axes.ravel()[len(levels):]:
        ax.set_visible(False)
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label=f"validation {_label(metric, k)}")
    return fig


def tradeoff_scatter(table: pd.DataFrame, x: str = "ild_category", y: str = "ndcg", k: int = 10,
                     models: Sequence[str] | None = None):
    """Accuracy (``y``) against diversity (``x``) per model, with both
    intervals as error bars and the model names as labels (each label takes
    the first of four positions around its point that overlaps no earlier label)."""
    import matplotlib.pyplot as plt

    wide = table.pivot_table(index="model", columns="metric", values=["mean", "ci_low", "ci_high"], sort=False)
    order = list(models) if models is not None else list(dict.fromkeys(table["model"]))
    groups = table.drop_duplicates("model").set_index("model")["group"]
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    for model in order:
        mx, my = wide.loc[model, ("mean", x)], wide.loc[model, ("mean", y)]
        xerr = [[mx - wide.loc[model, ("ci_low", x)]], [wide.loc[model, ("ci_high", x)] - mx]]
        yerr = [[my - wide.loc[model, ("ci_low", y)]], [wide.loc[model, ("ci_high", y)] - my]]
        ax.errorbar(mx, my, xerr=xerr, yerr=yerr, fmt="o", markersize=4, elinewidth=0.7, capsize=1.5,
                    color=_GROUP_COLORS.get(groups.get(model, ""), "#555555"))
    ax.set_xlabel(_label(x, k))
    ax.set_ylabel(_label(y, k))
    handles = [plt.Line2D([], [], marker="o", linestyle="", color=c) for c in _GROUP_COLORS.values()]
    present = [g for g in _GROUP_COLORS if g in set(groups.reindex(order))]
    legend_outside(ax, "below", handles=[handles[list(_GROUP_COLORS).index(g)] for g in present],
                   labels=[group_label(g) for g in present], ncol=2)
    fig.tight_layout()
    renderer = fig.canvas.get_renderer()
    placed = []
    offsets = [((4, 3), "left", "bottom"), ((4, -3), "left", "top"), ((-4, 3), "right", "bottom"),
               ((-4, -3), "right", "top")]
    for model in sorted(order, key=lambda m: -wide.loc[m, ("mean", y)]):
        point = (wide.loc[model, ("mean", x)], wide.loc[model, ("mean", y)])
        for offset, ha, va in offsets:
            label = ax.annotate(model_label(model), point, textcoords="offset points", xytext=offset, ha=ha, va=va, fontsize=6.5)
            box = label.get_window_extent(renderer)
            if not any(box.overlaps(other) for other in placed) or offset == offsets[-1][0]:
                placed.append(box)
                break
            label.remove()
    return fig


def timing_bars(timings: pd.DataFrame):
    """Fit time and recommend time (all evaluated users, one call) per model, log scale."""
    import matplotlib.pyplot as plt

    models = timings["model"].tolist()
    fig, axes = plt.subplots(1, 2, figsize=(7.0, 0.22 * len(models) + 1.0), sharey=True)
    colors = [_GROUP_COLORS.get(g, "#555555") for g in timings["group"]]
    for ax, column, title in zip(axes, ("fit_seconds", "recommend_seconds"),
                                 ("fit (s)", f"recommend top-k, {int(timings['n_users'].iloc[0])} users (s)"),
                                 strict=True):
        ax.barh(np.arange(len(models)), np.maximum(timings[column].to_numpy(dtype=float), 1e-5), color=colors)
        ax.set_xscale("log")
        plain_log_axis(ax, "x")
        ax.set_title(title)
        ax.set_yticks(np.arange(len(models)), model_labels(models))
    axes[0].invert_yaxis()
    fig.tight_layout()
    return fig

