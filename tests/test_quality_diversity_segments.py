"""The category-cap frontier (recsys.research.diversity) and the segmentation comparison."""

from __future__ import annotations

import pandas as pd

from recsys.evaluation.split import temporal_split
from recsys.research.diversity import category_cap_frontier, where_reached
from recsys.research.segmentation_comparison import CANDIDATES, choose, compare_segmentations, persona_agreement_table
from recsys.research.tuning import fit_hybrid_components


def test_frontier_trades_accuracy_for_category_diversity(small_dataset) -> None:
    split = temporal_split(small_dataset, 14)
    parts = fit_hybrid_components(split.train)
    users = split.warm_users
    categories = pd.Series(split.train.products["category"].to_numpy(), index=split.train.products["product_id"])
    frontier = category_cap_frontier(parts, small_dataset.config.fusion, users, split.relevant, categories,
                                     caps=(None, 3, 1), n_boot=100)
    assert frontier["cap"].tolist() == ["none", "3", "1"]
    assert frontier.loc[0, "ndcg_change"] == 0.0
    ild = frontier["ild_category"].to_numpy()
    assert ild[0] <= ild[1] <= ild[2] and ild[2] > 0.99  # one product per category: every pair differs
    assert "cap" in where_reached(frontier, 0.7)
    assert where_reached(frontier, 1.01).startswith("no cap reaches")


def test_segmentation_candidates_are_measured_blind_then_compared_with_personas(small_dataset) -> None:
    comp = compare_segmentations(small_dataset, n_clusters=4, n_seeds=3, svd_rank=8)
    assert comp.table["candidate"].tolist() == list(CANDIDATES)
    assert comp.table["stability_ari"].between(-1, 1).all() and comp.table["silhouette"].between(-1, 1).all()
    assert choose(comp.table) in CANDIDATES
    again = compare_segmentations(small_dataset, n_clusters=4, n_seeds=3, svd_rank=8)
    pd.testing.assert_frame_equal(comp.table.drop(columns="seconds_per_fit"), again.table.drop(columns="seconds_per_fit"))
    agreement = persona_agreement_table(comp, small_dataset.personas)
    assert set(agreement.columns) >= {"candidate", "ari", "hungarian_accuracy"}
