"""``add_events`` follows the data set's rules (recsys.data): the timestamp rule and the quantity/value checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.config import DEFAULT_CONFIG
from recsys.data.errors import DataValidationError
from recsys.models.live_history import validate_events

AS_OF = pd.Timestamp("2024-06-02")
PRODUCTS = pd.Index(["p1", "p2"])


def events(**columns) -> pd.DataFrame:
    base = {"user_id": ["u1", "u2"], "product_id": ["p1", "p2"], "event_type": ["purchase", "view"],
            "timestamp": pd.to_datetime(["2024-06-01 10:00", "2024-06-01 11:00"])}
    return pd.DataFrame({**base, **columns})


def test_tz_aware_timestamps_are_converted_to_utc_and_weigh_as_the_naive_utc_ones():
    naive = validate_events(events(), PRODUCTS, AS_OF, DEFAULT_CONFIG.interactions)
    berlin = events(timestamp=pd.to_datetime(["2024-06-01 12:00", "2024-06-01 13:00"]).tz_localize("Europe/Berlin"))
    aware = validate_events(berlin, PRODUCTS, AS_OF, DEFAULT_CONFIG.interactions)
    np.testing.assert_array_equal(aware.weights, naive.weights)
    as_strings = events(timestamp=["2024-06-01T12:00:00+02:00", "2024-06-01T13:00:00+02:00"])
    np.testing.assert_array_equal(validate_events(as_strings, PRODUCTS, AS_OF, DEFAULT_CONFIG.interactions).weights,
                                  naive.weights)


@pytest.mark.parametrize(("columns", "column"), [
    ({"quantity": [-5, 1]}, "quantity"),
    ({"quantity": [0, 1]}, "quantity"),  # a purchase needs quantity >= 1
    ({"quantity": [np.inf, 1.0]}, "quantity"),
    ({"quantity": [np.nan, 1.0]}, "quantity"),
    ({"value": [np.inf, 1.0]}, "value"),
    ({"value": [-np.inf, 1.0]}, "value"),
    ({"value": [-3.0, 1.0]}, "value"),
    ({"value": [np.nan, 1.0]}, "value"),  # a purchase needs a value
    ({"value": ["cheap", "dear"]}, "value"),
    ({"timestamp": ["not a time", "2024-06-01"]}, "timestamp"),
])
def test_bad_amounts_and_times_are_refused_naming_the_column(columns, column):
    with pytest.raises(DataValidationError, match=rf"events\.{column}"):
        validate_events(events(**columns), PRODUCTS, AS_OF, DEFAULT_CONFIG.interactions)


def test_good_amounts_pass():
    batch = validate_events(events(quantity=[2, 0], value=[9.5, np.nan]), PRODUCTS, AS_OF,
                            DEFAULT_CONFIG.interactions)
    assert batch.is_purchase.tolist() == [True, False]


def test_engine_add_events_refuses_a_negative_purchase_quantity_and_changes_nothing(engine, small_dataset):
    user = str(small_dataset.users.user_id.iloc[0])
    product = str(small_dataset.products.product_id.iloc[0])
    before = engine.realtime(user, 5)["recommendations"]
    bad = pd.DataFrame({"user_id": [user], "product_id": [product], "event_type": ["purchase"],
                        "timestamp": [small_dataset.as_of], "quantity": [-5], "value": [10.0]})
    with pytest.raises(DataValidationError, match=r"events\.quantity: negative quantity"):
        engine.add_events(bad)
    assert engine.realtime(user, 5)["recommendations"] == before
    aware = bad.assign(quantity=[1], timestamp=[pd.Timestamp(small_dataset.as_of).tz_localize("Asia/Tokyo")])
    assert engine.add_events(aware)["events"] == 1
