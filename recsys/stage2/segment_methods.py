"""Segmentation methods and the persona-blind rule that picks one: shared by Stage 2 and the comparison.

Methods (:data:`METHODS`; ``n_clusters`` segments each):

* ``kmeans_features``: K-Means on the standardized demographic and behaviour
  features (:func:`~recsys.stage2.segmentation.user_feature_frame`);
* ``gmm_features``: a Gaussian mixture (diagonal covariances) on the same features;
* ``kmeans_svd``: K-Means on behaviour embeddings, the PureSVD user factors
  ``U_k S_k = X V_k`` of the interaction matrix (rank ``svd_rank``), rows
  L2-normalised (users without history get the zero vector);
* ``kmeans_features_svd``: K-Means on both side by side (each block scaled to
  unit mean squared row norm, the scale fixed at fit time).

The rule (:func:`choose`; it never reads the personas): stability first, the
mean adjusted Rand index between the labelings of ``n_seeds`` seeds (each the
best of ``n_init`` initialisations), rounded to 2 decimals; ties by the
silhouette in the method's own space. :func:`measure` computes both criteria
for every method; Stage 2 (``SegmentationConfig.method="auto"``) measures them
on a seeded sample of at most ``sample`` users and fits the chosen method on
everyone; notebook 04's comparison measures them on every user.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn import config_context
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, silhouette_score
from sklearn.mixture import GaussianMixture

from recsys.data.dataset import Dataset

__all__ = ["METHODS", "SILHOUETTE_WORKING_MEMORY_MIB", "Spaces", "choose", "cluster", "embed", "measure",
           "silhouette"]

METHODS = ("kmeans_features", "gmm_features", "kmeans_svd", "kmeans_features_svd")
SILHOUETTE_WORKING_MEMORY_MIB = 32
"""The distance rows the silhouette holds at a time (scikit-learn's ``working_memory``, default 1 GiB:
the whole 5,000 x 5,000 float64 matrix of a sample at once, ~0.2 GiB plus its temporaries)."""


def silhouette(x: np.ndarray, labels: np.ndarray, sample_size: int | None, seed: int) -> float:
    """``silhouette_score(x, labels, sample_size=..., random_state=seed)``, the mean over the
    (sampled) rows of ``(b - a) / max(a, b)`` (``a``: mean distance to the own cluster, ``b``: to the
    nearest other one), its distance matrix computed in blocks of rows of at most
    :data:`SILHOUETTE_WORKING_MEMORY_MIB` (each row's value is computed from its own row alone)."""
    with config_context(working_memory=SILHOUETTE_WORKING_MEMORY_MIB):
        return float(silhouette_score(x, labels, sample_size=sample_size, random_state=seed))


def _unit_scale(x: np.ndarray) -> float:
    return float(np.sqrt(max(float(np.mean(np.sum(x * x, axis=1))), 1e-12)))


@dataclass
class Spaces:
    """The clustering spaces of one set of users: ``features`` (scaled), ``svd``
    (normalised factors), the block scales of ``features_svd``; ``svd_model``
    (the fitted PureSVD, for embedding other users), ``index`` (user ids)."""

    features: np.ndarray
    svd: np.ndarray | None
    scales: tuple[float, float]
    svd_model: Any
    index: pd.Index

    def space(self, method: str) -> np.ndarray:
        """The matrix ``method`` clusters."""
        kind = method.split("_", 1)[1]
        if kind == "features":
            return self.features
        if self.svd is None:
            raise ValueError(f"segmentation method {method!r} needs the SVD embedding, which was not computed")
        if kind == "svd":
            return self.svd
        return np.hstack([self.features / self.scales[0], self.svd / self.scales[1]])


def _normalised(factors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(factors, axis=1, keepdims=True)
    return np.divide(factors, norms, out=np.zeros_like(factors), where=norms > 0)


def embed(dataset: Dataset, features: np.ndarray, index: pd.Index, svd_rank: int | None, seed: int,
          interactions: Any = None) -> Spaces:
    """The spaces of ``dataset``'s users (rows ``index``; ``features`` already
    scaled); ``svd_rank=None`` skips the SVD embedding (feature methods only);
    ``interactions``: the data set's shared matrix, when already built."""
    if svd_rank is None:
        return Spaces(features, None, (_unit_scale(features), 1.0), None, index)
    from recsys.interactions import Interactions
    from recsys.models.svd import PureSVD, SVDConfig

    interactions = interactions or Interactions.from_dataset(dataset)
    rank = int(max(1, min(svd_rank, min(interactions.shape) - 1)))
    svd = PureSVD(SVDConfig(n_factors=rank, random_state=seed)).fit(dataset, interactions)
    rows = interactions.user_index(index)
    behaviour = _normalised(np.asarray(svd.user_factors_)[np.maximum(rows, 0)])
    behaviour[rows < 0] = 0.0  # users without history: the zero vector
    return Spaces(features, behaviour, (_unit_scale(features), _unit_scale(behaviour)), svd, index)


def embed_like(fitted: Spaces, dataset: Dataset, features: np.ndarray, index: pd.Index) -> Spaces:
    """The spaces of another data set's users, with ``fitted``'s SVD item factors and block scales."""
    if fitted.svd_model is None:
        return Spaces(features, None, fitted.scales, None, index)
    from recsys.interactions import weighted_matrix

    svd = fitted.svd_model
    weighting = svd.config.weighting
    if weighting is None:
        raise ValueError("the segmentation's SVD embedding needs an explicit weighting to embed new users")
    matrix = weighted_matrix(dataset, weighting, index, svd.interactions_.product_ids)
    return Spaces(features, _normalised(np.asarray(matrix @ svd.item_factors_)), fitted.scales, svd, index)


def cluster(method: str, x: np.ndarray, k: int, seed: int, n_init: int) -> Any:
    """The fitted estimator of ``method`` on ``x`` (``labels = estimator.predict(x)``)."""
    if method not in METHODS:
        raise ValueError(f"unknown segmentation method {method!r}; expected one of {list(METHODS)}")
    if method.startswith("gmm"):
        return GaussianMixture(n_components=k, covariance_type="diag", random_state=seed, reg_covar=1e-4,
                               n_init=n_init).fit(x)
    return KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(x)


def measure(spaces: Spaces, methods: Sequence[str], k: int, n_seeds: int, seed: int, n_init: int,
            silhouette_sample: int) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Per method: silhouette (first seed, in its space, a sample of at most
    ``silhouette_sample`` rows), stability (mean pairwise ARI of ``n_seeds`` seeds),
    segments found and seconds per fit; and each method's first-seed labels."""
    rows, labels = [], {}
    for name in methods:
        x = spaces.space(name)
        start = time.perf_counter()
        runs = [cluster(name, x, k, seed + s, n_init).predict(x) for s in range(n_seeds)]
        seconds = (time.perf_counter() - start) / n_seeds
        stability = float(np.mean([adjusted_rand_score(a, b) for a, b in itertools.combinations(runs, 2)])) \
            if n_seeds > 1 else float("nan")
        n = min(silhouette_sample, len(x))
        sil = silhouette(x, runs[0], n, seed) if len(set(runs[0])) > 1 else float("nan")
        rows.append({"candidate": name, "silhouette": sil, "stability_ari": stability,
                     "segments_found": int(len(set(runs[0]))), "seconds_per_fit": seconds})
        labels[name] = runs[0]
    return pd.DataFrame(rows), labels


def choose(table: pd.DataFrame) -> str:
    """The candidate with the highest stability (rounded to 2 decimals), ties by silhouette."""
    ranked = table.assign(_s=table["stability_ari"].round(2)).sort_values(["_s", "silhouette"], ascending=False,
                                                                          kind="stable")
    return str(ranked.iloc[0]["candidate"])
