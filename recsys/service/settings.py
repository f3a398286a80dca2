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
``RECSYS_LIMITS``          ``limits``: :class:`~recsys.service.limits.Limits` as JSON
``RECSYS_EVENT_CLOCK_SKEW``  ``event_clock_skew_seconds``: how far in the future an event may be
``RECSYS_STARTUP_FAILURE_FILE``  ``startup_failure_file``: where a worker that cannot start says why
=========================  ===========================================================

The Redis URL travels in the environment, never on a command line (a process
list shows those); messages name it with its password masked
(:func:`~recsys.service.redact.redact_url`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recsys.service.limits import Limits

__all__ = ["ENV", "ServiceSettings", "redis_url_from_env"]

ENV = {"model_dir": "RECSYS_MODEL", "api_keys": "RECSYS_API_KEYS", "redis_url": "RECSYS_REDIS_URL",
       "redis_prefix": "RECSYS_REDIS_PREFIX", "database_url": "RECSYS_DATABASE", "batch_every": "RECSYS_BATCH_EVERY",
       "metrics_dir": "PROMETHEUS_MULTIPROC_DIR",
       "limits": "RECSYS_LIMITS", "event_clock_skew_seconds": "RECSYS_EVENT_CLOCK_SKEW",
       "startup_failure_file": "RECSYS_STARTUP_FAILURE_FILE"}


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
    limits: Limits = Limits()
    event_clock_skew_seconds: float = Field(300.0, ge=0)
    startup_failure_file: Path | None = None

    def __repr__(self) -> str:  # never the Redis password
        from recsys.service.redact import redact_url

        shown = self.model_copy(update={"redis_url": self.redis_url and redact_url(self.redis_url)})
        return f"ServiceSettings({', '.join(f'{k}={v!r}' for k, v in shown.model_dump().items())})"

    __str__ = __repr__

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServiceSettings:
        """The settings in ``environ`` (default ``os.environ``); empty values count as unset.
        A bad value raises ``ValueError`` naming the variable."""
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {field: environ[name] for field, name in ENV.items() if environ.get(name)}
        try:
            if "limits" in values:
                values["limits"] = json.loads(str(values["limits"]))
            return cls(**values)
        except json.JSONDecodeError as err:
            raise ValueError(f"service settings: invalid {ENV['limits']}: not JSON ({err})") from None
        except ValidationError as err:
            names = ", ".join(sorted({ENV[str(e["loc"][0])] for e in err.errors()}))
            raise ValueError(f"service settings: invalid {names}: "
                             + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())) from None

    def to_env(self) -> dict[str, str]:
        """The variables that carry these settings to the workers (the unset and default ones left out)."""
        env = {ENV[field]: str(value) for field, value in self.model_dump(exclude_defaults=True).items()
               if value is not None and field != "limits"}
        if self.limits != Limits():
            env[ENV["limits"]] = self.limits.model_dump_json()
        return env

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


def redis_url_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """``RECSYS_REDIS_URL`` (``recsys serve`` without ``--redis``/``--redis-url-file``), or None."""
    environ = os.environ if environ is None else environ
    return environ.get(ENV["redis_url"]) or None
