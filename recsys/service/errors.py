"""Errors that say whose fault they are: the service's exception handlers.

* 422: a request body, path or query outside the schema (pydantic; ``detail``
  lists each bad field, no input echoed back), or an
  :class:`~recsys.validation.InvalidRequest` from the engine's id, count and
  parameter checks (``detail``: the message naming the input);
* 403: ``PermissionError`` (another user's data);
* 429: :class:`~recsys.deals.rate_limit.RateLimitExceeded` (``detail``,
  ``retry_after_seconds``, a ``Retry-After`` header);
* 409: :class:`~recsys.service.state.JobInProgress`;
* 503: :class:`~recsys.service.history.SharedStoreUnavailable` (the store's
  URL, password masked, is logged at most once every 5 s per store, not
  answered; ``Retry-After``), the event store failing a
  write or read (:class:`~recsys.store.StoreError`: nothing was acknowledged)
  or missing (:class:`~recsys.service.state.StoreMissing`);
* 500: anything else -- a server fault, a plain ``ValueError`` from a bug
  included: logged with its traceback and a request id, answered
  ``{"detail": "internal error", "request_id": ...}``.

The 500 is answered by :class:`InternalErrorMiddleware` (not an
``exception_handler(Exception)``, which Starlette re-raises to the server
after answering, logging the traceback twice).
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from recsys.deals.rate_limit import RateLimitExceeded
from recsys.service.history import SharedStoreUnavailable
from recsys.service.state import JobInProgress, StoreMissing
from recsys.store import StoreError
from recsys.validation import InvalidRequest

__all__ = ["InternalErrorMiddleware", "add_error_handlers"]

log = logging.getLogger("recsys.service")


async def _invalid_request(request: Request, err: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(err)}, status_code=422)


async def _invalid_body(request: Request, err: Exception) -> JSONResponse:
    # the default body, without echoing inputs back (they may be large or personal)
    assert isinstance(err, RequestValidationError)
    detail = [{k: v for k, v in e.items() if k in ("type", "loc", "msg")} for e in err.errors()]
    return JSONResponse({"detail": detail}, status_code=422)


async def _forbidden(request: Request, err: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(err)}, status_code=403)


async def _rate_limited(request: Request, err: Exception) -> JSONResponse:
    assert isinstance(err, RateLimitExceeded)
    retry = max(0.0, float(err.retry_after))
    return JSONResponse({"detail": str(err), "retry_after_seconds": round(retry, 3)}, status_code=429,
                        headers={"Retry-After": str(max(1, math.ceil(retry)))})


async def _busy(request: Request, err: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(err)}, status_code=409)


_LOG_EVERY_SECONDS = 5.0
_last_logged: dict[str, float] = {}
_suppressed: dict[str, int] = {}


def _log_throttled(message: str) -> None:
    """Log ``message`` at most once every 5 s per store (an outage is one line per period, with a count)."""
    key = message.partition(":")[0]
    now = time.monotonic()
    if now - _last_logged.get(key, -math.inf) < _LOG_EVERY_SECONDS:
        _suppressed[key] = _suppressed.get(key, 0) + 1
        return
    more = _suppressed.pop(key, 0)
    _last_logged[key] = now
    log.error("%s%s", message, f" (and {more} more like it in the last {_LOG_EVERY_SECONDS:g} s)" if more else "")


async def _store_unavailable(request: Request, err: Exception) -> JSONResponse:
    assert isinstance(err, SharedStoreUnavailable)
    _log_throttled(str(err))  # names the store by its redacted URL; the answer does not
    return JSONResponse({"detail": f"{err.what} is unavailable; retry shortly", "retry_after_seconds": 1.0},
                        status_code=503, headers={"Retry-After": "1"})


async def _event_store(request: Request, err: Exception) -> JSONResponse:
    log.error("event store: %s", err)  # names the database; the answer does not
    what = "this service has no event store" if isinstance(err, StoreMissing) else "the event store is unavailable"
    return JSONResponse({"detail": f"{what}; nothing was stored", "retry_after_seconds": 1.0},
                        status_code=503, headers={"Retry-After": "1"})


def add_error_handlers(app: FastAPI) -> None:
    """The 4xx and 503 answers of the table in the module docstring (the 500: the middleware)."""
    app.add_exception_handler(InvalidRequest, _invalid_request)
    app.add_exception_handler(RequestValidationError, _invalid_body)
    app.add_exception_handler(PermissionError, _forbidden)
    app.add_exception_handler(RateLimitExceeded, _rate_limited)
    app.add_exception_handler(JobInProgress, _busy)
    app.add_exception_handler(SharedStoreUnavailable, _store_unavailable)
    app.add_exception_handler(StoreError, _event_store)
    app.add_exception_handler(StoreMissing, _event_store)


class InternalErrorMiddleware:
    """Pure ASGI middleware: an exception no handler answered is a server fault. Logged with
    its traceback and a fresh request id; answered 500 with only that id (and an
    ``X-Request-ID`` header). If the answer had already started, the exception goes on to the server."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception:
            if started:
                raise
            request_id = uuid.uuid4().hex
            log.exception("internal error on %s %s (request_id=%s)", scope.get("method"), scope.get("path"),
                          request_id)
            body = orjson.dumps({"detail": "internal error", "request_id": request_id})
            await send({"type": "http.response.start", "status": 500,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode()),
                                    (b"x-request-id", request_id.encode())]})
            await send({"type": "http.response.body", "body": body})
