"""Offline evaluation: temporal split, top-k metrics, bootstrap intervals, model comparison.

- :mod:`recsys.evaluation.split`: temporal hold-out, relevance rules, cold-start users, validation window.
- :mod:`recsys.evaluation.metrics`: precision/recall/NDCG/MAP/hit rate@k, coverage, diversity, novelty.
- :mod:`recsys.evaluation.statistics` (re-exported here): percentile bootstrap over users, paired differences.
- :mod:`recsys.evaluation.off_policy`: IPS, SNIPS, direct method and doubly robust estimates of a
  policy's value from logged decisions with propensities, with bootstrap intervals.
- :mod:`recsys.evaluation.comparison`: every model under one protocol, weight sweep, multi-seed
  aggregation, the design's "Performance Metrics" table.
"""

from recsys.evaluation.comparison import (
    ComparisonConfig,
    ComparisonResult,
    aggregate_seeds,
    read_seed_tables,
    run_comparison,
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
from recsys.evaluation.statistics import (
    Interval,
    PairedDifference,
    bootstrap_ci,
    bootstrap_statistic,
    bootstrap_table,
    paired_bootstrap,
)

__all__ = [
    "ComparisonConfig",
    "ComparisonResult",
    "Interval",
    "PairedDifference",
    "TemporalSplit",
    "aggregate_seeds",
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
    "read_seed_tables",
    "recall_at_k",
    "run_comparison",
    "seed_diversity_percent",
    "temporal_split",
    "validation_split",
]
