"""The bid path's two routes (POST an offer, PUT a revision), served ahead of Starlette's
exception middleware and router.

Every other request goes through Starlette's stack unchanged. These two are the product's
busiest by far, and that stack's layers (the exception middleware and its per-request wrappers,
the route list, the endpoint wrapper) cost about as much as the rest of an offer's HTTP
handling: so they are matched here with the router's own patterns and answered by the same
endpoint functions (``gateway.routes.bank``), with the same exception handlers the app
registers (``gateway.app``), in the same order Starlette would look them up. What a client
sees is the same, byte for byte: the conformance and end-to-end suites run through here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway import faults

Handler = Callable[[Request, Exception], Awaitable[Response]]


class OfferFastPath:
    def __init__(self, app: ASGIApp, routes: list[Route],
                 handlers: Mapping[type[BaseException], Handler]) -> None:
        self.app = app
        self.routes = {(m, r.path_regex): r for r in routes for m in (r.methods or ())
                       if m != "HEAD"}
        self.handlers = dict(handlers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            method, path = scope["method"], scope["path"]
            for (m, regex), route in self.routes.items():
                if m == method and (found := regex.match(path)) is not None:
                    await self._serve(route, found.groupdict(), scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _serve(self, route: Route, params: dict[str, str], scope: Scope,
                     receive: Receive, send: Send) -> None:
        # what Router and Route would put in the scope (path params are plain strings here)
        scope["endpoint"] = route.endpoint
        scope["path_params"] = {**scope.get("path_params", {}), **params}
        scope["route"] = route
        request = Request(scope, receive, send)
        try:
            response: Response = await route.endpoint(request)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise  # the app's catch-all (Starlette's ServerErrorMiddleware) answers it
            response = await handler(request, exc)
        await response(scope, receive, send)
        if faults.POINT is not None and response.status_code < 300:
            faults.reached("offer_after_reply")  # test-only (gateway/faults.py)

    def _handler(self, exc: Exception) -> Handler | None:
        """The registered handler of the exception's nearest class, as Starlette finds it;
        the catch-all ``Exception`` handler is left to Starlette's outermost middleware."""
        for cls in type(exc).__mro__:
            if cls is Exception:
                return None
            if cls in self.handlers:
                return self.handlers[cls]
        return None

