"""The installed Stage 2 artifact set, adapted for serving.

:class:`Stage2State` turns a :class:`~recsys.stage2.artifacts.BatchArtifacts` set into
what Stage 3 and the deals read: the PureSVD strategy rebuilt from the
stored factors (:meth:`~recsys.models.svd.PureSVD.from_factors`, aligned to
the engine's catalogue and users), the demand scores in catalogue order and
each user's segment. Artifacts computed on other data are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from recsys.data.dataset import Dataset
from recsys.interactions import Interactions
from recsys.models.svd import PureSVD, SVDConfig
from recsys.serialization import iso_utc
from recsys.stage2.artifacts import BatchArtifacts

__all__ = ["Stage2State"]


@dataclass(frozen=True)
class Stage2State:
    """Stage 2 as served (see the module docstring)."""

    artifacts: BatchArtifacts
    svd: PureSVD
    demand: np.ndarray
    segments: dict[str, int]

    @classmethod
    def from_artifacts(cls, artifacts: BatchArtifacts, dataset: Dataset, interactions: Interactions,
                       data_hash: str) -> Stage2State:
        """Adapter from :class:`~recsys.stage2.artifacts.BatchArtifacts`; refuses
        artifacts computed on other data (their data hash differs)."""
        if artifacts.data_hash != data_hash:
            raise ValueError(
                f"batch version {artifacts.version} was computed on data {artifacts.data_hash[:12]}..., "
                f"the engine is trained on {data_hash[:12]}...: run batch_process() or retrain"
            )
        users = artifacts.user_factors.reindex(interactions.user_ids)
        items = artifacts.item_factors.reindex(interactions.product_ids)
        demand = artifacts.demand_scores.reindex(interactions.product_ids)
        if users.isna().any().any() or items.isna().any().any() or demand.isna().any():
            raise ValueError(f"batch version {artifacts.version} does not cover every user and product")
        svd_config = artifacts.manifest.get("config", {}).get("svd", {})
        svd = PureSVD.from_factors(
            SVDConfig(**svd_config) if svd_config else SVDConfig(n_factors=items.shape[1]), dataset, interactions,
            users.to_numpy(dtype=np.float64), items.to_numpy(dtype=np.float64), artifacts.singular_values,
            artifacts.mean_user_factors,
            float(artifacts.manifest.get("metrics", {}).get("svd_explained_energy", float("nan")) or float("nan")),
        )
        segments = dict(zip(artifacts.segments["user_id"], artifacts.segments["segment"].astype(int), strict=True))
        return cls(artifacts, svd, demand.to_numpy(dtype=np.float64), segments)

    def info(self) -> dict[str, Any]:
        manifest = self.artifacts.manifest
        return {
            "version": self.artifacts.version,
            "as_of": iso_utc(pd.Timestamp(manifest["as_of"])),
            "data_hash": self.artifacts.data_hash,
            "run_seconds": manifest.get("run", {}).get("seconds"),
            "metrics": manifest.get("metrics", {}),
        }
