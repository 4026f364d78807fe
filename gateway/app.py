"""The Starlette app: the routes of every audience, the process's runtime (built by the
composition root), the stream hub and the background workers, and errors mapped to RFC 9457
problems in one place."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from gateway import bootstrap
from gateway.contract.errors import InvalidRequest
from gateway.problems import Problem, handle_problem, refuse, response
from gateway.routes import ROUTES
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
        hub = Hub(rt)
        workers = Workers(rt, hub)
        app.state.runtime, app.state.hub, app.state.workers = rt, hub, workers
        await hub.start()
        await workers.start()
        try:
            yield
        finally:
            await workers.stop()
            await hub.stop()
            await rt.aclose()

    # the backing-service errors get entries of their own: Starlette re-raises whatever
    # reaches the catch-all Exception handler after answering, and uvicorn then drops the
    # keep-alive connection, so a client's next request (often its retry) fails with a reset
    handlers = {Problem: handle_problem, InvalidRequest: handle_problem,
                HTTPException: http_error, Exception: server_error}
    handlers.update({e: server_error for e in bootstrap.INFRASTRUCTURE_ERRORS})
    return Starlette(routes=ROUTES, lifespan=lifespan, exception_handlers=handlers)
