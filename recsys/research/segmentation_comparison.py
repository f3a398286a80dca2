"""Which user segmentation: feature sets and algorithms compared by criteria blind to the personas.

Candidates (all with ``n_clusters`` segments, users in ``dataset.users`` order): the methods of
:mod:`recsys.stage2.segment_methods`, the code Stage 2 serves from (``kmeans_features``: K-Means on
the standardized demographic and behaviour features; ``gmm_features``: a diagonal Gaussian mixture on
them; ``kmeans_svd``: K-Means on L2-normalised PureSVD user factors of rank ``svd_rank``;
``kmeans_features_svd``: both side by side, each block scaled to unit mean squared row norm).

Selection criteria that never read the personas: the silhouette in the
candidate's own space (a sample of at most ``silhouette_sample`` users), and
stability, the mean adjusted Rand index between the labelings of
``n_seeds`` seeds, each the best of ``n_init`` initialisations (1 = every
seed finds the same segments). :func:`choose` ranks by stability, then silhouette; only after the
choice does :func:`persona_agreement_table` report agreement with the
personas (synthetic data) -- the criteria cannot have been tuned on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from recsys.data.dataset import Dataset
from recsys.stage2.segment_methods import METHODS, choose, embed, measure
from recsys.stage2.segmentation import SegmentationConfig, UserSegmentation, persona_agreement

__all__ = ["CANDIDATES", "SegmentationComparison", "choose", "compare_segmentations", "persona_agreement_table"]

CANDIDATES = METHODS


@dataclass
class SegmentationComparison:
    """``table``: candidate, silhouette, stability_ari, seconds; ``labels``:
    candidate -> Series user_id -> segment (first seed)."""

    table: pd.DataFrame
    labels: dict[str, pd.Series]


def compare_segmentations(dataset: Dataset, n_clusters: int = 8, n_seeds: int = 5, svd_rank: int = 16,
                          seed: int = 42, silhouette_sample: int = 3000,
                          candidates: Sequence[str] = CANDIDATES, n_init: int = 10) -> SegmentationComparison:
    """Fit every candidate with ``n_seeds`` seeds (each the best of ``n_init``
    initialisations, as Stage 2's K-Means; one initialisation gets stuck in
    local optima); measure silhouette and stability on every user
    (:func:`recsys.stage2.segment_methods.measure`, the rule Stage 2 applies on a sample)."""
    unknown = [c for c in candidates if c not in CANDIDATES]
    if unknown:
        raise ValueError(f"unknown segmentation candidate(s) {unknown}; expected among {list(CANDIDATES)}")
    features = UserSegmentation(SegmentationConfig(random_state=seed, method="kmeans_features", n_init=1)).fit(dataset)
    index = pd.Index(features.features_.index)
    spaces = embed(dataset, features.X_, index, svd_rank, seed)
    table, runs = measure(spaces, list(candidates), n_clusters, n_seeds, seed, n_init, silhouette_sample)
    labels = {name: pd.Series(run, index=index, name="segment") for name, run in runs.items()}
    return SegmentationComparison(table, labels)


def persona_agreement_table(comparison: SegmentationComparison, personas: pd.DataFrame) -> pd.DataFrame:
    """ARI, NMI and Hungarian-matched accuracy of each candidate with the personas (report only)."""
    rows = []
    for name, labels in comparison.labels.items():
        users = labels.index.intersection(pd.Index(personas["user_id"]))
        rows.append({"candidate": name, **persona_agreement(labels.loc[users], personas)})
    return pd.DataFrame(rows)
