"""The Stage 2 artifact format: one immutable version directory per batch run.

    out_dir/
      v000001/            a complete, immutable artifact set
        manifest.json     version, data as_of and content hash, wall-clock run info, metrics, file sha256s
        svd_user_factors.parquet, svd_item_factors.parquet, svd_singular_values.parquet,
        segments.parquet, segment_summary.json, demand.parquet, demand_errors.parquet,
        seasonal_factors.parquet
      v000002/
      LATEST              the name of the newest complete version

Written by both jobs, the in-memory one (:mod:`recsys.stage2.job`) and the Spark one
(:mod:`recsys.spark.job`), through :func:`publish_version`; read by :func:`load_version`, which
checks every file's sha256 against the manifest and every table's columns against
:data:`ARTIFACT_COLUMNS`, so a job that writes the wrong shape is refused by name.

Publication protocol (:mod:`recsys.stage2.publish`): everything is written into a private
temporary directory ``out_dir/.tmp-<pid>-<random>``, files fsynced, the manifest written last; the
directory is then renamed to its version name (atomic on POSIX) and ``LATEST`` is replaced
atomically. A run that fails or is killed at any point leaves ``LATEST`` and every published
version untouched; its temporary directory is removed (on an exception) or swept by the next run
(when killed). The artifact files are byte-identical for the same data and configuration; only
``manifest.json`` carries the wall-clock time and duration of the run.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys.models.base import check_user_ids
from recsys.serialization import jsonable
from recsys.stage2.publish import (
    fsync_dir,
    fsync_file,
    new_tmp_dir,
    point_to,
    prune,
    publish,
    read_pointer,
    sha256_file,
    sweep_stale_tmp,
    version_pattern,
)

__all__ = ["ARTIFACT_COLUMNS", "ARTIFACT_FORMAT", "LATEST", "ArtifactFormatError", "BatchArtifacts",
           "latest_version", "load_latest", "load_version", "publish_version", "save_artifacts"]

ARTIFACT_FORMAT = 1
LATEST = "LATEST"
_VERSION = version_pattern("v")

ARTIFACT_COLUMNS: dict[str, tuple[str, ...]] = {
    "svd_user_factors": ("user_id",),
    "svd_item_factors": ("product_id",),
    "svd_singular_values": ("singular_value",),
    "segments": ("user_id", "segment"),
    "demand": ("product_id", "last_period_demand", "predicted_demand", "demand_score"),
    "demand_errors": ("model", "mae", "rmse", "wape"),
    "seasonal_factors": ("region", "category", "season", "factor"),
}
"""The columns every artifact table must have (factor tables add ``f0..f{k-1}``)."""


class ArtifactFormatError(ValueError):
    """A version directory that is not a complete artifact set of this format."""


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


# --------------------------------------------------------------------------- writing
def _write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(jsonable(payload), indent=2, sort_keys=True, default=str) + "\n")


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
        raise ArtifactFormatError(f"{path}: artifact format {manifest.get('format')!r}, expected {ARTIFACT_FORMAT}")
    for filename, digest in manifest["files"].items():
        file = path / filename
        if not file.exists():
            raise FileNotFoundError(f"{path}: {filename} listed in the manifest is missing")
        if verify and sha256_file(file) != digest:
            raise ValueError(f"{path}: {filename} does not match its sha256 in the manifest (corrupted)")

    def frame(stem: str) -> pd.DataFrame:
        table = pd.read_parquet(path / f"{stem}.parquet")
        missing = [c for c in ARTIFACT_COLUMNS[stem] if c not in table.columns]
        if missing:
            raise ArtifactFormatError(f"{path}: {stem}.parquet lacks column(s) {missing} "
                                      f"(has {list(table.columns)})")
        return table

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


def latest_version(out_dir: str | Path) -> str | None:
    """The version ``LATEST`` names under ``out_dir``, or None before the first publication."""
    pointer = Path(out_dir) / LATEST
    return read_pointer(Path(out_dir), LATEST) if pointer.exists() else None
