"""Readable names for figures and tables: one mapping from code names (``hybrid_no_rules``, ``implicit_bpr``)
to the words a reader of the thesis sees ("hybrid, no business rules", "implicit BPR").

:func:`model_label` is used by :mod:`recsys.evaluation.plots` and by the notebooks' own figures;
the code names stay in the CSV tables and ``metrics.json`` (they are keys), the figures show the labels.
A name not in :data:`MODEL_LABELS` is composed by rule (``hybrid_no_<part>`` -> "hybrid without <part>",
``hybrid_cap<N>`` -> "hybrid, at most N per category") or, failing that, shown with spaces for underscores.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["GROUP_LABELS", "MODEL_LABELS", "STRATEGY_LABELS", "group_label", "model_label", "model_labels",
           "segment_label", "segment_labels", "segment_summary"]

STRATEGY_LABELS: dict[str, str] = {
    "knn": "item k-NN",
    "svd": "PureSVD",
    "content": "content (TF-IDF)",
    "demographic": "demographic",
}
"""The hybrid's four parts, as the fusion weights name them."""

MODEL_LABELS: dict[str, str] = {
    "random": "random",
    "popularity": "popularity",
    "item_knn": "item k-NN",
    "user_knn": "user k-NN",
    "realtime": "Stage 1 real time (k-NN + fallback)",
    "pure_svd": "PureSVD",
    "svd": "PureSVD",
    "surprise_svd": "Surprise SVD (by predicted rating)",
    "surprise_knn": "Surprise k-NN (KNNBasic)",
    "content": "content (TF-IDF)",
    "demographic": "demographic",
    "ease": "EASE",
    "implicit_als": "implicit ALS",
    "implicit_bpr": "implicit BPR",
    "implicit_knn": "implicit cosine k-NN",
    "implicit_cosine": "implicit cosine k-NN",
    "hybrid": "hybrid (design weights)",
    "hybrid_enhanced": "hybrid with business rules",
    "hybrid_no_rules": "hybrid, no business rules",
    "hybrid_tuned": "hybrid, weights tuned (grid)",
    "hybrid_tpe": "hybrid, every setting tuned (TPE)",
}

GROUP_LABELS: dict[str, str] = {
    "baseline": "baseline",
    "single": "one strategy or peer model",
    "hybrid": "hybrid",
    "ablation": "hybrid with one part left out",
}
"""The model groups of :mod:`recsys.evaluation.comparison` as a legend says them."""


def model_label(name: str) -> str:
    """The readable name of model ``name`` (see the module docstring for the rules)."""
    text = str(name)
    if text in MODEL_LABELS:
        return MODEL_LABELS[text]
    left_out = re.fullmatch(r"hybrid_no_(\w+)", text)
    if left_out and left_out.group(1) in STRATEGY_LABELS:
        return f"hybrid without {STRATEGY_LABELS[left_out.group(1)]}"
    cap = re.fullmatch(r"hybrid_cap_?(\d+)", text)
    if cap:
        return f"hybrid, at most {cap.group(1)} per category"
    return text.replace("_", " ")


def model_labels(names: Iterable[str]) -> list[str]:
    """:func:`model_label` of each name."""
    return [model_label(n) for n in names]


def group_label(group: str) -> str:
    """The legend text of a model group."""
    return GROUP_LABELS.get(group, group.replace("_", " "))


def segment_label(segment: int, summary: str) -> str:
    """A segment named by its summary, with its number for reference: ``"2: young, price-sensitive"``."""
    return f"{int(segment)}: {summary}" if summary else f"segment {int(segment)}"


def segment_labels(summary: Any) -> dict[Any, str]:
    """Readable names of K-Means segments from their summary frame (``UserSegmentation.summary_frame()``:
    ``segment, avg_age, dominant_region, dominant_age_group, dominant_spending_tier, avg_price_sensitivity``),
    e.g. ``"2: Asia, young (28), budget, sens. 0.79"``; keyed by ``"segment_2"`` and by ``2`` so that frames
    indexed either way can be renamed."""
    out: dict[Any, str] = {}
    for row in summary.to_dict(orient="records"):
        number = int(str(row["segment"]).rsplit("_", 1)[-1])
        out[row["segment"]] = out[number] = segment_label(number, segment_summary(row))
    return out


def segment_summary(row: Mapping[str, Any]) -> str:
    """A segment's summary in words from its ``/segments`` fields: dominant region, age group (mean age),
    spending tier and mean price sensitivity, e.g. ``"Asia, young (28), budget, sens. 0.79"``."""
    age = row.get("avg_age")
    sensitivity = row.get("avg_price_sensitivity")
    return (f"{row.get('dominant_region')}, {row.get('dominant_age_group')}"
            + (f" ({age:.0f})" if isinstance(age, (int, float)) and age == age else "")
            + f", {row.get('dominant_spending_tier')}"
            + (f", sens. {sensitivity:.2f}" if isinstance(sensitivity, (int, float)) and sensitivity == sensitivity
               else ""))
