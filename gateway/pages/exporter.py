"""The exporter's pages (``/exporter``): register, activate with the authenticator's QR code,
log in; the applications with their decisions; an application's status with the countdown to
the close (no offer data before it: the use case refuses, the page shows nothing), and at the
close, live, the results as a table and a chart, the reference number, the binding deadline and
an accept button that works once and asks for confirmation.

The same use cases as the API's exporter routes (``Accounts``, ``Applying``, ``Results``), the
same shapes (``gateway.views``); the stream ticket is the exporter's own."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway import views
from gateway.contract.requests import RegisterBody, read
from gateway.http import passed, portal, throttled
from gateway.pages.desk import (
    FIELD_MESSAGES,
    N_,
    OTHER_FIELD_ERROR,
    Started,
    _form,
    _qr_svg,
    _secret_of,
    refusal_text,
    sign_in,
    sign_out,
    ticket_for,
)
from gateway.pages.i18n import Formats
from gateway.pages.reasons import worded
from gateway.pages.web import Page, csrf_ok, page_of, refused
from gateway.problems import Problem
from gateway.routes import ids
from usecases.accounts import NewExporter, Registered
from usecases.outcomes import Refusal
from usecases.results import ExporterResults

REGISTER_FIELDS = ("full_name", "national_id", "email", "mobile", "password")
#: what an acceptance's refusal says (the API's codes)
ACCEPT_MESSAGES = {
    "already_accepted": N_("An offer was already accepted in this round: an acceptance is "
                           "final."),
    "binding_expired": N_("The binding period has ended: the offers no longer bind."),
    "confirm": N_("Tick the box to confirm your choice."),
}
#: what a field of the register form that the API's parser refused says, by field
REGISTER_MESSAGES = {
    "full_name": N_("Enter your full name (letters, no control characters)."),
    "email": N_("Not a valid e-mail address."),
    "national_id": N_("Not a valid Turkish national id (TCKN)."),
    "mobile": N_("Not a Turkish mobile number (+905XXXXXXXXX)."),
    "password": N_("Choose a password of 12 to 128 characters."),
}




def _exporter(page: Page) -> bool:
    return page.session is not None and page.session.kind == "exporter"


def _to_login(page: Page) -> Response:
    return page.redirect("/exporter/login?next=" + page.request.url.path)


async def home(request: Request) -> Response:
    page = await page_of(request)
    return page.redirect("/exporter/applications" if _exporter(page) else "/exporter/login")


async def register(request: Request) -> Response:
    page = await page_of(request)
    if request.method == "GET":
        return page.render("exporter/register.html", values={}, errors={})
    form = await _form(request)
    if not csrf_ok(page, form):
        return refused(page)
    values = {k: str(form.get(k, "")) for k in REGISTER_FIELDS}
    got = read(RegisterBody, values)
    if got.errors or got.model is None:
        errors = {e.field: page._(REGISTER_MESSAGES.get(
            e.field, FIELD_MESSAGES.get(e.code, OTHER_FIELD_ERROR))) for e in got.errors}
        return page.render("exporter/register.html", 422,
                           values={k: v for k, v in values.items() if k != "password"},
                           errors=errors)
    b = got.model
    try:
        await throttled(request, "register", b.email)
    except Problem as p:
        if p.code != "rate_limited":
            raise
        return page.render("exporter/register.html", 429, values=values, errors={},
                           error=refusal_text(page, p))
    reg = await portal(request).accounts.register(NewExporter(
        b.email, b.full_name, b.national_id, b.mobile, b.password))
    assert isinstance(reg, Registered)
    return page.render("exporter/activate.html", email=b.email, totp_uri=reg.totp_uri,
                       qr=_qr_svg(reg.totp_uri), secret=_secret_of(reg.totp_uri))


async def activate(request: Request) -> Response:
    page = await page_of(request)
    form = await _form(request)
    if not csrf_ok(page, form):
        return refused(page)
    email = str(form.get("email", ""))[:320]
    uri = str(form.get("totp_uri", ""))
    again: dict[str, str] = {}
    if uri.startswith("otpauth://") and len(uri) <= 500:
        again = {"totp_uri": uri, "qr": _qr_svg(uri), "secret": _secret_of(uri)}
    try:
        acct = await throttled(request, "activate", email)
    except Problem as p:
        if p.code != "rate_limited":
            raise
        return page.render("exporter/activate.html", 429, email=email,
                           error=refusal_text(page, p), **again)
    done = await portal(request).accounts.activate(email, form.get("code", ""))
    if isinstance(done, Refusal):
        return page.render("exporter/activate.html", 401, email=email,
                           error=refusal_text(page, done), **again)
    await passed(request, "activate", acct)
    return page.redirect("/exporter/login?activated=1")


async def login(request: Request) -> Response:
    async def check(email: str, password: Any, code: Any) -> Any:
        return await portal(request).accounts.exporter_login(email, password, code)

    async def start(user: Any) -> Started:
        return await portal(request).sessions.start("exporter", user.id, user.full_name)

    return await sign_in(request, "exporter", "login", "/exporter/applications", check, start)


async def logout(request: Request) -> Response:
    return await sign_out(request, "/exporter/login")


async def applications(request: Request) -> Response:
    page = await page_of(request)
    if not _exporter(page):
        return _to_login(page)
    assert page.session is not None
    states = await portal(request).applying.applications(page.session.principal)
    return page.render("exporter/applications.html",
                       items=[views.application(s) for s in states])


def chart(res: dict[str, Any]) -> dict[str, Any]:
    """The results' chart as SVG geometry (no script, no inline style): one bar per offer,
    its length the all-in cost (a picture only: the numbers are printed beside it, exact),
    best first, the best one marked, each labelled with its tenor."""
    offers = sorted(res["offers"], key=lambda o: o["rank"])
    top = max((float(o["apr"]) for o in offers), default=1.0) or 1.0
    bars = [{"y": 10 + i * 34, "w": max(2.0, 300 * float(o["apr"]) / top), "o": o,
             "best": o["rank"] == 1} for i, o in enumerate(offers)]
    return {"bars": bars, "height": 20 + 34 * len(bars)}


async def application(request: Request, error: str | None = None,
                      status: int = 200) -> Response:
    page = await page_of(request)
    if not _exporter(page):
        return _to_login(page)
    assert page.session is not None
    app_id = request.path_params["application_id"]
    p = portal(request)
    state = await p.applying.application(app_id, page.session.principal)
    if state is None:
        return page.render("error.html", 404, title=page._("No such application"),
                           message=page._("No such application."))
    app = views.application(state)
    ctx: dict[str, Any] = {"app": app, "results": None,
                           "reasons": [worded(r, Formats(page.lang), page._)
                                       for r in (app.get("decision") or {}).get("reasons", [])],
                           "closes_ms": state.round.closes_at if state.round else None,
                           "error": error}
    if state.round is not None and state.round.state != "open":
        res = await p.results.results(page.session.user_id, app_id)
        if isinstance(res, ExporterResults):
            out = views.exporter_results(res)
            ctx["results"] = out
            ctx["chart"] = chart(dict(out))
            ctx["binding_open"] = res.closing.binding_until > p.deps.clock()
    return page.render("exporter/application.html", status, **ctx)


async def accept(request: Request) -> Response:
    page = await page_of(request)
    if not _exporter(page):
        return _to_login(page)
    form = await _form(request)
    if not csrf_ok(page, form):
        return refused(page)
    assert page.session is not None
    app_id = request.path_params["application_id"]
    if form.get("confirm") != "1":
        return await application(request, page._(ACCEPT_MESSAGES["confirm"]), 422)
    done = await portal(request).results.accept(page.session.user_id, app_id,
                                                str(form.get("offer_id", ""))[:64])
    if isinstance(done, Refusal):
        text = page._(ACCEPT_MESSAGES[done.code]) if done.code in ACCEPT_MESSAGES \
            else refusal_text(page, done)
        return await application(request, text, 409 if done.code != "not_found" else 404)
    return page.redirect(f"/exporter/applications/{app_id}?accepted=1")


ROUTES: list[BaseRoute] = [
    Route("/exporter", home),
    Route("/exporter/register", register, methods=["GET", "POST"]),
    Route("/exporter/activate", activate, methods=["POST"]),
    Route("/exporter/login", login, methods=["GET", "POST"]),
    Route("/exporter/logout", logout, methods=["POST"]),
    Route("/exporter/applications", applications, methods=["GET"]),
    Route(ids.path("/exporter/applications/{application_id}"), application),
    Route(ids.path("/exporter/applications/{application_id}/accept"), accept,
          methods=["POST"]),
    Route("/exporter/ticket", ticket_for("exporter"), methods=["POST"]),
]
