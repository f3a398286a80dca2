"""Stage 2 user segmentation: features, the seed's summary structure, persona agreement."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.data import Dataset
from recsys.stage2.segmentation import (
    ALGORITHMS,
    FEATURE_GROUPS,
    SegmentationConfig,
    UserSegmentation,
    _packed,
    elbow_curve,
    persona_agreement,
    persona_confusion,
    persona_matching,
    user_feature_frame,
)

SEGMENT_FIELDS = {"size", "avg_age", "dominant_region", "dominant_age_group", "avg_price_sensitivity",
                  "dominant_spending_tier"}


@pytest.fixture(scope="module")
def segmentation(ci_dataset: Dataset) -> UserSegmentation:
    return UserSegmentation().fit(ci_dataset)


def test_summary_has_eight_segments_with_every_field(segmentation: UserSegmentation, ci_dataset: Dataset) -> None:
    summary = segmentation.summary()
    segments = summary["user_segments"]
    assert list(segments) == [f"segment_{i}" for i in range(8)]
    for seg in segments.values():
        assert set(seg) == SEGMENT_FIELDS
        assert seg["dominant_region"] in ci_dataset.config.region_names
        assert seg["dominant_age_group"] in ci_dataset.config.age_group_names
        assert seg["dominant_spending_tier"] in ci_dataset.config.spending_tier_names
        assert 0 <= seg["avg_price_sensitivity"] <= 1 and 13 <= seg["avg_age"] <= 110
    sizes = [s["size"] for s in segments.values()]
    assert sum(sizes) == ci_dataset.n_users and sizes == sorted(sizes, reverse=True)
    info = summary["clustering_info"]
    assert info["n_clusters"] == 8 and info["algorithm"] == ALGORITHMS[info["method"]]
    assert info["features_used"][:len(FEATURE_GROUPS)] == list(FEATURE_GROUPS.values())
    assert -1 <= info["silhouette"] <= 1


def test_summary_values_match_the_users(segmentation: UserSegmentation, ci_dataset: Dataset) -> None:
    users = ci_dataset.users.set_index("user_id")
    seg0 = segmentation.labels_[segmentation.labels_ == 0].index
    row = segmentation.summary()["user_segments"]["segment_0"]
    assert row["size"] == len(seg0)
    assert row["avg_age"] == pytest.approx(users.loc[seg0, "age"].mean(), abs=1e-6)
    counts = users.loc[seg0, "region"].value_counts()
    assert row["dominant_region"] in set(counts.index[counts == counts.max()])  # ties: the configured order


def test_features_have_no_ids_and_expected_groups(ci_dataset: Dataset) -> None:
    raw, groups = user_feature_frame(ci_dataset)
    assert list(groups) == list(FEATURE_GROUPS)
    assert not any("id" in c for c in raw.columns)
    assert raw.index.equals(pd.Index(ci_dataset.users["user_id"]))
    shares = raw[[c for c in raw.columns if c.startswith("cat=")]].sum(axis=1)
    active = raw["log_events"] > 0
    np.testing.assert_allclose(shares[active], 1.0)
    np.testing.assert_allclose(raw.loc[active, [c for c in raw.columns if c.startswith("share_")]].sum(axis=1), 1.0)


def test_configurable_k_and_deterministic(ci_dataset: Dataset, segmentation: UserSegmentation) -> None:
    five = UserSegmentation(SegmentationConfig(n_clusters=5, n_init=3)).fit(ci_dataset)
    assert len(five.summary()["user_segments"]) == 5
    again = UserSegmentation().fit(ci_dataset)
    pd.testing.assert_series_equal(again.labels_, segmentation.labels_)
    pd.testing.assert_series_equal(segmentation.predict(ci_dataset), segmentation.labels_, check_names=False)
    assert segmentation.profile().shape == (8, segmentation.features_.shape[1])


def test_group_balance_gives_each_group_equal_variance(ci_dataset: Dataset) -> None:
    seg = UserSegmentation(SegmentationConfig(group_balance=True, n_init=2)).fit(ci_dataset)
    X = seg.X_
    cols = list(seg.features_.columns)
    for group_cols in seg.feature_groups_.values():
        idx = [cols.index(c) for c in group_cols]
        # z-scored columns have variance 1 (0 if constant), scaled by 1 / n_g
        assert X[:, idx].var(axis=0).sum() <= 1.0 + 1e-9


def test_hungarian_accuracy_by_hand() -> None:
    labels = pd.Series([0, 0, 1, 1, 2, 2], index=[f"u{i}" for i in range(6)])
    personas = pd.DataFrame({"user_id": labels.index, "persona": ["a", "a", "b", "b", "b", "c"]})
    result = persona_agreement(labels, personas)
    assert result["hungarian_accuracy"] == pytest.approx(5 / 6)
    perfect = persona_agreement(pd.Series([1, 1, 0, 0, 0, 2], index=labels.index), personas)
    assert perfect["ari"] == pytest.approx(1.0) and perfect["hungarian_accuracy"] == 1.0
    table = persona_confusion(labels, personas)
    assert table.to_numpy().sum() == 6 and list(table.columns) == ["a", "b", "c"]
    matching = persona_matching(labels, personas)
    assert matching["matched_persona"].tolist() == ["a", "b", "c"]
    assert matching["purity"].tolist() == [1.0, 1.0, 0.5]
    assert matching["matched_users"].sum() / 6 == pytest.approx(result["hungarian_accuracy"])


def test_persona_agreement_on_synthetic_data(segmentation: UserSegmentation, ci_dataset: Dataset) -> None:
    result = persona_agreement(segmentation.labels_, ci_dataset.personas)
    assert result["n_personas"] == 8 and result["n_segments"] == 8
    # well above chance (ARI 0, accuracy ~ largest persona share), whatever the exact value
    assert result["ari"] > 0.2 and result["hungarian_accuracy"] > 0.4


def test_planted_segments_are_recovered(small_dataset: Dataset) -> None:
    """Users whose features differ by construction form recoverable segments."""
    users = small_dataset.users.copy()
    group = np.arange(len(users)) % 3
    users["age"] = np.choose(group, [20.0, 45.0, 75.0])
    users["region"] = np.choose(group, ["EU", "NA", "Asia"])
    users["price_sensitivity"] = np.choose(group, [0.9, 0.5, 0.3])
    users["spending_tier"] = np.choose(group, ["budget", "mid", "premium"])
    planted = Dataset(users, small_dataset.products, small_dataset.events, small_dataset.as_of)
    seg = UserSegmentation(SegmentationConfig(n_clusters=3, group_balance=True)).fit(planted)
    truth = pd.DataFrame({"user_id": users["user_id"], "persona": group})
    assert persona_agreement(seg.labels_, truth)["ari"] == pytest.approx(1.0)


def test_elbow_curve(segmentation: UserSegmentation) -> None:
    curve = elbow_curve(segmentation.X_, range(2, 6), n_init=2)
    assert list(curve["k"]) == [2, 3, 4, 5]
    assert curve["inertia"].is_monotonic_decreasing
    assert curve["silhouette"].between(-1, 1).all()


def test_bad_input(ci_dataset: Dataset, small_dataset: Dataset) -> None:
    with pytest.raises(ValueError, match="n_clusters must be an int >= 2"):
        SegmentationConfig(n_clusters=1)
    with pytest.raises(ValueError, match="unknown groups"):
        SegmentationConfig(group_weights={"zodiac": 1.0})
    with pytest.raises(ValueError, match="cannot form 400 segments from 300 users"):
        UserSegmentation(SegmentationConfig(n_clusters=400)).fit(small_dataset)
    with pytest.raises(ValueError, match="ks must lie"):
        elbow_curve(np.zeros((5, 2)), range(2, 9))
    with pytest.raises(ValueError, match="have no persona"):
        persona_agreement(pd.Series([0, 1], index=["x", "y"]), pd.DataFrame({"user_id": ["x"], "persona": ["a"]}))
    with pytest.raises(RuntimeError, match="not fitted"):
        UserSegmentation().summary()
    with pytest.raises(TypeError, match="Dataset"):
        UserSegmentation().fit(ci_dataset.users)  # type: ignore[arg-type]


def test_auto_serves_the_method_the_blind_rule_chooses(segmentation: UserSegmentation, ci_dataset: Dataset) -> None:
    from recsys.stage2.segment_methods import METHODS, choose

    table = segmentation.selection_
    assert list(table["candidate"]) == list(METHODS) and segmentation.method_ == choose(table)
    info = segmentation.summary()["clustering_info"]
    assert info["method"] == segmentation.method_ and set(info["selection"]["candidates"]) == set(METHODS)
    assert info["selection"]["users"] == min(5000, ci_dataset.n_users)
    fixed = UserSegmentation(SegmentationConfig(method=segmentation.method_)).fit(ci_dataset)
    pd.testing.assert_series_equal(fixed.labels_, segmentation.labels_)  # the same fit as naming the method


@pytest.mark.parametrize("method", ["gmm_features", "kmeans_svd", "kmeans_features_svd"])
def test_every_method_predicts_its_own_labels_and_keeps_the_summary(ci_dataset: Dataset, method: str) -> None:
    seg = UserSegmentation(SegmentationConfig(method=method, n_init=2)).fit(ci_dataset)
    assert seg.selection_ is None and seg.method_ == method and seg.labels_.nunique() <= 8
    pd.testing.assert_series_equal(seg.predict(ci_dataset), seg.labels_, check_names=False)
    sizes = [s["size"] for s in seg.summary()["user_segments"].values()]
    assert sum(sizes) == ci_dataset.n_users and sizes == sorted(sizes, reverse=True)


def test_an_unknown_method_is_refused_by_name() -> None:
    from recsys.validation import ConfigError

    with pytest.raises(ConfigError, match="SegmentationConfig.method"):
        SegmentationConfig(method="dbscan")


def test_activity_features_match_pandas_counts(ci_dataset: Dataset) -> None:
    """log events and log distinct sessions per user, against a groupby of the events frame."""
    raw, _ = user_feature_frame(ci_dataset)
    events = ci_dataset.events
    by_user = events.groupby("user_id")
    expected_sessions = by_user["session_id"].nunique().reindex(raw.index, fill_value=0)
    expected_events = by_user.size().reindex(raw.index, fill_value=0)
    np.testing.assert_allclose(raw["log_sessions"], np.log1p(expected_sessions.to_numpy(dtype=float)))
    np.testing.assert_allclose(raw["log_events"], np.log1p(expected_events.to_numpy(dtype=float)))
    share = (events["event_type"] == "purchase").groupby(events["user_id"]).mean().reindex(raw.index, fill_value=0)
    np.testing.assert_allclose(raw["share_purchase"], share.to_numpy())


def test_packed_keys_widen_to_int64_when_int32_would_overflow() -> None:
    row, column = np.array([0, 3, 70_000], dtype=np.int32), np.array([1, 0, 2], dtype=np.int32)
    narrow = _packed(row, 10, column)
    assert narrow.dtype == np.int32 and narrow.tolist() == [1, 30, 700_002]
    wide = _packed(row, 40_000, column)
    assert wide.dtype == np.int64 and wide.tolist() == [1, 120_000, 70_000 * 40_000 + 2]
