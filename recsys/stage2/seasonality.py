"""Stage 2 seasonal factors per region x category x season, measured from the events.

For region ``r`` (of the user), category ``c`` (of the product) and season
``s`` (of the event's month, by the config's calendar), with ``n[r, c, s]``
the number of events (all event types by default):

    share[r, c, s]  = (n[r, c, s] + alpha) / (n[r, ., s] + alpha * C)
    factor[r, c, s] = share[r, c, s] / mean over observed seasons s' of share[r, c, s']

``C`` is the number of categories and ``alpha`` a pseudo-count (default 1)
that keeps rare cells finite. A factor of 1 means the category takes its
usual share of the region's traffic in that season; 1.3 means 30% more.
Working with shares within a season removes differences in season length
and overall traffic; dividing by the category's own average removes the
region's standing taste for it, so only the seasonal swing is left. Seasons
without any event of a region are not observed: their factors are NaN.

:meth:`SeasonalFactors.compare_with_prior` puts the measured factors beside
SPEC's prior (``config.boosted_categories(region, season)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from recsys.config import EVENT_TYPES, SEASONS
from recsys.data.dataset import Dataset
from recsys.validation import ConfigError, check_numbers

__all__ = ["SeasonalFactors", "SeasonalityConfig"]

_CHUNK = 1 << 20  # events counted at a time


@dataclass(frozen=True)
class SeasonalityConfig:
    """``alpha``: pseudo-count per cell; ``event_types``: events that count."""

    alpha: float = 1.0
    event_types: tuple[str, ...] = EVENT_TYPES

    def __post_init__(self) -> None:
        check_numbers(self, "alpha", low=0)
        object.__setattr__(self, "event_types", tuple(self.event_types))
        bad = [e for e in self.event_types if e not in EVENT_TYPES]
        if bad or not self.event_types:
            raise ConfigError(f"SeasonalityConfig.event_types must be a non-empty subset of {list(EVENT_TYPES)}, "
                             f"got {list(self.event_types)}")


class SeasonalFactors:
    """Measured seasonal factors (see the module docstring).

    After :meth:`fit`: ``factors_``, a long frame ``region, category, season,
    events, share, factor, prior_boosted`` (every region x category x season
    of the config); ``season_days_``: days of data per season.
    """

    def __init__(self, config: SeasonalityConfig | None = None) -> None:
        self.config = config or SeasonalityConfig()

    def fit(self, dataset: Dataset) -> SeasonalFactors:
        if not isinstance(dataset, Dataset):
            raise TypeError(f"fit expects a recsys Dataset, got {type(dataset).__name__}")
        cfg = dataset.config
        wanted = pd.Index(EVENT_TYPES).get_indexer(self.config.event_types)
        regions, seasons = list(cfg.region_names), list(SEASONS)
        categories = list(dict.fromkeys(list(cfg.categories) + sorted(set(dataset.products["category"]))))
        full = pd.MultiIndex.from_product([regions, categories, seasons], names=["region", "category", "season"])
        counts, first = self._cell_counts(dataset, wanted, regions, categories, seasons)
        if first is None:
            raise ValueError(f"no events of types {list(self.config.event_types)} to measure seasonal factors from")
        cube = counts.astype(float).reshape(len(regions), len(categories), len(seasons))
        alpha = self.config.alpha
        season_total = cube.sum(axis=1, keepdims=True)
        observed = np.broadcast_to(season_total > 0, cube.shape)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(observed, (cube + alpha) / (season_total + alpha * len(categories)), np.nan)
            n_seen = observed.sum(axis=2, keepdims=True)
            mean_share = np.where(observed, share, 0.0).sum(axis=2, keepdims=True) / n_seen  # NaN if none seen
            factor = share / mean_share
        prior = [cfg.is_seasonal(c, r, s) for r, c, s in full]
        self.factors_ = pd.DataFrame({
            "region": full.get_level_values(0), "category": full.get_level_values(1),
            "season": full.get_level_values(2), "events": cube.ravel().astype(np.int64),
            "share": share.ravel(), "factor": factor.ravel(), "prior_boosted": prior,
        })
        days = pd.Series(pd.date_range(pd.Timestamp(first).normalize(), dataset.as_of.normalize(), freq="D"))
        self.season_days_ = (days.dt.month.map(cfg.seasons.month_to_season).value_counts()
                             .reindex(seasons, fill_value=0).rename("days"))
        return self

    @staticmethod
    def _cell_counts(dataset: Dataset, wanted: np.ndarray, regions: list[str], categories: list[str],
                     seasons: list[str]) -> tuple[np.ndarray, np.datetime64 | None]:
        """Events of the ``wanted`` type codes per (region, category, season) cell (flat, row-major;
        events off an axis are not counted) and the earliest of their timestamps (None: no such
        event); in chunks of events, so the per-event temporaries stay small."""
        cfg, index = dataset.config, dataset.event_index()  # per-event codes (no copy of the events frame)
        user_region = pd.Index(regions).get_indexer(dataset.users["region"])
        product_category = pd.Index(categories).get_indexer(dataset.products["category"])
        month_season = pd.Index(seasons).get_indexer([cfg.seasons.month_to_season[m] for m in range(1, 13)])
        timestamps = dataset.events["timestamp"].to_numpy()
        counts = np.zeros(len(regions) * len(categories) * len(seasons), dtype=np.int64)
        first = None
        for start in range(0, len(timestamps), _CHUNK):
            part = slice(start, start + _CHUNK)
            chosen = np.flatnonzero(np.isin(index.kind[part], wanted))
            if len(chosen) == 0:
                continue
            region = user_region[index.user_row[part][chosen]]
            category = product_category[index.product_col[part][chosen]]
            stamps = timestamps[part][chosen]
            season = month_season[pd.DatetimeIndex(stamps).month.to_numpy() - 1]
            first = stamps.min() if first is None else min(first, stamps.min())
            ok = (region >= 0) & (category >= 0) & (season >= 0)
            cell = (region[ok] * len(categories) + category[ok]) * len(seasons) + season[ok]
            counts += np.bincount(cell, minlength=len(counts))
        return counts, first

    def table(self, region: str, value: str = "factor") -> pd.DataFrame:
        """Category x season pivot of ``value`` for one region."""
        self._check_fitted()
        part = self.factors_[self.factors_["region"] == region]
        if part.empty:
            raise ValueError(f"unknown region {region!r}; known: {sorted(self.factors_['region'].unique())}")
        out = part.pivot(index="category", columns="season", values=value)
        return out.reindex(index=list(dict.fromkeys(part["category"])), columns=list(SEASONS))

    def factor(self, region: str, category: str, season: str) -> float:
        """The measured factor of one cell (NaN if the season is not observed)."""
        self._check_fitted()
        f = self.factors_
        hit = f[(f["region"] == region) & (f["category"] == category) & (f["season"] == season)]
        if hit.empty:
            raise ValueError(f"no seasonal factor for region={region!r}, category={category!r}, season={season!r}")
        return float(hit["factor"].iloc[0])

    def compare_with_prior(self) -> dict[str, float]:
        """How the measured factors line up with SPEC's prior boosts, over the
        observed cells: mean factor of boosted and other cells, the share of
        boosted cells with factor > 1, and the AUC of the factor for telling
        boosted cells from the rest (0.5 = no relation)."""
        self._check_fitted()
        f = self.factors_.dropna(subset=["factor"])
        boosted = f["prior_boosted"].to_numpy()
        both = 0 < boosted.sum() < len(boosted)
        return {
            "n_cells": int(len(f)),
            "n_prior_boosted": int(boosted.sum()),
            "mean_factor_boosted": float(f.loc[boosted, "factor"].mean()) if boosted.any() else float("nan"),
            "mean_factor_other": float(f.loc[~boosted, "factor"].mean()) if (~boosted).any() else float("nan"),
            "share_boosted_above_1": float((f.loc[boosted, "factor"] > 1).mean()) if boosted.any() else float("nan"),
            "auc": float(roc_auc_score(boosted, f["factor"])) if both else float("nan"),
        }

    def _check_fitted(self) -> None:
        if not hasattr(self, "factors_"):
            raise RuntimeError("SeasonalFactors is not fitted: call fit(dataset) first")
