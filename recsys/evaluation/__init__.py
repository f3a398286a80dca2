"""Offline evaluation: temporal split, top-k metrics, bootstrap intervals, model comparison.

- :mod:`recsys.evaluation.split`: temporal hold-out, relevance rules, cold-start users, validation window.
- :mod:`recsys.evaluation.metrics`: precision/recall/NDCG/MAP/hit rate@k, coverage, diversity, novelty.
- :mod:`recsys.evaluation.bootstrap`: percentile bootstrap over users, paired differences.
"""

from recsys.evaluation.bootstrap import (
    Interval,
    PairedDifference,
    bootstrap_ci,
    bootstrap_statistic,
    bootstrap_table,
    paired_bootstrap,
)
from recsys.evaluation.metrics import (
    catalog_coverage,
    hit_rate_at_k,
    intra_list_diversity_category,
    intra_list_diversity_vectors,
    item_popularity,
    map_at_k,
    ndcg_at_k,
    novelty,
    precision_at_k,
    ranking_metrics_per_user,
    recall_at_k,
    seed_diversity_percent,
)
from recsys.evaluation.split import TemporalSplit, temporal_split, validation_split

__all__ = [
    "Interval",
    "PairedDifference",
    "TemporalSplit",
    "bootstrap_ci",
    "bootstrap_statistic",
    "bootstrap_table",
    "catalog_coverage",
    "hit_rate_at_k",
    "intra_list_diversity_category",
    "intra_list_diversity_vectors",
    "item_popularity",
    "map_at_k",
    "ndcg_at_k",
    "novelty",
    "paired_bootstrap",
    "precision_at_k",
    "ranking_metrics_per_user",
    "recall_at_k",
    "seed_diversity_percent",
    "temporal_split",
    "validation_split",
]
