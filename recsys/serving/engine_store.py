"""The saved engine on disk: a format that cannot run code when read.

Layout (format version 3) of ``RecommendationEngine.save(root)``::

    root/
      CURRENT                 the name of the current save (replaced atomically)
      s000001/                one complete, immutable save
        manifest.json         format version, library versions, data hash, as_of, sha256 of every file
        config.json           RecsysConfig, EngineConfig and fusion weights as plain JSON
        data/                 the training Dataset (parquet + its manifest, ``Dataset.save``)
        stage2/v000007/       the served Stage 2 artifact set (parquet + JSON, ``recsys.stage2.job``)
        live/matrix.npz       Stage 1 live history (``scipy.sparse.save_npz``), bought.npz,
        live/changed.npy      rows changed since the fit, users.json (row order), segments.json
        fusion/ranker.txt     the learned fusion's LightGBM text model, when the engine serves it

Nothing is pickled: arrays are ``.npy``/``.npz`` read with
``allow_pickle=False``, frames parquet, the rest JSON. :func:`read_state`
checks the manifest (format version, known file names only) and every
file's sha256 *before* reading any of them, and refuses anything else with
:class:`EngineFormatError`. Stage 1 and the content model are not stored:
they are deterministic functions of the data and the configuration and are
refitted on load (the Stage 2 artifacts, the live history and the new
users' segments are restored as saved). The learned fusion's ranker is
saved as LightGBM's text model (``Booster.model_to_string``, not code) and
loaded as it is, never retrained on load. Surprise models are not part of the
serving state and are never saved here.

Publication follows :mod:`recsys.stage2.publish`: a save is written into a private
temporary directory, renamed to the next ``sNNNNNN`` and ``CURRENT`` is
switched atomically, so a failed save leaves the previous one loadable and
a concurrent load always reads one complete save (it retries when a newer
save pruned the one it started reading).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

import recsys
from recsys.config import RecsysConfig
from recsys.data.dataset import Dataset
from recsys.models.live_history import HistorySnapshot
from recsys.stage2 import publish
from recsys.stage2.artifacts import BatchArtifacts, load_version, save_artifacts

__all__ = ["ENGINE_FORMAT_VERSION", "POINTER", "EngineFormatError", "StoredEngine", "read_state", "write_state"]

ENGINE_FORMAT_VERSION = 3
"""3: no pickle (JSON, parquet, npy/npz) in versioned saves behind ``CURRENT``; 2 and older (pickle) are refused."""

POINTER = "CURRENT"
PREFIX = "s"
KEEP_SAVES = 2
LIBRARIES = ("numpy", "scipy", "pandas", "pyarrow", "scikit-learn")
_ALLOWED = re.compile(
    r"^(config\.json"
    r"|data/[A-Za-z0-9_]+\.(parquet|json)"
    r"|stage2/v\d{6,}/[A-Za-z0-9_]+\.(parquet|json)"
    r"|live/(matrix\.npz|bought\.npz|changed\.npy|users\.json|segments\.json)"
    r"|fusion/ranker\.txt)$"
)


class EngineFormatError(ValueError):
    """A saved engine cannot be read: wrong format version, unknown files, or corrupt."""


def library_versions() -> dict[str, str]:
    out = {"recsys": recsys.__version__}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:  # pragma: no cover - all are dependencies
            out[name] = "absent"
    return out


@dataclass
class StoredEngine:
    """What :func:`read_state` returns: everything needed to rebuild the engine."""

    path: Path
    manifest: dict[str, Any]
    config_json: dict[str, Any]
    dataset: Dataset
    artifacts: BatchArtifacts
    history: HistorySnapshot
    new_user_segments: dict[str, int]
    ranker: str | None = None
    """The learned fusion's LightGBM text model; None when the engine serves the weighted fusion."""


def _write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, allow_nan=False) + "\n")


def write_state(root: str | Path, *, config_json: Mapping[str, Any], dataset: Dataset, artifacts: BatchArtifacts,
                history: HistorySnapshot, new_user_segments: Mapping[str, int], info: Mapping[str, Any],
                ranker: str | None = None) -> Path:
    """Publish one save under ``root`` (see the module docstring); returns ``root``.
    ``ranker``: the learned fusion's LightGBM text model, saved as ``fusion/ranker.txt``."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise ValueError(f"save path {root} exists and is not a directory")
    root.mkdir(parents=True, exist_ok=True)
    publish.sweep_stale_tmp(root)
    tmp = publish.new_tmp_dir(root)
    try:
        _write_json(tmp / "config.json", dict(config_json))
        dataset.save(tmp / "data")
        save_artifacts(artifacts, tmp / "stage2")
        live = tmp / "live"
        live.mkdir()
        state = history.compacted_copy() if history.overlay or history.new_ids else history
        sp.save_npz(live / "matrix.npz", state.matrix.tocsr(), compressed=True)
        sp.save_npz(live / "bought.npz", state.bought.tocsr(), compressed=True)
        np.save(live / "changed.npy", np.asarray(state.compacted, dtype=np.int64), allow_pickle=False)
        _write_json(live / "users.json", [str(u) for u in state.base_ids])
        _write_json(live / "segments.json", {str(k): int(v) for k, v in new_user_segments.items()})
        if ranker is not None:
            (tmp / "fusion").mkdir()
            (tmp / "fusion" / "ranker.txt").write_text(ranker)
        files = {}
        for file in sorted(p for p in tmp.rglob("*") if p.is_file()):
            publish.fsync_file(file)
            files[file.relative_to(tmp).as_posix()] = publish.sha256_file(file)
        manifest = {
            "format_version": ENGINE_FORMAT_VERSION,
            "kind": "recsys.RecommendationEngine",
            "libraries": library_versions(),
            "stage2_version": artifacts.version,
            "n_fitted_users": int(state.n_fitted),
            "files": files,
            **dict(info),
        }
        _write_json(tmp / "manifest.json", manifest)  # last: a directory without it is incomplete
        publish.fsync_file(tmp / "manifest.json")
        publish.fsync_dir(tmp)
        name = publish.publish(tmp, root, PREFIX)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    publish.point_to(root, POINTER, name)
    publish.prune(root, PREFIX, KEEP_SAVES, name)
    return root


def _refuse(path: Path, problem: str) -> EngineFormatError:
    return EngineFormatError(f"{path}: {problem}")


def _read_manifest(path: Path) -> dict[str, Any]:
    manifest_path = path / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _refuse(manifest_path, f"not a readable JSON manifest ({type(err).__name__}: {err})") from None
    if not isinstance(manifest, dict):
        raise _refuse(manifest_path, f"the manifest must be a JSON object, got {type(manifest).__name__}")
    version = manifest.get("format_version")
    if version != ENGINE_FORMAT_VERSION:
        raise _refuse(path, f"holds engine format version {version!r}; this code reads version "
                            f"{ENGINE_FORMAT_VERSION} only (older versions were pickles): retrain and save again")
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise _refuse(manifest_path, "'files' must map file names to sha256 strings")
    unknown = sorted(name for name in files if not _ALLOWED.match(name) or ".." in name)
    if unknown:
        raise _refuse(manifest_path, f"lists file(s) this format does not have: {unknown[:5]}")
    for key in ("data_hash", "stage2_version", "n_fitted_users"):
        if key not in manifest:
            raise _refuse(manifest_path, f"missing {key!r}")
    return manifest


def _verify(path: Path, manifest: dict[str, Any]) -> None:
    for name, digest in manifest["files"].items():
        file = path / name
        if not file.is_file():
            raise FileNotFoundError(f"{file} listed in the manifest is missing")
        if publish.sha256_file(file) != digest:
            raise _refuse(file, "does not match its sha256 in the manifest (corrupt?)")
    required = {"config.json", "live/matrix.npz", "live/bought.npz", "live/changed.npy", "live/users.json",
                "live/segments.json", "data/manifest.json"}
    missing = sorted(required - set(manifest["files"]))
    if missing:
        raise _refuse(path / "manifest.json", f"does not list required file(s) {missing}")


def _read_version(path: Path, recsys_config: Callable[[dict[str, Any]], RecsysConfig]) -> StoredEngine:
    manifest = _read_manifest(path)
    _verify(path, manifest)
    try:
        config_json = json.loads((path / "config.json").read_text())
        if not isinstance(config_json, dict):
            raise _refuse(path / "config.json", "must be a JSON object")
        dataset = Dataset.load(path / "data", recsys_config(config_json))
        artifacts = load_version(path / "stage2", str(manifest["stage2_version"]))
        live = path / "live"
        matrix = sp.load_npz(live / "matrix.npz").tocsr().astype(np.float32)
        bought = sp.load_npz(live / "bought.npz").tocsr().astype(bool)
        changed = np.load(live / "changed.npy", allow_pickle=False).astype(np.int64)
        users = json.loads((live / "users.json").read_text())
        segments = json.loads((live / "segments.json").read_text())
        ranker = (path / "fusion" / "ranker.txt").read_text() if "fusion/ranker.txt" in manifest["files"] else None
    except EngineFormatError:
        raise
    except FileNotFoundError:
        raise
    except (ValueError, TypeError, KeyError, OSError) as err:
        raise _refuse(path, f"cannot be read ({type(err).__name__}: {err})") from None
    if not isinstance(users, list) or len(users) != matrix.shape[0] or matrix.shape != bought.shape:
        raise _refuse(live, "live history arrays and user ids do not agree")
    if not isinstance(segments, dict):
        raise _refuse(live / "segments.json", "must be a JSON object")
    if dataset.content_hash() != manifest["data_hash"]:
        raise _refuse(path / "data", "does not match the data hash in the manifest")
    base_ids = pd.Index(users, dtype=object, name="user_id")
    history = HistorySnapshot(matrix, bought, base_ids, {}, {}, int(manifest["n_fitted_users"]), changed)
    return StoredEngine(path, manifest, config_json, dataset, artifacts, history,
                        {str(k): int(v) for k, v in segments.items()}, ranker)


def read_state(root: str | Path, recsys_config: Callable[[dict[str, Any]], RecsysConfig]) -> StoredEngine:
    """Read the current save under ``root`` (see the module docstring);
    ``recsys_config`` turns ``config.json`` into the data set's config."""
    root = Path(root)
    pointer = root / POINTER
    if not pointer.exists():
        if (root / "engine.pkl").exists() or (root / "manifest.json").exists():
            raise _refuse(root, "is an engine saved in an old pickle format, which is no longer read "
                                "(it could run code): retrain and save again")
        raise FileNotFoundError(f"{pointer} not found: not a saved RecommendationEngine directory")
    for _ in range(5):
        try:
            name = publish.read_pointer(root, POINTER)
        except (UnicodeDecodeError, OSError) as err:
            raise _refuse(pointer, f"unreadable ({type(err).__name__})") from None
        if not re.fullmatch(rf"{PREFIX}\d{{6,}}", name):
            raise _refuse(pointer, f"names {name[:40]!r}, not a save directory")
        try:
            return _read_version(root / name, recsys_config)
        except (FileNotFoundError, EngineFormatError):
            if publish.read_pointer(root, POINTER) == name:
                raise  # the current save itself is missing or corrupt
            # a newer save replaced the one being read and pruned it while it was read: read the newer one
    raise EngineFormatError(f"{root}: saves kept changing while loading; try again")
