"""Property-based tests of the Dataset contract (issue 14): for random frames,
valid or broken in one place, construction either gives a Dataset of the
documented shape holding exactly the input values (converted only as
documented), or raises a DataValidationError (a ValueError) whose message
names the frame and column; never another exception, never a silent change."""

from __future__ import annotations

import re
import string

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recsys.config import DEFAULT_CONFIG, EVENT_TYPES, SEASONS
from recsys.data import SCHEMA, Dataset, DataValidationError
from recsys.data.ids import MAX_ID_LENGTH, is_valid_id

AS_OF = pd.Timestamp("2024-06-30 12:00")
FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ids = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")), min_size=1,
              max_size=12).filter(is_valid_id)
texts = st.text(alphabet=string.ascii_letters + " .,|&-", max_size=20)
positive = st.floats(min_value=0.01, max_value=1e6, allow_nan=False, allow_infinity=False)


@st.composite
def worlds(draw: st.DrawFn) -> dict[str, pd.DataFrame]:
    """Valid users, products and events (1..4 users, 1..4 products, 0..8 events)."""
    user_ids = draw(st.lists(ids, min_size=1, max_size=4, unique=True))
    product_ids = draw(st.lists(ids, min_size=1, max_size=4, unique=True))
    n_users, n_products = len(user_ids), len(product_ids)
    users = pd.DataFrame({
        "user_id": pd.Series(user_ids, dtype=object),
        "age": draw(st.lists(st.one_of(st.just(np.nan), st.floats(13, 110)), min_size=n_users, max_size=n_users)),
        "region": draw(st.lists(st.sampled_from(DEFAULT_CONFIG.region_names), min_size=n_users, max_size=n_users)),
        "spending_tier": draw(st.lists(st.sampled_from(DEFAULT_CONFIG.spending_tier_names), min_size=n_users,
                                       max_size=n_users)),
        "price_sensitivity": draw(st.lists(st.one_of(st.just(np.nan), st.floats(0, 1)), min_size=n_users,
                                           max_size=n_users)),
    })
    products = pd.DataFrame({
        "product_id": pd.Series(product_ids, dtype=object),
        "name": draw(st.lists(texts, min_size=n_products, max_size=n_products)),
        "category": draw(st.lists(st.sampled_from(DEFAULT_CONFIG.categories), min_size=n_products,
                                  max_size=n_products)),
        "description": draw(st.lists(texts, min_size=n_products, max_size=n_products)),
        "tags": draw(st.lists(texts, min_size=n_products, max_size=n_products)),
        "price": draw(st.lists(positive, min_size=n_products, max_size=n_products)),
        "cost": draw(st.lists(st.one_of(st.just(np.nan), positive), min_size=n_products, max_size=n_products)),
        "stock": np.asarray(draw(st.lists(st.integers(0, 2**40), min_size=n_products, max_size=n_products)),
                            dtype="int64"),
        "peak_season": draw(st.lists(st.sampled_from([*SEASONS, "none"]), min_size=n_products, max_size=n_products)),
    })
    n_events = draw(st.integers(0, 8))
    kinds = draw(st.lists(st.sampled_from(EVENT_TYPES), min_size=n_events, max_size=n_events))
    seconds = draw(st.lists(st.integers(0, 10**8), min_size=n_events, max_size=n_events))
    quantity = [draw(st.integers(1, 50)) if k == "purchase" else draw(st.integers(0, 50)) for k in kinds]
    value = [draw(positive) if k == "purchase" else draw(st.one_of(st.just(np.nan), positive)) for k in kinds]
    rating = [float(draw(st.integers(1, 5))) if k == "review" else np.nan for k in kinds]
    events = pd.DataFrame({
        "user_id": pd.Series(draw(st.lists(st.sampled_from(user_ids), min_size=n_events, max_size=n_events)),
                             dtype=object),
        "product_id": pd.Series(draw(st.lists(st.sampled_from(product_ids), min_size=n_events,
                                              max_size=n_events)), dtype=object),
        "event_type": pd.Series(kinds, dtype=object),
        "timestamp": pd.Series(AS_OF - pd.to_timedelta(seconds, unit="s"), dtype="datetime64[ns]"),
        "session_id": pd.Series([f"s{i}" for i in range(n_events)], dtype=object),
        "quantity": np.asarray(quantity, dtype="int64"),
        "value": np.asarray(value, dtype="float64"),
        "rating": np.asarray(rating, dtype="float64"),
    })
    return {"users": users, "products": products, "events": events}


def assert_same_values(before: pd.DataFrame, after: pd.DataFrame) -> None:
    """The Dataset's frame holds exactly the input values (dtype may be canonicalised)."""
    assert list(after.columns) == list(before.columns) and len(after) == len(before)
    for column in before.columns:
        pd.testing.assert_series_equal(after[column].reset_index(drop=True),
                                       before[column].reset_index(drop=True), check_dtype=False, check_names=False)


@FAST
@given(worlds())
def test_valid_frames_give_a_dataset_of_the_documented_shape_without_change(world: dict[str, pd.DataFrame]) -> None:
    ds = Dataset(world["users"], world["products"], world["events"], AS_OF)
    for name in ("users", "products", "events"):
        frame = getattr(ds, name)
        assert list(frame.columns) == list(SCHEMA[name])
        assert_same_values(world[name], frame)
        kinds = {c: spec.kind for c, spec in SCHEMA[name].items()}
        for column, kind in kinds.items():
            expected = {"str": "object", "float": "float64", "int": "int64", "datetime": "datetime64[ns]"}[kind]
            assert str(frame[column].dtype) == expected
    assert ds.as_of == AS_OF


# -- one defect at a time -------------------------------------------------------------------------------------
def _set(world: dict[str, pd.DataFrame], frame: str, column: str, value: object, row: int) -> str:
    df = world[frame]
    values = df[column].to_numpy(dtype=object if not isinstance(value, float) else None).copy()
    values[row % len(df)] = value
    df[column] = values
    return f"{frame}.{column}"


MUTATIONS = {
    "infinite price": lambda w, r, s: _set(w, "products", "price", s.choice([np.inf, -np.inf]), r),
    "infinite cost": lambda w, r, s: _set(w, "products", "cost", s.choice([np.inf, -np.inf]), r),
    "nan price": lambda w, r, s: _set(w, "products", "price", np.nan, r),
    "non-positive price": lambda w, r, s: _set(w, "products", "price", -s.random(), r),
    "age out of range": lambda w, r, s: _set(w, "users", "age", 200.0 + s.random(), r),
    "sensitivity out of range": lambda w, r, s: _set(w, "users", "price_sensitivity", 1.5, r),
    "unknown region": lambda w, r, s: _set(w, "users", "region", "Mars", r),
    "unknown tier": lambda w, r, s: _set(w, "users", "spending_tier", "gold", r),
    "unknown season": lambda w, r, s: _set(w, "products", "peak_season", "monsoon", r),
    "user id with a space": lambda w, r, s: _set(w, "users", "user_id", "Jane Doe", r),
    "product id too long": lambda w, r, s: _set(w, "products", "product_id", "p" * (MAX_ID_LENGTH + 1), r),
    "user id not a string": lambda w, r, s: _set(w, "users", "user_id", 17, r),
    "missing region": lambda w, r, s: _set(w, "users", "region", None, r),
    "negative stock": lambda w, r, s: _set(w, "products", "stock", -1, r) and _int(w, "products", "stock"),
    "duplicate user id": lambda w, r, s: _duplicate_id(w, "users", "user_id"),
    "missing column": lambda w, r, s: _drop(w, s.choice(list(SCHEMA)), s),
    "duplicate column": lambda w, r, s: _double(w, s.choice(list(SCHEMA)), s),
    "complex price": lambda w, r, s: _retype(w, "products", "price", "complex128"),
    "float stock": lambda w, r, s: _retype(w, "products", "stock", "float64"),
    "string age": lambda w, r, s: _retype(w, "users", "age", object, str),
    "huge uint64 stock": lambda w, r, s: _huge_stock(w, r),
}

EVENT_MUTATIONS = {
    "infinite value": lambda w, r, s: _set(w, "events", "value", s.choice([np.inf, -np.inf]), r),
    "unknown user": lambda w, r, s: _set(w, "events", "user_id", "ghost_user_13", r),
    "unknown event type": lambda w, r, s: _set(w, "events", "event_type", "click", r),
    "event after as_of": lambda w, r, s: _set(w, "events", "timestamp", AS_OF + pd.Timedelta(seconds=1), r)
    and _retype(w, "events", "timestamp", "datetime64[ns]"),
    "missing timestamp": lambda w, r, s: _set(w, "events", "timestamp", pd.NaT, r)
    and _retype(w, "events", "timestamp", "datetime64[ns]"),
    "negative quantity": lambda w, r, s: _set(w, "events", "quantity", -5, r) and _int(w, "events", "quantity"),
    "rating on a view": lambda w, r, s: _rating_on_non_review(w),
}


def _int(world: dict[str, pd.DataFrame], frame: str, column: str) -> str:
    world[frame][column] = world[frame][column].astype("int64")
    return f"{frame}.{column}"


def _retype(world: dict[str, pd.DataFrame], frame: str, column: str, dtype: object, convert: object = None) -> str:
    df = world[frame]
    df[column] = df[column].map(convert).astype(dtype) if convert else df[column].astype(dtype)
    return f"{frame}.{column}"


def _duplicate_id(world: dict[str, pd.DataFrame], frame: str, column: str) -> str:
    df = world[frame]
    world[frame] = pd.concat([df, df.iloc[:1]], ignore_index=True)
    return f"{frame}.{column}"


def _drop(world: dict[str, pd.DataFrame], frame: str, rng: np.random.Generator) -> str:
    column = rng.choice(list(SCHEMA[frame]))
    world[frame] = world[frame].drop(columns=[column])
    return f"{frame}.{column}"


def _double(world: dict[str, pd.DataFrame], frame: str, rng: np.random.Generator) -> str:
    column = rng.choice(list(SCHEMA[frame]))
    world[frame] = pd.concat([world[frame], world[frame][[column]]], axis=1)
    return f"{frame}.{column}"


def _huge_stock(world: dict[str, pd.DataFrame], row: int) -> str:
    stock = world["products"]["stock"].to_numpy().astype("uint64")
    stock[row % len(stock)] = 2**64 - 1
    world["products"]["stock"] = stock
    return "products.stock"


def _rating_on_non_review(world: dict[str, pd.DataFrame]) -> str:
    events = world["events"]
    events.loc[0, "event_type"], events.loc[0, "quantity"], events.loc[0, "value"] = "view", 0, np.nan
    events.loc[0, "rating"] = 3.0
    return "events.rating"


class _Choice:
    """``choice``/``random`` driven by hypothesis data, so failures shrink and replay."""

    def __init__(self, data: st.DataObject) -> None:
        self.data = data

    def choice(self, options: list) -> object:
        return self.data.draw(st.sampled_from(list(options)))

    def random(self) -> float:
        return self.data.draw(st.floats(0.01, 1e6))


def _check_refused(world: dict[str, pd.DataFrame], where: str) -> None:
    with pytest.raises(DataValidationError) as raised:
        Dataset(world["users"], world["products"], world["events"], AS_OF)
    assert isinstance(raised.value, ValueError)
    assert str(raised.value).startswith(where), (where, str(raised.value))


@FAST
@given(worlds(), st.sampled_from(sorted(MUTATIONS)), st.integers(0, 10), st.data())
def test_one_defect_in_users_or_products_is_refused_naming_it(world, mutation: str, row: int, data) -> None:
    where = MUTATIONS[mutation](world, row, _Choice(data))
    if mutation == "duplicate column":
        assert_refused_naming_column(world, where)
        return
    _check_refused(world, where)


def assert_refused_naming_column(world: dict[str, pd.DataFrame], where: str) -> None:
    with pytest.raises(DataValidationError, match=rf"^{re.escape(where)}: duplicate column name"):
        Dataset(world["users"], world["products"], world["events"], AS_OF)


@FAST
@given(worlds().filter(lambda w: len(w["events"]) > 0), st.sampled_from(sorted(EVENT_MUTATIONS)), st.integers(0, 10),
       st.data())
def test_one_defect_in_events_is_refused_naming_it(world, mutation: str, row: int, data) -> None:
    where = EVENT_MUTATIONS[mutation](world, row, _Choice(data))
    _check_refused(world, where)


# -- conversions that are documented, not refused ---------------------------------------------------------------
zones = st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Pacific/Chatham"])


@FAST
@given(worlds(), zones)
def test_timezone_aware_timestamps_are_the_same_instants_in_naive_utc(world, zone: str) -> None:
    naive = world["events"]["timestamp"].copy()
    world["events"]["timestamp"] = naive.dt.tz_localize("UTC").dt.tz_convert(zone)
    ds = Dataset(world["users"], world["products"], world["events"], AS_OF.tz_localize("UTC").tz_convert(zone))
    assert ds.as_of == AS_OF and ds.as_of.tzinfo is None
    pd.testing.assert_series_equal(ds.events["timestamp"], naive, check_names=False)


@FAST
@given(worlds(), st.sampled_from(["uint8", "uint32", "uint64", "int32"]))
def test_small_integer_dtypes_keep_their_values(world, dtype: str) -> None:
    stock = world["products"]["stock"] % 200
    world["products"]["stock"] = stock.astype(dtype)
    ds = Dataset(world["users"], world["products"], world["events"], AS_OF)
    assert ds.products["stock"].tolist() == stock.tolist()


@FAST
@given(st.text(max_size=MAX_ID_LENGTH + 3))
def test_the_dataset_accepts_exactly_the_ids_of_the_id_rule(user_id: str) -> None:
    users = pd.DataFrame({"user_id": pd.Series([user_id], dtype=object), "age": [30.0], "region": ["EU"],
                          "spending_tier": ["mid"], "price_sensitivity": [0.5]})
    products = pd.DataFrame({"product_id": ["p"], "name": ["n"], "category": ["Books"], "description": ["d"],
                             "tags": [""], "price": [1.0], "cost": [np.nan], "stock": [1], "peak_season": ["none"]})
    events = pd.DataFrame({c: pd.Series(dtype=d) for c, d in [
        ("user_id", object), ("product_id", object), ("event_type", object), ("timestamp", "datetime64[ns]"),
        ("session_id", object), ("quantity", "int64"), ("value", "float64"), ("rating", "float64")]})
    expected_ok = is_valid_id(user_id) and re.fullmatch(r"[^\s]{1,128}", user_id) is not None
    try:
        ds = Dataset(users, products, events, AS_OF)
    except DataValidationError as error:
        assert not expected_ok and str(error).startswith("users.user_id: ")
    else:
        assert expected_ok and ds.users["user_id"].iloc[0] == user_id


@FAST
@given(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12),
                 st.just(pd.NaT), st.just(np.datetime64("NaT")), st.datetimes().map(pd.Timestamp)))
def test_as_of_is_a_timestamp_or_refused_naming_as_of(value: object) -> None:
    try:
        ds = Dataset(*_tiny().values(), as_of=value)
    except DataValidationError as error:
        assert str(error).startswith(("as_of: ", "events.timestamp: "))
    else:
        assert isinstance(ds.as_of, pd.Timestamp) and ds.as_of is not pd.NaT and ds.as_of.tzinfo is None


def _tiny() -> dict[str, pd.DataFrame]:
    users = pd.DataFrame({"user_id": ["u"], "age": [30.0], "region": ["EU"], "spending_tier": ["mid"],
                          "price_sensitivity": [0.5]})
    products = pd.DataFrame({"product_id": ["p"], "name": ["n"], "category": ["Books"], "description": ["d"],
                             "tags": [""], "price": [1.0], "cost": [np.nan], "stock": [1], "peak_season": ["none"]})
    events = pd.DataFrame({"user_id": ["u"], "product_id": ["p"], "event_type": ["view"],
                           "timestamp": pd.to_datetime(["2000-01-01"]), "session_id": ["s"], "quantity": [0],
                           "value": [np.nan], "rating": [np.nan]})
    return {"users": users, "products": products, "events": events}


# -- the Online Retail cleaning never raises on odd values (its docstring's promise) -------------------------------
odd_values = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=8),
    st.complex_numbers(max_magnitude=1e6), st.binary(max_size=4), st.just(pd.NaT),
    st.datetimes().map(pd.Timestamp), st.sampled_from(["2011-03-01 10:00+01:00", "2011-03-01", "85123A", "C536375"]),
)


@FAST
@given(st.lists(st.fixed_dictionaries({c: odd_values for c in (
    "InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country")}),
    max_size=12))
def test_online_retail_cleaning_counts_every_odd_row_and_never_raises(rows: list[dict[str, object]]) -> None:
    from recsys.data.online_retail import RAW_COLUMNS, clean_online_retail

    raw = pd.DataFrame(rows, columns=list(RAW_COLUMNS), dtype=object)
    clean, report = clean_online_retail(raw)
    steps = report.to_frame()
    assert steps["rows_removed"].iloc[:-1].sum() == len(raw) - len(clean) == steps["rows_removed"].iloc[-1]
    assert report.raw_rows == len(raw) and report.clean_rows == len(clean)
    assert clean["Quantity"].dtype == "int64" and (clean["Quantity"] > 0).all() and (clean["UnitPrice"] > 0).all()
    assert clean["InvoiceDate"].dtype == "datetime64[ns]" and clean["InvoiceDate"].notna().all()
