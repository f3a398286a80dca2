"""Percentile bootstrap over users: confidence intervals and paired differences.

Users are the unit of resampling (a metric is a mean of per-user values, and
users are the independent draws). For ``B`` resamples drawn with replacement
from the ``n`` users with a seeded ``numpy.random.default_rng``, the interval
is the ``(1 - c) / 2`` and ``(1 + c) / 2`` percentiles of the ``B`` resampled
statistics (Efron's percentile interval; ``c = 0.95`` by default).

For two models scored on the same users, :func:`paired_bootstrap` resamples
users once and takes the difference on each resample, which removes the
between-user variance the two models share and is much tighter than
comparing two separate intervals.

Same seed and inputs -> the same numbers, bit for bit.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

__all__ = [
    "Interval",
    "aggregate_seeds",
    "PairedDifference",
    "bootstrap_ci",
    "bootstrap_statistic",
    "bootstrap_table",
    "paired_bootstrap",
    "resample_indices",
]

_BLOCK = 256  # resamples drawn per block: bounds memory at _BLOCK x n indices


@dataclass(frozen=True)
class Interval:
    """A point estimate (on the full sample) with its percentile interval."""

    estimate: float
    ci_low: float
    ci_high: float
    n: int
    n_boot: int
    confidence: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class PairedDifference:
    """``mean(a) - mean(b)`` over the shared users, its percentile interval,
    and a two-sided bootstrap p-value ``min(1, 2 * min(P*(d <= 0), P*(d >= 0)))``.
    ``n_dropped``: users left out because ``a`` or ``b`` was NaN for them."""

    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    n_dropped: int
    n_boot: int
    confidence: float

    @property
    def verdict(self) -> str:
        """``"better"`` / ``"worse"`` if the interval excludes 0, else ``"no clear difference"``."""
        if self.ci_low > 0:
            return "better"
        if self.ci_high < 0:
            return "worse"
        return "no clear difference"

    def as_dict(self) -> dict[str, float | str]:
        return {**asdict(self), "verdict": self.verdict}


def _check(n_boot: object, confidence: object) -> tuple[int, float]:
    if isinstance(n_boot, bool) or not isinstance(n_boot, numbers.Integral) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive int, got {n_boot!r}")
    if isinstance(confidence, bool) or not isinstance(confidence, numbers.Real) or not 0 < confidence < 1:
        raise ValueError(f"confidence must be a number in (0, 1), got {confidence!r}")
    return int(n_boot), float(confidence)


def _values(values: object, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional (one value per user), got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty: nothing to bootstrap")
    if np.isnan(array).any():
        raise ValueError(f"{name} has {int(np.isnan(array).sum())} NaN value(s); drop or fill them first")
    return array


def resample_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """``n_boot x n`` user indices drawn with replacement (seeded)."""
    if n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def _resampled_means(values: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty(n_boot)
    for start in range(0, n_boot, _BLOCK):
        size = min(_BLOCK, n_boot - start)
        idx = rng.integers(0, values.size, size=(size, values.size))
        out[start : start + size] = values[idx].mean(axis=1)
    return out


def _percentiles(stats: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = 1.0 - confidence
    low, high = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def bootstrap_ci(values: object, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0) -> Interval:
    """Percentile interval of the mean of per-user ``values`` (no NaN)."""
    n_boot, confidence = _check(n_boot, confidence)
    array = _values(values, "values")
    low, high = _percentiles(_resampled_means(array, n_boot, seed), confidence)
    return Interval(float(array.mean()), low, high, array.size, n_boot, confidence)


def bootstrap_statistic(
    n: int, statistic: Callable[[np.ndarray], float], n_boot: int = 1000, confidence: float = 0.95, seed: int = 0
) -> Interval:
    """Percentile interval of any statistic of a user sample.

    ``statistic(indices)`` gets an array of user positions ``0..n-1`` (the full
    sample for the estimate, then each resample) and returns a float. Only
    for statistics that do not depend on the number of *distinct* users: a
    resample repeats users, so e.g. catalog coverage is biased downwards and
    its percentile interval can miss the estimate."""
    n_boot, confidence = _check(n_boot, confidence)
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    rng = np.random.default_rng(seed)
    stats = np.array([statistic(rng.integers(0, n, size=n)) for _ in range(n_boot)], dtype=np.float64)
    low, high = _percentiles(stats, confidence)
    return Interval(float(statistic(np.arange(n))), low, high, int(n), n_boot, confidence)


def bootstrap_table(
    per_user: pd.DataFrame, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0
) -> pd.DataFrame:
    """One interval per column of a users x metrics frame, as a tidy table
    ``metric, mean, ci_low, ci_high, n_users``. NaN entries of a column (e.g.
    diversity of a one-item list) are left out of that column and the count
    used is reported in ``n_users`` (an all-NaN column gives a NaN row with
    ``n_users`` 0); every column uses the same seed."""
    if not isinstance(per_user, pd.DataFrame) or per_user.empty:
        raise ValueError("per_user must be a non-empty DataFrame of users x metrics")
    rows = []
    for column in per_user.columns:
        values = per_user[column].dropna().to_numpy(dtype=np.float64)
        if values.size == 0:  # e.g. no user got a list of two items: reported as undefined, not dropped
            rows.append({"metric": column, "mean": np.nan, "ci_low": np.nan, "ci_high": np.nan, "n_users": 0})
            continue
        interval = bootstrap_ci(values, n_boot, confidence, seed)
        rows.append({"metric": column, "mean": interval.estimate, "ci_low": interval.ci_low,
                     "ci_high": interval.ci_high, "n_users": interval.n})
    return pd.DataFrame(rows)


def paired_bootstrap(
    a: pd.Series, b: pd.Series, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0
) -> PairedDifference:
    """Paired percentile bootstrap of ``mean(a) - mean(b)``.

    ``a`` and ``b`` are per-user values of two models on the same users
    (Series indexed by user id; the index sets must match). Users where
    either is NaN are dropped and counted in ``n_dropped``."""
    n_boot, confidence = _check(n_boot, confidence)
    for name, s in (("a", a), ("b", b)):
        if not isinstance(s, pd.Series):
            raise ValueError(f"{name} must be a pandas Series indexed by user id, got {type(s).__name__}")
        if s.index.has_duplicates:
            raise ValueError(f"{name} has duplicate user ids, e.g. {list(s.index[s.index.duplicated()][:3])}")
    if not a.index.sort_values().equals(b.index.sort_values()):
        only_a, only_b = a.index.difference(b.index), b.index.difference(a.index)
        raise ValueError(
            f"a and b must cover the same users: {len(only_a)} only in a (e.g. {list(only_a[:3])}), "
            f"{len(only_b)} only in b (e.g. {list(only_b[:3])})"
        )
    b = b.reindex(a.index)
    both = a.notna().to_numpy() & b.notna().to_numpy()
    diff = _values(a.to_numpy(dtype=np.float64)[both] - b.to_numpy(dtype=np.float64)[both], "a - b")
    stats = _resampled_means(diff, n_boot, seed)
    low, high = _percentiles(stats, confidence)
    p_value = min(1.0, 2.0 * min(float(np.mean(stats <= 0)), float(np.mean(stats >= 0))))
    return PairedDifference(float(diff.mean()), low, high, p_value, int(diff.size), int((~both).sum()),
                            n_boot, confidence)


def aggregate_seeds(tables: Mapping[int, pd.DataFrame], value: str = "mean",
                    by: Sequence[str] = ("model", "metric")) -> pd.DataFrame:
    """Combine per-seed tidy tables (e.g. ``ComparisonResult.table`` of each
    seed) into ``<by>, mean, std, min, max, n_seeds``: the mean and the sample
    standard deviation (ddof 1; NaN for a single seed: one draw says nothing
    about the spread) of ``value`` across seeds. The one multi-seed
    aggregator of the package (the evaluation table and the run summary).
    A row missing from some seed is aggregated over the seeds that have it
    (``n_seeds`` says how many)."""
    if not tables:
        raise ValueError("tables is empty: need at least one seed's table")
    frames = []
    for seed, table in tables.items():
        lacking = [c for c in (*by, value) if c not in table.columns]
        if lacking:
            raise ValueError(f"the table of seed {seed} lacks column(s) {lacking}")
        frames.append(table[[*by, value]].assign(seed=seed))
    long = pd.concat(frames, ignore_index=True)
    grouped = long.groupby(list(by), sort=False)[value]
    out = grouped.agg(["mean", "std", "min", "max", "count"]).reset_index()
    return out.rename(columns={"count": "n_seeds"})
