"""Helpers of the deal-economics study (notebook 07): Stage 2 inputs for
every user, deals under several calendars, and the summary tables.

:func:`fit_deal_inputs` fits the real Stage 2 and content models on a
``Dataset`` and assembles one :class:`~recsys.deals.candidates.CandidateBlock`
for all users:

* affinity: :class:`~recsys.models.svd.PureSVD` scores ``(U_k S_k)_u . (V_k)_i``;
  NaN for users without any interaction (no Stage 2 evidence);
* demand score: :class:`~recsys.demand.DemandModel` (0..100);
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
from recsys.demand import DemandConfig, DemandModel
from recsys.interactions import Interactions
from recsys.models.content import ContentConfig, ContentRecommender
from recsys.models.svd import PureSVD, SVDConfig

__all__ = ["DealInputs", "binding_rates", "deals_by_season", "fit_deal_inputs", "type_shares"]


@dataclass
class DealInputs:
    """Everything deal generation needs for all users of a data set."""

    users: pd.DataFrame  # Dataset.user_features(): with age_group
    builder: CandidateBuilder
    block: CandidateBlock
    svd: PureSVD
    demand: DemandModel
    content: ContentRecommender


def fit_deal_inputs(
    dataset: Dataset,
    svd_config: SVDConfig | None = None,
    demand_config: DemandConfig | None = None,
    content_config: ContentConfig | None = None,
    top_k_viewed: int = 5,
) -> DealInputs:
    """Fit Stage 2 (PureSVD, demand) and content similarity; build the block."""
    interactions = Interactions.from_dataset(dataset)
    svd = PureSVD(svd_config).fit(dataset, interactions)
    demand = DemandModel(demand_config).fit(dataset)
    content = ContentRecommender(content_config).fit(dataset, interactions)
    users = dataset.user_features()
    ids = users["user_id"].tolist()
    rows = interactions.user_index(ids)
    affinity = svd.score_users(rows)
    affinity[interactions.history_lengths()[rows] == 0] = np.nan
    vectors = content.item_vectors_
    item_similarity = np.asarray((vectors @ vectors.T).toarray())
    builder = CandidateBuilder(dataset)
    similarity = builder.similarity_to_viewed(ids, item_similarity, top_k_viewed)
    block = builder.build_block(ids, affinity, demand.demand_scores_, similarity)
    return DealInputs(users, builder, block, svd, demand, content)


def deals_by_season(
    generator: DealGenerator, users: pd.DataFrame, block: CandidateBlock, as_of: pd.Timestamp,
    seasons: Sequence[str] = SEASONS,
) -> pd.DataFrame:
    """Deals of every user under each season's calendar (same users, data and
    ``as_of``; only the season used for seasonal boosts changes): the deals
    frames concatenated (their ``season`` column tells them apart)."""
    batches: list[DealBatch] = [generator.generate_many(users, block, as_of, season=s) for s in seasons]
    return pd.concat([b.deals for b in batches], ignore_index=True)


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
