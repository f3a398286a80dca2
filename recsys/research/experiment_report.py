"""The report of an A/B experiment on deal policies, from the decision log
and the events (``recsys experiment report``).

The value is per user and period: the decisions' outcomes
(:func:`~recsys.deals.decision_log.join_outcomes`) of a user in a period are
summed (``conversions``: offered products bought within their expiry,
``revenue``, ``margin``), then averaged over the user's periods. Users are
what the experiment randomises (a user keeps a variant for the whole
experiment), so users are the resampling unit: per variant, the mean over
users with its percentile bootstrap interval, and the difference to the
control variant with a two-sample bootstrap over the two variants' users.
Held-out users stay in their variant (intention to treat: the holdout is
part of the policy).
"""

from __future__ import annotations

import pandas as pd

from recsys.deals.decision_log import join_outcomes
from recsys.evaluation.statistics import bootstrap_ci
from recsys.research.uplift import two_sample_difference

__all__ = ["OUTCOME_METRICS", "experiment_report", "report_from_files"]

OUTCOME_METRICS: tuple[str, ...] = ("conversions", "revenue", "margin")


def experiment_report(outcomes: pd.DataFrame, control: str | None = None, n_boot: int = 1000,
                      confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """One row per (variant, metric): ``users, user_periods, decisions,
    holdout_share`` (of user-periods), ``mean, ci_low, ci_high`` (per user
    and period), ``vs_control, vs_control_ci_low, vs_control_ci_high``
    (``control``: a variant name; default the first in sorted order)."""
    needed = ["user_id", "period", "variant", "arm", "converted", "revenue", "margin"]
    missing = [c for c in needed if c not in outcomes.columns]
    if missing:
        raise ValueError(f"outcomes lack column(s) {missing}: join the decisions with the events first")
    if outcomes.empty:
        raise ValueError("no decisions to report on")
    periods = outcomes.groupby(["variant", "user_id", "period"], sort=True).agg(
        conversions=("converted", "sum"), revenue=("revenue", "sum"), margin=("margin", "sum"),
        decisions=("arm", "size"), held_out=("arm", lambda a: bool((a == "holdout").all()))).reset_index()
    if (periods.groupby("user_id")["variant"].nunique() > 1).any():
        raise ValueError("a user appears in several variants: the log mixes experiments (filter by experiment)")
    units = periods.groupby(["variant", "user_id"], sort=True).agg(
        conversions=("conversions", "mean"), revenue=("revenue", "mean"), margin=("margin", "mean"),
        decisions=("decisions", "sum"), held_out=("held_out", "mean"), periods=("period", "size")).reset_index()
    variants = sorted(units["variant"].unique())
    control = variants[0] if control is None else control
    if control not in variants:
        raise ValueError(f"control variant {control!r} is not in the log; variants: {variants}")
    rows = []
    for variant in variants:
        part = units[units["variant"] == variant]
        base = units[units["variant"] == control]
        for metric in OUTCOME_METRICS:
            interval = bootstrap_ci(part[metric].to_numpy(float), n_boot, confidence, seed)
            row = {"variant": variant, "metric": metric, "users": len(part), "user_periods": int(part["periods"].sum()),
                   "decisions": int(part["decisions"].sum()), "holdout_share": float(part["held_out"].mean()),
                   "mean": interval.estimate, "ci_low": interval.ci_low, "ci_high": interval.ci_high}
            if variant == control:
                row.update(vs_control=0.0, vs_control_ci_low=0.0, vs_control_ci_high=0.0)
            else:
                diff, low, high = two_sample_difference(part[metric].to_numpy(float), base[metric].to_numpy(float),
                                                        n_boot, confidence, seed)
                row.update(vs_control=diff, vs_control_ci_low=low, vs_control_ci_high=high)
            rows.append(row)
    return pd.DataFrame(rows)


def report_from_files(decisions_dir: str, events: pd.DataFrame, experiment: str | None = None,
                      control: str | None = None, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """:func:`experiment_report` of a :class:`~recsys.deals.decision_log.ParquetDecisionLog`
    folder joined with ``events``; ``experiment`` keeps the variants named
    ``<experiment>:<variant>``."""
    from pathlib import Path

    from recsys.deals.decision_log import ParquetDecisionLog

    if not Path(decisions_dir).is_dir():
        raise ValueError(f"decision log folder {decisions_dir} does not exist")
    decisions = ParquetDecisionLog(decisions_dir).read()
    if experiment:
        decisions = decisions[decisions["variant"].astype(str).str.startswith(f"{experiment}:")]
    if decisions.empty:
        raise ValueError(f"no decisions{' of experiment ' + repr(experiment) if experiment else ''} in {decisions_dir}")
    return experiment_report(join_outcomes(decisions, events), control, n_boot, seed=seed)
