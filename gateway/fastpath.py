"""The bid path's two routes (POST an offer, PUT a revision), served ahead of the whole
middleware stack.

Every other request goes through Starlette's stack unchanged: its outermost error middleware,
the request middleware (``gateway.middleware``: request id, line, metrics), the request bounds
(``gateway.bounds``), the exception middleware, the router. These two routes are the product's
busiest by far, and those layers (a coroutine and a ``send`` wrapper each, the route list, the
endpoint wrapper) cost about as much as the rest of an offer's HTTP handling. So the app
(``gateway.app.App``) hands them here first, and this does what the layers would, in the same
order, with their own functions: the request id and ``RequestInfo`` (``request_id``), the body's
bounds (``admit_body``), the route matched with the router's own patterns, the endpoint
(``gateway.routes.bank``), the app's exception handlers looked up as Starlette looks them up,
the catch-all answering 500 and re-raising as Starlette's error middleware does, the
``X-Request-Id`` header, and the request's metrics and line (``finish``). What a client sees is
the same, byte for byte: the conformance and end-to-end suites run through here, and
tests/integration/test_fastpath.py compares it with the stack.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from time import perf_counter

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gateway import faults
from gateway.bounds import BodyLimits, admit_body, bounded_receive
from gateway.logs import REQUEST_ID
from gateway.middleware import HEADER, finish, request_id
from gateway.problems import response as problem_response
from gateway.requestinfo import SCOPE_KEY, RequestInfo

Handler = Callable[[Request, Exception], Awaitable[Response]]


class OfferFastPath:
    def __init__(self, routes: list[Route], handlers: Mapping[type[BaseException], Handler],
                 limits: BodyLimits) -> None:
        self.routes = {(m, r.path_regex): r for r in routes for m in (r.methods or ())
                       if m != "HEAD"}
        self.handlers = dict(handlers)
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Serve the request if it is an offer's; False (nothing done) if it is not."""
        if scope["type"] != "http" or scope.get("root_path"):
            return False
        method, path = scope["method"], scope["path"]
        for (m, regex), route in self.routes.items():
            if m == method and (found := regex.match(path)) is not None:
                await self._serve(route, found.groupdict(), scope, receive, send)
                return True
        return False

    async def _serve(self, route: Route, params: dict[str, str], scope: Scope,
                     receive: Receive, send: Send) -> None:
        start = perf_counter()
        info = scope[SCOPE_KEY] = RequestInfo(request_id(scope["headers"]))
        token = REQUEST_ID.set(info.request_id)
        status = 0
        ready = 0.0
        try:
            response, fatal = await self._answer(route, params, scope, receive, send)
            if fatal is None:
                response.raw_headers.append((HEADER, info.request_id.encode("ascii")))
            else:  # the catch-all handler names the request itself
                info.code = info.code or "internal_error"
            status = response.status_code
            ready = perf_counter()
            await response(scope, receive, send)
            if fatal is not None:
                raise fatal  # answered; re-raised as Starlette's error middleware does
            if faults.POINT is not None and status < 300:
                faults.reached("offer_after_reply")  # test-only (gateway/faults.py)
        except BaseException:
            if not status:
                status = 500
                info.code = info.code or "internal_error"
            raise
        finally:
            end = perf_counter()
            finish(scope, info, status, start, ready or end, end)
            REQUEST_ID.reset(token)

    async def _answer(self, route: Route, params: dict[str, str], scope: Scope,
                      receive: Receive, send: Send) -> tuple[Response, Exception | None]:
        """The response, and the exception the catch-all answered (to re-raise once sent)."""
        refused, limit = admit_body(scope, self.limits)
        if refused is not None:  # as gateway.bounds answers ahead of the router
            return problem_response(refused, scope["path"]), None
        # what Router and Route would put in the scope (path params are plain strings here)
        scope["endpoint"] = route.endpoint
        scope["path_params"] = {**scope.get("path_params", {}), **params}
        scope["route"] = route
        request = Request(scope, bounded_receive(receive, limit, self.limits), send)
        try:
            return await route.endpoint(request), None
        except Exception as exc:
            handler, catch_all = self._handler(exc)
            if handler is None:
                raise
            return await handler(request, exc), (exc if catch_all else None)

    def _handler(self, exc: Exception) -> tuple[Handler | None, bool]:
        """The registered handler of the exception's nearest class, as Starlette finds it,
        and whether it is the catch-all ``Exception`` handler."""
        for cls in type(exc).__mro__:
            if cls in self.handlers:
                return self.handlers[cls], cls is Exception
        return None, False
