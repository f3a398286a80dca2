"""The synthetic world: schema, funnel logic, determinism, signals, profiles and the cache."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsys.config import CATEGORIES, DEFAULT_CONFIG, EVENT_TYPES, ConfigError, RegionConfig, SpendingTierConfig
from recsys.data import PROFILES, Dataset, generate, load_or_generate
from recsys.data.cache import cache_key, resolve_params
from recsys.data.synthetic import DEFAULT_AS_OF
from recsys.data.world import PERSONAS


def file_digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


# -- schema and ranges -----------------------------------------------------------


def test_sizes_ids_and_ranges(small_dataset: Dataset) -> None:
    ds = small_dataset
    assert (ds.n_users, ds.n_products) == (300, 150)
    assert ds.users["user_id"].tolist() == [f"user_{i}" for i in range(300)]
    assert ds.products["product_id"].tolist() == [f"product_{i}" for i in range(150)]
    assert ds.users["age"].between(13, 110).all()
    assert ds.users["price_sensitivity"].between(0.3, 0.9).all()
    assert set(ds.users["region"]) == set(DEFAULT_CONFIG.region_names)
    assert set(ds.users["spending_tier"]) == {"budget", "mid", "premium"}
    products = ds.products
    assert set(products["category"]) == set(CATEGORIES)
    assert (products["cost"] > 0).all() and (products["cost"] < products["price"]).all()
    assert products["name"].is_unique or products["name"].nunique() > 0.95 * len(products)
    assert products["tags"].str.contains("|", regex=False).all()
    assert ds.as_of == DEFAULT_AS_OF


def test_ci_profile_has_sold_out_products_and_seasonal_flags(ci_dataset: Dataset) -> None:
    products = ci_dataset.products
    assert (products["stock"] == 0).sum() > 0 and (products["stock"] > 0).mean() > 0.9
    assert {"winter", "spring", "summer", "autumn", "none"} == set(products["peak_season"])


def test_descriptions_carry_category_vocabulary(small_dataset: Dataset) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    products = small_dataset.products
    tfidf = TfidfVectorizer().fit_transform(products["description"])
    sim = (tfidf @ tfidf.T).toarray()
    np.fill_diagonal(sim, -1.0)
    nearest = sim.argmax(axis=1)
    same_category = (products["category"].to_numpy()[nearest] == products["category"].to_numpy()).mean()
    assert same_category > 0.9


def test_events_in_window_with_every_type(small_dataset: Dataset) -> None:
    ev = small_dataset.events
    assert set(ev["event_type"]) == set(EVENT_TYPES)
    assert ev["timestamp"].min() >= small_dataset.as_of - pd.Timedelta(days=90)
    assert ev["timestamp"].max() <= small_dataset.as_of
    assert ev["timestamp"].is_monotonic_increasing
    assert ev.groupby("session_id")["user_id"].nunique().max() == 1
    reviews = ev[ev["event_type"] == "review"]
    assert reviews["rating"].isin([1, 2, 3, 4, 5]).all() and reviews["rating"].nunique() >= 3
    assert small_dataset.meta["censored_events"] >= 0
    assert small_dataset.meta["sessions"] == ev["session_id"].nunique()


def test_purchase_value_is_quantity_times_price(small_dataset: Dataset) -> None:
    buys = small_dataset.events[small_dataset.events["event_type"] == "purchase"]
    price = buys["product_id"].map(small_dataset.products.set_index("product_id")["price"])
    np.testing.assert_allclose(buys["value"], (buys["quantity"] * price).round(2))
    assert (buys["quantity"] >= 1).all()


# -- funnel ------------------------------------------------------------------------


def _first_time(ev: pd.DataFrame, kind: str, keys: list[str]) -> pd.Series:
    return ev[ev["event_type"] == kind].groupby(keys)["timestamp"].min()


def test_funnel_order_per_session(small_dataset: Dataset) -> None:
    ev = small_dataset.events
    keys = ["session_id", "user_id", "product_id"]
    view = _first_time(ev, "view", keys)
    for later in ("favorite", "cart", "purchase"):
        t = _first_time(ev, later, keys)
        assert t.index.isin(view.index).all(), f"{later} without a view in the session"
        assert (t >= view.reindex(t.index)).all()
    buy, cart = _first_time(ev, "purchase", keys), _first_time(ev, "cart", keys)
    assert buy.index.isin(cart.index).all() and (buy >= cart.reindex(buy.index)).all()
    review = _first_time(ev, "review", ["user_id", "product_id"])
    bought = _first_time(ev, "purchase", ["user_id", "product_id"])
    assert review.index.isin(bought.index).all() and (review > bought.reindex(review.index)).all()


def test_funnel_counts_and_abandonment(ci_dataset: Dataset) -> None:
    counts = ci_dataset.events["event_type"].value_counts()
    assert counts["view"] > counts["cart"] > counts["purchase"] > counts["review"] > 0
    assert counts["favorite"] < counts["view"]
    abandonment = 1 - counts["purchase"] / counts["cart"]
    assert 0.3 < abandonment < 0.9


# -- hidden personas and signals ---------------------------------------------------------


def test_personas_aligned_and_configurable(small_dataset: Dataset) -> None:
    personas = small_dataset.personas
    assert personas["user_id"].tolist() == small_dataset.users["user_id"].tolist()
    assert set(personas["persona"]) == {p.name for p in PERSONAS}
    three = generate(n_users=120, n_products=40, days=30, seed=1, n_personas=3)
    assert set(three.personas["persona"]) == {p.name for p in PERSONAS[:3]}


def _category_share(ds: Dataset) -> pd.DataFrame:
    ev = ds.events.merge(ds.products[["product_id", "category"]], on="product_id")
    return pd.crosstab(ev["user_id"], ev["category"], normalize="index")


def test_personas_drive_category_preferences(ci_dataset: Dataset) -> None:
    share = _category_share(ci_dataset)
    persona = ci_dataset.personas.set_index("user_id")["persona"].reindex(share.index)
    for p in PERSONAS:
        top = max(p.categories, key=p.categories.get)
        mine = share.loc[persona == p.name, top].mean()
        others = share.loc[persona != p.name, top].mean()
        assert mine > 1.5 * others, (p.name, top, mine, others)


def test_personas_are_not_readable_from_demographics_alone(ci_dataset: Dataset) -> None:
    users = ci_dataset.user_features().set_index("user_id")
    persona = ci_dataset.personas.set_index("user_id")["persona"]
    # The best single demographic cell (region x tier x age group) holds a mix of personas.
    cells = pd.crosstab([users["region"], users["spending_tier"], users["age_group"]], persona.reindex(users.index))
    purity = cells.max(axis=1).sum() / cells.to_numpy().sum()
    assert purity < 0.8


def test_collaborative_signal_beats_popularity(ci_dataset: Dataset) -> None:
    ev = ci_dataset.events
    cut = ci_dataset.as_of - pd.Timedelta(days=30)
    train, test = ev[ev["timestamp"] <= cut], ev[(ev["timestamp"] > cut) & ev["event_type"].isin(["cart", "purchase"])]
    users, items = pd.Index(ci_dataset.users["user_id"]), pd.Index(ci_dataset.products["product_id"])
    m = sp.csr_matrix((np.ones(len(train)), (users.get_indexer(train["user_id"]), items.get_indexer(train["product_id"]))),
                      shape=(len(users), len(items)))
    m.data[:] = 1.0
    norms = np.sqrt(np.asarray(m.sum(axis=0)).ravel()) + 1e-12
    sim = (m.T @ m).toarray() / np.outer(norms, norms)
    np.fill_diagonal(sim, 0.0)
    truth = test.groupby("user_id")["product_id"].apply(lambda s: set(items.get_indexer(s)))
    truth = truth[truth.index.isin(train["user_id"])]
    rows = users.get_indexer(truth.index)
    knn_scores = m[rows] @ sim
    pop_top = np.argsort(-np.asarray(m.sum(axis=0)).ravel(), kind="stable")[:10]

    def recall(tops: list) -> float:
        return float(np.mean([len(t & set(top)) / min(len(t), 10) for t, top in zip(truth, tops, strict=True)]))

    knn = recall([np.argsort(-s, kind="stable")[:10] for s in np.asarray(knn_scores)])
    pop = recall([pop_top] * len(truth))
    assert knn > 1.3 * pop, (knn, pop)


def test_seasonality_follows_config() -> None:
    ds = generate(n_users=1500, n_products=300, days=365, seed=3)
    ev = ds.events.merge(ds.users[["user_id", "region"]], on="user_id").merge(
        ds.products[["product_id", "category"]], on="product_id")
    season = ev["timestamp"].dt.month.map(DEFAULT_CONFIG.seasons.season_of)
    share = pd.crosstab([ev["region"], season], ev["category"], normalize="index")
    assert share.loc[("EU", "summer"), "Travel"] > share.loc[("EU", "winter"), "Travel"]
    assert share.loc[("NA", "winter"), "Gaming"] > share.loc[("NA", "summer"), "Gaming"]
    assert share.loc[("Asia", "winter"), "Beauty"] > share.loc[("Asia", "summer"), "Beauty"]
    daily = ev.set_index("timestamp").resample("D").size()
    holiday = daily["2024-11-20":"2024-12-23"].mean()
    assert holiday > daily["2024-10-01":"2024-10-31"].mean()


# -- determinism --------------------------------------------------------------------------


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    params = dict(n_users=200, n_products=60, days=60, seed=11)
    generate(**params).save(tmp_path / "a")
    generate(**params, progress=True).save(tmp_path / "b")
    digests = file_digests(tmp_path / "a")
    assert set(digests) == {"users.parquet", "products.parquet", "events.parquet", "personas.parquet", "manifest.json"}
    assert digests == file_digests(tmp_path / "b")


def test_other_seed_gives_other_data(small_dataset: Dataset) -> None:
    other = generate(n_users=300, n_products=150, days=90, seed=8)
    assert other.content_hash() != small_dataset.content_hash()
    assert not other.users["age"].equals(small_dataset.users["age"])


def test_custom_as_of_and_extra_region() -> None:
    africa = RegionConfig("Africa", ("Books", "Health", "Fashion"), 0.75, 0.22, {"summer": ("Health",)})
    ds = generate(n_users=300, n_products=40, days=20, as_of="2023-03-15", seed=2,
                  config=DEFAULT_CONFIG.with_region(africa))
    assert ds.as_of == pd.Timestamp("2023-03-15")
    assert ds.events["timestamp"].between(pd.Timestamp("2023-02-23"), pd.Timestamp("2023-03-15")).all()
    assert "Africa" in set(ds.users["region"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"n_users": 0}, "n_users must be an integer >= 1, got 0"),
     ({"n_products": 5}, "n_products must be an integer >= 10"),
     ({"days": 0}, "days must be an integer >= 1"),
     ({"n_personas": 9}, r"n_personas must be an integer in 1\.\.8, got 9"),
     ({"activity": 0.0}, r"activity must be a finite number in \(0, 1000\]"),
     ({"candidates": 0}, "candidates must be an integer >= 1"),
     # issue 14.14: wrong types and non-finite values name the parameter
     ({"n_users": "5"}, "n_users must be an integer >= 1, got '5'"),
     ({"n_users": 5.0}, "n_users must be an integer >= 1, got 5.0"),
     ({"days": True}, "days must be an integer >= 1, got True"),
     ({"activity": float("inf")}, "activity must be a finite number .* got inf"),
     ({"activity": float("nan")}, "activity must be a finite number .* got nan"),
     ({"activity": "1"}, "activity must be a finite number .* got '1'"),
     ({"latent_dim": 2.5}, "latent_dim must be an integer >= 1"),
     ({"seed": None}, "seed must be a non-negative int .*reproducible; pass an int"),
     ({"seed": -1}, "seed must be a non-negative int .*got -1"),
     ({"seed": 1.5}, "seed must be a non-negative int .*got 1.5"),
     ({"personas": [1, 2, 3]}, "personas must be a sequence of Persona"),
     ({"as_of": pd.NaT}, "as_of: missing timestamp"),
     ({"as_of": "not a date"}, "as_of: not a timestamp")],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate(**{"n_users": 10, "n_products": 20, "days": 5, **kwargs})


def test_bad_arguments_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="generate\\(\\): seed"):
        generate(n_users=10, n_products=20, days=5, seed=None)


def test_timezone_aware_as_of_is_converted_to_utc() -> None:
    """issue 14.8: a tz-aware as_of is the same instant in naive UTC, and the same data."""
    naive = generate(n_users=40, n_products=20, days=10, as_of="2024-06-30 22:00", seed=3)
    aware = generate(n_users=40, n_products=20, days=10, seed=3,
                     as_of=pd.Timestamp("2024-07-01 00:00", tz="Europe/Berlin"))
    assert aware.as_of == pd.Timestamp("2024-06-30 22:00") and aware.as_of.tzinfo is None
    assert aware.content_hash() == naive.content_hash()


@pytest.mark.parametrize(("n_users", "days"), [(1, 1), (5, 5), (3, 30)])
def test_tiny_worlds_without_sessions_generate(n_users: int, days: int) -> None:
    """A chunk of users with no session at all used to raise IndexError in _views."""
    ds = generate(n_users=n_users, n_products=20, days=days, seed=1)
    assert ds.n_users == n_users and (ds.events["timestamp"] <= ds.as_of).all()


def test_generator_needs_three_spending_tiers() -> None:
    cfg = DEFAULT_CONFIG.replace(spending_tiers=(SpendingTierConfig("low", 0.5), SpendingTierConfig("high", 1.0)))
    with pytest.raises(ConfigError, match="exactly 3 spending tiers"):
        generate(n_users=10, n_products=20, days=5, config=cfg)


# -- profiles and cache --------------------------------------------------------------------


def test_profiles() -> None:
    assert set(PROFILES) == {"ci", "thesis", "large", "xl"}
    large = PROFILES["large"]
    assert (large.n_users, large.n_products) == (100_000, 20_000)
    assert PROFILES["ci"].n_users < PROFILES["thesis"].n_users < large.n_users
    with pytest.raises(ValueError, match=r"unknown data profile 'huge'; expected one of \['ci', 'large', 'thesis', 'xl'\]"):
        resolve_params("huge")
    with pytest.raises(ValueError, match=r"unknown generate\(\) parameter\(s\) \['n_user'\]"):
        resolve_params("ci", n_user=3)


def test_load_or_generate_caches_by_parameters(tmp_path: Path) -> None:
    small = {"n_users": 80, "n_products": 30, "days": 20}
    first = load_or_generate("ci", seed=5, data_dir=tmp_path, **small)
    dirs = sorted(p.name for p in tmp_path.iterdir())
    key = cache_key(resolve_params("ci", 5, **small))
    assert dirs == [f"ci-{key}"]
    manifest = json.loads((tmp_path / dirs[0] / "manifest.json").read_text())
    assert manifest["meta"]["params"]["seed"] == 5 and manifest["meta"]["profile"] == "ci"
    before = file_digests(tmp_path / dirs[0])
    again = load_or_generate("ci", seed=5, data_dir=tmp_path, **small)
    assert again.content_hash() == first.content_hash()
    assert file_digests(tmp_path / dirs[0]) == before  # loaded, not rewritten
    load_or_generate("ci", seed=6, data_dir=tmp_path, **small)
    assert len(list(tmp_path.iterdir())) == 2  # another seed, another directory; no temp leftovers


def test_load_or_generate_regenerates_a_corrupt_cache(tmp_path: Path) -> None:
    small = {"n_users": 60, "n_products": 20, "days": 10}
    ds = load_or_generate("ci", seed=1, data_dir=tmp_path, **small)
    (target,) = tmp_path.iterdir()
    (target / "events.parquet").write_bytes(b"not parquet")
    again = load_or_generate("ci", seed=1, data_dir=tmp_path, **small)
    assert again.content_hash() == ds.content_hash()
    assert Dataset.load(target).content_hash() == ds.content_hash()


def test_ci_fixture_matches_profile(ci_dataset: Dataset) -> None:
    ci = PROFILES["ci"]
    assert (ci_dataset.n_users, ci_dataset.n_products) == (ci.n_users, ci.n_products)
    assert ci_dataset.meta["profile"] == "ci"


def test_recsys_generate_with_a_negative_seed_names_the_seed(tmp_path, capsys) -> None:
    """The generator refuses the seed (ConfigError); the CLI prints that one line and exits 2."""
    from recsys.cli import main

    assert main(["generate", "--profile", "ci", "--seed", "-1", "--out", str(tmp_path / "d"), "--quiet"]) == 2
    assert re.search(r"generate\(\): seed must be a non-negative int .*got -1", capsys.readouterr().err)
    assert not (tmp_path / "d").exists()
