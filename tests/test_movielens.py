"""MovieLens 100K loader on the project's own fixture in the original file format."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from recsys.config import ConfigError, RecsysConfig, RegionConfig
from recsys.data.errors import DataFileError
from recsys.data.movielens import GENRES, load_movielens_100k, read_u_data, read_u_item, region_of_zip
from recsys.interactions import Interactions

FIXTURE = Path(__file__).parent / "fixtures" / "ml-100k-mini"


@pytest.fixture()
def copy(tmp_path) -> Path:
    target = tmp_path / "ml"
    shutil.copytree(FIXTURE, target)
    return target


def test_loads_fixture():
    ds = load_movielens_100k(FIXTURE)
    raw = pd.read_csv(FIXTURE / "u.data", sep="\t", header=None, names=["u", "i", "r", "t"])
    events = ds.events
    reviews = events[events["event_type"] == "review"]
    purchases = events[events["event_type"] == "purchase"]
    assert len(reviews) == len(raw) == 80
    assert len(purchases) == int((raw["r"] >= 4).sum())
    assert (purchases["quantity"] == 1).all() and (purchases["value"] == 1.0).all()
    assert (reviews["quantity"] == 0).all() and reviews["value"].isna().all()
    assert sorted(reviews["rating"].astype(int)) == sorted(raw["r"])
    assert ds.as_of == pd.to_datetime(raw["t"].max(), unit="s")
    assert set(events["event_type"]) == {"review", "purchase"}
    assert ds.n_users == 15 and ds.n_products == 15
    Interactions.from_dataset(ds)


def test_user_mapping():
    users = load_movielens_100k(FIXTURE).user_features().set_index("user_id")
    assert pd.isna(users.loc["user_10", "age"]) and users.loc["user_10", "age_group"] == "unknown"  # aged 7
    assert users.loc["user_14", "age_group"] == "young"  # aged 16
    assert users.loc["user_5", "age_group"] == "senior"
    assert users.loc["user_1", "region"] == "NA"  # US zip
    assert users.loc["user_11", "region"] == "NA"  # Canadian postal code
    assert users.loc["user_15", "region"] == "Other"  # 'L-1234'
    assert users["spending_tier"].value_counts().to_dict() == {"budget": 5, "mid": 5, "premium": 5}
    assert users["price_sensitivity"].isna().all()


def test_item_mapping_and_latin1():
    products = load_movielens_100k(FIXTURE).products.set_index("product_id")
    assert products.loc["product_3", "name"] == "Rêves de Papier (1995)"
    assert products.loc["product_12", "name"] == "Señora Luna (1996)"
    assert products.loc["product_1", "category"] == "Animation"  # first flagged genre
    assert products.loc["product_1", "tags"] == "animation|children's|comedy"
    assert products.loc["product_13", "category"] == "unknown"
    assert "Genres: Action, Sci-Fi, Thriller" in products.loc["product_4", "description"]
    assert (products["price"] == 1.0).all() and products["cost"].isna().all()


def test_options():
    ds = load_movielens_100k(FIXTURE, purchase_threshold=5, price=3.5, default_stock=2)
    purchases = ds.events[ds.events["event_type"] == "purchase"]
    raw = read_u_data(FIXTURE / "u.data")
    assert len(purchases) == int((raw["rating"] == 5).sum())
    assert (purchases["value"] == 3.5).all() and (ds.products["stock"] == 2).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"purchase_threshold": 6}, "purchase_threshold"), ({"purchase_threshold": True}, "purchase_threshold"),
     ({"price": 0}, "price"), ({"default_stock": -3}, "default_stock")],
)
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_movielens_100k(FIXTURE, **kwargs)


def test_config_without_needed_region():
    config = RecsysConfig(regions=(RegionConfig("EU", ("Books",), 0.7, 0.15),))
    with pytest.raises(ConfigError, match="unknown region 'NA'"):
        load_movielens_100k(FIXTURE, config=config)


def test_missing_file_names_it(copy):
    (copy / "u.item").unlink()
    with pytest.raises(FileNotFoundError, match=r"u\.item not found.*grouplens"):
        load_movielens_100k(copy)


def test_bad_rating_names_file_and_line(copy):
    lines = (copy / "u.data").read_text().splitlines()
    user, item, _, ts = lines[2].split("\t")
    lines[2] = "\t".join([user, item, "7", ts])
    (copy / "u.data").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"u\.data, line 3: column 'rating' must be an integer in 1\.\.5"):
        load_movielens_100k(copy)


def test_wrong_field_count(copy):
    (copy / "u.user").write_text("1|24|M|technician\n")
    with pytest.raises(ValueError, match=r"u\.user: expected 5"):
        load_movielens_100k(copy)


def test_rating_of_unknown_item(copy):
    with open(copy / "u.data", "a") as f:
        f.write("1\t999\t4\t881250949\n")
    with pytest.raises(ValueError, match=r"rating\(s\) of items missing from u\.item, e\.g\. \[999\]"):
        load_movielens_100k(copy)


def test_repeated_rating(copy):
    first = (copy / "u.data").read_text().splitlines()[0]
    with open(copy / "u.data", "a") as f:
        f.write(first + "\n")
    with pytest.raises(ValueError, match="repeated"):
        load_movielens_100k(copy)


def test_u_item_columns():
    items = read_u_item(FIXTURE / "u.item")
    assert len(GENRES) == 19
    assert items.set_index("item").loc[5, "genres"] == ("Crime", "Film-Noir", "Mystery")


@pytest.mark.parametrize(
    ("zip_code", "region"),
    [("85711", "NA"), ("02139", "NA"), ("V5K0A1", "NA"), ("T8H1N", "NA"), ("L-1234", "Other"), ("123", "Other"),
     ("", "Other"), (None, "Other"), (float("nan"), "Other"), (12345, "NA")],
)
def test_region_of_zip(zip_code, region):
    assert region_of_zip(zip_code) == region


def test_pipeline_runs_on_the_fixture():
    from recsys.evaluation.peers.surprise_models import SurpriseSVD, SurpriseSVDConfig
    from recsys.models.content import ContentRecommender
    from recsys.models.demographic import DemographicRecommender
    from recsys.models.knn import ItemKNN
    from recsys.models.svd import PureSVD, SVDConfig
    from recsys.stage2.segmentation import SegmentationConfig, UserSegmentation

    ds = load_movielens_100k(FIXTURE)
    users = list(ds.users["user_id"][:5])
    for model in (ItemKNN(), PureSVD(SVDConfig(n_factors=4)), SurpriseSVD(SurpriseSVDConfig(n_factors=4, n_epochs=5)),
                  ContentRecommender(), DemographicRecommender()):
        recs = model.fit(ds).recommend(users, n=3)
        assert set(recs["user_id"]) <= set(users) and recs["rank"].max() <= 3
        bought = ds.events[(ds.events["event_type"] == "purchase") & ds.events["user_id"].isin(users)]
        assert recs.merge(bought, on=["user_id", "product_id"]).empty  # purchased titles are excluded
    labels = UserSegmentation(SegmentationConfig(n_clusters=3, n_init=2)).fit(ds).labels_
    assert len(labels) == ds.n_users


# -- issue 14.4/14.10 and 15: bad files are named with their line; no import of the Online Retail loader ----------
def write_u_data(copy: Path, edit) -> None:
    lines = (copy / "u.data").read_text().splitlines()
    (copy / "u.data").write_text("\n".join(edit(lines)) + "\n")


@pytest.mark.parametrize("text", ["", "\n\n\n"])
def test_an_empty_u_data_is_named(copy, text):
    (copy / "u.data").write_text(text)
    with pytest.raises(DataFileError, match=r"u\.data: (empty file|no data lines)"):
        load_movielens_100k(copy)


def test_a_line_with_an_extra_field_names_file_and_line(copy):
    write_u_data(copy, lambda lines: [*lines[:3], lines[3] + "\t7", *lines[4:]])
    with pytest.raises(DataFileError, match=r"u\.data, line 4: malformed line") as raised:
        load_movielens_100k(copy)
    assert raised.value.lines == [4]


def test_a_line_with_a_missing_field_names_file_and_line(copy):
    write_u_data(copy, lambda lines: [*lines[:4], "1\t2\t3", *lines[5:]])
    with pytest.raises(DataFileError, match=r"u\.data, line 5: malformed line\(s\): fewer than 4"):
        load_movielens_100k(copy)


def test_millisecond_timestamps_are_named(copy):
    write_u_data(copy, lambda lines: [*lines[:2], "\t".join([*lines[2].split("\t")[:3], "889073438000"]), *lines[3:]])
    with pytest.raises(DataFileError, match=r"u\.data, line 3: column 'timestamp' .*probably milliseconds"):
        load_movielens_100k(copy)


def test_line_numbers_count_blank_lines(copy):
    def edit(lines):
        user, item, _, ts = lines[3].split("\t")
        return [*lines[:2], "", "", *lines[2:3], "\t".join([user, item, "9", ts]), *lines[4:]]

    write_u_data(copy, edit)
    with pytest.raises(DataFileError, match=r"u\.data, line 6: column 'rating'"):
        load_movielens_100k(copy)


def test_unix_seconds_are_naive_utc():
    data = read_u_data(FIXTURE / "u.data")
    raw = pd.read_csv(FIXTURE / "u.data", sep="\t", header=None)
    assert data["timestamp"].dt.tz is None
    expected = pd.to_datetime(raw[3], unit="s", utc=True).dt.tz_localize(None).astype("datetime64[ns]")
    pd.testing.assert_series_equal(data["timestamp"], expected, check_names=False)


@pytest.mark.parametrize("price", [float("inf"), float("nan"), -float("inf")])
def test_non_finite_price_is_refused(price):
    with pytest.raises(ValueError, match=r"price must be a positive finite number"):
        load_movielens_100k(FIXTURE, price=price)


def test_movielens_does_not_import_the_online_retail_loader():
    code = ("import sys, recsys.data.movielens; "
            "sys.exit(1 if 'recsys.data.online_retail' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
