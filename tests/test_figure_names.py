"""Figures for print: readable model names (one mapping), legends outside the data, plain log tick labels."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from recsys.evaluation.plots import metric_bars, timing_bars, tradeoff_scatter  # noqa: E402
from recsys.runs.names import group_label, model_label, segment_label  # noqa: E402
from recsys.runs.reporting import legend_outside, plain_log_axis, set_thesis_style  # noqa: E402

MODELS = [("popularity", "baseline"), ("item_knn", "single"), ("implicit_bpr", "single"),
          ("surprise_knn", "single"), ("hybrid", "hybrid"), ("hybrid_no_rules", "hybrid"),
          ("hybrid_no_svd", "ablation")]


@pytest.mark.parametrize("name, label", [
    ("hybrid_no_rules", "hybrid, no business rules"),
    ("implicit_bpr", "implicit BPR"),
    ("surprise_knn", "Surprise k-NN (KNNBasic)"),
    ("hybrid_no_knn", "hybrid without item k-NN"),
    ("hybrid_cap4", "hybrid, at most 4 per category"),
    ("some_new_model", "some new model"),
])
def test_model_labels(name, label):
    assert model_label(name) == label


def test_group_and_segment_labels():
    assert group_label("single") == "one strategy or peer model"
    assert segment_label(3, "older, loyal, high spend") == "3: older, loyal, high spend"
    assert segment_label(3, "") == "segment 3"


def _table() -> pd.DataFrame:
    rows = []
    for i, (model, group) in enumerate(MODELS):
        for metric, base in (("ndcg", 0.1), ("ild_category", 0.5)):
            mean = base + 0.01 * i
            rows.append({"model": model, "group": group, "metric": metric, "mean": mean,
                         "ci_low": mean - 0.005, "ci_high": mean + 0.005})
    return pd.DataFrame(rows)


def _texts(fig) -> list[str]:
    texts = [t.get_text() for ax in fig.axes for t in ax.get_yticklabels() + ax.get_xticklabels() + ax.texts]
    for legend in [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]:
        texts += [t.get_text() for t in legend.get_texts()]
    return texts


def _overlaps_data(fig, legend) -> bool:
    fig.canvas.draw()
    box = legend.get_window_extent()
    return any(box.overlaps(ax.get_window_extent()) for ax in fig.axes if ax.get_visible())


def test_evaluation_figures_show_readable_names_and_legends_outside():
    set_thesis_style()
    table = _table()
    for fig in (metric_bars(table, ["ndcg", "ild_category"]), tradeoff_scatter(table)):
        texts = _texts(fig)
        assert "hybrid, no business rules" in texts and "implicit BPR" in texts
        assert "hybrid_no_rules" not in texts and "implicit_bpr" not in texts
        assert "one strategy or peer model" in texts and "single" not in texts
        legend = fig.legends[0] if fig.legends else fig.axes[0].get_legend()
        assert not _overlaps_data(fig, legend)
        plt.close(fig)


def test_log_axes_have_plain_tick_labels():
    set_thesis_style()
    timings = pd.DataFrame({"model": [m for m, _ in MODELS], "group": [g for _, g in MODELS],
                            "fit_seconds": np.linspace(60, 400, len(MODELS)),
                            "recommend_seconds": np.linspace(0.5, 3.0, len(MODELS)), "n_users": 100})
    fig = timing_bars(timings)
    fig.canvas.draw()
    labels = [t.get_text() for ax in fig.axes for t in ax.get_xticklabels() if t.get_text()]
    assert labels and all("10^" not in t and "times" not in t and "\\" not in t for t in labels)
    assert {"100", "200"} <= set(labels)
    plt.close(fig)

    fig, ax = plt.subplots()
    ax.plot([60, 400], [1, 2], label="a line")
    ax.set_xscale("log")
    plain_log_axis(ax, "x")
    legend = legend_outside(ax)
    fig.canvas.draw()
    low, high = ax.get_xlim()
    shown = [t.get_text() for t in ax.get_xticklabels() if t.get_text() and low <= t.get_position()[0] <= high]
    assert shown == ["100", "200"]
    assert not legend.get_window_extent().overlaps(ax.get_window_extent())
    plt.close(fig)
