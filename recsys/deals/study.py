"""Helpers of the deal-economics study (notebook 07): Stage 2 inputs for
every user, deals under several calendars, and the summary tables.

:func:`fit_deal_inputs` fits the real Stage 2 and content models on a
``Dataset``; :class:`DealInputs` then assembles
:class:`~recsys.deals.candidates.CandidateBlock` s chunk by chunk with:

* affinity: :class:`~recsys.models.svd.PureSVD` scores ``(U_k S_k)_u . (V_k)_i``;
  NaN for users without any interaction (no Stage 2 evidence);
* demand score: :class:`~recsys.stage2.demand.DemandModel` (0..100);
* similarity to viewed: content (TF-IDF) cosine of each product with the
  user's ``top_k`` most viewed products (:class:`~recsys.models.content.ContentRecommender`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys.config import SEASONS
from recsys.data.dataset import Dataset
from recsys.deals.candidates import DEAL_TYPES, CandidateBlock, CandidateBuilder
from recsys.deals.generator import DealBatch, DealGenerator
from recsys.interactions import Interactions
from recsys.models.content import ContentConfig, ContentRecommender
from recsys.models.svd import PureSVD, SVDConfig
from recsys.stage2.demand import DemandConfig, DemandModel

__all__ = ["ContentRowSimilarity", "DealInputs", "binding_rates", "deals_by_season", "fit_deal_inputs", "type_shares"]


class ContentRowSimilarity:
    """Rows of the content cosine matrix on demand (``shape`` and ``[rows]``,
    what :meth:`CandidateBuilder.similarity_to_viewed` reads), so no products
    x products matrix is stored."""

    def __init__(self, content: ContentRecommender) -> None:
        self.vectors = content.item_vectors_
        n = self.vectors.shape[0]
        self.shape = (n, n)

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray((self.vectors[np.asarray(rows)] @ self.vectors.T).toarray())


@dataclass
class DealInputs:
    """Everything deal generation needs for the users of a data set.

    ``users``: ``Dataset.user_features()`` (with ``age_group``);
    ``has_history``: per user, whether they have any interaction.
    :meth:`block` assembles candidate blocks for some users and
    :meth:`generate` runs a generator over all users chunk by chunk, so
    memory stays bounded by ``chunk_size`` x products.
    """

    dataset: Dataset
    users: pd.DataFrame
    has_history: np.ndarray
    builder: CandidateBuilder
    svd: PureSVD
    demand: DemandModel
    content: ContentRecommender
    interactions: Interactions
    top_k_viewed: int = 5

    def block(self, rows: Sequence[int] | np.ndarray) -> CandidateBlock:
        """The candidate block of the users at positions ``rows`` of ``users``."""
        rows = np.asarray(rows, dtype=np.int64)
        ids = self.users["user_id"].to_numpy(dtype=object)[rows].tolist()
        matrix_rows = self.interactions.user_index(ids)
        affinity = self.svd.score_users(matrix_rows)
        affinity[~self.has_history[rows]] = np.nan
        similarity = self.builder.similarity_to_viewed(ids, ContentRowSimilarity(self.content), self.top_k_viewed)
        return self.builder.build_block(ids, affinity, self.demand.demand_scores_, similarity)

    def generate(self, generator: DealGenerator, season: str | None = None, chunk_size: int = 1000,
                 users: pd.DataFrame | None = None) -> DealBatch:
        """Deals for every user (``users`` may replace the user table, same
        rows, e.g. with extra columns for an extra pricing factor)."""
        users = self.users if users is None else users
        if len(users) != len(self.users) or list(users["user_id"]) != list(self.users["user_id"]):
            raise ValueError("users must list the same user ids, in the same order, as DealInputs.users")
        batches = []
        for start in range(0, len(users), chunk_size):
            rows = np.arange(start, min(start + chunk_size, len(users)))
            batches.append(generator.generate_many(users.iloc[rows], self.block(rows), self.dataset.as_of,
                                                   season=season))
        return DealBatch.concat(batches)


def fit_deal_inputs(
    dataset: Dataset,
    svd_config: SVDConfig | None = None,
    demand_config: DemandConfig | None = None,
    content_config: ContentConfig | None = None,
    top_k_viewed: int = 5,
) -> DealInputs:
    """Fit Stage 2 (PureSVD, demand) and content similarity on ``dataset``."""
    interactions = Interactions.from_dataset(dataset)
    svd = PureSVD(svd_config).fit(dataset, interactions)
    demand = DemandModel(demand_config).fit(dataset)
    content = ContentRecommender(content_config).fit(dataset, interactions)
    users = dataset.user_features()
    rows = interactions.user_index(users["user_id"].tolist())
    has_history = interactions.history_lengths()[rows] > 0
    return DealInputs(dataset, users, has_history, CandidateBuilder(dataset), svd, demand, content, interactions,
                      top_k_viewed)


def deals_by_season(inputs: DealInputs, generator: DealGenerator, seasons: Sequence[str] = SEASONS) -> pd.DataFrame:
    """Deals of every user under each season's calendar (same users, data and
    ``as_of``; only the season used for seasonal boosts changes): the deals
    frames concatenated (their ``season`` column tells them apart)."""
    return pd.concat([inputs.generate(generator, season=s).deals for s in seasons], ignore_index=True)


def binding_rates(batch: DealBatch) -> pd.DataFrame:
    """How often each guardrail binds: per rule, the share of deals it changed
    (cap, floor, margin clamp) or the mean number of candidates it excluded
    per user (exclusions). Columns ``guardrail, kind, value``."""
    d, s = batch.deals, batch.summary
    rows = [
        {"guardrail": "cap at max_discount", "kind": "share of deals", "value": float(d["cap_bound"].mean())},
        {"guardrail": "raised to min_discount", "kind": "share of deals", "value": float(d["floor_bound"].mean())},
        {"guardrail": "margin floor clamp", "kind": "share of deals", "value": float(d["margin_clamped"].mean())},
    ]
    for column in [c for c in s.columns if c.startswith("excluded_")]:
        rows.append({"guardrail": column.removeprefix("excluded_").replace("_", " "),
                     "kind": "candidates excluded per user", "value": float(s[column].mean())})
    rows.append({"guardrail": "users short of min_deals", "kind": "share of users",
                 "value": float(s["shortfall_reason"].notna().mean())})
    return pd.DataFrame(rows)


def type_shares(deals: pd.DataFrame, users: pd.DataFrame, by: str) -> pd.DataFrame:
    """Share of deals of each deal type (a deal may have several), per value
    of the user attribute ``by`` (a column of ``users``): rows = groups,
    columns = :data:`DEAL_TYPES`."""
    if by not in users.columns:
        raise ValueError(f"users has no column {by!r}; columns: {list(users.columns)}")
    groups = users.set_index("user_id")[by]
    frame = deals[["user_id", *DEAL_TYPES]].copy()
    frame[by] = groups.reindex(frame["user_id"]).to_numpy()
    return frame.groupby(by, observed=True)[list(DEAL_TYPES)].mean()
