"""The request middleware (pure ASGI): a request id, one log line and the metrics of every HTTP
request, and the request id of every WebSocket connection.

- **Request id.** An incoming ``X-Request-Id`` matching ``^[A-Za-z0-9._-]{1,64}$`` is kept,
  anything else is replaced by a new one (16 hex digits). It is returned in the
  ``X-Request-Id`` response header (problems, 404 and 405 included) and bound to every log line
  emitted while the request is handled (``gateway.logs.REQUEST_ID``).
- **One line per request** (event ``request``): method, route template, status,
  ``duration_ms`` (arrival to the end of the response), the principal's kind and id when
  authenticated, the problem ``code`` when one was answered. Never the path's raw form, the
  query string, a header's or the body's content.
- **Metrics** (``gateway.metrics``): ``ige_http_requests_total`` by route template, and for
  offers ``ige_offers_total`` and ``ige_offer_ack_seconds`` (arrival to the response starting).

The route template is read from the route the router matched (``scope["route"]``): no path is
matched twice, no body is parsed. The per-request work is a few microseconds besides the line.
"""

from __future__ import annotations

import itertools
import logging
import re
import secrets
from time import perf_counter

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import metrics
from gateway.logs import LINES, REQUEST_ID, get_logger
from gateway.requestinfo import SCOPE_KEY, RequestInfo

HEADER = b"x-request-id"
VALID_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")
UNMATCHED = "unmatched"

log = get_logger("ige.http")
_std = logging.getLogger("ige.http")


#: new request ids: a random prefix of the process and a counter (unique, cheap: no system
#: call per request as secrets.token_hex would make)
_PREFIX = secrets.token_hex(4)
_COUNTER = itertools.count(1)


def request_id(headers: list[tuple[bytes, bytes]]) -> str:
    """The client's X-Request-Id when it is well-formed, else a new one (16 hex digits)."""
    for name, value in headers:
        if name == HEADER:
            if VALID_ID.fullmatch(value):
                return value.decode("ascii")
            break
    return f"{_PREFIX}{next(_COUNTER) & 0xFFFFFFFF:08x}"


def route_of(scope: Scope) -> str:
    """The template of the route that matched, as a reader writes it (``path_format``:
    ``/v1/bank/rounds/{round_id}``, never the ``{round_id:id}`` of its convertor)."""
    route = scope.get("route")
    path = getattr(route, "path_format", None)
    return path if isinstance(path, str) else UNMATCHED


class RequestMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            # the hub's stream_closed line carries it; the handshake has no header to return
            info = scope[SCOPE_KEY] = RequestInfo(request_id(scope["headers"]))
            token = REQUEST_ID.set(info.request_id)
            try:
                await self.app(scope, receive, send)
            finally:
                REQUEST_ID.reset(token)
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = perf_counter()
        info = scope[SCOPE_KEY] = RequestInfo(request_id(scope["headers"]))
        header = (HEADER, info.request_id.encode("ascii"))
        status = 0
        ready = 0.0

        async def send_with_id(message: Message) -> None:
            nonlocal status, ready
            if message["type"] == "http.response.start":
                status = message["status"]
                ready = perf_counter()
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        token = REQUEST_ID.set(info.request_id)
        try:
            await self.app(scope, receive, send_with_id)
        except BaseException:
            if not status:  # the outermost handler answers 500 after this (gateway.app)
                status = 500
                info.code = info.code or "internal_error"
            raise
        finally:
            end = perf_counter()
            finish(scope, info, status, start, ready or end, end)
            REQUEST_ID.reset(token)


def finish(scope: Scope, info: RequestInfo, status: int, start: float, ready: float,
           end: float) -> None:
    """The request's metrics and its line (``ready``: when the response started)."""
    route = route_of(scope)
    method = scope["method"]
    metrics.request_done(route, method, status)
    if info.op is not None:
        outcome = info.code or ("replayed" if info.replayed else "accepted")
        metrics.offer_done(info.op, outcome, ready - start)
    if _std.isEnabledFor(logging.INFO):
        fields: dict[str, object] = {"method": method, "route": route, "status": status,
                                     "duration_ms": round((end - start) * 1000, 3)}
        p = info.principal
        if p is not None:
            fields["principal"] = p.kind
            fields["principal_id"] = p.id  # a bank id, an exporter's user id, "admin"
        if info.code is not None:
            fields["code"] = info.code
        if LINES.on:
            LINES.request(fields)
        else:
            log.info("request", **fields)
