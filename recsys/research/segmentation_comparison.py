"""Which user segmentation: feature sets and algorithms compared by criteria blind to the personas.

Candidates (all with ``n_clusters`` segments, users in ``dataset.users`` order):

* ``kmeans_features``: the Stage 2 model (:class:`~recsys.stage2.segmentation.UserSegmentation`):
  K-Means on the standardized demographic and behaviour features;
* ``gmm_features``: a Gaussian mixture (diagonal covariances) on the same features;
* ``kmeans_svd``: K-Means on behaviour embeddings, the PureSVD user factors
  ``U_k S_k`` of the interaction matrix (rank ``svd_rank``), rows L2-normalised
  (users without history get the zero vector);
* ``kmeans_features_svd``: K-Means on both, side by side (each block scaled to
  unit mean squared row norm).

Selection criteria that never read the personas: the silhouette in the
candidate's own space (a sample of at most ``silhouette_sample`` users), and
stability, the mean adjusted Rand index between the labelings of
``n_seeds`` seeds, each the best of ``n_init`` initialisations (1 = every
seed finds the same segments). :func:`choose` ranks by stability, then silhouette; only after the
choice does :func:`persona_agreement_table` report agreement with the
personas (synthetic data) -- the criteria cannot have been tuned on them.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, silhouette_score
from sklearn.mixture import GaussianMixture

from recsys.data.dataset import Dataset
from recsys.interactions import Interactions
from recsys.stage2.segmentation import SegmentationConfig, UserSegmentation, persona_agreement

__all__ = ["CANDIDATES", "SegmentationComparison", "choose", "compare_segmentations", "persona_agreement_table"]

CANDIDATES = ("kmeans_features", "gmm_features", "kmeans_svd", "kmeans_features_svd")


@dataclass
class SegmentationComparison:
    """``table``: candidate, silhouette, stability_ari, seconds; ``labels``:
    candidate -> Series user_id -> segment (first seed)."""

    table: pd.DataFrame
    labels: dict[str, pd.Series]


def _embeddings(dataset: Dataset, svd_rank: int, seed: int) -> dict[str, np.ndarray]:
    from recsys.models.svd import PureSVD, SVDConfig

    seg = UserSegmentation(SegmentationConfig(random_state=seed)).fit(dataset)
    features = seg.X_
    order = pd.Index(seg.features_.index)
    interactions = Interactions.from_dataset(dataset)
    rank = int(min(svd_rank, min(interactions.shape) - 1))
    svd = PureSVD(SVDConfig(n_factors=rank, random_state=seed)).fit(dataset, interactions)
    factors = svd.user_factors_[interactions.user_index(order)]
    norms = np.linalg.norm(factors, axis=1, keepdims=True)
    behaviour = np.divide(factors, norms, out=np.zeros_like(factors), where=norms > 0)

    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.sqrt(max(float(np.mean(np.sum(x * x, axis=1))), 1e-12))

    return {"features": features, "svd": behaviour, "features_svd": np.hstack([unit(features), unit(behaviour)]),
            "_index": order}


def _cluster(name: str, x: np.ndarray, k: int, seed: int, n_init: int) -> np.ndarray:
    if name.startswith("gmm"):
        return GaussianMixture(n_components=k, covariance_type="diag", random_state=seed, reg_covar=1e-4,
                               n_init=n_init).fit_predict(x)
    return KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit_predict(x)


def compare_segmentations(dataset: Dataset, n_clusters: int = 8, n_seeds: int = 5, svd_rank: int = 16,
                          seed: int = 42, silhouette_sample: int = 3000,
                          candidates: Sequence[str] = CANDIDATES, n_init: int = 10) -> SegmentationComparison:
    """Fit every candidate with ``n_seeds`` seeds (each the best of ``n_init``
    initialisations, as Stage 2's K-Means; one initialisation gets stuck in
    local optima); measure silhouette and stability."""
    import time

    unknown = [c for c in candidates if c not in CANDIDATES]
    if unknown:
        raise ValueError(f"unknown segmentation candidate(s) {unknown}; expected among {list(CANDIDATES)}")
    spaces = _embeddings(dataset, svd_rank, seed)
    index = spaces.pop("_index")
    rows, labels = [], {}
    for name in candidates:
        x = spaces[name.split("_", 1)[1]]
        start = time.perf_counter()
        runs = [_cluster(name, x, n_clusters, seed + s, n_init) for s in range(n_seeds)]
        seconds = (time.perf_counter() - start) / n_seeds
        stability = float(np.mean([adjusted_rand_score(a, b) for a, b in itertools.combinations(runs, 2)])) \
            if n_seeds > 1 else float("nan")
        n = min(silhouette_sample, len(x))
        sil = float(silhouette_score(x, runs[0], sample_size=n, random_state=seed)) if len(set(runs[0])) > 1 \
            else float("nan")
        rows.append({"candidate": name, "silhouette": sil, "stability_ari": stability,
                     "segments_found": int(len(set(runs[0]))), "seconds_per_fit": seconds})
        labels[name] = pd.Series(runs[0], index=index, name="segment")
    return SegmentationComparison(pd.DataFrame(rows), labels)


def choose(table: pd.DataFrame) -> str:
    """The candidate with the highest stability (rounded to 2 decimals), ties by silhouette."""
    ranked = table.assign(_s=table["stability_ari"].round(2)).sort_values(["_s", "silhouette"], ascending=False,
                                                                          kind="stable")
    return str(ranked.iloc[0]["candidate"])


def persona_agreement_table(comparison: SegmentationComparison, personas: pd.DataFrame) -> pd.DataFrame:
    """ARI, NMI and Hungarian-matched accuracy of each candidate with the personas (report only)."""
    rows = []
    for name, labels in comparison.labels.items():
        users = labels.index.intersection(pd.Index(personas["user_id"]))
        rows.append({"candidate": name, **persona_agreement(labels.loc[users], personas)})
    return pd.DataFrame(rows)
