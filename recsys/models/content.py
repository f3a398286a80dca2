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

Arithmetic of the served scores (float32, as ``implicit`` scores). The unit
profiles ``p_u / ||p_u||`` are built in float64 straight from the user's
interaction row and the item-vector CSR (:func:`_profiles_table`), then rounded
to float32; ``s_ui = sum_t x_it q_tu`` runs over the stored entries of row
``i`` of a float32 copy of ``X``, multiplied and added in float32 in stored
order, no fused multiply-add (:func:`_cosine_block`). Each ``s_ui`` depends on
user ``u`` alone, so one user scored alone (the service) and in any batch get
the same bits; the scores differ from the float64 ones by about 1e-7 relative.
``score_users`` returns them widened (exactly) to float64, ``score_block``
hands the float32 block to the fusion. ``item_vectors_`` stays float64
(deals, evaluation, product similarity).

Product-to-product similarity ``cos(x_i, x_j)`` serves the deal type
"similar to items the user views often".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

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
from recsys.models.fusion import take_at
from recsys.models.ranking import take_rows
from recsys.models.select import dense_top, sample_step
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
def _profiles_table(m_indptr: np.ndarray, m_indices: np.ndarray, m_data: np.ndarray, rows: np.ndarray,
                    x_indptr: np.ndarray, x_indices: np.ndarray, x_data: np.ndarray, out: np.ndarray) -> None:
    """Unit profiles of ``rows`` into ``out`` (terms x len(rows), float32, zeros on entry):
    ``p_u = sum_i w_ui x_i / sum_i w_ui`` over the stored entries of row ``rows[u]`` of the
    interactions CSR ``m`` (items in stored order, each item's terms in stored order), in float64
    in a scratch row, then ``p_u / ||p_u||`` rounded to float32. A row outside the matrix (-1:
    unknown) or without weight stays zero (the divisor is 1 where ``sum_i w_ui <= 0``, as in
    :meth:`ContentRecommender.user_profiles`)."""
    n_terms = out.shape[0]
    n_rows = len(m_indptr) - 1
    scratch = np.zeros(n_terms)
    seen = np.zeros(n_terms, dtype=np.bool_)
    touched = np.empty(n_terms, dtype=np.int64)
    for u in range(len(rows)):
        r = rows[u]
        if r < 0 or r >= n_rows:
            continue
        total = 0.0
        n_touched = 0
        for jj in range(m_indptr[r], m_indptr[r + 1]):
            w = m_data[jj]
            item = m_indices[jj]
            total += w
            for kk in range(x_indptr[item], x_indptr[item + 1]):
                t = x_indices[kk]
                if not seen[t]:
                    seen[t] = True
                    touched[n_touched] = t
                    n_touched += 1
                scratch[t] += w * x_data[kk]
        divisor = total if total > 0 else 1.0
        square = 0.0
        for k in range(n_touched):
            t = touched[k]
            p = scratch[t] / divisor
            scratch[t] = p
            square += p * p
        norm = np.sqrt(square)
        if not norm > 0:
            norm = 1.0
        for k in range(n_touched):
            t = touched[k]
            out[t, u] = scratch[t] / norm
            scratch[t] = 0.0
            seen[t] = False


@numba.njit(cache=True, nogil=True)
def _cosine_one(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, profile: np.ndarray,
                out: np.ndarray) -> tuple[float, float]:
    """One user's row of :func:`_cosine_block` (``profile``: its column, contiguous), the same
    operations in the same order, in a scalar accumulator; the row's largest and smallest score."""
    high, low = -np.inf, np.inf
    for i in range(out.shape[0]):
        total = out.dtype.type(0)
        for jj in range(indptr[i], indptr[i + 1]):
            total += data[jj] * profile[indices[jj]]
        out[i] = total
        high = max(high, total)
        low = min(low, total)
    return high, low


@numba.njit(cache=True, nogil=True)
def _cosine_block(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, profiles_t: np.ndarray,
                  out: np.ndarray, high: np.ndarray, low: np.ndarray, sampled: np.ndarray) -> None:
    """``out[u, i] = sum_jj data[jj] profiles_t[indices[jj], u]`` over the stored entries ``jj`` of
    row ``i`` of the CSR matrix, multiplied and added in the dtype of ``data`` / ``profiles_t``
    (float32 when serving) in stored order from 0, no fused multiply-add, straight into the users x
    products block; ``high[u]`` / ``low[u]``: the largest and smallest of user ``u``'s scores. One
    product at a time, the block's users in a small accumulator (independent lanes: a user's scores
    do not depend on the other users of the block); ``profiles_t`` is terms x users. ``sampled``
    receives ``out[:, ::step]`` (``step`` = :func:`~recsys.models.select.sample_step`), the sample the
    top-m selection starts from, so that it need not read the block strided."""
    n_users = profiles_t.shape[1]
    step = sample_step(out.shape[1])
    if n_users < 8:  # a few users (the service; less than a vector of lanes): one at a time, same operations
        for u in range(n_users):
            high[u], low[u] = _cosine_one(indptr, indices, data, np.ascontiguousarray(profiles_t[:, u]), out[u])
            for k in range(sampled.shape[1]):
                sampled[u, k] = out[u, k * step]
        return
    acc = np.empty(n_users, dtype=out.dtype)
    high[:] = -np.inf
    low[:] = np.inf
    for i in range(out.shape[1]):
        acc[:] = 0
        jj, end = indptr[i], indptr[i + 1]
        while jj + 3 < end:  # four entries per visit of the accumulator, added one after the other
            w0, w1, w2, w3 = data[jj], data[jj + 1], data[jj + 2], data[jj + 3]
            p0, p1 = profiles_t[indices[jj]], profiles_t[indices[jj + 1]]
            p2, p3 = profiles_t[indices[jj + 2]], profiles_t[indices[jj + 3]]
            for u in range(n_users):
                acc[u] = (((acc[u] + w0 * p0[u]) + w1 * p1[u]) + w2 * p2[u]) + w3 * p3[u]
            jj += 4
        while jj < end:
            weight, profile = data[jj], profiles_t[indices[jj]]
            for u in range(n_users):
                acc[u] += weight * profile[u]
            jj += 1
        for u in range(n_users):
            v = acc[u]
            out[u, i] = v
            high[u] = max(high[u], v)
            low[u] = min(low[u], v)
        if i % step == 0:
            for u in range(n_users):
                sampled[u, i // step] = acc[u]


def _unsigned(index: np.ndarray) -> np.ndarray:
    """A CSR index array (non-negative) viewed as unsigned: numba then skips the negative-index
    wraparound on every lookup (about a third of a single user's scoring time)."""
    return index.view(np.uint32 if index.dtype.itemsize == 4 else np.uint64)


def _float32_rows(vectors: sp.csr_matrix) -> sp.csr_matrix:
    """A float32 CSR copy of ``vectors`` with the same stored entries in the same order."""
    return sp.csr_matrix((vectors.data.astype(np.float32), vectors.indices.copy(), vectors.indptr.copy()),
                         shape=vectors.shape)


class BlockSummary(NamedTuple):
    """The hint of :meth:`ContentRecommender.score_block`, gathered while the block was written:
    each row's largest and smallest score (float64) and the sample ``block[:, ::step]`` that the
    top-m selection starts from (:func:`~recsys.models.select.dense_top`)."""

    high: np.ndarray
    low: np.ndarray
    sampled: np.ndarray


class ContentRecommender(Recommender):
    """TF-IDF content-based recommender (see the module docstring for the formulas).

    Learned state: ``vectorizer_`` (the fitted ``ColumnTransformer``),
    ``item_vectors_`` (CSR, float64, products x terms, unit rows), ``item_vectors32_`` (its float32
    copy, read by scoring only: :meth:`scoring_vectors`), ``item_vectors_t_`` (the transpose, CSR,
    for product similarity) and ``vocabulary_size_``.
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
        self.item_vectors32_ = _float32_rows(self.item_vectors_)
        self.vocabulary_size_ = int(self.item_vectors_.shape[1])

    # -- users ----------------------------------------------------------------
    #: at most this many users' profiles are built at once in :meth:`score_block` (memory: terms x
    #: block float32), in pieces of even size; small enough that the table of profiles stays in cache
    #: (benchmarks/bench_batch.py)
    profile_block: int = 128

    def user_profiles(self, rows: np.ndarray) -> np.ndarray:
        """Unit-norm profiles ``p_u / ||p_u||`` in float64 (dense, len(rows) x terms), by scipy; an
        all-zero row for unknown users (-1) and users without history. (Scoring uses their float32
        table, :meth:`profiles_table`.)"""
        self._check_fitted()
        rows = np.asarray(rows, dtype=np.int64)
        weights = take_rows(self.interactions_.matrix, rows)
        totals = np.asarray(weights.sum(axis=1)).ravel()
        profiles = np.asarray((weights @ self.item_vectors_).toarray())
        profiles /= np.where(totals > 0, totals, 1.0)[:, None]  # decayed, event-weighted mean
        norms = np.linalg.norm(profiles, axis=1)
        return profiles / np.where(norms > 0, norms, 1.0)[:, None]

    def profiles_table(self, rows: np.ndarray) -> np.ndarray:
        """The unit profiles of ``rows`` as the scoring kernel reads them: float32, terms x
        len(rows) (:func:`_profiles_table`; :meth:`user_profiles` rounded, transposed)."""
        self._check_fitted()
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        matrix, vectors = self.interactions_.matrix, self.item_vectors_
        out = np.zeros((vectors.shape[1], len(rows)), dtype=np.float32)
        _profiles_table(_unsigned(matrix.indptr), _unsigned(matrix.indices), np.asarray(matrix.data, dtype=np.float64),
                        rows, _unsigned(vectors.indptr), _unsigned(vectors.indices), vectors.data, out)
        return out

    def scoring_vectors(self) -> sp.csr_matrix:
        """``item_vectors_`` as float32 (CSR, same entries in the same order), the copy scoring
        reads; built on first use where the model predates it (an older pickle)."""
        self._check_fitted()
        vectors, copy = self.item_vectors_, self.__dict__.get("item_vectors32_")
        if copy is None or copy.shape != vectors.shape or copy.nnz != vectors.nnz:
            copy = _float32_rows(vectors)
            self.item_vectors32_ = copy
        return copy

    def score_block(self, rows: np.ndarray) -> tuple[np.ndarray, BlockSummary]:
        """Cosine of each user's profile with every product: the float32 users x products block
        (module docstring), ``X q_u`` for up to :attr:`profile_block` profiles at a time by
        :func:`_cosine_block` (the same kernel for any number of users); the hint
        (:class:`BlockSummary`) is each row's range and strided sample, taken while it was written."""
        self._check_fitted()
        rows = np.asarray(rows, dtype=np.int64)
        vectors = self.scoring_vectors()
        indptr, indices = _unsigned(vectors.indptr), _unsigned(vectors.indices)
        n_cols = vectors.shape[0]
        out = np.empty((len(rows), n_cols), dtype=np.float32)
        high, low = np.empty(len(rows)), np.empty(len(rows))
        sampled = np.empty((len(rows), len(range(0, n_cols, sample_step(n_cols)))), dtype=np.float32)
        step = max(1, -(-len(rows) // max(1, -(-len(rows) // self.profile_block))))  # even pieces: 300 -> 3 x 100
        for start in range(0, len(rows), step):
            table = self.profiles_table(rows[start : start + step])
            piece = slice(start, start + table.shape[1])
            _cosine_block(indptr, indices, vectors.data, table, out[piece], high[piece], low[piece], sampled[piece])
        return out, BlockSummary(high, low, sampled)

    def score_range(self, rows: np.ndarray, scores: np.ndarray,
                    hint: object = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Largest, smallest and plain smallest score per row: from the hint of :meth:`score_block`
        when given (the scores are finite: all three are the row's max and min), else the base rule;
        float64 either way."""
        if isinstance(hint, BlockSummary) and scores is not None and scores.shape[1] > 0:
            return hint.high.copy(), hint.low.copy(), hint.low.copy()
        high, low, floor = super().score_range(rows, scores, hint)
        return high.astype(np.float64), low.astype(np.float64), floor.astype(np.float64)

    def top_candidates(self, rows: np.ndarray, scores: np.ndarray, m: int, floor: np.ndarray,
                       allowed: np.ndarray, hint: object = None) -> tuple[np.ndarray, np.ndarray]:
        """The base rule (:func:`~recsys.models.select.dense_top`), starting from the hint's sample."""
        if isinstance(hint, BlockSummary) and allowed is not None and scores is not None:
            return dense_top(scores, m, floor, allowed, hint.sampled)
        return super().top_candidates(rows, scores, m, floor, allowed, hint)

    def score_users(self, rows: np.ndarray) -> np.ndarray:
        """The scores of :meth:`score_block`, widened to float64 (exactly: the same values)."""
        return self.score_block(rows)[0].astype(np.float64)

    def dense_block(self, rows: np.ndarray, scores: np.ndarray | None, hint: object = None) -> np.ndarray:
        """The float64 block: :meth:`score_block`'s float32 one widened."""
        return (self.score_block(rows)[0] if scores is None else scores).astype(np.float64)

    def scores_at(self, rows: np.ndarray, r: np.ndarray, c: np.ndarray, scores: np.ndarray | None,
                  hint: object = None) -> np.ndarray:
        """float64 scores at the entries ``(r[i], c[i])`` of the float32 block, widened there only
        (:func:`~recsys.models.fusion.take_at`)."""
        return take_at(self.score_block(rows)[0] if scores is None else scores, r, c)

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

