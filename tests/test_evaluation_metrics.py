"""Evaluation: metric values against hand-computed cases, bootstrap intervals, temporal split rules."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.metrics.pairwise import cosine_distances

from recsys.data.dataset import Dataset
from recsys.evaluation import metrics as m
from recsys.evaluation import statistics as bs
from recsys.evaluation.split import temporal_split, validation_split


# ---------------------------------------------------------------------------------------------------------------------
# a hand-made case
#   user A: list i1 i2 i3 i4 i5 (rows shuffled, ranks 10..50), relevant {i1, i3, i9}: hits at positions 1 and 3
#   user B: list i2 i4 (short list),                           relevant {i4}:         hit at position 2
#   user C: no list,                                           relevant {i7}:         no hit
#   user D: list i6,                                           nothing relevant:      ignored by accuracy metrics
# ---------------------------------------------------------------------------------------------------------------------
@pytest.fixture
def recs() -> pd.DataFrame:
    rows = [("A", "i3", 30), ("A", "i1", 10), ("A", "i5", 50), ("A", "i2", 20), ("A", "i4", 40),
            ("B", "i4", 2), ("B", "i2", 1), ("D", "i6", 1)]
    return pd.DataFrame(rows, columns=["user_id", "product_id", "rank"])


@pytest.fixture
def relevant() -> pd.DataFrame:
    rows = [("A", "i1"), ("A", "i3"), ("A", "i9"), ("B", "i4"), ("C", "i7"), ("A", "i1")]  # duplicate counts once
    return pd.DataFrame(rows, columns=["user_id", "product_id"])


L2, L3 = math.log2(3), math.log2(4)  # discounts: position 2 -> 1/log2(3), position 3 -> 1/log2(4) = 1/2


def test_precision_at_k(recs, relevant):
    per_user = m.precision_at_k_per_user(recs, relevant, k=5)
    # A: 2 hits / 5 = 0.4; B: 1 hit / 5 = 0.2 (short list still divides by k); C: 0
    assert per_user.to_dict() == pytest.approx({"A": 0.4, "B": 0.2, "C": 0.0})
    assert m.precision_at_k(recs, relevant, k=5) == pytest.approx((0.4 + 0.2 + 0.0) / 3)
    # k = 1: A's first item i1 is relevant (1/1), B's first item i2 is not (0), C 0 -> 1/3
    assert m.precision_at_k(recs, relevant, k=1) == pytest.approx(1 / 3)


def test_recall_at_k(recs, relevant):
    per_user = m.recall_at_k_per_user(recs, relevant, k=5)
    # A: 2 of 3 relevant; B: 1 of 1; C: 0 of 1
    assert per_user.to_dict() == pytest.approx({"A": 2 / 3, "B": 1.0, "C": 0.0})
    assert m.recall_at_k(recs, relevant, k=5) == pytest.approx((2 / 3 + 1.0) / 3)


def test_ndcg_at_k(recs, relevant):
    per_user = m.ndcg_at_k_per_user(recs, relevant, k=5)
    # A: DCG = 1/log2(2) + 1/log2(4) = 1.5; IDCG over min(3, 5) = 3 positions = 1 + 1/log2(3) + 1/2
    ndcg_a = 1.5 / (1 + 1 / L2 + 1 / L3)
    # B: DCG = 1/log2(3); IDCG over min(1, 5) = 1 position = 1
    ndcg_b = 1 / L2
    assert ndcg_a == pytest.approx(0.7039180890)
    assert per_user.to_dict() == pytest.approx({"A": ndcg_a, "B": ndcg_b, "C": 0.0})
    assert m.ndcg_at_k(recs, relevant, k=5) == pytest.approx((ndcg_a + ndcg_b) / 3)
    # k = 1: A hit at 1, IDCG over min(3, 1) = 1 position -> 1; B, C -> 0
    assert m.ndcg_at_k_per_user(recs, relevant, k=1).to_dict() == pytest.approx({"A": 1.0, "B": 0.0, "C": 0.0})


def test_map_at_k(recs, relevant):
    per_user = m.map_at_k_per_user(recs, relevant, k=5)
    # A: hits at 1 and 3: (P@1 + P@3) / min(3, 5) = (1 + 2/3) / 3 = 5/9
    # B: hit at 2: P@2 / min(1, 5) = (1/2) / 1 = 1/2
    assert per_user.to_dict() == pytest.approx({"A": 5 / 9, "B": 0.5, "C": 0.0})
    assert m.map_at_k(recs, relevant, k=5) == pytest.approx((5 / 9 + 0.5) / 3)
    # k = 2: A: P@1 / min(3, 2) = 1/2; B: P@2 / min(1, 2) = 1/2
    assert m.map_at_k_per_user(recs, relevant, k=2).to_dict() == pytest.approx({"A": 0.5, "B": 0.5, "C": 0.0})


def test_hit_rate_at_k(recs, relevant):
    # A and B have a hit in their top 5, C does not -> 2/3
    assert m.hit_rate_at_k(recs, relevant, k=5) == pytest.approx(2 / 3)
    # top 1: only A (i1) -> 1/3
    assert m.hit_rate_at_k_per_user(recs, relevant, k=1).to_dict() == {"A": 1.0, "B": 0.0, "C": 0.0}


def test_ranking_metrics_per_user_matches_single_functions(recs, relevant):
    table = m.ranking_metrics_per_user(recs, relevant, k=5)
    assert list(table.columns) == list(m.ACCURACY_METRICS)
    assert list(table.index) == ["A", "B", "C"]
    single = {"precision": m.precision_at_k_per_user, "recall": m.recall_at_k_per_user,
              "ndcg": m.ndcg_at_k_per_user, "map": m.map_at_k_per_user, "hit_rate": m.hit_rate_at_k_per_user}
    for name, fn in single.items():
        pd.testing.assert_series_equal(table[name], fn(recs, relevant, k=5), check_names=False)


def test_perfect_list_scores_one():
    recs = pd.DataFrame({"user_id": ["u"] * 3, "product_id": ["a", "b", "c"], "rank": [1, 2, 3]})
    rel = pd.DataFrame({"user_id": ["u"] * 2, "product_id": ["a", "b"]})
    row = m.ranking_metrics_per_user(recs, rel, k=3).loc["u"]
    # 2 hits at positions 1, 2: precision 2/3, recall 1, NDCG 1, AP (1 + 1) / min(2, 3) = 1
    assert row.to_dict() == pytest.approx({"precision": 2 / 3, "recall": 1.0, "ndcg": 1.0, "map": 1.0, "hit_rate": 1.0})


def test_custom_column_names(recs, relevant):
    r = recs.rename(columns={"user_id": "u", "product_id": "i", "rank": "r"})
    t = relevant.rename(columns={"user_id": "u", "product_id": "i"})
    assert m.ndcg_at_k(r, t, k=5, user_col="u", item_col="i", rank_col="r") == pytest.approx(
        m.ndcg_at_k(recs, relevant, k=5))


def test_catalog_coverage(recs):
    catalog = [f"i{j}" for j in range(1, 11)]
    # top 5: A {i1..i5}, B {i2, i4}, D {i6} -> 6 distinct of 10
    assert m.catalog_coverage(recs, catalog, k=5) == pytest.approx(0.6)
    # top 1: A i1, B i2, D i6 -> 3 of 10
    assert m.catalog_coverage(recs, catalog, k=1) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="not in the catalog"):
        m.catalog_coverage(recs, catalog[:3], k=5)


CATEGORIES = {"i1": "X", "i2": "X", "i3": "Y", "i4": "Z", "i5": "Y", "i6": "Z"}


def test_intra_list_diversity_category(recs):
    per_user = m.intra_list_diversity_category_per_user(recs, CATEGORIES, k=5)
    # A: X X Y Z Y -> same-category pairs C(2,2) + C(2,2) = 2 of C(5,2) = 10 -> 1 - 2/10 = 0.8
    # B: X Z -> the one pair differs -> 1.0;  D: a single item has no pair -> NaN
    assert per_user["A"] == pytest.approx(0.8)
    assert per_user["B"] == pytest.approx(1.0)
    assert math.isnan(per_user["D"])
    assert m.intra_list_diversity_category(recs, CATEGORIES, k=5) == pytest.approx(0.9)
    # the seed's "diversity %" is this in percent
    assert m.seed_diversity_percent(recs, CATEGORIES, k=5) == pytest.approx(90.0)
    # top 2 of A: X X -> 0
    assert m.intra_list_diversity_category_per_user(recs, CATEGORIES, k=2)["A"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="no category"):
        m.intra_list_diversity_category(recs, {"i1": "X"}, k=5)


VECTORS = np.array([[1, 0], [0, 1], [1, 1], [2, 0], [0, 0], [3, 4]], dtype=float)  # rows i1..i6; i5 is zero
ITEM_IDS = [f"i{j}" for j in range(1, 7)]


def test_intra_list_diversity_vectors(recs):
    extra = pd.DataFrame({"user_id": ["E"] * 3, "product_id": ["i1", "i3", "i4"], "rank": [1, 2, 3]})
    recs = pd.concat([recs, extra], ignore_index=True)
    per_user = m.intra_list_diversity_vectors_per_user(recs, sp.csr_matrix(VECTORS), ITEM_IDS, k=5)
    # B: i2=(0,1), i4=(2,0) are orthogonal -> distance 1
    assert per_user["B"] == pytest.approx(1.0)
    # E: cos(i1,i3) = 1/sqrt2, cos(i1,i4) = 1, cos(i3,i4) = 1/sqrt2 -> mean cos (1 + sqrt2)/3 -> 1 - 0.804738
    assert per_user["E"] == pytest.approx(1 - (1 + math.sqrt(2)) / 3)
    # A: of 10 pairs, cos = 1/sqrt2 for (1,3) (2,3) (3,4), 1 for (1,4), 0 elsewhere (the zero vector i5 has cos 0)
    assert per_user["A"] == pytest.approx(1 - (3 / math.sqrt(2) + 1) / 10)
    assert math.isnan(per_user["D"])
    # agrees with scikit-learn's pairwise cosine distances
    dist = cosine_distances(VECTORS[[0, 2, 3]])
    assert per_user["E"] == pytest.approx(dist[np.triu_indices(3, 1)].mean())
    assert m.intra_list_diversity_vectors(recs, VECTORS, ITEM_IDS, k=5) == pytest.approx(per_user.mean())
    with pytest.raises(ValueError, match="rows but item_ids"):
        m.intra_list_diversity_vectors(recs, VECTORS[:3], ITEM_IDS, k=5)
    with pytest.raises(ValueError, match="lacks"):
        m.intra_list_diversity_vectors(recs, VECTORS[:3], ITEM_IDS[:3], k=5)


def test_item_popularity_and_novelty():
    events = pd.DataFrame({"user_id": ["u1", "u2", "u3", "u1", "u1"], "product_id": ["i1", "i1", "i1", "i1", "i2"]})
    pop = m.item_popularity(events, ["i1", "i2", "i3"], n_users=4)
    # i1: 3 distinct users -> (3 + 1) / (4 + 1) = 0.8; i2: 1 user -> 2/5 = 0.4; i3: unseen -> 1/5 = 0.2
    assert pop.to_dict() == pytest.approx({"i1": 0.8, "i2": 0.4, "i3": 0.2})
    recs = pd.DataFrame({"user_id": ["x", "x", "y"], "product_id": ["i1", "i2", "i3"], "rank": [1, 2, 1]})
    per_user = m.novelty_per_user(recs, pop, k=10)
    # x: (-log2 0.8 - log2 0.4) / 2 = (0.321928 + 1.321928) / 2 = 0.821928; y: -log2 0.2 = 2.321928
    assert per_user.to_dict() == pytest.approx({"x": 0.8219280949, "y": 2.3219280949})
    assert m.novelty(recs, pop) == pytest.approx((0.8219280949 + 2.3219280949) / 2)
    # top 1 of x is i1 only -> -log2 0.8
    assert m.novelty_per_user(recs, pop, k=1)["x"] == pytest.approx(-math.log2(0.8))
    with pytest.raises(ValueError, match="no value"):
        m.novelty(recs, pop.drop("i3"))
    with pytest.raises(ValueError, match="not in the catalog"):
        m.item_popularity(events, ["i1"], n_users=4)
    with pytest.raises(ValueError, match="n_users"):
        m.item_popularity(events, ["i1", "i2"], n_users=2)


@pytest.mark.parametrize("k", [0, -1, 2.5, True, "10"])
def test_bad_k(recs, relevant, k):
    with pytest.raises(ValueError, match="k must be a positive int"):
        m.precision_at_k(recs, relevant, k=k)


def test_bad_frames(recs, relevant):
    with pytest.raises(ValueError, match="missing column"):
        m.recall_at_k(recs.drop(columns="rank"), relevant)
    with pytest.raises(ValueError, match="same item twice"):
        m.recall_at_k(pd.concat([recs, recs.head(1).assign(rank=99)]), relevant)
    with pytest.raises(ValueError, match="same rank twice"):
        m.recall_at_k(pd.concat([recs, recs.head(1).assign(product_id="zz")]), relevant)
    with pytest.raises(ValueError, match="relevant is empty"):
        m.recall_at_k(recs, relevant.iloc[:0])
    with pytest.raises(ValueError, match="missing value"):
        m.recall_at_k(recs.assign(product_id=[None] + list(recs["product_id"][1:])), relevant)
    with pytest.raises(ValueError, match="DataFrame"):
        m.recall_at_k([("A", "i1", 1)], relevant)


# -- bootstrap ---------------------------------------------------------------------------------------------------------
def test_bootstrap_ci_two_point_sample():
    # resampling {0, 1}: the mean is 0, 1/2, 1 with probability 1/4, 1/2, 1/4 -> the 95% interval is [0, 1]
    interval = bs.bootstrap_ci([0.0, 1.0], n_boot=4000, seed=1)
    assert (interval.estimate, interval.ci_low, interval.ci_high) == (0.5, 0.0, 1.0)
    # a constant sample has a zero-width interval
    const = bs.bootstrap_ci(np.full(50, 0.3), n_boot=200, seed=1)
    assert (const.ci_low, const.ci_high) == pytest.approx((0.3, 0.3))


def test_bootstrap_ci_is_seeded_and_covers_the_mean():
    values = np.random.default_rng(0).random(300)
    a = bs.bootstrap_ci(values, n_boot=500, seed=7)
    b = bs.bootstrap_ci(values, n_boot=500, seed=7)
    assert a == b
    assert a.ci_low < values.mean() < a.ci_high
    # the standard error of a U(0, 1) mean over 300 users is sqrt(1/12/300) = 0.0167 -> width about 4 * 0.0167
    assert 0.05 < a.ci_high - a.ci_low < 0.08
    with pytest.raises(ValueError, match="NaN"):
        bs.bootstrap_ci([0.1, np.nan])
    with pytest.raises(ValueError, match="confidence"):
        bs.bootstrap_ci(values, confidence=95)
    with pytest.raises(ValueError, match="n_boot"):
        bs.bootstrap_ci(values, n_boot=0)


def test_bootstrap_table_and_statistic():
    per_user = pd.DataFrame({"ndcg": [0.0, 1.0, 0.5], "ild": [0.2, np.nan, 0.4]}, index=["a", "b", "c"])
    table = bs.bootstrap_table(per_user, n_boot=300, seed=3)
    assert list(table["metric"]) == ["ndcg", "ild"]
    assert table["mean"].tolist() == pytest.approx([0.5, 0.3])
    assert table["n_users"].tolist() == [3, 2]  # the NaN user is left out of ild and counted
    # catalog coverage of resampled users: items of user 0 = {a}, user 1 = {a, b}; catalog of 4
    lists = [{"a"}, {"a", "b"}]
    interval = bs.bootstrap_statistic(2, lambda idx: len(set().union(*(lists[i] for i in idx))) / 4, 2000, seed=0)
    # resamples: {0,0} -> 1/4 (p 1/4), else 2/4 -> 95% interval [0.25, 0.5]; full sample 2/4
    assert (interval.estimate, interval.ci_low, interval.ci_high) == (0.5, 0.25, 0.5)


def test_paired_bootstrap():
    users = [f"u{j}" for j in range(200)]
    a = pd.Series(np.random.default_rng(0).random(200), index=users)
    shifted = bs.paired_bootstrap(a + 0.1, a, n_boot=300, seed=0)
    # a constant per-user difference of 0.1: every resample has difference 0.1
    assert (shifted.difference, shifted.ci_low, shifted.ci_high) == pytest.approx((0.1, 0.1, 0.1))
    assert shifted.verdict == "better" and shifted.p_value == 0.0
    same = bs.paired_bootstrap(a, a.sample(frac=1.0, random_state=1), n_boot=300, seed=0)  # same users, reordered
    assert same.difference == 0.0 and same.verdict == "no clear difference" and same.p_value == 1.0
    with_nan = bs.paired_bootstrap(a.where(a.index != "u3"), a, n_boot=100)
    assert (with_nan.n, with_nan.n_dropped) == (199, 1)
    with pytest.raises(ValueError, match="same users"):
        bs.paired_bootstrap(a, a.iloc[1:])


# -- temporal split ----------------------------------------------------------------------------------------------------
AS_OF = pd.Timestamp("2024-03-31")


def _dataset(events: list[tuple[str, str, str, str]], n_products: int = 5) -> Dataset:
    users = pd.DataFrame({"user_id": ["u1", "u2", "u3", "u4"], "age": [30.0, 40.0, 22.0, 60.0],
                          "region": ["EU", "NA", "Asia", "Other"], "spending_tier": ["mid", "budget", "premium", "mid"],
                          "price_sensitivity": [0.5, 0.6, 0.7, 0.4]})
    ids = [f"p{j}" for j in range(1, n_products + 1)]
    n = n_products
    products = pd.DataFrame({"product_id": ids, "name": ids, "category": ["Books"] * n, "description": ["d"] * n,
                             "tags": [""] * n, "price": [10.0] * n, "cost": [5.0] * n, "stock": [3] * n,
                             "peak_season": ["none"] * n})
    frame = pd.DataFrame(events, columns=["user_id", "product_id", "event_type", "timestamp"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], format="ISO8601")
    is_purchase = frame["event_type"].eq("purchase")
    frame["session_id"] = "s"
    frame["quantity"] = is_purchase.astype("int64")
    frame["value"] = np.where(is_purchase, 10.0, np.nan)
    frame["rating"] = np.nan
    return Dataset(users, products, frame, AS_OF)


# test_days = 10 -> cut at 2024-03-21 00:00
EVENTS = [
    ("u1", "p1", "purchase", "2024-03-01"),        # train
    ("u1", "p2", "view", "2024-03-05"),            # train
    ("u2", "p4", "view", "2024-03-10"),            # train
    ("u2", "p3", "cart", "2024-03-20 23:59"),      # train (one minute before the cut)
    ("u1", "p1", "purchase", "2024-03-25"),        # test: re-buy of p1 -> not relevant
    ("u1", "p2", "cart", "2024-03-26"),            # test: relevant for warm u1
    ("u1", "p3", "view", "2024-03-27"),            # test: a view -> not relevant by default
    ("u2", "p5", "view", "2024-03-21"),            # test (exactly at the cut): a view
    ("u3", "p5", "purchase", "2024-03-28"),        # test: u3 has no history -> cold start
]


def test_temporal_split_rules():
    split = temporal_split(_dataset(EVENTS), test_days=10)
    assert split.cut == pd.Timestamp("2024-03-21")
    assert split.train.as_of == split.cut
    assert (split.train.events["timestamp"] < split.cut).all()  # no leakage
    assert len(split.train.events) == 4 and len(split.test_events) == 5
    assert (split.test_events["timestamp"] >= split.cut).all()
    assert split.relevant.values.tolist() == [["u1", "p2"]]
    assert split.cold_relevant.values.tolist() == [["u3", "p5"]]
    assert split.warm_users == ["u1"] and split.cold_users == ["u3"]
    assert split.counts["pairs_dropped_bought_before"] == 1  # (u1, p1)
    assert split.counts["test_users_without_relevant"] == 1  # u2: only a view in the test window
    assert set(split.summary()["quantity"]) == set(split.counts)
    # all four users stay in the training world; u3 and u4 simply have no events there
    assert split.train.n_users == 4


def test_temporal_split_relevant_event_types():
    purchases = temporal_split(_dataset(EVENTS), test_days=10, relevant_events=("purchase",))
    assert purchases.relevant.empty  # u1's only test purchase is a re-buy
    assert purchases.cold_relevant.values.tolist() == [["u3", "p5"]]
    wide = temporal_split(_dataset(EVENTS), test_days=10, relevant_events=("view", "cart", "purchase"))
    assert wide.relevant.values.tolist() == [["u1", "p2"], ["u1", "p3"], ["u2", "p5"]]


def test_validation_split_stays_in_training_period():
    split = temporal_split(_dataset(EVENTS), test_days=10)
    val = validation_split(split, validation_days=10)
    # validation window [03-11, 03-21): u2's cart of p3 at 03-20 23:59
    assert val.cut == pd.Timestamp("2024-03-11") and val.end == split.cut
    assert val.relevant.values.tolist() == [["u2", "p3"]]
    assert (val.test_events["timestamp"] < split.cut).all()
    assert (val.train.events["timestamp"] < val.cut).all()


def test_split_no_leakage_on_random_events():
    rng = np.random.default_rng(5)
    n = 400
    kinds = rng.choice(["view", "favorite", "cart", "purchase"], size=n)
    stamps = AS_OF - pd.to_timedelta(rng.uniform(0, 60, size=n), unit="D")
    events = list(zip(rng.choice(["u1", "u2", "u3", "u4"], size=n), rng.choice([f"p{j}" for j in range(1, 41)], size=n),
                      kinds, stamps.astype(str), strict=True))
    dataset = _dataset(events, n_products=40)
    split = temporal_split(dataset, test_days=7)
    assert len(split.relevant) > 5 and split.counts["pairs_dropped_bought_before"] > 0
    assert (split.train.events["timestamp"] < split.cut).all()
    assert len(split.train.events) + len(split.test_events) == len(dataset.events)
    test = split.test_events
    for frame in (split.relevant, split.cold_relevant):
        for user, product in frame.itertuples(index=False):
            mine = test[(test["user_id"] == user) & (test["product_id"] == product)]
            assert mine["event_type"].isin(["cart", "purchase"]).any()
            past = split.train.events
            assert not ((past["user_id"] == user) & (past["product_id"] == product)
                        & (past["event_type"] == "purchase")).any()
    assert set(split.warm_users) <= set(split.train.events["user_id"])
    assert not set(split.cold_users) & set(split.train.events["user_id"])


@pytest.mark.parametrize("days", [0, -3, float("nan"), "7", True])
def test_split_bad_test_days(days):
    with pytest.raises(ValueError, match="test_days"):
        temporal_split(_dataset(EVENTS), test_days=days)


def test_split_bad_inputs():
    with pytest.raises(ValueError, match="no training data"):
        temporal_split(_dataset(EVENTS), test_days=40)
    with pytest.raises(ValueError, match="relevant_events"):
        temporal_split(_dataset(EVENTS), test_days=10, relevant_events=("click",))
    with pytest.raises(ValueError, match="no relevant pairs"):
        temporal_split(_dataset(EVENTS), test_days=1)
    with pytest.raises(ValueError, match="Dataset"):
        temporal_split(EVENTS, test_days=10)
