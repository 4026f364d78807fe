"""HTTP + WebSocket gateway (Starlette): the public contract of ../shared/spec/API.md."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import logging
import re
import secrets
from datetime import date, datetime, timezone
from typing import Any, AsyncIterator, Awaitable, Callable

import pyotp
from redis.exceptions import RedisError
from sqlalchemy import text as sql_text
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from stdnum.tr import tckimlik, vkn

from auction import calendar
from auction.masking import book_for, own_offer
from auction.model import CURRENCIES, LOAN_TYPES, RoundState, RoundTerms, iso, money_to_minor, ms_to_dt
from auction.redis_book import keys
from auction.rules import validate_round_terms
from gateway import exporter_api, openapi
from gateway.background import Background
from gateway.clock import now_ms
from gateway.parsing import (
    Fields,
    boolean,
    integer,
    json_object,
    offer_terms,
    one_of,
    text,
)
from gateway.problems import Problem, handle_problem, invalid, response
from gateway.security import Principal, hash_secret, new_id, verify_secret
from gateway.services import Core
from gateway.settings import Settings
from gateway.http import body_of, core, idempotent, ok, principal
from gateway.stream import SUBPROTOCOLS, Hub, new_ticket
from gateway.views import bank_result, round_out
from gateway.views import exporter_results as exporter_results_view

log = logging.getLogger("ige.http")
Handler = Callable[[Request], Awaitable[Response]]


# ----------------------------------------------------------------------------- public
async def healthz(request: Request) -> Response:
    return ok({"status": "ok"})


async def readyz(request: Request) -> Response:
    c = core(request)
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(c.redis.ping(), 2)
        checks["redis"] = "ok"
    except Exception as e:  # noqa: BLE001 - report any failure
        checks["redis"] = f"error: {type(e).__name__}"
    try:
        async with c.engine.connect() as conn:
            await asyncio.wait_for(conn.execute(sql_text("SELECT 1")), 2)
        checks["database"] = "ok"
    except Exception as e:  # noqa: BLE001
        checks["database"] = f"error: {type(e).__name__}"
    good = all(v == "ok" for v in checks.values())
    return ok({"status": "ok" if good else "unavailable", "checks": checks}, 200 if good else 503)


def _parse_ts(name: str, value: str | None) -> datetime:
    if not value:
        raise invalid([{"field": name, "code": "required", "message": f"{name} is required"}])
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise invalid([{"field": name, "code": "invalid", "message": "ISO 8601 timestamp expected"}]) from None
    if t.tzinfo is None:
        raise invalid([{"field": name, "code": "no_offset", "message": "timestamp needs an offset"}])
    return t


async def calendar_deadline(request: Request) -> Response:
    errors: list[dict[str, str]] = []  # every offending parameter is listed, not the first
    try:
        start = _parse_ts("start", request.query_params.get("start"))
    except Problem as e:
        errors += e.errors or []
    raw_n = request.query_params.get("business_days", "7")
    if not raw_n.isdigit() or not 0 <= int(raw_n) <= 366:
        errors.append({"field": "business_days", "code": "invalid",
                       "message": "an integer 0..366"})
    if errors:
        raise invalid(errors)
    d = calendar.deadline(start, int(raw_n), core(request).settings.calendar)
    return ok({"start": iso(start), "business_days": int(raw_n), "deadline": iso(d)})


async def calendar_holidays(request: Request) -> Response:
    year_s = request.query_params.get("year", str(datetime.now(timezone.utc).year))
    if not year_s.isdigit() or not 2000 <= int(year_s) <= 2100:
        raise invalid([{"field": "year", "code": "invalid", "message": "a year 2000..2100"}])
    y = int(year_s)
    cal = core(request).settings.calendar
    days = calendar.holidays_between(date(y, 1, 1), date(y, 12, 31), half_days_off=cal.half_days_off)
    return ok({"year": y, "half_days_off": cal.half_days_off,
               "holidays": [{"date": d.isoformat(), "name": n} for d, n in days]})


async def openapi_json(request: Request) -> Response:
    return ok(openapi.spec())


async def docs(request: Request) -> Response:
    return HTMLResponse(openapi.docs_html())


# ----------------------------------------------------------------------------- banks
async def oauth_token(request: Request) -> Response:
    form = await request.form()
    if form.get("grant_type") != "client_credentials":
        raise Problem(400, "unsupported_grant_type" if form.get("grant_type") else "validation_failed",
                      "grant_type must be client_credentials")
    cid, secret = str(form.get("client_id") or ""), str(form.get("client_secret") or "")
    c = core(request)
    bank = await c.store.bank_by_client_id(cid) if cid else None
    if bank is None or not bank.active or not await asyncio.to_thread(verify_secret, bank.secret_hash, secret):
        raise Problem(401, "invalid_client", "unknown client_id or wrong client_secret")
    ttl = c.settings.token_ttl_s
    return ok({"access_token": c.tokens.issue("bank", bank.id, ttl), "token_type": "Bearer",
               "expires_in": ttl, "bank_code": bank.code})


def _cursor_in(raw: str | None) -> tuple[int, str] | None:
    if not raw:
        return None
    try:
        a, _, b = base64.urlsafe_b64decode(raw.encode()).decode().partition(":")
        return int(a), b
    except (ValueError, UnicodeDecodeError):
        raise invalid([{"field": "cursor", "code": "invalid", "message": "bad cursor"}]) from None


def _cursor_out(row: Any) -> str:
    return base64.urlsafe_b64encode(f"{row.closes_at}:{row.id}".encode()).decode()


async def _visible_round(c: Core, round_id: str, bank_id: str) -> tuple[Any, bool]:
    """A bank sees every open round (the pool) and the finished rounds it bid in; 404 else."""
    row = await c.store.get_round(round_id)
    if row is None:
        raise Problem(404, "not_found", "no such round")
    has = (await _has_offers(c, [row], bank_id))[0]
    if row.state != RoundState.OPEN.value and not has:
        raise Problem(404, "not_found", "no such round")
    return row, has


async def _has_offers(c: Core, rows: list[Any], bank_id: str) -> list[bool]:
    """Open rounds answer from the live book (one pipelined round trip), finished ones from SQL."""
    out = [False] * len(rows)
    live = [i for i, r in enumerate(rows) if r.state == RoundState.OPEN.value]
    if live:
        pipe = c.redis.pipeline(transaction=False)
        for i in live:
            pipe.hexists(keys(rows[i].id)["l"], bank_id)
        for i, has in zip(live, await pipe.execute()):
            out[i] = bool(has)
    done = [i for i, r in enumerate(rows) if r.state != RoundState.OPEN.value]
    if done:
        bid = await c.store.rounds_with_offers_from(bank_id, [rows[i].id for i in done])
        for i in done:
            out[i] = rows[i].id in bid
    return out


async def bank_rounds(request: Request) -> Response:
    """The pool (state=open: every open round) or the finished rounds this bank bid in."""
    p = principal(request, "bank")
    c = core(request)
    state = request.query_params.get("state", "open")
    if state not in ("open", "closed", "accepted", "lapsed"):
        raise invalid([{"field": "state", "code": "invalid",
                        "message": "state must be open, closed, accepted or lapsed"}])
    raw_limit = request.query_params.get("limit", "50")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 200:
        raise invalid([{"field": "limit", "code": "invalid", "message": "an integer 1..200"}])
    limit = int(raw_limit)
    rows = await c.store.list_rounds([state], limit + 1, _cursor_in(request.query_params.get("cursor")),
                                     bidder=None if state == "open" else p.id)
    page = rows[:limit]
    has = await _has_offers(c, page, p.id)
    return ok({"rounds": [round_out(r, h) for r, h in zip(page, has)],
               "next_cursor": _cursor_out(page[-1]) if len(rows) > limit else None})


async def bank_round(request: Request) -> Response:
    p = principal(request, "bank")
    c = core(request)
    row, has = await _visible_round(c, request.path_params["round_id"], p.id)
    out = round_out(row, has)
    mine: list[dict[str, Any]] = []
    if has:
        view = await c.book.view(row.id, p.id) if row.state in ("open", "closed") else None
        if view is not None:
            mine = [own_offer(o, i + 1) for i, o in enumerate(view.offers) if o.bank_id == p.id]
        else:
            latest: dict[str, Any] = {}
            for v in await c.store.versions(row.id, p.id):
                latest[v.offer_id] = v
            mine = [own_offer(v, None) for v in latest.values()]
    out["my_offers"] = mine
    return ok(out)


async def _round_for_bid(c: Core, round_id: str) -> RoundTerms:
    t = await c.terms(round_id)
    if t is None:
        raise Problem(404, "not_found", "no such round")
    return t


async def post_offer(request: Request) -> Response:
    p = principal(request, "bank")
    c = core(request)
    rnd = await _round_for_bid(c, request.path_params["round_id"])
    body, raw = await body_of(request)
    terms = offer_terms(body, rnd.currency, rnd)
    idem = c.idem(p.id, request.headers.get("idempotency-key"), "POST", request.url.path, raw)
    res = await c.submit(rnd, p.id, terms, idem)
    assert res.offer is not None
    return ok(own_offer(res.offer, res.rank), 201)


async def put_offer(request: Request) -> Response:
    p = principal(request, "bank")
    c = core(request)
    rnd = await _round_for_bid(c, request.path_params["round_id"])
    body, raw = await body_of(request)
    terms = offer_terms(body, rnd.currency, rnd)
    idem = c.idem(p.id, request.headers.get("idempotency-key"), "PUT", request.url.path, raw)
    res = await c.revise(rnd, p.id, request.path_params["offer_id"], terms, idem)
    assert res.offer is not None
    return ok(own_offer(res.offer, res.rank))


async def bank_book(request: Request) -> Response:
    p = principal(request, "bank")
    c = core(request)
    rid = request.path_params["round_id"]
    if await c.terms(rid) is None:
        raise Problem(404, "not_found", "no such round")
    view = await c.book.view(rid, p.id)
    if view is None and await c.restore_round(rid):
        view = await c.book.view(rid, p.id)
    if view is None:
        raise Problem(404, "not_found", "no such round")
    if view.viewer_label is None:
        if view.state is not RoundState.OPEN:  # a finished round this bank took no part in
            raise Problem(404, "not_found", "no such round")
        raise Problem(403, "offer_required", "send an offer in this round to see its book")
    return ok(book_for(view, p.id, iso(ms_to_dt(now_ms()))))


async def bank_round_result(request: Request) -> Response:
    p = principal(request, "bank")
    c = core(request)
    row, has = await _visible_round(c, request.path_params["round_id"], p.id)
    if row.state == RoundState.OPEN.value:
        raise Problem(409, "round_open", "results are available after the round closes")
    if not has:
        raise Problem(404, "not_found", "no such round")
    return ok(await bank_result(c, row, p.id))


# ----------------------------------------------------------------------------- exporters
MAX_LOGIN_FAILURES = 5


def _national_id(v: Any) -> str:
    if not isinstance(v, str) or not tckimlik.is_valid(v):
        raise ValueError("not a valid Turkish national id (TCKN)")
    return tckimlik.compact(v)


def _password(v: Any) -> str:
    if not isinstance(v, str) or len(v) < 10 or len(v) > 200:
        raise ValueError("10..200 characters")
    return v


async def exporter_register(request: Request) -> Response:
    body, raw = await body_of(request)
    f = Fields(body)
    full_name = f.get("full_name", text(200))
    national_id = f.get("national_id", _national_id)
    email = f.get("email", exporter_api.email_address)
    mobile = f.get("mobile", exporter_api.turkish_mobile)
    password = f.get("password", _password)
    f.check()
    c = core(request)
    secret = pyotp.random_base32()
    uid = new_id("usr")

    async def run() -> JSONResponse:
        pw_hash = await asyncio.to_thread(hash_secret, password or "")
        created = await c.store.create_exporter(dict(
            id=uid, email=email, full_name=full_name, national_id=national_id, mobile=mobile,
            password_hash=pw_hash, totp_secret=secret, active=False, failed_attempts=0,
            created_at=now_ms()), actor=f"exporter:{uid}")
        if not created:
            raise Problem(409, "conflict", "an account with this e-mail already exists")
        uri = pyotp.TOTP(secret).provisioning_uri(name=email or "", issuer_name="IGE Kefalet Portali")
        return ok({"user_id": uid, "totp_uri": uri}, 201)

    return await idempotent(request, f"register:{email}", raw, run)


async def _check_totp(c: Core, user: Any, code: Any) -> bool:
    """RFC 6238, a window of ±1 step; a code is never accepted twice (across processes)."""
    if not isinstance(code, str) or not code.isdigit() or len(code) != 6:
        return False
    totp = pyotp.TOTP(user.totp_secret)
    now = datetime.now(timezone.utc)
    for step in (0, -1, 1):
        t = now.timestamp() + step * totp.interval
        if hmac.compare_digest(totp.at(t), code):
            counter = totp.timecode(datetime.fromtimestamp(t, timezone.utc))
            return bool(await c.redis.set(f"ige:totp:{user.id}:{counter}", "1", nx=True,
                                          ex=totp.interval * 4))
    return False


async def _login_user(c: Core, email: Any, code: Any, password: Any | None) -> Any:
    user = await c.store.exporter_by_email(str(email).lower()) if isinstance(email, str) else None
    if user is None:
        raise Problem(401, "unauthorized", "wrong e-mail, password or code")
    if user.failed_attempts >= MAX_LOGIN_FAILURES:
        raise Problem(423, "locked", "too many failed attempts; the account is locked, "
                      "contact the guarantee institution")
    good = True
    if password is not None:
        good = await asyncio.to_thread(verify_secret, user.password_hash, str(password))
    good = good and await _check_totp(c, user, code)
    if not good:
        await c.store.update_exporter(user.id, failed_attempts=user.failed_attempts + 1)
        left = MAX_LOGIN_FAILURES - user.failed_attempts - 1
        if left <= 0:
            raise Problem(423, "locked", "too many failed attempts; the account is now locked")
        raise Problem(401, "totp_invalid" if password is None else "unauthorized",
                      f"wrong e-mail, password or code ({left} attempts left)")
    if user.failed_attempts:
        await c.store.update_exporter(user.id, failed_attempts=0)
    return user


async def exporter_activate(request: Request) -> Response:
    body, _ = await body_of(request)
    c = core(request)
    user = await _login_user(c, body.get("email"), body.get("code"), None)
    await c.store.update_exporter(user.id, active=True)
    await c.store.audit(now_ms(), f"exporter:{user.id}", "exporter_activated", None, {})
    return ok({"user_id": user.id, "active": True})


async def exporter_login(request: Request) -> Response:
    body, _ = await body_of(request)
    c = core(request)
    user = await _login_user(c, body.get("email"), body.get("code"), body.get("password", ""))
    if not user.active:
        raise Problem(403, "not_activated", "activate the account with a first code")
    ttl = c.settings.exporter_token_ttl_s
    return ok({"access_token": c.tokens.issue("exporter", user.id, ttl), "token_type": "Bearer",
               "expires_in": ttl})


async def _own_application(request: Request) -> tuple[Core, Principal, Any]:
    p = principal(request, "exporter")
    c = core(request)
    row = await c.store.round_by_application(request.path_params["application_id"])
    if row is None or row.exporter_user_id != p.id:
        raise Problem(404, "not_found", "no such application")
    return c, p, row


async def exporter_application(request: Request) -> Response:
    stored = await exporter_api.stored_application(request)  # decided here: approved or rejected
    if stored is not None:
        return ok(stored)
    c, p, row = await _own_application(request)
    return ok({
        "application_id": row.application_id,
        "status": "approved",
        "decision": row.assessment,
        "round": {"round_id": row.id, "state": row.state, "opened_at": iso(ms_to_dt(row.opened_at)),
                  "closes_at": iso(ms_to_dt(row.closes_at))},
    })


async def exporter_results(request: Request) -> Response:
    c, p, row = await _own_application(request)
    if row.state == RoundState.OPEN.value or await c.store.closing(row.id) is None:
        raise Problem(409, "round_open", "results are shown when the offer round has closed")
    return ok(await exporter_results_view(c, row))


async def exporter_accept(request: Request) -> Response:
    c, p, row = await _own_application(request)
    body, raw = await body_of(request)
    f = Fields(body)
    offer_id = f.get("offer_id", text(60))
    f.check()

    async def run() -> JSONResponse:
        res = await c.store.accept(row.id, offer_id or "", p.id, now_ms())
        if not res.ok:
            status = {"offer_unknown": 404, "not_found": 404}.get(res.code, 409)
            code = "not_found" if res.code == "offer_unknown" else res.code
            raise Problem(status, code, {
                "binding_expired": "the offers were binding until the end of the binding period",
                "already_accepted": "an offer was already accepted in this round",
                "round_open": "the offer round is still open",
            }.get(res.code, "no such offer in this round"))
        fresh = await c.store.get_round(row.id)
        return ok(await exporter_results_view(c, fresh))

    return await idempotent(request, p.actor, raw, run)


# ----------------------------------------------------------------------------- stream
async def stream_ticket(request: Request) -> Response:
    p = principal(request)
    c = core(request)
    t = new_ticket()
    await c.redis.set(f"ige:ticket:{t}", f"{p.kind}:{p.id}", ex=c.settings.ticket_ttl_s)
    return ok({"ticket": t, "expires_in": c.settings.ticket_ttl_s}, 201)


def _origin_ok(ws: WebSocket, settings: Settings) -> bool:
    origin = ws.headers.get("origin")
    if origin is None:
        return True  # not a browser
    if origin in settings.allowed_origins:
        return True
    host = ws.headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")


async def stream(ws: WebSocket) -> None:
    c = core(ws)
    hub: Hub = ws.app.state.hub
    offered = [s.strip() for s in ws.headers.get("sec-websocket-protocol", "").split(",") if s.strip()]
    proto = next((s for s in offered if s in SUBPROTOCOLS), None)
    ticket = ws.query_params.get("ticket", "")
    if proto is None or not ticket or not _origin_ok(ws, c.settings):
        await ws.close(code=1008)
        return
    who = await c.redis.getdel(f"ige:ticket:{ticket}")
    if who is None:
        await ws.close(code=1008)
        return
    kind, _, ident = who.decode().partition(":")
    await ws.accept(subprotocol=proto)
    await hub.serve(ws, Principal(kind, ident), proto)


# ----------------------------------------------------------------------------- operator
def _tax_id(v: Any) -> str:
    if not isinstance(v, str) or not (vkn.is_valid(v) or tckimlik.is_valid(v)):
        raise ValueError("not a valid Turkish tax id (VKN, 10 digits) or TCKN")
    return v


async def admin_create_bank(request: Request) -> Response:
    p = principal(request, "admin")
    body, raw = await body_of(request)
    f = Fields(body)
    code = f.get("bank_code", text(20))
    name = f.get("name", text(200))
    if code is not None and not re.fullmatch(r"[A-Z0-9_]{2,20}", code):
        f.error("bank_code", "invalid", "2..20 characters A-Z, 0-9, _")
    f.check()
    c = core(request)

    async def run() -> JSONResponse:
        creds = await create_bank(c, code or "", name or "", p.actor)
        if creds is None:
            raise Problem(409, "conflict", f"bank {code} already exists")
        return ok(creds, 201)

    return await idempotent(request, p.actor, raw, run)


async def create_bank(c: Core, code: str, name: str, actor: str) -> dict[str, str] | None:
    client_id = f"{code.lower()}-{secrets.token_hex(4)}"
    secret = secrets.token_urlsafe(32)
    h = await asyncio.to_thread(hash_secret, secret)
    bank_id = new_id("bnk")
    if not await c.store.create_bank(bank_id, code, name, client_id, h, now_ms(), actor):
        return None
    return {"bank_id": bank_id, "bank_code": code, "name": name, "client_id": client_id,
            "client_secret": secret}


async def admin_banks(request: Request) -> Response:
    principal(request, "admin")
    banks = await core(request).store.all_banks()
    return ok({"banks": [{"bank_id": b.id, "bank_code": b.code, "name": b.name,
                          "client_id": b.client_id, "active": b.active} for b in banks]})


def parse_round_body(body: dict[str, Any]) -> dict[str, Any]:
    f = Fields(body)
    company = f.get("company", json_object)
    if isinstance(company, dict):
        cf = Fields(company, "company.")
        cf.get("name", text(200))
        cf.get("tax_id", _tax_id)
        cf.get("is_sme", boolean)
        cf.get("sector", text(100), required=False)
        contact = cf.get("contact", json_object, required=False, default={})
        f.errors += cf.errors
        company = {"name": company.get("name"), "tax_id": company.get("tax_id"),
                   "is_sme": company.get("is_sme"), "sector": company.get("sector"),
                   "contact": {k: str(v) for k, v in (contact or {}).items()
                               if k in ("name", "email", "phone")}}
    vals = dict(
        company=company,
        loan_type=f.get("loan_type", one_of(LOAN_TYPES)),
        currency=f.get("currency", one_of(CURRENCIES)),
        loan_amount=f.get("loan_amount", money_to_minor),
        guarantee_amount=f.get("guarantee_amount", money_to_minor),
        tenor_months=f.get("tenor_months", integer),
        grace_months=f.get("grace_months", integer, required=False, default=0),
        export_commitment=f.get("export_commitment", boolean, required=False, default=False),
        exporter_user_id=f.get("exporter_user_id", text(40), required=False),
        assessment=body.get("assessment") if isinstance(body.get("assessment"), dict) else None,
    )
    # the round rules run whenever the fields they read parsed, so one 422 lists every field
    rule_fields = {"loan_type", "currency", "loan_amount", "guarantee_amount", "tenor_months",
                   "grace_months"}
    if not any(e["field"] in rule_fields for e in f.errors):
        probe = RoundTerms("probe", vals["currency"], vals["loan_type"], vals["loan_amount"],
                           vals["guarantee_amount"], vals["tenor_months"], vals["grace_months"],
                           vals["export_commitment"], 0, 0)
        for e in validate_round_terms(probe):
            f.error(e.field, e.code, e.message)
    f.check()
    return vals


async def admin_create_round(request: Request) -> Response:
    p = principal(request, "admin")
    body, raw = await body_of(request)
    vals = parse_round_body(body)
    c = core(request)

    async def run() -> JSONResponse:
        t = await c.open_round(**vals, application_id=new_id("app") if vals["exporter_user_id"] else None,
                               actor=p.actor)
        row = await c.store.get_round(t.round_id)
        out = round_out(row, None)
        out["application_id"] = row.application_id
        out["exporter_user_id"] = row.exporter_user_id
        return ok(out, 201)

    return await idempotent(request, p.actor, raw, run)


async def admin_round(request: Request) -> Response:
    principal(request, "admin")
    c = core(request)
    row = await c.store.get_round(request.path_params["round_id"])
    if row is None:
        raise Problem(404, "not_found", "no such round")
    out = round_out(row, None)
    out.update(application_id=row.application_id, exporter_user_id=row.exporter_user_id,
               persisted_seq=row.persisted_seq)
    closing = await c.store.closing(row.id)
    if closing is not None:
        out["reference_number"] = closing.reference_number
    return ok(out)


async def admin_audit(request: Request) -> Response:
    principal(request, "admin")
    rid = request.query_params.get("round_id") or None
    after = request.query_params.get("after_id", "0")
    if not after.isdigit():
        raise invalid([{"field": "after_id", "code": "invalid", "message": "an integer"}])
    rows = await core(request).store.list_audit(rid, 1000, int(after))
    return ok({"entries": [{**r, "at": iso(ms_to_dt(r["at"]))} for r in rows],
               "next_after_id": rows[-1]["id"] if len(rows) == 1000 else None})


# ----------------------------------------------------------------------------- app
async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
    return response(Problem(exc.status_code, code, str(exc.detail)), request.url.path)


async def server_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, (RedisError, OSError)):
        log.error("backing service error on %s: %s", request.url.path, exc)
        return response(Problem(503, "unavailable", "a backing service is unavailable; retry"),
                        request.url.path)
    log.exception("unhandled error on %s", request.url.path)
    return response(Problem(500, "internal_error", "internal error"), request.url.path)


ROUTES = [
    Route("/healthz", healthz),
    Route("/readyz", readyz),
    Route("/v1/openapi.json", openapi_json),
    Route("/docs", docs),
    Route("/v1/calendar/deadline", calendar_deadline),
    Route("/v1/calendar/holidays", calendar_holidays),
    Route("/v1/oauth/token", oauth_token, methods=["POST"]),
    Route("/v1/bank/rounds", bank_rounds),
    Route("/v1/bank/rounds/{round_id}", bank_round),
    Route("/v1/bank/rounds/{round_id}/offers", post_offer, methods=["POST"]),
    Route("/v1/bank/rounds/{round_id}/offers/{offer_id}", put_offer, methods=["PUT"]),
    Route("/v1/bank/rounds/{round_id}/book", bank_book),
    Route("/v1/bank/rounds/{round_id}/result", bank_round_result),
    Route("/v1/exporter/register", exporter_register, methods=["POST"]),
    Route("/v1/exporter/activate", exporter_activate, methods=["POST"]),
    Route("/v1/exporter/login", exporter_login, methods=["POST"]),
    Route("/v1/exporter/applications/{application_id}", exporter_application),
    Route("/v1/exporter/applications/{application_id}/results", exporter_results),
    Route("/v1/exporter/applications/{application_id}/accept", exporter_accept, methods=["POST"]),
    Route("/v1/stream/tickets", stream_ticket, methods=["POST"]),
    WebSocketRoute("/v1/stream", stream),
    Route("/v1/admin/banks", admin_create_bank, methods=["POST"]),
    Route("/v1/admin/banks", admin_banks, methods=["GET"]),
    Route("/v1/admin/rounds", admin_create_round, methods=["POST"]),
    Route("/v1/admin/rounds/{round_id}", admin_round),
    Route("/v1/admin/audit", admin_audit),
]
ROUTES += exporter_api.ROUTES  # issue #3: companies, consent, applications (gateway/exporter_api.py)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        c = Core(settings)
        hub = Hub(c)
        bg = Background(c, hub)
        app.state.core, app.state.hub, app.state.bg = c, hub, bg
        await hub.start()
        await bg.start()
        try:
            yield
        finally:
            await bg.stop()
            await hub.stop()
            await c.aclose()

    return Starlette(
        routes=ROUTES,
        lifespan=lifespan,
        # RedisError/OSError get their own entries: Starlette re-raises whatever reaches the
        # catch-all Exception handler after answering, and uvicorn then drops the keep-alive
        # connection, so a client's next request (often its retry) fails with a reset
        exception_handlers={Problem: handle_problem, HTTPException: http_error,
                            RedisError: server_error, OSError: server_error,
                            Exception: server_error},
    )
