"""Deterministic on-disk caching of generated data sets.

``load_or_generate(profile, seed, data_dir, **overrides)`` resolves the
profile's parameters, overrides them, and keys the cache directory
``data_dir/<profile>-<hash>/`` by a sha256 of the parameters, the
generator version and the generator's source code (so editing the generator
can never serve stale data). A directory that exists and whose manifest matches is
loaded (``Dataset.load`` re-checks the content hash); otherwise the data set
is generated into a temporary directory beside it and renamed into place, so
concurrent runs never see a half-written cache.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from recsys.config import DEFAULT_CONFIG, RecsysConfig
from recsys.data import synthetic, world
from recsys.data.dataset import Dataset, DataValidationError
from recsys.data.profiles import get_profile
from recsys.data.synthetic import DEFAULT_AS_OF, GENERATOR_VERSION, generate

__all__ = ["cache_key", "generator_fingerprint", "load_or_generate", "resolve_params"]

_TUNABLE = {name for name in inspect.signature(generate).parameters if name not in ("progress", "config", "personas")}


def resolve_params(profile: str = "ci", seed: int = 42, **overrides: Any) -> dict[str, Any]:
    """The full ``generate`` parameters of ``profile`` with ``overrides``."""
    unknown = sorted(set(overrides) - _TUNABLE)
    if unknown:
        raise ValueError(f"unknown generate() parameter(s) {unknown}; expected some of {sorted(_TUNABLE)}")
    params: dict[str, Any] = {"as_of": DEFAULT_AS_OF, **get_profile(profile).params(), "seed": seed, **overrides}
    params["as_of"] = str(params["as_of"])
    return dict(sorted(params.items()))


def generator_fingerprint() -> str:
    """sha256 of the source of the generator modules (synthetic world and its vocabulary)."""
    digest = hashlib.sha256()
    for module in (synthetic, world):
        digest.update(Path(inspect.getfile(module)).read_bytes())
    return digest.hexdigest()


def cache_key(params: dict[str, Any], config: RecsysConfig = DEFAULT_CONFIG) -> str:
    """First 12 hex digits of sha256 over the parameters, the generator
    version and source, and (if not the default) the configuration."""
    payload = {"params": params, "generator_version": GENERATOR_VERSION, "generator": generator_fingerprint()}
    if config != DEFAULT_CONFIG:
        payload["config"] = repr(config)
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _load_if_valid(directory: Path, params: dict[str, Any], config: RecsysConfig) -> Dataset | None:
    manifest = directory / "manifest.json"
    if not manifest.exists():
        return None
    try:
        recorded = json.loads(manifest.read_text()).get("meta", {}).get("cache_params")
        if recorded != json.loads(json.dumps(params, default=str)):
            return None
        return Dataset.load(directory, config=config)
    except (DataValidationError, OSError, ValueError, KeyError):
        return None


def load_or_generate(
    profile: str = "ci",
    seed: int = 42,
    data_dir: str | os.PathLike[str] = "data",
    *,
    progress: bool | None = None,
    config: RecsysConfig = DEFAULT_CONFIG,
    **overrides: Any,
) -> Dataset:
    """Load the cached data set of ``profile`` (with ``seed`` and any
    ``generate`` parameter ``overrides``) from ``data_dir``, or generate and
    cache it. The directory is ``data_dir/<profile>-<cache_key>``.
    ``progress`` is passed to ``generate`` (``None``: a bar for large worlds
    on a terminal only)."""
    params = resolve_params(profile, seed, **overrides)
    root = Path(data_dir)
    target = root / f"{profile}-{cache_key(params, config)}"
    dataset = _load_if_valid(target, params, config)
    if dataset is not None:
        return dataset
    dataset = generate(**params, progress=progress, config=config)
    dataset.meta["profile"] = profile
    dataset.meta["cache_params"] = json.loads(json.dumps(params, default=str))
    dataset.meta["generator_fingerprint"] = generator_fingerprint()
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=root))
    try:
        dataset.save(tmp)
        if target.exists():  # stale or corrupt: replace it
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.rename(tmp, target)
        except OSError:  # another process renamed its copy first
            if _load_if_valid(target, params, config) is None:
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dataset
