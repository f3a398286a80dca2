"""Stage 2 demand prediction: next-period demand per product, and the 0..100 demand score.

Protocol. Time is cut into periods of ``period_days`` (weekly by default)
counted back from the data set's ``as_of``: period ``T-1`` is
``(as_of - 7d, as_of]``, period ``T-2`` the week before, and so on; the
leading partial period is left out (its events are counted in
``n_events_before_first_period_``). Demand ``y[p, t]`` is the purchased
quantity of product ``p`` in period ``t``.

Features for ``y[p, t]`` use only periods before ``t``: demand lags
``1..n_lags``, their mean ``m`` and least-squares slope (trend), the mean
over the last ``3 n_lags`` periods and the expanding mean (levels), last
period's views, favorites and carts (leading indicators), and seasonality:
whether period ``t`` falls in the product's peak season and the share of
the lag periods that did (so the model sees a season starting or ending);
plus the product's category and log price. Calendar season-of-year features
are left out on purpose: with under two years of history each season is seen
once, so a model cannot learn them, only memorise them.

Model: ``HistGradientBoostingRegressor`` with Poisson loss and a
multiplicative offset ``s = m + offset_prior``: it is fitted on ``y / s``
with sample weight ``s`` and every level feature divided by ``s``, which is
exactly Poisson regression of ``y`` on ``s * f(x)`` (the deviance is
homogeneous); the trees then learn scale-free ratios and need not
extrapolate to demand levels never seen in training, which plain trees
cannot do. Baselines: the naive forecast ``y_hat[p, t] = y[p, t-1]`` and the
moving average ``m``. The holdout is temporal: the last ``holdout_periods``
periods, forecast one step ahead (lags from actual data) by a model fitted
on the periods before them only; above ``holdout_max_rows`` training rows
(250,000: the large profile's 880,000, not the thesis profile's 66,000) that
model is fitted on a seeded uniform sample of that many rows, so evaluating
costs a fraction of the served fit, and the table errs on the pessimistic side
(the served model learns from every row). Errors: MAE, RMSE
and WAPE = ``sum |y - y_hat| / sum y``. The Poisson model forecasts the
mean; on intermittent demand (mostly zeros) the MAE favours forecasts of 0,
so RMSE is the fairer yardstick for it.

``demand_score`` (for the deal formula): the model, refitted on every
period, forecasts period ``T`` (the week after ``as_of``); the score is the
percentile of that forecast among all products, ``100 * (number of products
with a strictly lower forecast) / (n_products - 1)``, so the lowest forecast
scores 0, a unique highest 100, and tied products share the lower score
(every product 50 if all forecasts tie: nothing to rank by).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor

from recsys.config import EVENT_TYPES
from recsys.data.dataset import Dataset
from recsys.validation import check_ints, check_numbers

__all__ = ["DemandConfig", "DemandModel", "DemandPanel", "demand_panel", "demand_score", "forecast_errors"]

LEADING_EVENTS = ("view", "favorite", "cart")
_PANEL_CHUNK = 1 << 20  # events binned at a time by demand_panel


@dataclass(frozen=True)
class DemandConfig:
    """Demand model settings; ``offset_prior`` is the pseudo-demand added to
    the recent mean in the multiplicative offset ``s = m + offset_prior``.
    It is 1 unit: with a smaller prior a product jumping from empty weeks to
    thousands of units (real retail data) gives ratios ``y / s`` so extreme
    that the Poisson trees' forecasts explode (UCI Online Retail: MAE ~5e5
    at 0.25, on par with the moving average at 1.0).
    ``holdout_max_rows``: the holdout model is fitted on at most this many of
    the training rows (a seeded uniform sample; 0: all of them), see the module docstring."""

    period_days: int = 7
    n_lags: int = 4
    holdout_periods: int = 4
    offset_prior: float = 1.0
    max_iter: int = 100
    learning_rate: float = 0.05
    max_leaf_nodes: int = 15
    random_state: int = 42
    holdout_max_rows: int = 250_000

    def __post_init__(self) -> None:
        check_ints(self, "period_days", "n_lags", "holdout_periods", "max_iter", "max_leaf_nodes")
        check_ints(self, "holdout_max_rows", low=0)
        check_numbers(self, "learning_rate", low=0, high=1, low_open=True)
        check_numbers(self, "offset_prior", low=0, low_open=True)

    @property
    def min_periods(self) -> int:
        """Periods needed: ``n_lags`` of history, then at least two training
        periods, then the holdout."""
        return self.n_lags + 2 + self.holdout_periods


@dataclass
class DemandPanel:
    """Per-period counts: ``demand`` (purchased quantity) and the leading
    event counts, each products x periods; ``period_end`` per period."""

    demand: np.ndarray
    leading: dict[str, np.ndarray]
    period_end: pd.DatetimeIndex
    product_ids: pd.Index
    n_events_before_first_period: int


def demand_panel(dataset: Dataset, period_days: int = 7) -> DemandPanel:
    """Bin the events into periods counted back from ``as_of`` (see module doc)."""
    events = dataset.events
    product_ids = pd.Index(dataset.products["product_id"])
    if events.empty:
        raise ValueError("cannot build a demand panel from a data set without events")
    codes = dataset.event_index()  # cached per-event codes and ages (as_of - timestamp, days)
    span_days = (dataset.as_of - events["timestamp"].min()).total_seconds() / 86400.0
    n_periods = max(int(np.floor(span_days / period_days)), 0)  # complete periods only
    shape = (len(product_ids), n_periods)
    kinds = [EVENT_TYPES.index(name) for name in ("purchase", *LEADING_EVENTS)]
    counts = np.zeros((len(kinds), shape[0] * shape[1]))
    quantity = events["quantity"].to_numpy()
    outside = 0
    for start in range(0, len(events), _PANEL_CHUNK):  # in chunks: per-event temporaries stay small
        part = slice(start, start + _PANEL_CHUNK)
        back = np.floor(codes.age_days[part] / period_days).astype(np.int64)  # 0 = the last period
        inside = back < n_periods
        outside += int((~inside).sum())
        # (product, period) cell, row-major; period t = n_periods - 1 - back
        cell = codes.product_col[part][inside].astype(np.int64) * n_periods + (n_periods - 1 - back[inside])
        kind = codes.kind[part][inside]
        for i, code in enumerate(kinds):  # purchases weighted by quantity (integers: exact in any order)
            mask = kind == code
            weights = quantity[part][inside][mask].astype(float) if i == 0 else None
            counts[i] += np.bincount(cell[mask], weights=weights, minlength=counts.shape[1])
    demand, *leading_counts = (row.reshape(shape) for row in counts)
    leading = dict(zip(LEADING_EVENTS, leading_counts, strict=True))
    ends = pd.DatetimeIndex([dataset.as_of - pd.Timedelta(days=period_days * (n_periods - 1 - i))
                             for i in range(n_periods)])
    return DemandPanel(demand, leading, ends, product_ids, outside)


def forecast_errors(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and WAPE (``sum|y - y_hat| / sum y``; NaN if ``sum y = 0``)."""
    actual, predicted = np.asarray(actual, float).ravel(), np.asarray(predicted, float).ravel()
    err = actual - predicted
    total = actual.sum()
    return {
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "wape": float(np.abs(err).sum() / total) if total > 0 else float("nan"),
    }


class DemandModel:
    """Next-period demand per product (see the module docstring).

    After :meth:`fit`: ``holdout_`` (long frame ``product_id, period_end,
    actual, model, naive, moving_average``), ``errors_`` (one row per
    forecaster: ``model, mae, rmse, wape``), ``forecast_`` (per product:
    ``product_id, last_period_demand, predicted_demand, demand_score``),
    ``regressor_`` (a :class:`QuantileBinned` HGB refitted on every period), ``feature_names_``,
    ``panel_`` (the per-period counts), ``n_train_rows_`` (the rows the holdout model was
    fitted on: at most ``holdout_max_rows``) and ``n_test_rows_``.
    """

    def __init__(self, config: DemandConfig | None = None) -> None:
        self.config = config or DemandConfig()

    def fit(self, dataset: Dataset, panel: DemandPanel | None = None) -> DemandModel:
        """Fit on ``dataset``'s events, or on a ``panel`` already binned from
        them (e.g. aggregated by Spark; its products in ``dataset.products`` order)."""
        if not isinstance(dataset, Dataset):
            raise TypeError(f"fit expects a recsys Dataset, got {type(dataset).__name__}")
        if dataset.n_products == 0:
            raise ValueError("cannot fit DemandModel on a data set without products")
        cfg = self.config
        panel = demand_panel(dataset, cfg.period_days) if panel is None else panel
        n_periods = panel.demand.shape[1]
        if n_periods < cfg.min_periods:
            raise ValueError(
                f"DemandModel needs at least {cfg.min_periods} complete periods of {cfg.period_days} days "
                f"(n_lags={cfg.n_lags} + 2 training + holdout_periods={cfg.holdout_periods}); the events span "
                f"{n_periods}"
            )
        self.panel_ = panel
        self.n_events_before_first_period_ = panel.n_events_before_first_period
        # rows for targets t = n_lags .. n_periods (the last one is the future period T)
        X, offset, t_index, names = self._features(panel, dataset, range(cfg.n_lags, n_periods + 1))
        self.feature_names_ = names
        y = np.concatenate([panel.demand[:, t] for t in range(cfg.n_lags, n_periods)])
        n_products = len(panel.product_ids)
        # rows come in blocks of ascending target period: observed, train and test rows are
        # consecutive ranges, taken as slices (views, no copies of the feature matrix)
        test_start = n_periods - cfg.holdout_periods
        n_train, n_obs = np.searchsorted(t_index, [test_start, n_periods])
        observed = slice(0, n_obs)
        X_obs, s_obs, t_obs = X[observed], offset[observed], t_index[observed]
        test = slice(n_train, n_obs)
        sample = self._holdout_sample(int(n_train))
        holdout_model = self._fit_regressor(X_obs[sample], y[sample], s_obs[sample], names)
        pred = {
            "model": self._predict(holdout_model, X_obs[test], s_obs[test]),
            "naive": panel.demand[:, test_start - 1 : n_periods - 1].T.ravel(),
            "moving_average": np.concatenate([panel.demand[:, t - cfg.n_lags : t].mean(axis=1)
                                              for t in range(test_start, n_periods)]),
        }
        self.holdout_ = pd.DataFrame({
            "product_id": np.tile(np.asarray(panel.product_ids, dtype=object), cfg.holdout_periods),
            "period_end": panel.period_end[t_obs[test]],
            "actual": y[test],
            **pred,
        })
        self.errors_ = pd.DataFrame([{"model": name, **forecast_errors(y[test], p)} for name, p in pred.items()])
        self.n_train_rows_, self.n_test_rows_ = len(y[sample]), int(n_obs - n_train)

        # the served model: thresholds from every observed row; X then replaced by its bin codes
        # (uint8: an eighth of the memory; the same values reach the trees)
        self.regressor_ = self._regressor(names).fit_thresholds(X_obs)
        codes = self.regressor_.transform(X)
        del X, X_obs
        self.regressor_.fit_binned(codes[:n_obs], y / s_obs, sample_weight=s_obs)
        future = self.regressor_.predict_binned(codes[n_obs:]) * offset[n_obs:]
        assert len(future) == n_products
        self.forecast_ = pd.DataFrame({
            "product_id": np.asarray(panel.product_ids, dtype=object),
            "last_period_demand": panel.demand[:, -1],
            "predicted_demand": future,
            "demand_score": demand_score(future),
        })
        return self

    @property
    def demand_scores_(self) -> pd.Series:
        """``demand_score`` per product id (0..100)."""
        self._check_fitted()
        return self.forecast_.set_index("product_id")["demand_score"]

    def holdout_rank_correlation(self) -> pd.DataFrame:
        """Spearman correlation, across products, of each forecaster with the
        actual demand, per holdout period (``period_end`` rows, one column per
        forecaster): how well a forecast *orders* products, which is all the
        percentile ``demand_score`` keeps. NaN where a forecast is constant."""
        self._check_fitted()
        names = ["model", "naive", "moving_average"]

        def per_period(frame: pd.DataFrame) -> pd.Series:
            ranks = frame[["actual", *names]].rank()
            with np.errstate(invalid="ignore", divide="ignore"):
                return pd.Series({n: ranks["actual"].corr(ranks[n]) for n in names})

        return pd.DataFrame({end: per_period(part) for end, part in self.holdout_.groupby("period_end")}).T

    def _check_fitted(self) -> None:
        if not hasattr(self, "forecast_"):
            raise RuntimeError("DemandModel is not fitted: call fit(dataset) first")

    # -- model ----------------------------------------------------------------
    def _holdout_sample(self, n_train: int) -> slice | np.ndarray:
        """The training rows of the holdout model: all ``n_train``, or a seeded
        uniform sample of ``holdout_max_rows`` of them (sorted) when there are more."""
        cap = self.config.holdout_max_rows
        if cap == 0 or n_train <= cap:
            return slice(0, n_train)
        rng = np.random.default_rng(self.config.random_state)
        return np.sort(rng.choice(n_train, size=cap, replace=False))

    def _regressor(self, names: list[str]) -> QuantileBinned:
        """An unfitted Poisson HGB (category: a categorical feature) behind quantile binning."""
        c = self.config
        model = HistGradientBoostingRegressor(
            loss="poisson", learning_rate=c.learning_rate, max_iter=c.max_iter, max_leaf_nodes=c.max_leaf_nodes,
            categorical_features=[n == "category" for n in names], early_stopping=False,
            random_state=c.random_state,
        )
        return QuantileBinned(model, [n != "category" for n in names])

    def _fit_regressor(self, X: np.ndarray, y: np.ndarray, offset: np.ndarray, names: list[str]) -> QuantileBinned:
        """Poisson regression of ``y`` on ``offset * f(X)``: fit ``y / offset``
        with weight ``offset``."""
        return self._regressor(names).fit(X, y / offset, sample_weight=offset)

    @staticmethod
    def _predict(model: QuantileBinned, X: np.ndarray, offset: np.ndarray) -> np.ndarray:
        return model.predict(X) * offset

    def _features(
        self, panel: DemandPanel, dataset: Dataset, targets: range
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
        """Feature rows (one block of all products per target period), the
        offset ``s`` per row, the target period per row, and the names."""
        cfg, calendar = self.config, dataset.config.seasons
        L, demand = cfg.n_lags, panel.demand
        n = demand.shape[0]
        products = dataset.products
        category = pd.Index(sorted(products["category"].unique())).get_indexer(products["category"]).astype(float)
        log_price = np.log(products["price"].to_numpy(dtype=float))
        peak = products["peak_season"].to_numpy()
        period_season = [calendar.season_of((panel.period_end[0] + pd.Timedelta(days=cfg.period_days * (t - 0.5))).month)
                         for t in range(demand.shape[1] + 1)]
        cumsum = np.concatenate([np.zeros((n, 1)), np.cumsum(demand, axis=1)], axis=1)
        x = np.arange(1, L + 1, dtype=float)
        slope_w = (x - x.mean()) / ((x - x.mean()) ** 2).sum()  # OLS slope over lags, oldest first
        n_features = L + 4 + len(LEADING_EVENTS) + 4
        X = np.empty((n * len(targets), n_features))  # filled block by block (no list of blocks to stack)
        offsets, t_index = [], []
        for i, t in enumerate(targets):
            lags = demand[:, t - L : t][:, ::-1]  # lag_1 first
            lag_mean = lags.mean(axis=1)
            start = max(0, t - 3 * L)
            level = [
                lags, lag_mean[:, None], (lags[:, ::-1] @ slope_w)[:, None],
                ((cumsum[:, t] - cumsum[:, start]) / (t - start))[:, None], (cumsum[:, t] / t)[:, None],
                *(panel.leading[name][:, t - 1 : t] for name in LEADING_EVENTS),
            ]
            offset = lag_mean + cfg.offset_prior
            seasonal = [
                (peak == period_season[t]).astype(float)[:, None],
                np.mean([peak == period_season[j] for j in range(t - L, t)], axis=0)[:, None],
            ]
            X[i * n : (i + 1) * n] = np.hstack([np.hstack(level) / offset[:, None], *seasonal,
                                                category[:, None], log_price[:, None]])
            offsets.append(offset)
            t_index.append(np.full(n, t))
        names = [f"lag_{i}" for i in range(1, L + 1)] + ["lag_mean", "trend", "level_long", "expanding_mean"]
        names += [f"{e}s_lag_1" for e in LEADING_EVENTS]
        names += ["in_peak_season", "peak_share_lags", "category", "log_price"]
        assert len(names) == n_features
        return X, np.concatenate(offsets), np.concatenate(t_index), names


class QuantileBinned:
    """A ``HistGradientBoostingRegressor`` on features quantized beforehand
    to at most ``max_bins`` unweighted quantile bins (the columns in
    ``binned``; e.g. not a categorical code). This is the binning HGB does
    itself without sample weights; with weights, scikit-learn computes one
    weighted percentile per bin edge, which dominated the fit time (16 of 20
    seconds at the thesis profile)."""

    def __init__(self, model: HistGradientBoostingRegressor, binned: list[bool], max_bins: int = 255) -> None:
        self.model, self.binned, self.max_bins = model, list(binned), max_bins

    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> QuantileBinned:
        """:meth:`fit_thresholds` on ``X``, then the model on the binned copy of ``X``."""
        return self.fit_thresholds(X).fit_binned(self.transform(X), y, sample_weight)

    def fit_thresholds(self, X: np.ndarray) -> QuantileBinned:
        """Bin edges per binned column: the ``k / max_bins`` quantiles (``averaged_inverted_cdf``), deduplicated."""
        levels = np.linspace(0, 1, self.max_bins + 1)[1:-1]
        self.thresholds_ = [
            np.unique(np.quantile(X[:, j], levels, method="averaged_inverted_cdf")) if use else None
            for j, use in enumerate(self.binned)
        ]
        return self

    def fit_binned(self, X_binned: np.ndarray, y: np.ndarray,
                   sample_weight: np.ndarray | None = None) -> QuantileBinned:
        """Fit the model on rows already :meth:`transform` -ed with these thresholds."""
        self.model.fit(X_binned, y, sample_weight=sample_weight)
        self.target_max_ = float(np.max(y)) if len(y) else 0.0
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions clipped to ``[0, largest training target]``: the
        Poisson link is ``exp``, and on heavy-tailed real demand a few extreme
        leaf values can otherwise overflow to astronomically large forecasts."""
        return self.predict_binned(self.transform(X))

    def predict_binned(self, X_binned: np.ndarray) -> np.ndarray:
        """:meth:`predict` of rows already :meth:`transform` -ed."""
        return np.clip(self.model.predict(X_binned), 0.0, self.target_max_)

    def transform(self, X: np.ndarray, compact: bool = True) -> np.ndarray:
        """A copy of ``X`` with every binned column replaced by its bin index
        (``searchsorted(thresholds, x, side="left")``); ``compact`` (default):
        uint8 when every other column holds integers in 0..255 (e.g.
        category codes: the model sees the same values in an eighth of the memory)."""
        small = compact and self.max_bins <= 256 and all(
            use or np.array_equal(X[:, j], np.clip(np.round(X[:, j]), 0, 255)) for j, use in enumerate(self.binned))
        out = np.empty(X.shape, dtype=np.uint8 if small else np.float64)
        for j, thresholds in enumerate(self.thresholds_):
            out[:, j] = X[:, j] if thresholds is None else np.searchsorted(thresholds, X[:, j], side="left")
        return out


def demand_score(predicted: np.ndarray) -> np.ndarray:
    """Percentile in 0..100: ``100 * (rank_min - 1) / (n - 1)`` (``rank_min``:
    1 + the number of strictly lower values); 50 for all if every value ties."""
    predicted = np.asarray(predicted, dtype=float)
    if len(predicted) == 0 or np.all(predicted == predicted[0]):
        return np.full(len(predicted), 50.0)
    ranks = pd.Series(predicted).rank(method="min").to_numpy()
    return 100.0 * (ranks - 1.0) / (len(predicted) - 1.0)
