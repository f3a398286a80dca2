"""The training data set built from the base data plus the event store, and `recsys export`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from recsys.cli import main as cli_main
from recsys.data import Dataset
from recsys.store import open_store
from recsys.store.training import training_dataset


@pytest.fixture()
def store(tmp_path):
    with open_store(f"sqlite:///{tmp_path}/events.db") as store:
        yield store


def _ts(dataset: Dataset, hours: float) -> str:
    return (dataset.as_of + pd.Timedelta(hours=hours)).isoformat()


def test_stored_rows_join_the_base(small_dataset, store):
    base = small_dataset
    known_user, known_product = base.users["user_id"].iloc[0], base.products["product_id"].iloc[0]
    store.upsert_products([{"product_id": "NEW-P", "name": "Kettle", "category": base.products["category"].iloc[0],
                            "price": 40.0, "cost": 25.0, "stock": 3},
                           {"product_id": known_product, "price": 9.5, "stock": 0},
                           {"product_id": "HALF-P", "price": 2.0}])  # incomplete: dropped, counted
    store.upsert_profiles([{"user_id": "NEW-U", "region": "EU", "age_group": "senior", "spending_tier": "premium"},
                           {"user_id": known_user, "spending_tier": "budget"}])
    store.append_events([
        {"user_id": "NEW-U", "product_id": "NEW-P", "event_type": "purchase", "timestamp": _ts(base, 1)},
        {"user_id": "ONLY-EVENTS", "product_id": known_product, "event_type": "view", "timestamp": _ts(base, 2)},
        {"user_id": known_user, "product_id": "HALF-P", "event_type": "view", "timestamp": _ts(base, 3)},
    ])
    cutoff = store.last_event_id()
    store.append_events([{"user_id": "LATE", "product_id": known_product, "event_type": "view",
                          "timestamp": _ts(base, 4)}])
    data = training_dataset(base, store, cutoff=cutoff)
    ds, report = data.dataset, data.report
    assert report["stored_events"] == 3 and report["stored_events_used"] == 2
    assert report["stored_events_dropped"] == {"unknown product_id": 1, "timestamp after the cutoff time": 0}
    assert report["new_products"] == 1 and report["new_products_dropped_incomplete"] == 1
    assert report["events"] == len(base.events) + 2 == len(ds.events)
    assert report["users"] == base.n_users + 2  # NEW-U and ONLY-EVENTS; LATE is after the cutoff
    assert "LATE" not in set(ds.users["user_id"])
    products = ds.products.set_index("product_id")
    assert products.loc[known_product, ["price", "stock"]].tolist() == [9.5, 0]
    assert products.loc["NEW-P", ["tags", "peak_season", "description"]].tolist() == ["", "none", ""]
    users = ds.users.set_index("user_id")
    assert users.loc[known_user, "spending_tier"] == "budget"
    assert users.loc["NEW-U", ["region", "spending_tier", "age"]].tolist() == ["EU", "premium", 83.0]
    assert np.isnan(users.loc["ONLY-EVENTS", "age"]) and report["users_defaulted"] == 1
    purchase = ds.events[ds.events["user_id"] == "NEW-U"].iloc[0]
    assert (purchase["quantity"], purchase["value"], purchase["session_id"]) == (1, 40.0, "live-NEW-U")
    assert ds.as_of == base.as_of + pd.Timedelta(hours=2)
    assert data.summary["cutoff_event_id"] == cutoff


def test_events_after_the_cutoff_time_are_dropped_and_counted(small_dataset, store):
    product = small_dataset.products["product_id"].iloc[0]
    store.append_events([{"user_id": "u-future", "product_id": product, "event_type": "view",
                          "timestamp": "2100-01-01T00:00:00"}])
    data = training_dataset(small_dataset, store)
    assert data.report["stored_events_dropped"]["timestamp after the cutoff time"] == 1
    assert data.dataset.as_of == small_dataset.as_of and len(data.dataset.events) == len(small_dataset.events)


def test_export_writes_a_data_set_that_train_and_batch_read(small_dataset, tmp_path, capsys):
    small_dataset.save(tmp_path / "model" / "base")
    database = f"sqlite:///{tmp_path}/model/events.db"
    product = small_dataset.products["product_id"].iloc[3]
    with open_store(database) as store:
        store.append_events([{"user_id": f"live-{i}", "product_id": product, "event_type": "cart",
                              "timestamp": _ts(small_dataset, 1)} for i in range(5)])
    assert cli_main(["export", "--base", str(tmp_path / "model"), "--out", str(tmp_path / "live")]) == 0
    assert "5 stored through event id 5" in capsys.readouterr().out
    exported = Dataset.load(tmp_path / "live")
    assert len(exported.events) == len(small_dataset.events) + 5
    assert json.loads((tmp_path / "live" / "manifest.json").read_text())["meta"]["store"]["cutoff_event_id"] == 5
    assert cli_main(["batch", "--data", str(tmp_path / "live"), "--out", str(tmp_path / "artifacts")]) == 0
    assert (tmp_path / "artifacts" / "LATEST").exists()
    assert cli_main(["train", "--data", str(tmp_path / "live"), "--out", str(tmp_path / "model2"), "--no-tune"]) == 0


def test_export_names_a_missing_base(tmp_path, capsys):
    assert cli_main(["export", "--base", str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    assert "neither a data set directory" in capsys.readouterr().err


@pytest.mark.spark
@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas")
@pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")
def test_spark_batch_reads_an_export(small_dataset, tmp_path):
    """`recsys batch --engine spark` on an exported directory: the Spark path learns from the stored events."""
    pytest.importorskip("pyspark", reason="pyspark is not installed (pip install -e '.[spark]')")
    from recsys.spark.session import JAVA_HINT, java_version

    if java_version() is None:
        pytest.skip(f"no Java runtime for Spark: {JAVA_HINT}")
    from recsys.stage2.artifacts import load_latest

    small_dataset.save(tmp_path / "base")
    product = small_dataset.products["product_id"].iloc[0]
    with open_store(f"sqlite:///{tmp_path}/events.db") as store:
        store.upsert_profiles([{"user_id": "spark-user", "region": "EU", "spending_tier": "mid"}])
        store.append_events([{"user_id": "spark-user", "product_id": product, "event_type": "purchase",
                              "timestamp": _ts(small_dataset, 1)}])
    assert cli_main(["export", "--database", f"sqlite:///{tmp_path}/events.db", "--base", str(tmp_path / "base"),
                     "--out", str(tmp_path / "live")]) == 0
    assert cli_main(["batch", "--data", str(tmp_path / "live"), "--out", str(tmp_path / "artifacts"),
                     "--engine", "spark", "--master", "local[1]"]) == 0
    artifacts = load_latest(tmp_path / "artifacts")
    assert "spark-user" in set(artifacts.segments["user_id"])


def test_an_exported_base_is_not_counted_twice(small_dataset, store):
    product = small_dataset.products["product_id"].iloc[0]
    store.append_events([{"user_id": f"e{i}", "product_id": product, "event_type": "view",
                          "timestamp": _ts(small_dataset, 1)} for i in range(4)])
    exported = training_dataset(small_dataset, store).dataset
    store.append_events([{"user_id": "later", "product_id": product, "event_type": "view",
                          "timestamp": _ts(small_dataset, 2)}])
    again = training_dataset(exported, store)
    assert again.report["stored_events"] == 1 and len(again.dataset.events) == len(small_dataset.events) + 5
