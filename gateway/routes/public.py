"""Public routes: health, the calendar, the API documents."""

from __future__ import annotations

from datetime import UTC, date, datetime

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from auction import calendar
from auction.model import iso
from gateway import openapi, parsing
from gateway.http import ok, runtime


async def healthz(request: Request) -> Response:
    return ok({"status": "ok"})


async def readyz(request: Request) -> Response:
    checks = await runtime(request).health()
    good = all(v == "ok" for v in checks.values())
    return ok({"status": "ok" if good else "unavailable", "checks": checks}, 200 if good else 503)


async def openapi_json(request: Request) -> Response:
    return ok(openapi.spec())


async def docs(request: Request) -> Response:
    return HTMLResponse(openapi.docs_html())


async def calendar_deadline(request: Request) -> Response:
    start, n = parsing.deadline_query(dict(request.query_params))
    d = calendar.deadline(start, n, runtime(request).settings.calendar)
    return ok({"start": iso(start), "business_days": n, "deadline": iso(d)})


async def calendar_holidays(request: Request) -> Response:
    y = parsing.year_query(dict(request.query_params), datetime.now(UTC).year)
    cal = runtime(request).settings.calendar
    days = calendar.holidays_between(date(y, 1, 1), date(y, 12, 31),
                                     half_days_off=cal.half_days_off)
    return ok({"year": y, "half_days_off": cal.half_days_off,
               "holidays": [{"date": d.isoformat(), "name": n} for d, n in days]})


ROUTES: list[BaseRoute] = [
    Route("/healthz", healthz),
    Route("/readyz", readyz),
    Route("/v1/openapi.json", openapi_json),
    Route("/docs", docs),
    Route("/v1/calendar/deadline", calendar_deadline),
    Route("/v1/calendar/holidays", calendar_holidays),
]
