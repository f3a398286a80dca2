"""Issue 14 (data side): non-finite numbers, the id rule, time zones, as_of,
duplicate columns, personas, uint64 and complex columns are refused (or
converted, as documented) with a DataValidationError naming the input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_dataset import AS_OF, build, frames

from recsys.data import Dataset, DataValidationError, drop_invalid_events
from recsys.data.ids import MAX_ID_LENGTH, check_ids, check_user_id, is_valid_id


def with_column(frame: str, column: str, values: object, dtype: object = None) -> dict[str, pd.DataFrame]:
    df = frames()[frame].copy()
    df[column] = pd.Series(values, dtype=dtype)
    return {frame: df}


def set_cell(frame: str, column: str, row: int, value: object) -> dict[str, pd.DataFrame]:
    df = frames()[frame].copy()
    values = df[column].to_numpy().copy()
    values[row] = value
    df[column] = values
    return {frame: df}


# -- 14.4 non-finite numbers ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("frame", "column", "row"),
    [("products", "price", 0), ("products", "cost", 1), ("events", "value", 2), ("events", "value", 0),
     ("users", "age", 1), ("users", "price_sensitivity", 0), ("events", "rating", 4)],
)
@pytest.mark.parametrize("bad", [np.inf, -np.inf])
def test_infinite_numbers_are_refused_naming_frame_column_and_row(frame: str, column: str, row: int,
                                                                   bad: float) -> None:
    with pytest.raises(DataValidationError, match=rf"{frame}\.{column}: .*\(1 row; e\.g\. row {row}: -?inf\)"):
        build(**set_cell(frame, column, row, bad))


def test_nan_price_is_refused_and_nan_cost_stays_unknown() -> None:
    with pytest.raises(DataValidationError, match=r"products\.price: missing values"):
        build(**set_cell("products", "price", 0, np.nan))
    assert np.isnan(build(**set_cell("products", "cost", 0, np.nan)).products["cost"].iloc[0])


def test_non_finite_quantity_is_refused_naming_the_column() -> None:
    quantity = frames()["events"]["quantity"].astype(float)
    quantity.iloc[1] = np.inf
    with pytest.raises(DataValidationError, match=r"events\.quantity: wrong dtype float64, expected int"):
        build(**with_column("events", "quantity", quantity))


# -- 14.5 one id rule --------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["Jane Doe", "x" * (MAX_ID_LENGTH + 1), "tab\there", "new\nline", "trailing\n",
                                 "\u00a0nbsp", ""])
@pytest.mark.parametrize(("frame", "column"), [("users", "user_id"), ("products", "product_id")])
def test_ids_the_engine_cannot_serve_are_refused(frame: str, column: str, bad: str) -> None:
    parts = frames()
    old = parts[frame][column].iloc[0]
    parts[frame][column] = parts[frame][column].replace(old, bad)
    events = parts["events"]
    events[column] = events[column].replace(old, bad)
    with pytest.raises(DataValidationError, match=rf"{frame}\.{column}: (malformed|empty) ids"):
        Dataset(parts["users"], parts["products"], events, AS_OF)


@pytest.mark.parametrize("good", ["user_9", "x" * MAX_ID_LENGTH, "customer-17@shop", "ü-ñ", "product_85123A"])
def test_the_id_rule_accepts_what_the_engine_serves(good: str) -> None:
    assert is_valid_id(good) and check_user_id(good) == good and check_ids([good]) == [good]
    build(**set_cell("users", "user_id", 2, good))


@pytest.mark.parametrize("bad", ["Jane Doe", "", 5, None, "x" * 129, "a\n"])
def test_check_user_id_refuses_with_a_value_error_naming_it(bad: object) -> None:
    with pytest.raises(ValueError, match="user_id must be a string|malformed user id"):
        check_user_id(bad)


def test_check_ids_names_the_kind() -> None:
    with pytest.raises(ValueError, match=r"malformed product id\(s\) \['a b'\]"):
        check_ids(["ok", "a b"], "product")


# -- 14.8 time zones -----------------------------------------------------------------------------
def test_timezone_aware_timestamps_become_naive_utc() -> None:
    events = frames()["events"]
    naive = events["timestamp"]
    events["timestamp"] = naive.dt.tz_localize("UTC").dt.tz_convert("Asia/Tokyo")
    ds = build(events=events)
    assert ds.events["timestamp"].dtype == "datetime64[ns]"
    pd.testing.assert_series_equal(ds.events["timestamp"], naive.astype("datetime64[ns]"))


def test_timezone_aware_as_of_is_the_same_instant_in_utc() -> None:
    parts = frames()
    ds = Dataset(*parts.values(), as_of=pd.Timestamp("2024-06-30 02:00", tz="Europe/Berlin"))
    assert ds.as_of == pd.Timestamp("2024-06-30 00:00") and ds.as_of.tzinfo is None


def test_events_after_a_timezone_aware_as_of_are_caught() -> None:
    parts = frames()
    as_of = pd.Timestamp("2024-06-05 13:00", tz="Europe/Berlin")  # 11:00 UTC, before the 12:00 review
    with pytest.raises(DataValidationError, match=r"events\.timestamp: event time after"):
        Dataset(*parts.values(), as_of=as_of)


def test_timestamps_outside_the_ns_range_are_named() -> None:
    events = frames()["events"]
    events["timestamp"] = events["timestamp"].astype("datetime64[s]")
    events.loc[0, "timestamp"] = np.datetime64("2500-01-01", "s")
    with pytest.raises(DataValidationError, match=r"events\.timestamp: timestamp outside"):
        build(events=events)


# -- 14.9 as_of ---------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [pd.NaT, None, np.datetime64("NaT"), "not a date", 5, 1.5, True, [AS_OF]])
def test_as_of_must_be_a_timestamp(bad: object) -> None:
    with pytest.raises(DataValidationError, match=r"^as_of: "):
        Dataset(*frames().values(), as_of=bad)


def test_restrict_events_refuses_a_nat_as_of() -> None:
    with pytest.raises(DataValidationError, match=r"^as_of: missing timestamp"):
        build().restrict_events(np.ones(5, bool), as_of=pd.NaT)


# -- 14.14 smaller gaps -----------------------------------------------------------------------------
@pytest.mark.parametrize(("frame", "column"), [("users", "age"), ("products", "price"), ("events", "user_id")])
def test_duplicate_column_names_are_named(frame: str, column: str) -> None:
    df = frames()[frame]
    doubled = pd.concat([df, df[[column]]], axis=1)
    with pytest.raises(DataValidationError, match=rf"{frame}\.{column}: duplicate column name"):
        build(**{frame: doubled})


@pytest.mark.parametrize("bad", [[1, 2, 3], {"user_0": "a"}, "personas", np.zeros(3)])
def test_personas_must_be_a_frame(bad: object) -> None:
    with pytest.raises(DataValidationError, match=r"^personas: expected a pandas DataFrame"):
        Dataset(*frames().values(), as_of=AS_OF, personas=bad)


def test_personas_first_column_is_user_id() -> None:
    with pytest.raises(DataValidationError, match=r"personas\.user_id: first column"):
        Dataset(*frames().values(), as_of=AS_OF, personas=pd.DataFrame({"persona": ["a"]}))


def test_uint64_stock_is_checked_in_its_own_dtype() -> None:
    stock = pd.Series([2**64 - 1, 0], dtype="uint64")
    with pytest.raises(DataValidationError,
                       match=r"products\.stock: value above the int64 maximum .*row 0: 18446744073709551615"):
        build(**with_column("products", "stock", stock))
    ok = build(**with_column("products", "stock", pd.Series([7, 0], dtype="uint64")))
    assert ok.products["stock"].tolist() == [7, 0] and ok.products["stock"].dtype == "int64"


def test_complex_price_is_refused_not_cut_to_its_real_part() -> None:
    with pytest.raises(DataValidationError, match=r"products\.price: wrong dtype complex128, expected float"):
        build(**with_column("products", "price", [999.0 + 1j, 15.5 + 0j]))


def test_drop_invalid_events_follows_the_timestamp_rule() -> None:
    parts = frames()
    events = parts["events"].assign(timestamp=parts["events"]["timestamp"].dt.tz_localize("Europe/Berlin"))
    as_of = pd.Timestamp("2024-06-05 11:30", tz="Europe/Berlin")  # the review is at 12:00 Berlin time
    kept, report = drop_invalid_events(events, parts["users"], parts["products"], as_of)
    assert len(kept) == 4 and report.set_index("reason").loc["timestamp after as_of", "rows_removed"] == 1
    with pytest.raises(DataValidationError, match=r"^as_of: missing timestamp"):
        drop_invalid_events(parts["events"], parts["users"], parts["products"], pd.NaT)
