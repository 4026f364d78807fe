"""The bank desk's pages (``/desk``): login and activation, the pool of open rounds, a round
with its offer form, the bank's own offers and — only after the bank's first offer — the live
masked book; after the close, the result.

Every page calls the bank's own use cases as the bank (``BrowserSession.bank``), renders what
``gateway.views`` renders for the API (the same masking) and takes its stream ticket through
the session (``POST /desk/ticket``): there is no path around a rule of the API here.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import segno
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from auction.model import RoundState
from gateway import views
from gateway.contract.requests import OfferTermsBody, read
from gateway.http import offer_idempotency, passed, portal, throttled
from gateway.pages import i18n
from gateway.pages.web import CSRF_FIELD, Page, csrf_ok, page_of, refused, safe_next
from gateway.problems import Problem
from gateway.routes import ids
from usecases.accounts import Registered
from usecases.bidding import Accepted, BankResult, BookSeen, RoundDetail
from usecases.outcomes import Draft, Refusal
from usecases.sessions import BrowserSession, session_key

MAX_FIELDS = 30  # a page's form has fewer fields than this


def N_(message: str) -> str:
    """A message for the catalogue, translated where it is shown."""
    return message


#: what a field error says, by the rule's code (the API's codes, auction.rules and the parser)
FIELD_MESSAGES = {
    "not_positive": N_("Must be greater than zero."),
    "too_high": N_("Must be at most 500 percent a year."),
    "above_requested": N_("Must not exceed the requested loan amount."),
    "below_minimum": N_("Below the minimum for this loan type."),
    "above_maximum": N_("Above the maximum for this loan type."),
    "negative": N_("Must not be negative."),
    "not_below_tenor": N_("The grace period must be shorter than the tenor."),
    "unsupported": N_("Choose one of the listed repayment periods."),
    "not_below_amount": N_("The fee must be below the offer amount."),
    "too_long": N_("Too long."),
    "invalid_characters": N_("Contains characters that are not allowed."),
    "no_apr": N_("These terms have no meaningful all-in cost."),
    "currency_mismatch": N_("Not the round's currency."),
    "required": N_("Required."),
}
OTHER_FIELD_ERROR = N_("Not a valid value.")
#: what a refusal says on a page, by its code
REFUSALS = {
    "unauthorized": N_("Wrong e-mail, password or code."),
    "totp_invalid": N_("Wrong one-time code."),
    "totp_reused": N_("This one-time code was already used: wait for the next one."),
    "locked": N_("Too many failed attempts: the account is locked. Contact the guarantee "
                 "institution."),
    "not_activated": N_("The account is not activated yet: use your activation code."),
    "deactivated": N_("This account was deactivated: ask your bank's administrator or the "
                      "guarantee institution."),
    "rate_limited": N_("Too many attempts: wait a few minutes and try again."),
    "round_closed": N_("The round is closed: no more offers."),
    "offer_limit": N_("Your bank keeps as many live offers in this round as it may: revise "
                      "one of them instead."),
    "forbidden": N_("A viewer sees books and results; only a trader may offer."),
    "not_found": N_("No such round or offer."),
    "idempotency_mismatch": N_("This form was already sent with other values: reload the "
                               "page."),
}
OTHER_REFUSAL = N_("The request was refused.")
OFFER_FIELDS = ("annual_rate", "amount", "tenor_months", "grace_months",
                "repayment_every_months", "upfront_fee", "assumes_export_commitment",
                "conditions")
INT_FIELDS = frozenset({"tenor_months", "grace_months", "repayment_every_months"})
REPAYMENT_PERIODS = (1, 2, 3, 4, 6, 12)


def refusal_text(page: Page, r: Refusal | Problem) -> str:
    return page._(REFUSALS.get(r.code, OTHER_REFUSAL))


async def _form(request: Request, max_fields: int = MAX_FIELDS) -> Mapping[str, Any]:
    form = await request.form(max_files=0, max_fields=max_fields)
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _desk(page: Page) -> bool:
    return page.session is not None and page.session.kind == "desk"


def _to_login(page: Page) -> Response:
    return page.redirect("/desk/login?next=" + page.request.url.path)


# ----------------------------------------------------------------------------- account
async def home(request: Request) -> Response:
    page = await page_of(request)
    return page.redirect("/desk/rounds" if _desk(page) else "/desk/login")


async def login(request: Request) -> Response:
    async def check(email: str, password: Any, code: Any) -> Any:
        return await portal(request).accounts.desk_login(email, password, code)

    async def start(user: Any) -> Started:
        return await portal(request).sessions.start("desk", user.id, user.full_name,
                                                    user.bank_id, user.role)

    return await sign_in(request, "desk", "desk_login", "/desk/rounds", check, start)


async def logout(request: Request) -> Response:
    return await sign_out(request, "/desk/login")


Check = Callable[[str, Any, Any], Awaitable[Any]]
#: a new session (its id, the session), or None: the person's sessions were just revoked
Started = tuple[str, BrowserSession] | None


async def sign_in(request: Request, kind: str, route: str, home: str, check: Check,
                  start: Callable[[Any], Awaitable[Started]]) -> Response:
    """A person's sign-in page (``login.html``), a desk user's, an exporter's or an operator's: the
    API's login use case (``check``: the user, or a Refusal) behind the route's rate limits
    (``route``), a new session (``start``) replacing any older one, then ``next`` or
    ``home``."""
    page = await page_of(request)
    template = "login.html"
    if request.method == "GET":
        if page.session is not None and page.session.kind == kind:
            return page.redirect(home)
        return page.render(template, kind=kind, next=request.query_params.get("next", ""))
    form = await _form(request)
    if not csrf_ok(page, form):
        return refused(page)
    email = str(form.get("email", ""))[:320]
    error: str | None = None
    started: Started = None
    try:
        acct = await throttled(request, route, email)
        user = await check(email, form.get("password", ""), form.get("code", ""))
    except Problem as p:
        if p.code != "rate_limited":
            raise
        error = refusal_text(page, p)
    else:
        if isinstance(user, Refusal):
            error = refusal_text(page, user)
    if error is None:
        await passed(request, route, acct)
        if page.sid:  # a new login never keeps an older session
            await portal(request).sessions.end(page.sid)
        started = await start(user)
        if started is None:  # deactivated while signing in
            error = refusal_text(page, Refusal("unauthorized", ""))
    if error is not None or started is None:
        return page.render(template, 401, kind=kind, error=error, email=email,
                           next=form.get("next", ""))
    sid = started[0]
    return page.start_session(page.redirect(safe_next(str(form.get("next", "")), home)), sid)


async def sign_out(request: Request, login_path: str) -> Response:
    page = await page_of(request)
    form = await _form(request)
    if not csrf_ok(page, form):
        return refused(page)
    if page.sid:
        await portal(request).sessions.end(page.sid)
    return page.end_session(page.redirect(login_path))


def _qr_svg(uri: str) -> str:
    """The authenticator's QR code as an SVG data: URL (the CSP allows data: images)."""
    return str(segno.make(uri, error="m").svg_data_uri(scale=5, border=2))


async def activate(request: Request) -> Response:
    accounts = portal(request).accounts
    return await activation(request, "desk", "desk_activate", accounts.start_desk_activation,
                            accounts.finish_desk_activation)


Start = Callable[[object, object, str], Awaitable[Registered | Refusal]]
Finish = Callable[[object, object, object], Awaitable[str | Refusal]]


async def activation(request: Request, kind: str, route: str, start: Start,
                     finish: Finish) -> Response:
    """A person's activation page (``activate.html``), a desk user's or an
    operator's, in two steps: the activation code and a password (then the QR code of a new
    authenticator: ``start``), then a first one-time code (``finish``), behind the route's
    rate limits (``route``); then the sign-in page."""
    page = await page_of(request)
    template = "activate.html"
    if request.method == "GET":
        return page.render(template, kind=kind, step="password",
                           email=request.query_params.get("email", "")[:320])
    form = await _form(request)
    if not csrf_ok(page, form):
        return refused(page)
    email = str(form.get("email", ""))[:320]
    code = str(form.get("activation_code", ""))[:200]
    try:
        await throttled(request, route, email)
    except Problem as p:
        if p.code != "rate_limited":
            raise
        return page.render(template, 429, kind=kind, step="password", email=email,
                           error=refusal_text(page, p))
    if form.get("step") == "code":
        done = await finish(email, code, form.get("code", ""))
        if isinstance(done, Refusal):
            if done.code == "totp_invalid":
                return page.render(template, 401, kind=kind, step="code", email=email,
                                   activation_code=code, error=refusal_text(page, done),
                                   **_authenticator(form))
            return page.render(template, 401, kind=kind, step="password", email=email,
                               error=refusal_text(page, done))
        return page.redirect(f"/{kind}/login?activated=1")
    password = str(form.get("password", ""))
    errors: dict[str, str] = {}
    if not 12 <= len(password) <= 128:
        errors["password"] = page._("Choose a password of 12 to 128 characters.")
    elif password != form.get("password2", ""):
        errors["password2"] = page._("The two passwords differ.")
    if errors:
        return page.render(template, 422, kind=kind, step="password", email=email,
                           activation_code=code, errors=errors)
    started = await start(email, code, password)
    if isinstance(started, Refusal):
        return page.render(template, 401, kind=kind, step="password", email=email,
                           error=refusal_text(page, started))
    return page.render(template, kind=kind, step="code", email=email, activation_code=code,
                       totp_uri=started.totp_uri, qr=_qr_svg(started.totp_uri),
                       secret=_secret_of(started.totp_uri))


def _secret_of(uri: str) -> str:
    from urllib.parse import parse_qs, urlsplit
    return parse_qs(urlsplit(uri).query).get("secret", [""])[0]


def _authenticator(form: Mapping[str, Any]) -> dict[str, str]:
    """The QR code again, for a second try of step two (from the secret the form carries)."""
    uri = str(form.get("totp_uri", ""))
    if not uri.startswith("otpauth://") or len(uri) > 500:
        return {}
    return {"totp_uri": uri, "qr": _qr_svg(uri), "secret": _secret_of(uri)}


async def switch_language(request: Request) -> Response:
    page = await page_of(request)
    form = await _form(request)
    if not csrf_ok(page, form):
        return refused(page)
    want = i18n.lang_of(str(form.get("lang", "")))
    out = page.redirect(safe_next(str(form.get("next", "")), "/desk"))
    out.set_cookie(i18n.COOKIE, want, max_age=365 * 24 * 3600, httponly=True,
                   samesite="lax", secure=request.url.scheme == "https", path="/")
    return out


# ----------------------------------------------------------------------------- the pool
async def _pool_items(request: Request, page: Page) -> list[dict[str, Any]]:
    assert page.session is not None and page.session.bank_id is not None
    got = await portal(request).bidding.pool(page.session.bank_id, "open", 200, None)
    return [{"r": views.round_out(row, has), "closes_ms": row.closes_at}
            for row, has in got.rounds]


async def pool(request: Request) -> Response:
    page = await page_of(request)
    if not _desk(page):
        return _to_login(page)
    return page.render("desk/pool.html", items=await _pool_items(request, page))


async def pool_rows(request: Request) -> Response:
    """The pool's rows alone: the page fetches them when the stream says a round opened."""
    page = await page_of(request)
    if not _desk(page):
        return page.render("error.html", 401, title=page._("Signed out"),
                           message=page._("Sign in again."))
    return page.render("desk/pool_rows.html", items=await _pool_items(request, page))


# ----------------------------------------------------------------------------- a round
def _offer_values(form: Mapping[str, Any]) -> dict[str, Any]:
    """The form's fields as the API's JSON body would carry them (numbers written with a
    decimal comma are read too); what does not convert is left for the parser to name."""
    out: dict[str, Any] = {}
    for name in OFFER_FIELDS:
        raw = form.get(name)
        if name == "assumes_export_commitment":
            out[name] = raw in ("1", "on", "true")
            continue
        if raw is None:
            continue
        text = str(raw).strip()
        if name == "conditions":
            out[name] = str(raw)
        elif name in INT_FIELDS:
            out[name] = int(text) if text.isdigit() and len(text) < 6 else text
        else:
            if "," in text and "." not in text:
                text = text.replace(",", ".")
            out[name] = text.replace(" ", "")
    return out


async def _round_context(request: Request, page: Page, round_id: str
                         ) -> dict[str, Any] | Refusal:
    assert page.session is not None and page.session.bank_id is not None
    bank_id = page.session.bank_id
    p = portal(request)
    detail = await p.bidding.round(bank_id, round_id)
    if isinstance(detail, Refusal):
        return detail
    assert isinstance(detail, RoundDetail)
    got = await p.terms.get(round_id)
    limits = got[1] if got is not None else None
    row = detail.round
    # the exporter's bank preferences: this bank is told whether it is one, never the list
    bank = await p.accounts.bank(bank_id)
    preferred = bank is not None and bank.code in (row.assessment or {}).get(
        "preferred_banks", ())
    ctx: dict[str, Any] = {
        "preferred": preferred,
        "round": views.round_detail(detail), "closes_ms": row.closes_at,
        "is_open": row.state == RoundState.OPEN.value, "has_bid": detail.has_bid,
        "limits": limits, "repayment_periods": REPAYMENT_PERIODS,
        "book": None, "result": None, "history": {},
    }
    if detail.has_bid:
        seen = await p.bidding.book(bank_id, round_id)
        if isinstance(seen, BookSeen):
            ctx["book"] = views.book(seen, bank_id)
        hist = await p.bidding.history(bank_id, round_id)
        if not isinstance(hist, Refusal):
            by_offer: dict[str, list[dict[str, Any]]] = {}
            for v in hist:
                by_offer.setdefault(v.offer_id, []).append(dict(views.offer_of(v, None)))
            for versions in by_offer.values():
                versions.sort(key=lambda o: -int(o["version"]))
            ctx["history"] = by_offer
    if not ctx["is_open"] and detail.has_bid:
        res = await p.bidding.result(bank_id, round_id)
        if isinstance(res, BankResult):
            out = views.bank_result(res)
            ctx["result"] = out
            ctx["chosen"] = any(o["chosen"] for o in out["my_offers"])
            ctx["accepted"] = res.acceptance is not None
    return ctx


def _blank_offer(r: Mapping[str, Any]) -> dict[str, Any]:
    return {"annual_rate": "", "amount": r["loan_amount"], "tenor_months": r["tenor_months"],
            "grace_months": r["grace_months"], "repayment_every_months": 1,
            "upfront_fee": "0.00", "assumes_export_commitment": r["export_commitment"],
            "conditions": ""}


async def round_page(request: Request, form_for: str | None = None,
                     values: Mapping[str, Any] | None = None,
                     errors: Mapping[str, str] | None = None, error: str | None = None,
                     status: int = 200) -> Response:
    page = await page_of(request)
    if not _desk(page):
        return _to_login(page)
    rid = request.path_params["round_id"]
    ctx = await _round_context(request, page, rid)
    if isinstance(ctx, Refusal):
        return page.render("error.html", 404, title=page._("No such round"),
                           message=refusal_text(page, ctx))
    ctx["new_offer"] = dict(values) if form_for == "new" and values is not None \
        else _blank_offer(ctx["round"])
    ctx.update(form_for=form_for, form_values=values or {}, errors=errors or {},
               error=error, idem=secrets.token_urlsafe(16),
               done=request.query_params.get("done"))
    return page.render("desk/round.html", status, **ctx)


async def post_offer(request: Request) -> Response:
    """A new offer (``/offers``) or a revision (``/offers/{offer_id}``) from the form."""
    page = await page_of(request)
    if not _desk(page):
        return _to_login(page)
    form = await _form(request)
    if not csrf_ok(page, form):
        return refused(page)
    assert page.session is not None and page.session.bank_id is not None
    rid = request.path_params["round_id"]
    offer_id = request.path_params.get("offer_id")
    values = _offer_values(form)
    got = read(OfferTermsBody, values)
    raw = json.dumps(values, sort_keys=True).encode()
    key = str(form.get("idem", ""))[:64] or None
    idem = offer_idempotency(page.session.bank_id, key, "PUT" if offer_id else "POST",
                             request.url.path, raw)
    done = await portal(request).desk.offer(page.session, rid, offer_id,
                                            Draft(got.values, got.errors), idem)
    if isinstance(done, Accepted):
        return page.redirect(f"/desk/rounds/{rid}?done={'revised' if offer_id else 'sent'}"
                             "#my-offers")
    errors = {e.field: page._(FIELD_MESSAGES.get(e.code, OTHER_FIELD_ERROR))
              for e in done.errors or ()}
    shown = {**values, "offer_id": offer_id}
    status = 422 if done.errors else (404 if done.code == "not_found" else 409)
    if done.code == "forbidden":
        status = 403
    return await round_page(request, offer_id or "new", shown, errors,
                            None if done.errors else refusal_text(page, done), status)


def ticket_for(kind: str) -> Any:
    """``POST /<kind>/ticket``: a stream ticket for the page's WebSocket, issued for the
    session's principal exactly as for an API client (the bank of a desk user; the exporter),
    with the session's CSRF token in ``X-CSRF-Token``."""

    async def ticket(request: Request) -> Response:
        page = await page_of(request)
        if page.session is None or page.session.kind != kind or not csrf_ok(page, None):
            return JSONResponse({"code": "unauthorized"}, status_code=403)
        t = await portal(request).accounts.issue_ticket(page.session.principal,
                                                        session_key(page.sid or ""))
        return JSONResponse({"ticket": t.ticket, "expires_in": t.expires_in,
                             "server_time": portal(request).deps.clock()}, status_code=201)

    return ticket


async def one_round(request: Request) -> Response:
    return await round_page(request)


ROUTES: list[BaseRoute] = [
    Route("/desk", home),
    Route("/desk/login", login, methods=["GET", "POST"]),
    Route("/desk/logout", logout, methods=["POST"]),
    Route("/desk/activate", activate, methods=["GET", "POST"]),
    Route("/lang", switch_language, methods=["POST"]),
    Route("/desk/rounds", pool),
    Route("/desk/rounds/rows", pool_rows),
    Route(ids.path("/desk/rounds/{round_id}"), one_round),
    Route(ids.path("/desk/rounds/{round_id}/offers"), post_offer, methods=["POST"]),
    Route(ids.path("/desk/rounds/{round_id}/offers/{offer_id}"), post_offer, methods=["POST"]),
    Route("/desk/ticket", ticket_for("desk"), methods=["POST"]),
]

__all__ = ["CSRF_FIELD", "ROUTES"]
