"""Stage 2 as a job: recompute every batch artifact and publish it atomically.

``run_batch(dataset, out_dir)`` fits PureSVD, the user segmentation, the
demand model and the seasonal factors, and writes them as one *version*:

    out_dir/
      v000001/            a complete, immutable artifact set
        manifest.json     version, data as_of and content hash, wall-clock run info, metrics, file sha256s
        svd_user_factors.parquet, svd_item_factors.parquet, svd_singular_values.parquet,
        segments.parquet, segment_summary.json, demand.parquet, demand_errors.parquet,
        seasonal_factors.parquet
      v000002/
      LATEST              the name of the newest complete version

Publication protocol: everything is written into a private temporary
directory ``out_dir/.tmp-<pid>-<random>``, files fsynced, the manifest
written last; the directory is then renamed to its version name (atomic on
POSIX) and ``LATEST`` is replaced atomically (write ``LATEST.tmp``, fsync,
``os.replace``). A run that fails or is killed at any point leaves
``LATEST`` and every published version untouched; its temporary directory
is removed (on an exception) or swept by the next run (when killed).
:func:`load_latest` reads the version ``LATEST`` names and checks every
file against the manifest's sha256. The artifact files are byte-identical
for the same data and configuration; only ``manifest.json`` carries the
wall-clock time and duration of the run.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys.data.dataset import Dataset
from recsys.demand import DemandConfig, DemandModel
from recsys.interactions import Interactions
from recsys.models.base import check_user_ids
from recsys.models.svd import PureSVD, SVDConfig
from recsys.publish import (
    fsync_dir,
    fsync_file,
    new_tmp_dir,
    point_to,
    prune,
    publish,
    sha256_file,
    sweep_stale_tmp,
    version_pattern,
)
from recsys.seasonality import SeasonalFactors, SeasonalityConfig
from recsys.segmentation import SegmentationConfig, UserSegmentation
from recsys.serialization import jsonable
from recsys.validation import check_ints

__all__ = ["ARTIFACT_FORMAT", "BatchArtifacts", "BatchConfig", "batch_main", "load_latest", "load_version",
           "publish_version", "run_batch", "save_artifacts"]

ARTIFACT_FORMAT = 1
LATEST = "LATEST"
_VERSION = version_pattern("v")


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


@dataclass
class BatchArtifacts:
    """One complete, loaded artifact set (what Stages 1 and 3 read)."""

    version: str
    path: Path
    manifest: dict[str, Any]
    user_factors: pd.DataFrame  # index user_id, columns f0..f{k-1}: U_k S_k
    item_factors: pd.DataFrame  # index product_id, columns f0..f{k-1}: V_k
    singular_values: np.ndarray
    segments: pd.DataFrame  # user_id, segment
    segment_summary: dict[str, Any]
    demand: pd.DataFrame  # product_id, last_period_demand, predicted_demand, demand_score
    demand_errors: pd.DataFrame  # model, mae, rmse, wape on the temporal holdout
    seasonal_factors: pd.DataFrame  # region, category, season, events, share, factor, prior_boosted

    @property
    def mean_user_factors(self) -> np.ndarray:
        """The mean user's factors ``mean(R) V_k`` (PureSVD's unknown-user profile)."""
        return self.user_factors.to_numpy().mean(axis=0)

    @property
    def data_hash(self) -> str:
        return str(self.manifest["data_hash"])

    def affinity(self, user_ids: Any, product_ids: Any = None) -> pd.DataFrame:
        """PureSVD affinity ``(U_k S_k)_u . (V_k)_i`` from the stored factors
        (users x products; unknown users get the mean user's factors)."""
        ids = check_user_ids(user_ids)
        items = self.item_factors if product_ids is None else self.item_factors.reindex(
            [product_ids] if isinstance(product_ids, str) else list(product_ids))
        if items.isna().any().any():
            unknown = items.index[items.isna().any(axis=1)].tolist()[:3]
            raise ValueError(f"unknown product id(s) {unknown!r}: not in batch version {self.version}")
        rows = self.user_factors.index.get_indexer(ids)
        users = self.user_factors.to_numpy()[np.where(rows >= 0, rows, 0)]
        users[rows < 0] = self.mean_user_factors
        return pd.DataFrame(users @ items.to_numpy().T, index=pd.Index(ids, name="user_id"),
                            columns=items.index)

    @property
    def demand_scores(self) -> pd.Series:
        """``demand_score`` (0..100) per product id."""
        return self.demand.set_index("product_id")["demand_score"]


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


# --------------------------------------------------------------------------- writing
def _write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(jsonable(payload), indent=2, sort_keys=True, default=str) + "\n")


def run_batch(dataset: Dataset, out_dir: str | Path, config: BatchConfig | None = None) -> BatchArtifacts:
    """Recompute every Stage 2 artifact from ``dataset`` and publish them as
    a new version under ``out_dir`` (see the module docstring)."""
    if not isinstance(dataset, Dataset):
        raise TypeError(f"run_batch expects a recsys Dataset, got {type(dataset).__name__}")
    if dataset.n_users == 0 or dataset.n_products == 0 or dataset.events.empty:
        raise ValueError(
            f"cannot run the batch on an empty data set ({dataset.n_users} users, {dataset.n_products} products, "
            f"{len(dataset.events)} events)"
        )
    config = config or BatchConfig()
    interactions = Interactions.from_dataset(dataset)
    header = {"data_hash": dataset.content_hash(), "as_of": dataset.as_of.isoformat(), "n_users": dataset.n_users,
              "n_products": dataset.n_products, "n_events": len(dataset.events),
              "config": dataclasses.asdict(config)}
    steps = [(name, functools.partial(step, dataset, interactions, config)) for name, step in STEPS.items()]
    return publish_version(out_dir, steps, header, config.keep_versions)


def publish_version(out_dir: str | Path, steps: list[tuple[str, Callable[[], dict[str, Any]]]],
                    header: dict[str, Any], keep_versions: int) -> BatchArtifacts:
    """Run ``steps`` in order and publish their results as one new version
    (the protocol of the module docstring; shared by the in-memory and the
    Spark job). A step returns ``frames`` (stem -> DataFrame, or a callable
    writing the parquet file at the path it is given), ``json`` (stem ->
    payload) and ``metrics``; ``header`` (data_hash, as_of, sizes, config)
    starts the manifest."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sweep_stale_tmp(out_dir)
    started, clock = time.time(), time.perf_counter()
    tmp = new_tmp_dir(out_dir)
    try:
        files: dict[str, str] = {}
        metrics: dict[str, Any] = {}
        step_seconds: dict[str, float] = {}
        for name, step in steps:
            t0 = time.perf_counter()
            result = step()
            for stem, frame in result.get("frames", {}).items():
                path = tmp / f"{stem}.parquet"
                if callable(frame):
                    frame(path)
                else:
                    frame.to_parquet(path, index=False, engine="pyarrow", compression="zstd")
                files[path.name] = ""
            for stem, payload in result.get("json", {}).items():
                path = tmp / f"{stem}.json"
                _write_json(path, payload)
                files[path.name] = ""
            metrics.update(result.get("metrics", {}))
            step_seconds[name] = round(time.perf_counter() - t0, 3)
        for filename in files:
            fsync_file(tmp / filename)
            files[filename] = sha256_file(tmp / filename)
        manifest = {
            "format": ARTIFACT_FORMAT,
            **header,
            "metrics": metrics,
            "files": files,
            "run": {
                "started_at_utc": pd.Timestamp(started, unit="s", tz="UTC").isoformat(),
                "seconds": round(time.perf_counter() - clock, 3),
                "step_seconds": step_seconds,
                "pid": os.getpid(),
            },
        }
        _write_json(tmp / "manifest.json", manifest)  # last: a directory without it is incomplete
        fsync_file(tmp / "manifest.json")
        fsync_dir(tmp)
        version = publish(tmp, out_dir, "v")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    point_to(out_dir, LATEST, version)
    prune(out_dir, "v", keep_versions, version)
    return load_version(out_dir, version)


def save_artifacts(artifacts: BatchArtifacts, out_dir: str | Path) -> Path:
    """Write a loaded artifact set as version ``artifacts.version`` under
    ``out_dir`` (same files as :func:`run_batch` writes, the manifest last
    with fresh sha256s), readable by :func:`load_version`; e.g. inside a
    saved engine. ``out_dir/<version>`` must not exist yet."""
    path = Path(out_dir) / artifacts.version
    path.mkdir(parents=True)
    frames = {
        "svd_user_factors": artifacts.user_factors.reset_index(),
        "svd_item_factors": artifacts.item_factors.reset_index(),
        "svd_singular_values": pd.DataFrame({"singular_value": np.asarray(artifacts.singular_values)}),
        "segments": artifacts.segments,
        "demand": artifacts.demand,
        "demand_errors": artifacts.demand_errors,
        "seasonal_factors": artifacts.seasonal_factors,
    }
    files: dict[str, str] = {}
    for stem, frame in frames.items():
        frame.to_parquet(path / f"{stem}.parquet", index=False, engine="pyarrow", compression="zstd")
        files[f"{stem}.parquet"] = ""
    _write_json(path / "segment_summary.json", artifacts.segment_summary)
    files["segment_summary.json"] = ""
    for filename in files:
        fsync_file(path / filename)
        files[filename] = sha256_file(path / filename)
    _write_json(path / "manifest.json", {**artifacts.manifest, "files": files})
    fsync_file(path / "manifest.json")
    return path


# --------------------------------------------------------------------------- reading
def load_version(out_dir: str | Path, version: str, verify: bool = True) -> BatchArtifacts:
    """Load one published version; with ``verify``, check every file's sha256."""
    path = Path(out_dir) / version
    manifest_path = path / "manifest.json"
    if not _VERSION.match(version) or not manifest_path.exists():
        raise FileNotFoundError(f"{path} is not a complete batch version (no manifest.json)")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("format") != ARTIFACT_FORMAT:
        raise ValueError(f"{path}: artifact format {manifest.get('format')!r}, expected {ARTIFACT_FORMAT}")
    for filename, digest in manifest["files"].items():
        file = path / filename
        if not file.exists():
            raise FileNotFoundError(f"{path}: {filename} listed in the manifest is missing")
        if verify and sha256_file(file) != digest:
            raise ValueError(f"{path}: {filename} does not match its sha256 in the manifest (corrupted)")

    def frame(stem: str) -> pd.DataFrame:
        return pd.read_parquet(path / f"{stem}.parquet")

    return BatchArtifacts(
        version=version,
        path=path,
        manifest=manifest,
        user_factors=frame("svd_user_factors").set_index("user_id"),
        item_factors=frame("svd_item_factors").set_index("product_id"),
        singular_values=frame("svd_singular_values")["singular_value"].to_numpy(),
        segments=frame("segments"),
        segment_summary=json.loads((path / "segment_summary.json").read_text()),
        demand=frame("demand"),
        demand_errors=frame("demand_errors"),
        seasonal_factors=frame("seasonal_factors"),
    )


def load_latest(out_dir: str | Path, verify: bool = True) -> BatchArtifacts:
    """The newest complete artifact set (the version ``LATEST`` names)."""
    out_dir = Path(out_dir)
    pointer = out_dir / LATEST
    if not pointer.exists():
        raise FileNotFoundError(f"no batch artifacts in {out_dir}: {LATEST} not found (run `recsys batch` first)")
    return load_version(out_dir, pointer.read_text().strip(), verify=verify)


def batch_main(data_dir: Path, out_dir: Path, config: BatchConfig | None = None) -> Path:
    """CLI entry (``recsys batch --data DIR --out DIR``): load the saved data
    set, run the batch, return the published version's directory."""
    dataset = Dataset.load(data_dir)
    return run_batch(dataset, out_dir, config).path
