"""The HTTP recommendation service (FastAPI on uvicorn) around :class:`recsys.serving.engine.RecommendationEngine`.

See :mod:`recsys.service.app` for the paths and who may call them.
"""

from recsys.service.app import PREFIX, create_app, utc_now
from recsys.service.auth import KeyStore, Principal
from recsys.service.history import LocalEventLog, RedisEventLog
from recsys.service.rate_limit_redis import RedisRateLimiter

__all__ = ["PREFIX", "KeyStore", "LocalEventLog", "Principal", "RedisEventLog", "RedisRateLimiter", "create_app",
           "utc_now"]
