"""Temporal hold-out split: train on the past, test on the window after the cut.

Protocol
    ``cut = as_of - test_days``. Training data: every event with
    ``timestamp < cut``, as a :class:`~recsys.data.Dataset` whose ``as_of`` is
    ``cut`` (so time decay is measured from the cut and nothing after it is
    visible). Test window: events with ``cut <= timestamp <= as_of``.

    The relevant items of a user are the products with an event of a
    ``relevant_events`` type (default cart or purchase) in the test window
    that the user had **not purchased in the training period** (re-buys are
    not discoveries, and models exclude purchased items anyway).

    Users with at least one training event are *warm* and form the main
    evaluation; users with no training event at all are *cold start* and are
    evaluated separately (``cold_relevant``).

    Tuning never sees the test window: :func:`validation_split` applies the
    same protocol inside the training data, with the validation window cut
    from the end of the training period.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys.config import EVENT_TYPES
from recsys.data.dataset import Dataset

__all__ = ["DEFAULT_RELEVANT_EVENTS", "TemporalSplit", "temporal_split", "validation_split"]

DEFAULT_RELEVANT_EVENTS: tuple[str, ...] = ("cart", "purchase")


@dataclass(frozen=True)
class TemporalSplit:
    """The result of :func:`temporal_split`.

    ``train``: the training Dataset (events before ``cut``, ``as_of=cut``).
    ``test_events``: all events in the test window.
    ``relevant`` / ``cold_relevant``: ``user_id, product_id`` pairs that count
    as hits, for warm and cold-start users. ``counts``: how many events,
    pairs and users each rule kept or removed.
    """

    train: Dataset
    test_events: pd.DataFrame
    relevant: pd.DataFrame
    cold_relevant: pd.DataFrame
    cut: pd.Timestamp
    end: pd.Timestamp
    test_days: float
    relevant_events: tuple[str, ...]
    counts: dict[str, int]

    @property
    def warm_users(self) -> list[str]:
        """Users with training history and at least one relevant test item (sorted)."""
        return sorted(self.relevant["user_id"].unique())

    @property
    def cold_users(self) -> list[str]:
        """Users without training history and at least one relevant test item (sorted)."""
        return sorted(self.cold_relevant["user_id"].unique())

    def summary(self) -> pd.DataFrame:
        """The counts as a two-column table (``quantity, value``)."""
        return pd.DataFrame({"quantity": list(self.counts), "value": list(self.counts.values())})


def _check_days(days: object, name: str) -> float:
    if isinstance(days, bool) or not isinstance(days, numbers.Real) or not np.isfinite(days) or days <= 0:
        raise ValueError(f"{name} must be a positive number of days, got {days!r}")
    return float(days)


def _check_event_types(relevant_events: Sequence[str]) -> tuple[str, ...]:
    if isinstance(relevant_events, str):
        relevant_events = (relevant_events,)
    kinds = tuple(relevant_events)
    unknown = [k for k in kinds if k not in EVENT_TYPES]
    if not kinds or unknown:
        raise ValueError(f"relevant_events must be a non-empty subset of {list(EVENT_TYPES)}, got {list(kinds)}")
    return kinds


def temporal_split(
    dataset: Dataset,
    test_days: float = 14,
    *,
    relevant_events: Sequence[str] = DEFAULT_RELEVANT_EVENTS,
) -> TemporalSplit:
    """Split ``dataset`` at ``dataset.as_of - test_days`` (see module docstring).

    Raises ``ValueError`` if the training period or the set of relevant
    pairs would be empty (the window is too long or too short)."""
    if not isinstance(dataset, Dataset):
        raise ValueError(f"temporal_split expects a recsys Dataset, got {type(dataset).__name__}")
    test_days = _check_days(test_days, "test_days")
    kinds = _check_event_types(relevant_events)
    end = dataset.as_of
    cut = end - pd.Timedelta(days=test_days)
    events = dataset.events
    in_train = (events["timestamp"] < cut).to_numpy()
    if not in_train.any():
        first = events["timestamp"].min()
        raise ValueError(
            f"test_days={test_days:g} puts the cut at {cut} but the first event is at {first}: no training data"
        )
    train = dataset.restrict_events(in_train, as_of=cut)
    test_events = events[~in_train].reset_index(drop=True)

    candidates = test_events.loc[test_events["event_type"].isin(kinds), ["user_id", "product_id"]].drop_duplicates()
    bought = train.events.loc[train.events["event_type"].eq("purchase"), ["user_id", "product_id"]].drop_duplicates()
    already = pd.MultiIndex.from_frame(candidates).isin(pd.MultiIndex.from_frame(bought))
    pairs = candidates[~already]
    warm = pairs["user_id"].isin(train.events["user_id"].unique()).to_numpy()
    relevant = pairs[warm].sort_values(["user_id", "product_id"]).reset_index(drop=True)
    cold_relevant = pairs[~warm].sort_values(["user_id", "product_id"]).reset_index(drop=True)
    if relevant.empty and cold_relevant.empty:
        raise ValueError(
            f"no relevant pairs ({'/'.join(kinds)} of a product not bought before) in the {test_days:g}-day "
            f"test window after {cut}: lengthen test_days or widen relevant_events"
        )
    counts = {
        "train_events": int(in_train.sum()),
        "test_events": len(test_events),
        "test_candidate_pairs": len(candidates),
        "pairs_dropped_bought_before": int(already.sum()),
        "relevant_pairs_warm": len(relevant),
        "relevant_pairs_cold": len(cold_relevant),
        "warm_users_evaluated": int(relevant["user_id"].nunique()),
        "cold_users_evaluated": int(cold_relevant["user_id"].nunique()),
        "test_users_without_relevant": int(
            test_events["user_id"].nunique() - pairs["user_id"].nunique()
        ),
    }
    return TemporalSplit(
        train=train,
        test_events=test_events,
        relevant=relevant,
        cold_relevant=cold_relevant,
        cut=cut,
        end=end,
        test_days=test_days,
        relevant_events=kinds,
        counts=counts,
    )


def validation_split(
    split: TemporalSplit | Dataset,
    validation_days: float = 14,
    *,
    relevant_events: Sequence[str] | None = None,
) -> TemporalSplit:
    """The same protocol applied to the training period only: the validation
    window is ``[cut - validation_days, cut)``, so tuning on it never sees
    the test window. ``split`` is a :class:`TemporalSplit` (its ``train`` is
    split again, with its relevant event types unless overridden) or an
    already-restricted training Dataset."""
    if isinstance(split, TemporalSplit):
        train, kinds = split.train, split.relevant_events
    elif isinstance(split, Dataset):
        train, kinds = split, DEFAULT_RELEVANT_EVENTS
    else:
        raise ValueError(f"validation_split expects a TemporalSplit or a Dataset, got {type(split).__name__}")
    return temporal_split(train, validation_days, relevant_events=relevant_events or kinds)
