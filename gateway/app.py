"""The Starlette app of one process: the routes of its roles, its runtime (built by the
composition root), the stream hub (``stream`` role) and the background workers (``worker``
role), and errors mapped to RFC 9457 problems in one place."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gateway import bootstrap, metrics, stalls
from gateway.bounds import BodyLimits, RequestBounds
from gateway.contract.errors import InvalidRequest
from gateway.fastpath import OfferFastPath
from gateway.logs import get_logger
from gateway.middleware import RequestMiddleware, route_of
from gateway.pages.routes import PAGES
from gateway.pages.web import PageHeaders
from gateway.problems import Problem, handle_problem, instance_of, refuse, response
from gateway.requestinfo import info_of, note
from gateway.routes import bank, routes_for
from gateway.settings import Settings
from gateway.stream import Hub
from gateway.workers import Workers

log = get_logger("ige.http")

#: seconds a client is told to wait (Retry-After) after a 503: a backing service failed; a
#: restarted Redis or database is usually back within a second or two
UNAVAILABLE_RETRY_AFTER_S = 1


def allowed_methods(request: Request) -> str:
    """The ``Allow`` header of a 405: every method of every route of the request's path
    (one path may have a route per method; the router's own header names only the first)."""
    methods: set[str] = set()
    for route in request.app.routes:
        if isinstance(route, Route) and route.methods and \
                route.path_regex.match(request.scope["path"]):
            methods |= route.methods
    return ", ".join(sorted(methods))


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
    note(request.scope).code = code
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = allowed_methods(request)
    return response(refuse(code, str(exc.detail), status=exc.status_code),
                    instance_of(request), headers)


async def client_gone(request: Request, exc: Exception) -> Response:
    """The client hung up before its body arrived: nothing to answer, nothing went wrong here."""
    note(request.scope).code = "client_disconnected"
    log.info("client_disconnected", route=route_of(request.scope))
    return Response(status_code=400)


async def server_error(request: Request, exc: Exception) -> Response:
    route = route_of(request.scope)
    if isinstance(exc, bootstrap.INFRASTRUCTURE_ERRORS):
        service = bootstrap.service_of(exc)
        metrics.BACKEND_ERRORS.labels(service).inc()
        code = bootstrap.problem_code_of(exc)
        note(request.scope).code = code
        if code == "replication_pending":
            log.warning("replication_pending", error=str(exc), route=route)
            return response(refuse(code, "the offer is not yet confirmed by enough Redis "
                                   "replicas; retry with the same Idempotency-Key",
                                   retry_after=UNAVAILABLE_RETRY_AFTER_S), instance_of(request))
        # the exception's class, not its text: a database error's text may quote the
        # statement's parameters
        log.error("backend_error", service=service, error=type(exc).__name__, route=route)
        return response(refuse("unavailable", "a backing service is unavailable; retry",
                               retry_after=UNAVAILABLE_RETRY_AFTER_S), instance_of(request))
    # any other exception reaches this handler outside the request middleware (Starlette's
    # ServerErrorMiddleware answers it), so the request id is added here
    info = info_of(request.scope)
    log.exception("unhandled_error", route=route,
                  **({"request_id": info.request_id} if info is not None else {}))
    out = response(refuse("internal_error", "internal error"), instance_of(request))
    if info is not None:
        out.headers["X-Request-Id"] = info.request_id
    return out


def create_app(settings: Settings | None = None, fast_path: bool = True) -> Starlette:
    """``fast_path``: serve the offer routes ahead of Starlette's stack (``gateway.fastpath``;
    off only to compare the two in tests)."""
    settings = settings or Settings.from_env()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        rt = bootstrap.build(settings)
        hub = Hub(rt) if "stream" in settings.roles else None
        workers = Workers(rt) if "worker" in settings.roles else None
        app.state.runtime, app.state.hub, app.state.workers = rt, hub, workers
        metrics.process_started()
        if hub is not None:
            await hub.start()
        if workers is not None:
            await workers.start()
        stalls.tune_gc()
        lag = asyncio.ensure_future(metrics.watch_loop_lag())
        gc_timer = stalls.GcTimer(settings.stall_trace_s)
        gc_timer.install()
        tracer = stalls.StallTracer(settings.stall_trace_s) if settings.stall_trace_s else None
        if tracer is not None:
            tracer.start()
        try:
            yield
        finally:
            if tracer is not None:
                tracer.stop()
            gc_timer.remove()
            lag.cancel()
            if workers is not None:
                await workers.stop()
            if hub is not None:
                await hub.stop()
            await rt.aclose()
            metrics.process_stopping()

    # the backing-service errors get entries of their own: Starlette re-raises whatever
    # reaches the catch-all Exception handler after answering, and uvicorn then drops the
    # keep-alive connection, so a client's next request (often its retry) fails with a reset
    handlers = {Problem: handle_problem, InvalidRequest: handle_problem,
                HTTPException: http_error, ClientDisconnect: client_gone,
                Exception: server_error}
    handlers.update({e: server_error for e in bootstrap.INFRASTRUCTURE_ERRORS})
    limits = BodyLimits(settings.max_body, settings.max_body_public, settings.body_timeout_s,
                        settings.max_body_page)
    middleware = [Middleware(RequestMiddleware), Middleware(PageHeaders),
                  Middleware(RequestBounds, limits=limits)]
    routes = routes_for(settings.roles) + (PAGES if "api" in settings.roles else [])
    app = App(routes=routes, lifespan=lifespan, exception_handlers=handlers,
              middleware=middleware)
    if fast_path and "api" in settings.roles:  # ahead of every middleware and the router
        app.fast = OfferFastPath(bank.OFFERS, handlers, limits)
    return app


class App(Starlette):
    """Starlette, with the bid path's two routes served ahead of its middleware stack
    (``gateway.fastpath``) when ``fast`` is set."""

    fast: OfferFastPath | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.fast is not None:
            scope["app"] = self  # as Starlette's own __call__ sets it
            if await self.fast(scope, receive, send):
                return
        await super().__call__(scope, receive, send)


