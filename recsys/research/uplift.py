"""Uplift of deals against the holdout, and uplift curves for targeting.

**Holdout uplift.** Units (a user visit, or a user and period) are either
treated (shown deals) or held out (no deals), at random by the logging
policy's hash. The uplift of a metric is ``mean_T - mean_C`` over units;
its interval is a two-sample percentile bootstrap (treated and held-out
units resampled separately, seeded).

**Qini curve** (Radcliffe 2007, "Using control groups to target on predicted
lift", Direct Marketing Analytics Journal): units ranked by a targeting score,
best first; over the top ``k``, with ``R_T(k), R_C(k)`` the summed outcomes
and ``N_T(k), N_C(k)`` the counts of treated and control units,

    Q(k) = R_T(k) - R_C(k) * N_T(k) / N_C(k)         (R_T(k) while N_C(k) = 0)

is the incremental outcome from treating the top ``k``; random targeting is
the straight line ``(k / N) Q(N)``. **Uplift@k** is ``R_T(k)/N_T(k) -
R_C(k)/N_C(k)`` for the top share ``k``. The **Qini coefficient** here is
the area between the curve and the random line, over the fraction targeted
in [0, 1], divided by ``N``: incremental outcome per unit that the ranking
adds on average over all targeting depths. (Checked against scikit-uplift
0.5.1's ``qini_curve`` and ``uplift_at_k(strategy="overall")``, equal on a
random case; not a dependency: it calls scikit-learn's deprecated
``stable_cumsum``, removed in scikit-learn 1.10.)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["holdout_uplift", "qini_coefficient", "qini_curve", "two_sample_difference", "uplift_at_k"]


def holdout_uplift(units: pd.DataFrame, metrics: Sequence[str], n_boot: int = 1000, confidence: float = 0.95,
                   seed: int = 0) -> pd.DataFrame:
    """Per metric: ``treated, holdout, uplift, ci_low, ci_high, n_treated,
    n_holdout`` from a frame with one row per unit, a bool ``treated`` column
    and the metric columns (per-unit totals)."""
    missing = [c for c in ("treated", *metrics) if c not in units.columns]
    if missing:
        raise ValueError(f"units lack column(s) {missing}")
    treated = units["treated"].to_numpy(dtype=bool)
    n_t, n_c = int(treated.sum()), int((~treated).sum())
    if n_t == 0 or n_c == 0:
        raise ValueError(f"uplift needs treated and held-out units, got {n_t} treated and {n_c} held out")
    rows = []
    for metric in metrics:
        values = units[metric].to_numpy(dtype=float)
        t, c = values[treated], values[~treated]
        diff, low, high = two_sample_difference(t, c, n_boot, confidence, seed)
        rows.append({"metric": metric, "treated": float(t.mean()), "holdout": float(c.mean()),
                     "uplift": diff, "ci_low": low, "ci_high": high, "n_treated": n_t, "n_holdout": n_c})
    return pd.DataFrame(rows)


def two_sample_difference(a: np.ndarray, b: np.ndarray, n_boot: int = 1000, confidence: float = 0.95,
                          seed: int = 0) -> tuple[float, float, float]:
    """``mean(a) - mean(b)`` of two independent samples and its percentile
    bootstrap interval (each sample resampled on its own, seeded)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.size == 0 or b.size == 0 or np.isnan(a).any() or np.isnan(b).any():
        raise ValueError(f"two non-empty samples without NaN are needed, got sizes {a.size} and {b.size}")
    rng = np.random.default_rng(seed)
    stats = a[rng.integers(0, a.size, size=(n_boot, a.size))].mean(axis=1) - \
        b[rng.integers(0, b.size, size=(n_boot, b.size))].mean(axis=1)
    alpha = 1 - confidence
    low, high = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return float(a.mean() - b.mean()), float(low), float(high)


def _ranked(outcome: object, treated: object, score: object) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(outcome, dtype=float)
    t = np.asarray(treated, dtype=bool)
    s = np.asarray(score, dtype=float)
    if not (y.shape == t.shape == s.shape) or y.ndim != 1:
        raise ValueError(f"outcome, treated and score must be 1-d of one length, got {y.shape}, {t.shape}, {s.shape}")
    if np.isnan(y).any() or np.isnan(s).any():
        raise ValueError("outcome and score must not be NaN")
    order = np.argsort(-s, kind="stable")
    return y[order], t[order]


def qini_curve(outcome: object, treated: object, score: object) -> pd.DataFrame:
    """``k, fraction, qini, random`` at every depth ``k = 0..N`` (module docstring)."""
    y, t = _ranked(outcome, treated, score)
    r_t = np.r_[0.0, np.cumsum(y * t)]
    r_c = np.r_[0.0, np.cumsum(y * ~t)]
    n_t = np.r_[0, np.cumsum(t)]
    n_c = np.r_[0, np.cumsum(~t)]
    with np.errstate(invalid="ignore", divide="ignore"):
        q = np.where(n_c > 0, r_t - r_c * n_t / np.maximum(n_c, 1), r_t)
    k = np.arange(len(y) + 1)
    return pd.DataFrame({"k": k, "fraction": k / max(len(y), 1), "qini": q, "random": k / max(len(y), 1) * q[-1]})


def qini_coefficient(outcome: object, treated: object, score: object) -> float:
    """Area between the Qini curve and the random line over the fraction
    targeted, divided by ``N`` (module docstring)."""
    curve = qini_curve(outcome, treated, score)
    gap = (curve["qini"] - curve["random"]).to_numpy()
    x = curve["fraction"].to_numpy()
    area = float(np.sum((gap[1:] + gap[:-1]) / 2 * np.diff(x)))
    return area / max(len(curve) - 1, 1)


def uplift_at_k(outcome: object, treated: object, score: object, k: float) -> float:
    """``mean_T - mean_C`` of the outcome among the top share ``k`` (0 < k <= 1)
    of units by score; NaN if that share holds no treated or no control unit."""
    if not 0 < k <= 1:
        raise ValueError(f"k must be a share in (0, 1], got {k!r}")
    y, t = _ranked(outcome, treated, score)
    top = max(int(np.ceil(k * len(y))), 1)
    y, t = y[:top], t[:top]
    if not t.any() or t.all():
        return float("nan")
    return float(y[t].mean() - y[~t].mean())
