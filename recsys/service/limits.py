"""Limits enforced before a request body is read: a pure ASGI middleware, outermost in the app.

In this order, each answered without reading the body and without calling the app:

1. **headers**: more than ``max_headers`` header lines, or more than
   ``max_header_bytes`` of names and values together: 431;
2. **per client** (the peer address): more than ``max_in_flight_per_client``
   requests of one client in progress at once, or past its request rate (a
   token bucket: ``rate_per_second`` tokens a second, at most ``burst`` saved):
   429 with ``Retry-After``; ``/health``, ``/ready`` and ``/metrics`` are exempt. Counted in
   each worker (N workers admit N times the rate); behind a proxy every client has the proxy's
   address, so set ``--rate-limit 0`` there and limit at the proxy;
3. **token** on the paths that need one (``/recommendations/enhanced/...``, ``/demo/api/...``):
   no bearer token or an unknown, revoked or expired one: 401 (the route's
   dependency checks it again and applies the per-user rules, 403);
4. **declared body size**: a ``Content-Length`` above ``max_body_bytes``: 413.

A body without a declared length (chunked) is counted as it is received: at
the first chunk past ``max_body_bytes`` the middleware answers 413 and tells
the app the client has gone; the rest is never read (the server closes the
connection). So a worker's memory is bounded by the headers the server
buffers (``recsys serve`` caps them in the HTTP parser,
``h11_max_incomplete_event_size``) plus ``max_body_bytes`` per request, however
large the body an attacker sends.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from recsys.service.auth import KeyStore

__all__ = ["Limits", "LimitsMiddleware"]

EXEMPT_PATHS = frozenset({"/health", "/ready", "/metrics"})


class Limits(BaseModel):
    """The limits of :class:`LimitsMiddleware` (``recsys serve`` options of the same names)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_body_bytes: int = Field(1_048_576, ge=1, description="largest request body (413 past it)")
    max_header_bytes: int = Field(16_384, ge=256, description="all header names and values together (431)")
    max_headers: int = Field(100, ge=8, description="header lines of one request (431)")
    rate_per_second: float = Field(1000.0, ge=0, description="requests a second per client (429); 0: no limit")
    burst: int = Field(2000, ge=1, description="requests a client may send at once before the rate applies")
    max_in_flight_per_client: int = Field(256, ge=0, description="requests of one client in progress (429); 0: no limit")
    max_clients: int = Field(100_000, ge=1, description="clients remembered by the rate limit (least recent dropped)")


class _Buckets:
    """Token bucket per client: ``rate`` tokens a second, at most ``burst``; least recent clients forgotten."""

    def __init__(self, rate: float, burst: int, max_clients: int, clock: Callable[[], float]) -> None:
        self.rate, self.burst, self.max_clients, self.clock = rate, burst, max_clients, clock
        self._state: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, client: str) -> float:
        """0 if the request may go; else the seconds until a token is back."""
        now = self.clock()
        tokens, last = self._state.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._state[client] = (tokens, now)
        while len(self._state) > self.max_clients:
            self._state.popitem(last=False)
        return wait


async def _answer(send: Any, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
    body = orjson.dumps({"detail": detail})
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
           (b"connection", b"close")]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class LimitsMiddleware:
    """Pure ASGI middleware enforcing :class:`Limits` (the module docstring says in which order).

    ``keys``: the key store in force at each request (a callable: the keys file may be reloaded);
    ``protected``: the path prefixes whose requests need a token."""

    def __init__(self, app: Any, limits: Limits, keys: Callable[[], KeyStore], protected: str | tuple[str, ...],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.app, self.limits, self.keys, self.protected = app, limits, keys, protected
        self._buckets = _Buckets(limits.rate_per_second, limits.burst, limits.max_clients, clock)
        self._in_flight: dict[str, int] = {}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._check_headers(scope["headers"])
        if refusal is not None:
            await _answer(send, 431, refusal)
            return
        client = (scope.get("client") or ("unknown", 0))[0]
        path = scope.get("path", "")
        limited = path not in EXEMPT_PATHS
        if limited:
            refused = await self._check_client(client, send)
            if refused:
                return
            self._in_flight[client] = self._in_flight.get(client, 0) + 1
        try:
            await self._guarded(scope, receive, send, path)
        finally:
            if limited:
                left = self._in_flight.get(client, 1) - 1
                if left > 0:
                    self._in_flight[client] = left
                else:
                    self._in_flight.pop(client, None)

    def _check_headers(self, headers: list[tuple[bytes, bytes]]) -> str | None:
        lim = self.limits
        if len(headers) > lim.max_headers:
            return f"request has {len(headers)} header lines; at most {lim.max_headers} are accepted"
        size = sum(len(k) + len(v) for k, v in headers)
        if size > lim.max_header_bytes:
            return f"request headers total {size} bytes; at most {lim.max_header_bytes} are accepted"
        return None

    async def _check_client(self, client: str, send: Any) -> bool:
        """Answer 429 (and return True) for a client past its concurrency or rate limit."""
        lim = self.limits
        if lim.max_in_flight_per_client and self._in_flight.get(client, 0) >= lim.max_in_flight_per_client:
            await _answer(send, 429, f"more than {lim.max_in_flight_per_client} requests of this client in "
                                     "progress; retry when one is answered", {"Retry-After": "1"})
            return True
        if lim.rate_per_second > 0:
            wait = self._buckets.take(client)
            if wait > 0:
                await _answer(send, 429, f"more than {lim.rate_per_second:g} requests a second from this client "
                                         f"(burst {lim.burst})", {"Retry-After": str(max(1, math.ceil(wait)))})
                return True
        return False

    async def _guarded(self, scope: dict, receive: Any, send: Any, path: str) -> None:
        headers = dict(scope["headers"])  # the last of repeated names; what the checks below need
        if path.startswith(self.protected) and scope.get("method") != "OPTIONS":
            scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
            if scheme.lower() != "bearer" or not token:
                await _answer(send, 401, "missing bearer token", {"WWW-Authenticate": "Bearer"})
                return
            if self.keys().authenticate(token.strip()) is None:
                await _answer(send, 401, "unknown or revoked token", {"WWW-Authenticate": "Bearer"})
                return
        max_body = self.limits.max_body_bytes
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _answer(send, 400, "Content-Length is not a number")
                return
            if int(declared) > max_body:
                await _answer(send, 413, f"request body of {int(declared)} bytes; at most {max_body} are accepted")
                return
        await self._capped(scope, receive, send, max_body)

    async def _capped(self, scope: dict, receive: Any, send: Any, max_body: int) -> None:
        """Pass the request on, counting the body: past ``max_body`` answer 413, tell the app the client left."""
        received, refused, started = 0, False, False

        async def counting_receive() -> dict:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_body:
                    refused = True
                    if not started:
                        await _answer(send, 413, f"request body past {max_body} bytes; at most {max_body} are accepted")
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict) -> None:
            nonlocal started
            if refused:  # after a 413 the app's own answer is dropped
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, counting_receive, guarded_send)
