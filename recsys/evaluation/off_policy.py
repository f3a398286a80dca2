"""Off-policy estimators of a target policy's value from logged decisions.

A log holds rows ``i`` (one decision each: a context ``x_i``, the action
``a_i`` the logging policy ``mu`` took, its reward ``r_i``), grouped into
independent units ``u`` (a user visit; the rows of a unit may be dependent).
The value of a target policy ``pi`` is the expected total reward **per
unit**, ``V(pi) = E_u[ sum_{i in u} E_{a ~ pi(.|x_i)} r(x_i, a) ]``. With the
importance weight ``w_i = pi(a_i | x_i) / mu(a_i | x_i)`` (``mu`` is the
logged *propensity*) and ``U`` units:

* **IPS** (inverse propensity scoring; Horvitz and Thompson 1952, "A
  generalization of sampling without replacement from a finite universe",
  JASA 47): ``V_IPS = (1/U) sum_i w_i r_i``. Unbiased when ``mu > 0``
  wherever ``pi > 0`` (support); its variance grows with the weights.
* **SNIPS** (self-normalised IPS; Swaminathan and Joachims 2015, "The
  self-normalized estimator for counterfactual learning", NeurIPS):
  ``V_SNIPS = (n/U) * sum_i w_i r_i / sum_i w_i`` with ``n`` rows: the
  per-row mean reweighted to sum to one, times rows per unit. Biased
  (consistently) but far less variable, and invariant to adding a constant
  to the rewards.
* **DM** (direct method): a reward model ``q(x, a)`` fitted on the log;
  ``V_DM = (1/U) sum_i sum_a pi(a|x_i) q(x_i, a)``. Low variance, biased
  exactly as much as ``q`` is wrong.
* **DR** (doubly robust; Dudik, Langford and Li 2011, "Doubly robust policy
  evaluation and learning", ICML): ``V_DR = V_DM + (1/U) sum_i w_i (r_i -
  q(x_i, a_i))``. Unbiased if either the propensities or ``q`` are right.

Intervals: percentile bootstrap over units (:mod:`recsys.evaluation.statistics`,
same resamples for every estimator at one seed); the reward model is held
fixed across resamples (the interval conditions on the fitted ``q``). Every
estimator here is a mean over units of a per-unit sum except SNIPS, a ratio,
which is recomputed on each resample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys.evaluation.statistics import Interval, _check, _percentiles, bootstrap_ci

__all__ = [
    "ESTIMATORS",
    "LoggedData",
    "direct_method",
    "doubly_robust",
    "estimate",
    "evaluate",
    "importance_weights",
    "ips",
    "snips",
]

ESTIMATORS: tuple[str, ...] = ("IPS", "SNIPS", "DM", "DR")
_BLOCK = 256


def _array(values: object, name: str, n: int | None = None) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional (one value per logged row), got shape {array.shape}")
    if n is not None and array.size != n:
        raise ValueError(f"{name} has {array.size} values, expected {n} (one per logged row)")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} has {int((~np.isfinite(array)).sum())} NaN or infinite value(s)")
    return array


def importance_weights(target_prob: object, logging_prob: object) -> np.ndarray:
    """``w_i = pi(a_i|x_i) / mu(a_i|x_i)``; both in [0, 1], ``mu > 0`` (a
    logged action had a positive probability, or it could not have been
    logged)."""
    pi = _array(target_prob, "target_prob")
    mu = _array(logging_prob, "logging_prob", pi.size)
    if ((pi < 0) | (pi > 1)).any():
        raise ValueError(f"target_prob must be in [0, 1]; {int(((pi < 0) | (pi > 1)).sum())} values are not")
    if ((mu <= 0) | (mu > 1)).any():
        bad = mu[(mu <= 0) | (mu > 1)]
        raise ValueError(f"logging_prob (the logged propensity) must be in (0, 1]; {bad.size} values are not, "
                         f"e.g. {bad[:3].tolist()}")
    return pi / mu


@dataclass(frozen=True)
class LoggedData:
    """A log, aligned row by row, for one target policy.

    ``unit``: the independent unit of each row (any hashable labels; the
    bootstrap resamples units); ``reward``: observed ``r_i``;
    ``logging_prob``: ``mu(a_i|x_i)``; ``target_prob``: ``pi(a_i|x_i)``;
    ``q_logged``: ``q(x_i, a_i)``; ``q_target``: ``sum_a pi(a|x_i) q(x_i, a)``
    (the last two only for DM and DR; zeros make DR equal IPS).
    """

    unit: np.ndarray
    reward: np.ndarray
    logging_prob: np.ndarray
    target_prob: np.ndarray
    q_logged: np.ndarray
    q_target: np.ndarray

    @classmethod
    def build(cls, unit: object, reward: object, logging_prob: object, target_prob: object,
              q_logged: object | None = None, q_target: object | None = None) -> LoggedData:
        """Checked arrays (every one row-aligned with ``reward``)."""
        r = _array(reward, "reward")
        if r.size == 0:
            raise ValueError("the log is empty: nothing to estimate")
        units = np.asarray(unit)
        if units.shape != r.shape:
            raise ValueError(f"unit has shape {units.shape}, expected {r.shape} (one label per logged row)")
        importance_weights(_array(target_prob, "target_prob", r.size), _array(logging_prob, "logging_prob", r.size))
        zeros = np.zeros(r.size)
        return cls(units, r, np.asarray(logging_prob, float), np.asarray(target_prob, float),
                   zeros if q_logged is None else _array(q_logged, "q_logged", r.size),
                   zeros if q_target is None else _array(q_target, "q_target", r.size))

    @property
    def weights(self) -> np.ndarray:
        return importance_weights(self.target_prob, self.logging_prob)

    def per_unit(self, values: np.ndarray) -> np.ndarray:
        """Per-unit sums of a per-row array (units in sorted label order)."""
        _, codes = np.unique(self.unit, return_inverse=True)
        return np.bincount(codes.ravel(), weights=values)

    @property
    def n_units(self) -> int:
        return int(np.unique(self.unit).size)


def ips(data: LoggedData) -> float:
    """``(1/U) sum_i w_i r_i`` (Horvitz-Thompson)."""
    return float((data.weights * data.reward).sum() / data.n_units)


def snips(data: LoggedData) -> float:
    """``(n/U) sum_i w_i r_i / sum_i w_i`` (Swaminathan and Joachims 2015);
    NaN when every weight is 0 (the target never takes a logged action)."""
    w = data.weights
    total = w.sum()
    if total == 0:
        return float("nan")
    return float((w * data.reward).sum() / total * data.reward.size / data.n_units)


def direct_method(data: LoggedData) -> float:
    """``(1/U) sum_i sum_a pi(a|x_i) q(x_i, a)``."""
    return float(data.q_target.sum() / data.n_units)


def doubly_robust(data: LoggedData) -> float:
    """``V_DM + (1/U) sum_i w_i (r_i - q(x_i, a_i))`` (Dudik, Langford and Li 2011)."""
    return float((data.q_target + data.weights * (data.reward - data.q_logged)).sum() / data.n_units)


def _per_row_terms(data: LoggedData, estimator: str) -> np.ndarray:
    w = data.weights
    if estimator == "IPS":
        return w * data.reward
    if estimator == "DM":
        return data.q_target
    if estimator == "DR":
        return data.q_target + w * (data.reward - data.q_logged)
    raise ValueError(f"estimator must be one of {list(ESTIMATORS)}, got {estimator!r}")


def _snips_interval(data: LoggedData, n_boot: int, confidence: float, seed: int) -> Interval:
    """Percentile interval of the SNIPS ratio, units resampled as in
    :func:`~recsys.evaluation.statistics.bootstrap_ci` (same seed, same resamples)."""
    w = data.weights
    num, den, rows = data.per_unit(w * data.reward), data.per_unit(w), data.per_unit(np.ones(w.size))
    n_units = num.size
    rng = np.random.default_rng(seed)
    stats = np.empty(n_boot)
    for start in range(0, n_boot, _BLOCK):
        size = min(_BLOCK, n_boot - start)
        idx = rng.integers(0, n_units, size=(size, n_units))
        d = den[idx].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            stats[start:start + size] = num[idx].sum(axis=1) / d * rows[idx].sum(axis=1) / n_units
    point = snips(data)
    if np.isnan(stats).all():
        return Interval(point, float("nan"), float("nan"), n_units, n_boot, confidence)
    low, high = _percentiles(stats[~np.isnan(stats)], confidence)
    return Interval(point, low, high, n_units, n_boot, confidence)


def estimate(data: LoggedData, estimator: str, n_boot: int = 1000, confidence: float = 0.95,
             seed: int = 0) -> Interval:
    """One estimator's value per unit with its percentile bootstrap interval over units."""
    n_boot, confidence = _check(n_boot, confidence)
    if estimator == "SNIPS":
        return _snips_interval(data, n_boot, confidence, seed)
    return bootstrap_ci(data.per_unit(_per_row_terms(data, estimator)), n_boot, confidence, seed)


def evaluate(data: LoggedData, estimators: Sequence[str] = ESTIMATORS, n_boot: int = 1000,
             confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Every estimator on one log: ``estimator, estimate, ci_low, ci_high,
    n_units, n_rows, ess`` (``ess = (sum w)^2 / sum w^2``, Kish's effective
    sample size of the importance weights, in rows)."""
    unknown = [e for e in estimators if e not in ESTIMATORS]
    if unknown:
        raise ValueError(f"unknown estimator(s) {unknown}; known: {list(ESTIMATORS)}")
    w = data.weights
    ess = float(w.sum() ** 2 / (w ** 2).sum()) if (w > 0).any() else 0.0
    rows = []
    for name in estimators:
        interval = estimate(data, name, n_boot, confidence, seed)
        rows.append({"estimator": name, "estimate": interval.estimate, "ci_low": interval.ci_low,
                     "ci_high": interval.ci_high, "n_units": interval.n, "n_rows": int(w.size), "ess": ess})
    return pd.DataFrame(rows)
