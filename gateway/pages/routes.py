"""Every page route and the static files, mounted by the ``api`` role (``gateway.app``)."""

from __future__ import annotations

from pathlib import Path

from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from gateway.pages import desk, desk_users, exporter, exporter_apply, operator, operator_banks

STATIC = Path(__file__).resolve().parent.parent / "static"

PAGES: list[BaseRoute] = [*desk.ROUTES, *desk_users.ROUTES, *exporter.ROUTES,
                          *exporter_apply.ROUTES, *operator.ROUTES, *operator_banks.ROUTES,
                          Mount("/static", StaticFiles(directory=STATIC), name="static")]
