"""The operator's console (``/operator``): sign-in and activation (the desk users' two steps and
the login rule of every person here), the rounds counted and listed by state, a round's full
unmasked history, the audit trail with filters, the applications and their decision records.
The banks, their API clients and desk users are ``gateway.pages.operator_banks``.

Every page is for an operator's session only (any other session, or none, is sent to the
sign-in); it reads through the operator's use cases (``usecases.console``, ``Applying``) and
renders the API's shapes (``gateway.views``). Query strings are read with the contract's
parsers (``gateway.contract``): a bad value is named next to its field and nothing is read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from auction.model import dt_to_ms, minor_to_money
from gateway import views
from gateway.contract import fields as F
from gateway.contract import limits as L
from gateway.contract.errors import FieldProblem
from gateway.contract.reading import RequestModel, Wire, read
from gateway.contract.schema import string
from gateway.http import portal
from gateway.pages import i18n
from gateway.pages.desk import (
    N_,
    OTHER_FIELD_ERROR,
    Started,
    activation,
    sign_in,
    sign_out,
)
from gateway.pages.web import Page, page_of
from gateway.routes import ids
from usecases.console import STATES, AuditFilter, RoundHistory
from usecases.operator import RoundView
from usecases.outcomes import Refusal

HOME = "/operator"
#: the states' names on the pages
STATE_NAMES = {"open": N_("Open"), "closed": N_("Closed (binding)"),
               "accepted": N_("Accepted"), "lapsed": N_("Lapsed")}
#: what a query field that the parser refused says
QUERY_MESSAGES = {
    "state": N_("Choose one of the listed states."),
    "round_id": N_("Not a round id."),
    "actor": N_("An actor is a kind and maybe an id, e.g. admin, bank:bnk_… or "
                "operator:opr_…."),
    "action": N_("An action is lower-case letters and _, e.g. offer_submitted."),
    "since": N_("A date and time, e.g. 2026-11-30T09:00."),
    "until": N_("A date and time, e.g. 2026-11-30T18:00."),
    "after": N_("Not a page of this list."),
    "before": N_("Not a page of this list."),
    "application_id": N_("Not an application id."),
}
#: audit actions the filter suggests (any other well-formed one may be typed)
KNOWN_ACTIONS = ("application_decided", "application_refused", "application_round_opened",
                 "bank_created", "company_matched", "consent_given", "consent_withdrawn",
                 "desk_offer", "desk_user_activated", "desk_user_created",
                 "desk_user_deactivated", "client_secret_rotated", "exporter_activated",
                 "exporter_unlocked", "guarantee_recorded", "offer_accepted", "offer_revised",
                 "offer_submitted", "operator_activated", "operator_created", "round_closed",
                 "round_lapsed", "round_opened")


# ----------------------------------------------------------------------------- queries
def _state(v: Any) -> str:
    if v not in STATES:
        raise FieldProblem("invalid", "one of " + ", ".join(STATES))
    return str(v)


def _keyset(v: Any) -> str:
    """A page's keyset as the console writes it: ``<ms>.<id>``."""
    ms, _, ident = str(v).partition(".")
    if not (ms.isdigit() and len(ms) <= 15 and ident):
        raise FieldProblem("invalid", "not a page of this list")
    F.ident(L.PATH_ID_MAX)(ident)
    return str(v)


def _local_time(v: Any) -> datetime:
    """A time as the page's ``datetime-local`` field sends it, in Istanbul (or with an
    offset)."""
    text = str(v)
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise FieldProblem("invalid", "a date and time") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=i18n.ZONE)
    if not L.YEAR_MIN <= t.year <= L.YEAR_MAX or len(text) > 40:
        raise FieldProblem("out_of_range", "a date and time")
    return t


def _audit_id(v: Any) -> int:
    n = F.digits_in_range(1, L.AUDIT_ID_MAX)(str(v))
    if n is None:
        raise FieldProblem("invalid", "not a page of this list")
    return n


class RoundsQuery(RequestModel):
    """GET /operator/rounds."""

    state: Annotated[str, Wire(_state, string("A state."), empty_is_missing=True)] = "open"
    after: Annotated[str | None, Wire(_keyset, string("The next page."),
                                      empty_is_missing=True)] = None


class AuditPageQuery(RequestModel):
    """GET /operator/audit: the filters (each optional) and the page."""

    round_id: Annotated[str | None, Wire(F.ident(L.PATH_ID_MAX), string("A round."),
                                         empty_is_missing=True)] = None
    actor: Annotated[str | None, Wire(F.actor, string("An actor."),
                                      empty_is_missing=True)] = None
    action: Annotated[str | None, Wire(F.action, string("An action."),
                                       empty_is_missing=True)] = None
    since: Annotated[datetime | None, Wire(_local_time, string("From."),
                                           empty_is_missing=True)] = None
    until: Annotated[datetime | None, Wire(_local_time, string("Until."),
                                           empty_is_missing=True)] = None
    before: Annotated[int | None, Wire(_audit_id, string("The next page."),
                                       empty_is_missing=True)] = None


class ApplicationsQuery(RequestModel):
    """GET /operator/applications: a page, or one application by its id."""

    after: Annotated[str | None, Wire(_keyset, string("The next page."),
                                      empty_is_missing=True)] = None
    application_id: Annotated[str | None, Wire(F.ident(L.PATH_ID_MAX), string(
        "An application."), empty_is_missing=True)] = None


def query_errors(page: Page, errors: list[Any]) -> dict[str, str]:
    return {e.field: page._(QUERY_MESSAGES.get(e.field, OTHER_FIELD_ERROR))
            for e in errors}


# ----------------------------------------------------------------------------- helpers
def is_operator(page: Page) -> bool:
    return page.session is not None and page.session.kind == "operator"


def to_login(page: Page) -> Response:
    return page.redirect("/operator/login?next=" + page.request.url.path)


def not_found(page: Page, title: str) -> Response:
    return page.render("error.html", 404, title=page._(title),
                       message=page._("Nothing here has this id."))


# ----------------------------------------------------------------------------- account
async def home(request: Request) -> Response:
    page = await page_of(request)
    if not is_operator(page):
        return page.redirect("/operator/login")
    counts = await portal(request).console.counts()
    return page.render("operator/dashboard.html", counts=counts, states=STATES,
                       state_names=STATE_NAMES, total=sum(counts.values()))


async def login(request: Request) -> Response:
    async def check(email: str, password: Any, code: Any) -> Any:
        return await portal(request).operators.login(email, password, code)

    async def start(user: Any) -> Started:
        return await portal(request).sessions.start("operator", user.id, user.full_name)

    return await sign_in(request, "operator", "operator_login", HOME, check, start)


async def logout(request: Request) -> Response:
    """Ends an operator's session; another kind's session is not the console's to end."""
    page = await page_of(request)
    if not is_operator(page):
        return page.redirect("/operator/login")
    return await sign_out(request, "/operator/login")


async def activate(request: Request) -> Response:
    ops = portal(request).operators
    return await activation(request, "operator", "operator_activate", ops.start_activation,
                            ops.finish_activation)


# ----------------------------------------------------------------------------- rounds
async def rounds(request: Request) -> Response:
    page = await page_of(request)
    if not is_operator(page):
        return to_login(page)
    got = read(RoundsQuery, dict(request.query_params))
    state = str(got.values.get("state") or "open") if "state" not in got.bad else "open"
    ctx: dict[str, Any] = {"state": state, "states": STATES, "state_names": STATE_NAMES,
                           "errors": query_errors(page, got.errors), "rows": [],
                           "next": None}
    if got.model is None:
        return page.render("operator/rounds.html", 422, **ctx)
    q = got.model
    console = portal(request).console
    listed = await console.rounds(q.state, q.after)
    ctx.update(rows=[views.admin_round(r) for r in listed.rows], next=listed.next,
               counts=await console.counts(), paged=q.after is not None)
    return page.render("operator/rounds.html", **ctx)


def _history(h: RoundHistory) -> dict[str, Any]:
    """A round's history as the page shows it: the API's shapes, unmasked."""
    offers = []
    for oid in h.offers:
        versions = h.of_offer(oid)
        if not versions:
            continue  # in the live book, not yet copied to SQL (a fraction of a second)
        code, name = h.banks.get(versions[0].bank_id, ("?", "?"))
        offers.append({
            "offer_id": oid, "bank_id": versions[0].bank_id, "bank_code": code,
            "bank_name": name, "label": versions[0].label, "rank": h.ranks.get(oid),
            "versions": [dict(views.offer_of(v, None)) for v in reversed(versions)],
            "chosen": h.acceptance is not None and h.acceptance.offer_id == oid})
    actors = {f"bank:{b}": f"{c} · {n}" for b, (c, n) in h.banks.items()}
    events = [{"id": e.id, "at": e.at, "actor": e.actor, "actor_name": actors.get(e.actor),
               "action": e.action, "detail": views.audit_detail(e.detail)} for e in h.events]
    return {"r": views.admin_round_view(RoundView(h.round, h.closing)), "offers": offers,
            "final": h.final, "events": events, "more_events": h.more_events,
            "closing": h.closing, "acceptance": h.acceptance,
            "versions_count": len(h.versions)}


async def one_round(request: Request) -> Response:
    page = await page_of(request)
    if not is_operator(page):
        return to_login(page)
    h = await portal(request).console.history(request.path_params["round_id"])
    if isinstance(h, Refusal):
        return not_found(page, N_("No such round"))
    return page.render("operator/round.html", state_names=STATE_NAMES, **_history(h))


# ----------------------------------------------------------------------------- audit
async def audit(request: Request) -> Response:
    page = await page_of(request)
    if not is_operator(page):
        return to_login(page)
    raw = {k: v[:200] for k, v in request.query_params.items()}
    got = read(AuditPageQuery, raw)
    ctx: dict[str, Any] = {"f": raw, "errors": query_errors(page, got.errors), "rows": [],
                           "next": None, "actions": KNOWN_ACTIONS}
    if got.model is None:
        return page.render("operator/audit.html", 422, **ctx)
    q = got.model
    f = AuditFilter(q.round_id, q.actor, q.action, dt_to_ms(q.since) if q.since else None,
                    dt_to_ms(q.until) if q.until else None)
    listed = await portal(request).console.audit(f, q.before)
    names = {f"bank:{b.id}": f"{b.code} · {b.name}"
             for b in await portal(request).accounts.banks()}  # the partner banks: a few dozen
    rows = [{"id": r.id, "at": r.at, "actor": r.actor, "actor_name": names.get(r.actor),
             "action": r.action, "round_id": r.round_id,
             "detail": views.audit_detail(r.detail)} for r in listed.rows]
    keep = {k: v for k, v in raw.items() if k != "before" and v}
    ctx.update(rows=rows, next=listed.next, keep=keep, filtered=bool(keep),
               paged=q.before is not None)
    return page.render("operator/audit.html", **ctx)


# ----------------------------------------------------------------------------- applications
async def applications(request: Request) -> Response:
    page = await page_of(request)
    if not is_operator(page):
        return to_login(page)
    got = read(ApplicationsQuery, dict(request.query_params))
    ctx: dict[str, Any] = {"errors": query_errors(page, got.errors), "rows": [], "next": None,
                           "wanted": request.query_params.get("application_id", "")[:100]}
    if got.model is None:
        return page.render("operator/applications.html", 422, **ctx)
    q = got.model
    if q.application_id:  # the search: straight to the record when there is one
        if await portal(request).applying.application(q.application_id) is not None:
            return page.redirect(f"/operator/applications/{q.application_id}")
        ctx["errors"] = {"application_id": page._("No application has this id.")}
        return page.render("operator/applications.html", 404, **ctx)
    listed = await portal(request).console.applications(q.after)
    rows = [{"id": a.id, "created_at": a.created_at, "status": a.status, "score": a.score,
             "company": ((a.inputs or {}).get("applicant") or {}).get("name") or a.tax_id,
             "by_operator": (a.decision or {}).get("decided_by") == "operator",
             "loan_amount": minor_to_money(a.loan_amount), "currency": a.currency,
             "round_id": a.round_id} for a in listed.rows]
    ctx.update(rows=rows, next=listed.next, paged=q.after is not None)
    return page.render("operator/applications.html", **ctx)


async def application(request: Request) -> Response:
    """The decision record: every input the decision read and every number of the package
    it was decided under (``GET /v1/admin/applications/{id}``'s view)."""
    page = await page_of(request)
    if not is_operator(page):
        return to_login(page)
    found = await portal(request).applying.application(request.path_params["application_id"])
    if found is None:
        return not_found(page, N_("No such application"))
    return page.render("operator/application.html", a=views.operator_application(found),
                       state_names=STATE_NAMES)


ROUTES: list[BaseRoute] = [
    Route("/operator", home),
    Route("/operator/login", login, methods=["GET", "POST"]),
    Route("/operator/logout", logout, methods=["POST"]),
    Route("/operator/activate", activate, methods=["GET", "POST"]),
    Route("/operator/rounds", rounds),
    Route(ids.path("/operator/rounds/{round_id}"), one_round),
    Route("/operator/audit", audit),
    Route("/operator/applications", applications),
    Route(ids.path("/operator/applications/{application_id}"), application),
]
