"""The HTTP and WebSocket routes, one module per audience. Each route is a thin adapter: parse
the request, call one use case, render its result (``gateway.views``) or map its refusal to a
problem (``gateway.problems``).

Which routes a process serves depends on its roles (``gateway.settings.ROLES``): every role
serves the health checks (and ``/metrics``); ``api`` the HTTP API, its documents and the stream
tickets; ``stream`` the WebSocket. A process with every role (the default) serves them all.
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.routing import BaseRoute

from gateway.routes import admin, bank, exporter, public, stream

__all__ = ["ROUTES", "routes_for"]


def routes_for(roles: Collection[str]) -> list[BaseRoute]:
    out: list[BaseRoute] = [*bank.OFFERS] if "api" in roles else []
    out += public.HEALTH
    if "api" in roles:
        out += [*public.ROUTES, *bank.ROUTES, *exporter.ROUTES, *stream.TICKETS, *admin.ROUTES]
    if "stream" in roles:
        out += stream.WEBSOCKET
    return out


ROUTES: list[BaseRoute] = routes_for(("api", "stream", "worker"))
