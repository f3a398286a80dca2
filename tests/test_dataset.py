"""The Dataset schema: every validation error names its frame and column; parquet round trip."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from recsys.data import Dataset, DataValidationError, drop_invalid_events

AS_OF = pd.Timestamp("2024-06-30")


def frames() -> dict[str, pd.DataFrame]:
    users = pd.DataFrame({
        "user_id": ["user_0", "user_1", "user_2"],
        "age": [23.0, 45.0, 70.0],
        "region": ["EU", "NA", "Asia"],
        "spending_tier": ["budget", "mid", "premium"],
        "price_sensitivity": [0.9, 0.5, 0.3],
    })
    products = pd.DataFrame({
        "product_id": ["product_0", "product_1"],
        "name": ["Voltra Laptop A100", "Quillmark Novel B200"],
        "category": ["Electronics", "Books"],
        "description": ["Voltra laptop in aluminium with wifi.", "Quillmark novel, paperback."],
        "tags": ["electronics|laptop", "books|novel"],
        "price": [999.0, 15.5],
        "cost": [700.0, 6.0],
        "stock": [3, 0],
        "peak_season": ["autumn", "none"],
    })
    events = pd.DataFrame({
        "user_id": ["user_0", "user_0", "user_0", "user_1", "user_0"],
        "product_id": ["product_0", "product_0", "product_0", "product_1", "product_0"],
        "event_type": ["view", "cart", "purchase", "view", "review"],
        "timestamp": pd.to_datetime(["2024-06-01 10:00", "2024-06-01 10:01", "2024-06-01 10:05",
                                     "2024-06-02 09:00", "2024-06-05 12:00"]),
        "session_id": ["s0", "s0", "s0", "s1", "s2"],
        "quantity": [0, 1, 1, 0, 0],
        "value": [np.nan, np.nan, 999.0, np.nan, np.nan],
        "rating": [np.nan, np.nan, np.nan, np.nan, 5.0],
    })
    return {"users": users, "products": products, "events": events}


def build(**changes: pd.DataFrame) -> Dataset:
    parts = frames() | changes
    return Dataset(parts["users"], parts["products"], parts["events"], AS_OF)


def with_value(frame: str, column: str, row: int, value: object) -> dict[str, pd.DataFrame]:
    df = frames()[frame].copy()
    df[column] = df[column].astype(object) if isinstance(value, str) or value is None else df[column]
    df.loc[row, column] = value
    return {frame: df}


def test_valid_frames_build_and_normalise_dtypes() -> None:
    ds = build()
    assert (ds.n_users, ds.n_products, len(ds.events)) == (3, 2, 5)
    assert ds.users["user_id"].dtype == object
    assert ds.events["timestamp"].dtype == "datetime64[ns]"
    assert list(ds.user_features()["age_group"]) == ["young", "middle", "senior"]


@pytest.mark.parametrize(
    ("frame", "column"),
    [("users", "age"), ("users", "region"), ("products", "price"), ("products", "peak_season"),
     ("events", "timestamp"), ("events", "rating")],
)
def test_missing_column_names_it(frame: str, column: str) -> None:
    parts = frames()
    with pytest.raises(DataValidationError, match=rf"{frame}\.{column}: missing column"):
        build(**{frame: parts[frame].drop(columns=[column])})


@pytest.mark.parametrize(
    ("frame", "column", "values"),
    [("users", "age", ["a", "b", "c"]), ("products", "price", ["1", "2"]), ("products", "stock", [1.5, 2.0]),
     ("events", "timestamp", ["2024-06-01"] * 5), ("events", "quantity", [0.5] * 5)],
)
def test_wrong_dtype_names_column(frame: str, column: str, values: list) -> None:
    df = frames()[frame].copy()
    df[column] = values
    with pytest.raises(DataValidationError, match=rf"{frame}\.{column}: wrong dtype"):
        build(**{frame: df})


def test_non_string_id_names_column() -> None:
    users = frames()["users"].astype({"user_id": object})
    users.loc[1, "user_id"] = 7
    with pytest.raises(DataValidationError, match=r"users\.user_id: non-string values"):
        build(users=users)


@pytest.mark.parametrize(
    ("frame", "column"),
    [("users", "user_id"), ("users", "region"), ("products", "price"), ("products", "name"),
     ("events", "product_id"), ("events", "timestamp")],
)
def test_nan_in_required_field(frame: str, column: str) -> None:
    df = frames()[frame].copy()
    df[column] = df[column].astype(object) if df[column].dtype != float else df[column]
    df.loc[1, column] = None if df[column].dtype == object else np.nan
    if column == "timestamp":
        df[column] = pd.to_datetime(df[column])
    with pytest.raises(DataValidationError, match=rf"{frame}\.{column}: missing values .* \(1 row"):
        build(**{frame: df})


def test_duplicate_ids() -> None:
    parts = frames()
    users = parts["users"].copy()
    users.loc[2, "user_id"] = "user_0"
    with pytest.raises(DataValidationError, match=r"users\.user_id: duplicate ids \(2 rows; e\.g\. .*'user_0'"):
        build(users=users)
    products = parts["products"].copy()
    products.loc[1, "product_id"] = "product_0"
    with pytest.raises(DataValidationError, match=r"products\.product_id: duplicate ids"):
        build(products=products)


def test_bad_event_type() -> None:
    with pytest.raises(DataValidationError, match=r"events\.event_type: unknown event type.*'click'"):
        build(**with_value("events", "event_type", 3, "click"))


@pytest.mark.parametrize(("column", "value"), [("user_id", "user_99"), ("product_id", "product_99")])
def test_unknown_references(column: str, value: str) -> None:
    with pytest.raises(DataValidationError, match=rf"events\.{column}: references unknown .*'{value}'"):
        build(**with_value("events", column, 1, value))


@pytest.mark.parametrize(("column", "value"), [("price", 0.0), ("price", -3.0), ("cost", 0.0), ("cost", -1.0)])
def test_non_positive_price_or_cost(column: str, value: float) -> None:
    with pytest.raises(DataValidationError, match=rf"products\.{column}: non-positive {column}"):
        build(**with_value("products", column, 0, value))


@pytest.mark.parametrize("age", [12.0, 111.0, -1.0])
def test_age_outside_range(age: float) -> None:
    with pytest.raises(DataValidationError, match=r"users\.age: age outside 13\.\.110"):
        build(**with_value("users", "age", 0, age))


def test_unknown_age_and_sensitivity_are_allowed_as_nan() -> None:
    users = frames()["users"].copy()
    users.loc[0, ["age", "price_sensitivity"]] = np.nan
    assert build(users=users).user_features()["age_group"].iloc[0] == "unknown"


@pytest.mark.parametrize("rating", [0.0, 6.0, np.nan])
def test_review_rating_outside_range(rating: float) -> None:
    with pytest.raises(DataValidationError, match=r"events\.rating: review rating outside 1\.\.5"):
        build(**with_value("events", "rating", 4, rating))


def test_rating_on_non_review() -> None:
    with pytest.raises(DataValidationError, match=r"events\.rating: rating on an event that is not a review"):
        build(**with_value("events", "rating", 0, 4.0))


def test_event_after_as_of() -> None:
    with pytest.raises(DataValidationError, match=r"events\.timestamp: event time after the data set's as_of"):
        build(**with_value("events", "timestamp", 2, pd.Timestamp("2024-07-01")))


@pytest.mark.parametrize(
    ("frame", "column", "row", "value", "message"),
    [("users", "region", 0, "Mars", "unknown region"), ("users", "spending_tier", 0, "vip", "unknown spending tier"),
     ("users", "price_sensitivity", 0, 1.5, "outside 0..1"), ("products", "stock", 0, -1, "negative stock"),
     ("products", "peak_season", 0, "monsoon", "unknown season"),
     ("events", "quantity", 2, 0, "purchase with quantity < 1"), ("events", "value", 2, np.nan, "purchase without")],
)
def test_other_rules(frame: str, column: str, row: int, value: object, message: str) -> None:
    with pytest.raises(DataValidationError, match=rf"{frame}\.{column}: {message}"):
        build(**with_value(frame, column, row, value))


def test_error_is_a_value_error_with_fields() -> None:
    with pytest.raises(ValueError) as info:
        build(**with_value("products", "price", 1, -2.0))
    err = info.value
    assert isinstance(err, DataValidationError)
    assert (err.frame, err.column, err.count) == ("products", "price", 1)
    assert "-2.0" in str(err)


def test_not_a_dataframe() -> None:
    with pytest.raises(DataValidationError, match="users: expected a pandas DataFrame, got dict"):
        build(users={"user_id": ["user_0"]})


def test_save_load_round_trip_and_manifest(tmp_path) -> None:
    ds = build()
    ds.meta = {"source": "hand-made", "seed": 3}
    ds.save(tmp_path / "d")
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["rows"] == {"users": 3, "products": 2, "events": 5}
    assert manifest["content_hash"] == ds.content_hash()
    assert manifest["meta"] == {"source": "hand-made", "seed": 3}
    assert manifest["as_of"] == AS_OF.isoformat()
    back = Dataset.load(tmp_path / "d")
    for name in ("users", "products", "events"):
        pd.testing.assert_frame_equal(getattr(back, name), getattr(ds, name))
    assert back.as_of == ds.as_of and back.content_hash() == ds.content_hash()


def test_load_rejects_tampered_data_and_missing_manifest(tmp_path) -> None:
    build().save(tmp_path / "d")
    other = build(**with_value("products", "price", 1, 16.0))
    other.products.to_parquet(tmp_path / "d" / "products.parquet", index=False)
    with pytest.raises(DataValidationError, match=r"d/products\.parquet: sha256 differs from manifest\.json"):
        Dataset.load(tmp_path / "d")
    manifest_path = tmp_path / "d" / "manifest.json"  # a consistent file list, but not this data's hash
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["products.parquet"] = hashlib.sha256((tmp_path / "d" / "products.parquet").read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(DataValidationError, match=r"manifest\.content_hash"):
        Dataset.load(tmp_path / "d")
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        Dataset.load(tmp_path / "nowhere")


def test_content_hash_changes_with_any_value() -> None:
    assert build().content_hash() == build().content_hash()
    assert build(**with_value("events", "quantity", 1, 2)).content_hash() != build().content_hash()


def test_restrict_events_keeps_world_and_can_move_as_of() -> None:
    ds = build()
    early = ds.restrict_events(ds.events["timestamp"] <= "2024-06-01 23:59", as_of=pd.Timestamp("2024-06-01 23:59"))
    assert len(early.events) == 3 and early.n_users == 3 and early.as_of == pd.Timestamp("2024-06-01 23:59")
    with pytest.raises(DataValidationError, match=r"events\.timestamp"):
        ds.restrict_events(np.ones(len(ds.events), bool), as_of=pd.Timestamp("2024-06-01"))


def test_drop_invalid_events_reports_what_it_removed() -> None:
    parts = frames()
    events = parts["events"].copy()
    events.loc[0, "user_id"] = "ghost"
    events.loc[1, "product_id"] = "nothing"
    events.loc[3, "timestamp"] = pd.Timestamp("2025-01-01")
    kept, report = drop_invalid_events(events, parts["users"], parts["products"], AS_OF)
    assert len(kept) == 2
    assert dict(zip(report["reason"], report["rows_removed"], strict=True)) == {
        "unknown user_id": 1, "unknown product_id": 1, "timestamp after as_of": 1}
    Dataset(parts["users"], parts["products"], kept, AS_OF)
