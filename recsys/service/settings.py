"""The service's settings: one object, read from the environment once.

``recsys serve`` checks its options and hands them to the uvicorn workers in
environment variables (uvicorn starts several workers from an import
string); each worker reads them once, into :class:`ServiceSettings`, in
:func:`recsys.service.server.app_from_env`. Nothing else in the service reads
the environment.

=========================  ===========================================================
variable                   field
=========================  ===========================================================
``RECSYS_MODEL``           ``model_dir``: the model directory (``recsys train --out``)
``RECSYS_API_KEYS``        ``api_keys``: the keys file (``recsys keys add``)
``RECSYS_REDIS_URL``       ``redis_url``: shared live history, jobs, rate limit (optional)
``RECSYS_REDIS_PREFIX``    ``redis_prefix``: key prefix (default ``recsys:<data hash>``)
``RECSYS_DATABASE``        ``database_url``: the event store (default ``sqlite:///<model dir>/events.db``)
``RECSYS_BATCH_EVERY``     ``batch_every``: seconds between scheduled batches (unset: none)
``PROMETHEUS_MULTIPROC_DIR``  ``metrics_dir``: per-worker metric files (several workers)
=========================  ===========================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = ["ENV", "ServiceSettings"]

ENV = {"model_dir": "RECSYS_MODEL", "api_keys": "RECSYS_API_KEYS", "redis_url": "RECSYS_REDIS_URL",
       "redis_prefix": "RECSYS_REDIS_PREFIX", "database_url": "RECSYS_DATABASE", "batch_every": "RECSYS_BATCH_EVERY",
       "metrics_dir": "PROMETHEUS_MULTIPROC_DIR"}


class ServiceSettings(BaseModel):
    """What one worker needs to start (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_dir: Path | None = None
    api_keys: Path | None = None
    redis_url: str | None = None
    redis_prefix: str | None = None
    database_url: str | None = None
    batch_every: float | None = Field(None, gt=0)
    metrics_dir: Path | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServiceSettings:
        """The settings in ``environ`` (default ``os.environ``); empty values count as unset.
        A bad value raises ``ValueError`` naming the variable."""
        environ = os.environ if environ is None else environ
        values = {field: environ[name] for field, name in ENV.items() if environ.get(name)}
        try:
            return cls(**values)
        except ValidationError as err:
            names = ", ".join(ENV[str(e["loc"][0])] for e in err.errors())
            raise ValueError(f"service settings: invalid {names}: {err}") from None

    def to_env(self) -> dict[str, str]:
        """The variables that carry these settings to the workers (the unset ones left out)."""
        return {ENV[field]: str(value) for field, value in self.model_dump().items() if value is not None}

    def database(self, model_dir: Path) -> str:
        """The event store's URL: ``database_url``, else SQLite in the model directory."""
        from recsys.store import DEFAULT_DATABASE_FILE

        return self.database_url or f"sqlite:///{Path(model_dir) / DEFAULT_DATABASE_FILE}"

    def require_model(self) -> tuple[Path, Path]:
        """The model directory and keys file a worker serves; ``ValueError`` naming a missing one."""
        missing = [ENV[f] for f in ("model_dir", "api_keys") if getattr(self, f) is None]
        if missing:
            raise ValueError(f"service settings: {', '.join(missing)} not set (run the service with `recsys serve`)")
        assert self.model_dir is not None and self.api_keys is not None
        return self.model_dir, self.api_keys
