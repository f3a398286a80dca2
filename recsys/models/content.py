"""Content-based strategy: TF-IDF product vectors and decayed user profiles.

Product vectors. Two TF-IDF blocks, joined by scikit-learn's
``ColumnTransformer`` and L2-normalised row-wise:

- *text*: ``name + " " + description``, word unigrams (and optional bigrams),
  English stop words removed, sublinear tf;
- *labels*: the category and every ``|``-separated tag as whole tokens
  (``"Home & Garden"`` is one token), so a shared category or tag counts as
  one exact match instead of being split into words.

``x_i = normalize([text_weight * tfidf_text(i), label_weight * tfidf_labels(i)])``.

User profile. The decayed, event-weighted mean of the vectors of the products
the user interacted with, weights from the interactions matrix row:

``p_u = sum_i w_ui x_i / sum_i w_ui``.

Score. Cosine similarity ``s_ui = p_u . x_i / (||p_u|| ||x_i||)``, in [0, 1]
(TF-IDF entries are non-negative). Users without history (unknown id or an
empty row) get all-zero scores: content cannot answer for them.

Product-to-product similarity ``cos(x_i, x_j)`` serves the deal type
"similar to items the user views often".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from recsys.config import ConfigError
from recsys.data.dataset import Dataset
from recsys.interactions import Interactions
from recsys.models.base import Recommender, check_n
from recsys.models.ranking import take_rows
from recsys.validation import check_ints, check_numbers

__all__ = ["ContentConfig", "ContentRecommender", "product_documents"]


@dataclass(frozen=True)
class ContentConfig:
    """TF-IDF settings. ``text_weight`` / ``label_weight`` scale the two
    blocks before the joint L2 normalisation (equal by default)."""

    text_weight: float = 1.0
    label_weight: float = 1.0
    ngram_max: int = 1
    min_df: int = 1
    max_df: float = 1.0
    sublinear_tf: bool = True
    stop_words: str | None = "english"

    def __post_init__(self) -> None:
        check_numbers(self, "text_weight", "label_weight", low=0)
        if self.text_weight == 0 and self.label_weight == 0:
            raise ConfigError("ContentConfig: text_weight and label_weight cannot both be 0")
        check_ints(self, "ngram_max", "min_df")
        check_numbers(self, "max_df", low=0, high=1, low_open=True)


def split_labels(document: str) -> list[str]:
    """Analyzer of the label block: ``"Books|paperback|gift"`` -> the
    lower-cased, stripped, non-empty labels (module-level so it pickles)."""
    return [label.strip().lower() for label in document.split("|") if label.strip()]


def product_documents(products: pd.DataFrame) -> pd.DataFrame:
    """One row per product: ``text`` (name + description) and ``labels``
    (category and tags, ``|``-separated)."""
    text = products["name"].astype(str) + " " + products["description"].astype(str)
    labels = products["category"].astype(str) + "|" + products["tags"].astype(str)
    return pd.DataFrame({"text": text.to_numpy(dtype=object), "labels": labels.to_numpy(dtype=object)})


@numba.njit(cache=True, nogil=True)
def _cosine_block(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, profiles_t: np.ndarray,
                  out: np.ndarray) -> None:
    """``out[u, i] = sum_jj data[jj] profiles_t[indices[jj], u]`` over the stored entries ``jj`` of
    row ``i`` of the CSR matrix, added in stored order from 0 with no fused multiply-add: the
    arithmetic of scipy's ``csr_matvecs`` (``X @ P^T``), so the same float64 bits, but written
    straight into the users x products block (no transposed copy). One product at a time, the
    block's users in a small accumulator; ``profiles_t`` is terms x users."""
    n_users = profiles_t.shape[1]
    acc = np.empty(n_users)
    for i in range(out.shape[1]):
        acc[:] = 0.0
        for jj in range(indptr[i], indptr[i + 1]):
            weight = data[jj]
            profile = profiles_t[indices[jj]]
            for u in range(n_users):
                acc[u] += weight * profile[u]
        for u in range(n_users):
            out[u, i] = acc[u]


class ContentRecommender(Recommender):
    """TF-IDF content-based recommender (see the module docstring for the formulas).

    Learned state: ``vectorizer_`` (the fitted ``ColumnTransformer``),
    ``item_vectors_`` (CSR, products x terms, unit rows), ``item_vectors_t_``
    (its transpose, CSR, for single-user scoring) and ``vocabulary_size_``.
    """

    name = "content"
    reason = "Shares features with products you viewed"

    def __init__(self, config: ContentConfig | None = None) -> None:
        self.config = config or ContentConfig()

    def _fit(self, dataset: Dataset, interactions: Interactions) -> None:
        cfg = self.config
        text = TfidfVectorizer(
            ngram_range=(1, cfg.ngram_max), min_df=cfg.min_df, max_df=cfg.max_df,
            sublinear_tf=cfg.sublinear_tf, stop_words=cfg.stop_words, dtype=np.float64,
        )
        labels = TfidfVectorizer(analyzer=split_labels, sublinear_tf=cfg.sublinear_tf, dtype=np.float64)
        self.vectorizer_ = ColumnTransformer(
            [("text", text, "text"), ("labels", labels, "labels")],
            transformer_weights={"text": cfg.text_weight, "labels": cfg.label_weight},
            sparse_threshold=1.0,
        )
        docs = product_documents(dataset.products)
        vectors = sp.csr_matrix(self.vectorizer_.fit_transform(docs), dtype=np.float64)
        self.item_vectors_ = normalize(vectors, norm="l2", axis=1).tocsr()
        self.item_vectors_t_ = self.item_vectors_.T.tocsr()
        self.vocabulary_size_ = int(self.item_vectors_.shape[1])

    # -- users ----------------------------------------------------------------
    #: users whose dense profiles are built at once in :meth:`score_users` (memory: block x terms);
    #: small enough that the block of profiles stays in cache (benchmarks/bench_batch.py)
    profile_block: int = 32
    #: blocks of profiles this large or larger go through :func:`_cosine_block` (same bits as scipy)
    kernel_rows: int = 8

    def user_profiles(self, rows: np.ndarray) -> np.ndarray:
        """Unit-norm profiles ``p_u / ||p_u||`` (dense, len(rows) x terms); an
        all-zero row for unknown users (-1) and users without history."""
        self._check_fitted()
        rows = np.asarray(rows, dtype=np.int64)
        weights = take_rows(self.interactions_.matrix, rows)
        totals = np.asarray(weights.sum(axis=1)).ravel()
        profiles = np.asarray((weights @ self.item_vectors_).toarray())
        profiles /= np.where(totals > 0, totals, 1.0)[:, None]  # decayed, event-weighted mean
        norms = np.linalg.norm(profiles, axis=1)
        return profiles / np.where(norms > 0, norms, 1.0)[:, None]

    def score_users(self, rows: np.ndarray) -> np.ndarray:
        """Cosine of each user's profile with every product (dense): ``X p_u``
        with unit rows ``X``; work per user is one sparse mat-vec, computed for a block of
        profiles at once by :func:`_cosine_block` (the arithmetic of scipy's ``X @ P^T``)."""
        self._check_fitted()
        rows = np.asarray(rows, dtype=np.int64)
        vectors = self.item_vectors_
        out = np.empty((len(rows), vectors.shape[0]))
        for start in range(0, len(rows), self.profile_block):
            profiles = self.user_profiles(rows[start : start + self.profile_block])
            if len(profiles) < self.kernel_rows:  # a few users (the service): scipy's mat-vec is quicker
                out[start : start + len(profiles)] = (vectors @ np.ascontiguousarray(profiles.T)).T
            else:
                _cosine_block(vectors.indptr, vectors.indices, vectors.data, np.ascontiguousarray(profiles.T),
                              out[start : start + len(profiles)])
        return out

    def has_profile(self, rows: np.ndarray) -> np.ndarray:
        """True where the user has any interaction weight (content can answer)."""
        rows = np.asarray(rows, dtype=np.int64)
        lengths = np.diff(self.interactions_.matrix.indptr)
        return (rows >= 0) & (lengths[np.where(rows >= 0, rows, 0)] > 0)

    # -- products -------------------------------------------------------------
    def product_similarity(self, product_ids: Sequence[str]) -> pd.DataFrame:
        """Cosine similarity between the given products (square DataFrame)."""
        self._check_fitted()
        ids = list(product_ids)
        cols = self._product_columns(ids)
        block = self.item_vectors_[cols]
        sim = np.asarray((block @ block.T).toarray(), dtype=np.float64)
        return pd.DataFrame(sim, index=pd.Index(ids, name="product_id"), columns=pd.Index(ids, name="product_id"))

    def similar_products(self, product_ids: Sequence[str] | str, k: int = 10) -> pd.DataFrame:
        """The ``k`` most similar other products of each given product.

        Columns ``product_id, similar_product_id, similarity, rank``; the
        product itself is excluded; ties break by catalogue order.
        """
        self._check_fitted()
        k = check_n(k, "k")
        ids = [product_ids] if isinstance(product_ids, str) else list(product_ids)
        cols = self._product_columns(ids)
        sim = np.asarray((self.item_vectors_[cols] @ self.item_vectors_t_).toarray(), dtype=np.float64)
        sim[np.arange(len(cols)), cols] = -np.inf
        k_eff = min(k, sim.shape[1] - 1)
        if k_eff < 1:
            return pd.DataFrame(columns=["product_id", "similar_product_id", "similarity", "rank"])
        order = np.argsort(-sim, axis=1, kind="stable")[:, :k_eff]
        catalogue = np.asarray(self.interactions_.product_ids, dtype=object)
        return pd.DataFrame(
            {
                "product_id": np.repeat(np.asarray(ids, dtype=object), k_eff),
                "similar_product_id": catalogue[order].ravel(),
                "similarity": np.take_along_axis(sim, order, axis=1).ravel(),
                "rank": np.tile(np.arange(1, k_eff + 1), len(ids)),
            }
        )

    def similarity_to(self, product_columns: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Cosine of every product with the (weighted) mean vector of the
        given product columns: a one-row content score for ad-hoc baskets."""
        self._check_fitted()
        cols = np.asarray(product_columns, dtype=np.int64)
        if cols.size == 0:
            return np.zeros(self.item_vectors_.shape[0])
        w = np.ones(cols.size) if weights is None else np.asarray(weights, dtype=np.float64)
        profile = normalize(sp.csr_matrix(w[None, :]) @ self.item_vectors_[cols], norm="l2", axis=1)
        return np.asarray((profile @ self.item_vectors_t_).toarray(), dtype=np.float64).ravel()

    # -- products not fitted on (live catalogue changes) ----------------------------------
    def vectorize(self, products: pd.DataFrame) -> sp.csr_matrix:
        """Unit product vectors ``x_i`` of products the model was not fitted on (a product upserted
        while serving), by the *fitted* vectoriser: words outside its vocabulary add nothing, a known
        category or tag matches as in the catalogue. ``products``: ``name``, ``category`` and
        optionally ``description`` and ``tags`` (missing: empty)."""
        self._check_fitted()
        missing = [c for c in ("name", "category") if c not in products]
        if missing:
            raise ValueError(f"products to vectorize need {missing}")
        docs = product_documents(products.assign(**{c: products[c].fillna("") if c in products else ""
                                                     for c in ("description", "tags")}))
        vectors = sp.csr_matrix(self.vectorizer_.transform(docs), dtype=np.float64)
        return normalize(vectors, norm="l2", axis=1).tocsr()

    def similarity_of(self, vectors: sp.csr_matrix, product_columns: np.ndarray,
                      weights: np.ndarray | None = None) -> np.ndarray:
        """Cosine of each row of ``vectors`` (e.g. :meth:`vectorize`) with the (weighted) mean vector of
        the fitted products at ``product_columns`` -- the user profile ``p_u`` of the module docstring
        when they are a user's history and its weights; zeros for an empty history."""
        self._check_fitted()
        cols = np.asarray(product_columns, dtype=np.int64)
        if cols.size == 0 or vectors.shape[0] == 0:
            return np.zeros(vectors.shape[0])
        w = np.ones(cols.size) if weights is None else np.asarray(weights, dtype=np.float64)
        profile = normalize(sp.csr_matrix(w[None, :]) @ self.item_vectors_[cols], norm="l2", axis=1)
        return np.asarray((vectors @ profile.T).toarray(), dtype=np.float64).ravel()

    # -- helpers --------------------------------------------------------------
    def _product_columns(self, ids: list[str]) -> np.ndarray:
        cols = self.interactions_.product_index(ids)
        unknown = [pid for pid, c in zip(ids, cols, strict=True) if c < 0]
        if unknown:
            raise ValueError(f"unknown product id(s) {unknown[:3]!r}: not in the fitted catalogue")
        return cols

    def _check_fitted(self) -> None:
        if not hasattr(self, "item_vectors_"):
            raise RuntimeError("ContentRecommender is not fitted: call fit(dataset) first")

