"""The Starlette app of one process: the routes of its roles, its runtime (built by the
composition root), the stream hub (``stream`` role) and the background workers (``worker``
role), and errors mapped to RFC 9457 problems in one place."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from gateway import bootstrap
from gateway.contract.errors import InvalidRequest
from gateway.problems import Problem, handle_problem, refuse, response
from gateway.routes import routes_for
from gateway.settings import Settings
from gateway.stream import Hub
from gateway.workers import Workers

log = logging.getLogger("ige.http")


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
    return response(refuse(code, str(exc.detail), status=exc.status_code), request.url.path)


async def server_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, bootstrap.INFRASTRUCTURE_ERRORS):
        log.error("backing service error on %s: %s", request.url.path, exc)
        return response(refuse("unavailable", "a backing service is unavailable; retry"),
                        request.url.path)
    log.exception("unhandled error on %s", request.url.path)
    return response(refuse("internal_error", "internal error"), request.url.path)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        rt = bootstrap.build(settings)
        hub = Hub(rt) if "stream" in settings.roles else None
        workers = Workers(rt) if "worker" in settings.roles else None
        app.state.runtime, app.state.hub, app.state.workers = rt, hub, workers
        if hub is not None:
            await hub.start()
        if workers is not None:
            await workers.start()
        tune_gc()
        try:
            yield
        finally:
            if workers is not None:
                await workers.stop()
            if hub is not None:
                await hub.stop()
            await rt.aclose()

    # the backing-service errors get entries of their own: Starlette re-raises whatever
    # reaches the catch-all Exception handler after answering, and uvicorn then drops the
    # keep-alive connection, so a client's next request (often its retry) fails with a reset
    handlers = {Problem: handle_problem, InvalidRequest: handle_problem,
                HTTPException: http_error, Exception: server_error}
    handlers.update({e: server_error for e in bootstrap.INFRASTRUCTURE_ERRORS})
    return Starlette(routes=routes_for(settings.roles), lifespan=lifespan,
                     exception_handlers=handlers)


def tune_gc() -> None:
    """Start-up is over: move everything allocated so far (modules, the app, the caches being
    warmed) out of the collector's reach. A full collection otherwise walks those ~90,000
    objects every second or two under load, stalling every request for ~50 ms (the
    acknowledgement p99 of BENCHMARKS.md was that pause). Young collections every 10,000
    allocations rather than 700: each one promotes what is in flight at that instant, and under
    load (thousands of bids and stream frames a second) those promotions triggered a full
    collection every few seconds, 100-200 ms long with 2,000 WebSockets open."""
    gc.freeze()
    gc.set_threshold(10_000, 50, 10)
