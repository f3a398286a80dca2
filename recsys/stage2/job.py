"""Stage 2 as an in-memory job: recompute every batch artifact and publish it atomically.

``run_batch(dataset, out_dir)`` fits PureSVD, the user segmentation, the demand model and the
seasonal factors, and publishes them as one version in the format of
:mod:`recsys.stage2.artifacts` (the Spark job, :mod:`recsys.spark.job`, writes the same format).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys.data.dataset import Dataset
from recsys.interactions import Interactions
from recsys.models.svd import PureSVD, SVDConfig
from recsys.stage2.artifacts import BatchArtifacts, publish_version
from recsys.stage2.demand import DemandConfig, DemandModel
from recsys.stage2.seasonality import SeasonalFactors, SeasonalityConfig
from recsys.stage2.segmentation import SegmentationConfig, UserSegmentation
from recsys.validation import check_ints

__all__ = ["STEPS", "BatchConfig", "batch_main", "run_batch"]


@dataclass(frozen=True)
class BatchConfig:
    """Settings of every Stage 2 component, and how many versions to keep."""

    svd: SVDConfig = field(default_factory=SVDConfig)
    segmentation: SegmentationConfig = field(default_factory=SegmentationConfig)
    demand: DemandConfig = field(default_factory=DemandConfig)
    seasonality: SeasonalityConfig = field(default_factory=SeasonalityConfig)
    keep_versions: int = 5

    def __post_init__(self) -> None:
        check_ints(self, "keep_versions")


# --------------------------------------------------------------------------- steps
def _step_svd(dataset: Dataset, interactions: Interactions, config: BatchConfig) -> dict[str, Any]:
    model = PureSVD(config.svd).fit(dataset, interactions)
    cols = [f"f{i}" for i in range(model.item_factors_.shape[1])]
    users = pd.DataFrame(model.user_factors_, columns=cols).assign(user_id=np.asarray(interactions.user_ids, object))
    items = pd.DataFrame(model.item_factors_, columns=cols).assign(
        product_id=np.asarray(interactions.product_ids, object))
    return {
        "frames": {
            "svd_user_factors": users[["user_id", *cols]],
            "svd_item_factors": items[["product_id", *cols]],
            "svd_singular_values": pd.DataFrame({"singular_value": model.singular_values_}),
        },
        "metrics": {"svd_n_factors": len(cols), "svd_explained_energy": model.explained_energy_},
    }


def _step_segments(dataset: Dataset, interactions: Interactions, config: BatchConfig) -> dict[str, Any]:
    seg = UserSegmentation(config.segmentation).fit(dataset)
    segments = pd.DataFrame({"user_id": np.asarray(seg.labels_.index, object), "segment": seg.labels_.to_numpy()})
    return {
        "frames": {"segments": segments},
        "json": {"segment_summary": seg.summary()},
        "metrics": {"segmentation_silhouette": seg.silhouette_, "segmentation_inertia": seg.inertia_},
    }


def _step_demand(dataset: Dataset, interactions: Interactions, config: BatchConfig) -> dict[str, Any]:
    model = DemandModel(config.demand).fit(dataset)
    errors = model.errors_.set_index("model")
    return {
        "frames": {"demand": model.forecast_, "demand_errors": model.errors_},
        "metrics": {f"demand_{m}_{e}": float(errors.loc[m, e]) for m in errors.index for e in errors.columns},
    }


def _step_seasonality(dataset: Dataset, interactions: Interactions, config: BatchConfig) -> dict[str, Any]:
    factors = SeasonalFactors(config.seasonality).fit(dataset)
    return {
        "frames": {"seasonal_factors": factors.factors_},
        "metrics": {f"seasonal_{k}": v for k, v in factors.compare_with_prior().items()},
    }


STEPS: dict[str, Callable[[Dataset, Interactions, BatchConfig], dict[str, Any]]] = {
    "svd": _step_svd,
    "segments": _step_segments,
    "demand": _step_demand,
    "seasonality": _step_seasonality,
}
"""The batch steps in order (a module-level table: tests patch a step to fail midway)."""


def run_batch(dataset: Dataset, out_dir: str | Path, config: BatchConfig | None = None,
              interactions: Interactions | None = None) -> BatchArtifacts:
    """Recompute every Stage 2 artifact from ``dataset`` and publish them as
    a new version under ``out_dir`` (see the module docstring). ``interactions``:
    ``Interactions.from_dataset(dataset)`` when the caller has it already (not rebuilt)."""
    if not isinstance(dataset, Dataset):
        raise TypeError(f"run_batch expects a recsys Dataset, got {type(dataset).__name__}")
    if dataset.n_users == 0 or dataset.n_products == 0 or dataset.events.empty:
        raise ValueError(
            f"cannot run the batch on an empty data set ({dataset.n_users} users, {dataset.n_products} products, "
            f"{len(dataset.events)} events)"
        )
    config = config or BatchConfig()
    if interactions is None:
        interactions = Interactions.from_dataset(dataset)
    elif interactions.shape != (dataset.n_users, dataset.n_products):
        raise ValueError(f"interactions of shape {interactions.shape} do not belong to this data set "
                         f"({dataset.n_users} users x {dataset.n_products} products)")
    header = {"data_hash": dataset.content_hash(), "as_of": dataset.as_of.isoformat(), "n_users": dataset.n_users,
              "n_products": dataset.n_products, "n_events": len(dataset.events),
              "config": dataclasses.asdict(config)}
    steps = [(name, functools.partial(step, dataset, interactions, config)) for name, step in STEPS.items()]
    return publish_version(out_dir, steps, header, config.keep_versions)


def batch_main(data_dir: Path, out_dir: Path, config: BatchConfig | None = None) -> Path:
    """CLI entry (``recsys batch --data DIR --out DIR``): load the saved data
    set, run the batch, return the published version's directory."""
    dataset = Dataset.load(data_dir)
    return run_batch(dataset, out_dir, config).path
