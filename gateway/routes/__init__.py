"""The HTTP and WebSocket routes, one module per audience. Each route is a thin adapter: parse
the request, call one use case, render its result (``gateway.views``) or map its refusal to a
problem (``gateway.problems``)."""

from __future__ import annotations

from starlette.routing import BaseRoute

from gateway.routes import admin, bank, exporter, public, stream

ROUTES: list[BaseRoute] = [*public.ROUTES, *bank.ROUTES, *exporter.ROUTES, *stream.ROUTES,
                           *admin.ROUTES]
