"""Public routes: health, the calendar, the API documents."""

from __future__ import annotations

from datetime import UTC, date, datetime

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from auction import calendar
from auction.model import iso
from gateway import metrics
from gateway.contract.docs import docs_html
from gateway.contract.openapi import spec
from gateway.contract.requests import DeadlineQuery, HolidaysQuery, parse
from gateway.http import ok, runtime


async def healthz(request: Request) -> Response:
    return ok({"status": "ok"})


async def readyz(request: Request) -> Response:
    checks = await runtime(request).health()
    good = all(v == "ok" for v in checks.values())
    return ok({"status": "ok" if good else "unavailable", "checks": checks}, 200 if good else 503)


async def metrics_text(request: Request) -> Response:
    """Prometheus text format: every process of this server (gateway/metrics.py)."""
    return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE_LATEST)


async def openapi_json(request: Request) -> Response:
    return ok(spec())


async def docs(request: Request) -> Response:
    return HTMLResponse(docs_html())


async def calendar_deadline(request: Request) -> Response:
    q = parse(DeadlineQuery, request.query_params)
    d = calendar.deadline(q.start, q.business_days, runtime(request).settings.calendar)
    return ok({"start": iso(q.start), "business_days": q.business_days, "deadline": iso(d)})


async def calendar_holidays(request: Request) -> Response:
    y = parse(HolidaysQuery, request.query_params).year or datetime.now(UTC).year
    cal = runtime(request).settings.calendar
    days = calendar.holidays_between(date(y, 1, 1), date(y, 12, 31),
                                     half_days_off=cal.half_days_off)
    return ok({"year": y, "half_days_off": cal.half_days_off,
               "holidays": [{"date": d.isoformat(), "name": n} for d, n in days]})


#: every role serves these
HEALTH: list[BaseRoute] = [
    Route("/healthz", healthz),
    Route("/readyz", readyz),
    Route("/metrics", metrics_text),
]

ROUTES: list[BaseRoute] = [
    Route("/v1/openapi.json", openapi_json),
    Route("/docs", docs),
    Route("/v1/calendar/deadline", calendar_deadline),
    Route("/v1/calendar/holidays", calendar_holidays),
]
