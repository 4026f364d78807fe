"""The exporter's application on the pages (``/exporter/apply``): the company matched in the
trade registry with the consent text shown and its version recorded, then the application form
(Kefalet Başvuru Formu) with the risk group's related companies and the bank preferences,
through the API's parser and rules (``ApplicationForm``, ``Applying.apply``), each error next
to its field; the decision at once.

* **Related companies**: rows ``rc-<row>-tax_id|relation|share_pct``; a new form shows
  ``RELATED_ROWS_START`` rows and "add a row" (a submit button, no script) renders the form
  again with one more, up to the API's ``RELATED_MAX``. Empty rows are ignored.
* **Bank preferences**: one checkbox ``pb-<bank code>`` per active partner bank, named (the
  exporter may see the banks' names).
* **Once**: every rendering of the form carries an idempotency key (``idem``): the same form
  sent twice (a double click, a re-post) makes one application, and the second copy is
  answered with the first one's application."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway import views
from gateway.contract import limits as L
from gateway.contract.requests import ApplicationForm, CompanyMatchBody, read
from gateway.http import portal
from gateway.pages.desk import (
    FIELD_MESSAGES,
    N_,
    OTHER_FIELD_ERROR,
    REFUSALS,
    _form,
    refusal_text,
)
from gateway.pages.exporter import REGISTER_MESSAGES, _exporter, _to_login
from gateway.pages.web import Page, csrf_ok, page_of, refused
from usecases.applying import ApplicationDraft, ApplicationState
from usecases.outcomes import Refusal

#: what a refusal of company matching or of an application says (the API's codes)
APPLY_MESSAGES = {
    "company_not_found": N_("The trade registry does not know this tax id."),
    "company_inactive": N_("The trade registry lists the company as not active."),
    "not_signatory": N_("You are not an authorised signatory of this company in the trade "
                        "registry."),
    "consent_withdrawn": N_("The company's consent is withdrawn: give it again to apply."),
    "reapplication_blocked": N_("Rejected twice within 3 months: a new application is possible "
                                "after the next quarterly financial data."),
    "consent": N_("Tick the box to give the consent."),
    # the form's terms (applications.rules)
    "loan_amount_not_positive": N_("Must be greater than zero."),
    "guarantee_not_positive": N_("Must be greater than zero."),
    "guarantee_above_loan": N_("The guarantee must not exceed the loan amount."),
    "tenor_below_minimum": N_("Below the minimum for this loan type."),
    "tenor_above_maximum": N_("Above the maximum for this loan type."),
    "grace_negative": N_("Must not be negative."),
    "grace_above_maximum": N_("Above the maximum for this loan type."),
    "grace_not_below_tenor": N_("The grace period must be shorter than the tenor."),
}
APPLY_FIELDS = ("company_id", "loan_type", "currency", "loan_amount", "guarantee_amount",
                "tenor_months", "grace_months", "export_commitment", "purpose")
#: a related company's fields on the form: ``rc-<row>-<field>``, rows 0..RELATED_MAX-1
RELATED_FIELDS = ("tax_id", "relation", "share_pct")
RELATED_ROWS_START = 2  # rows a new form shows; "add a row" adds one, up to the API's limit
#: a bank preference on the form: ``pb-<bank code>`` = 1, one field per partner bank
PREFERRED_PREFIX = "pb-"
#: the application form's fields at most (its own bound: every row and every bank)
APPLY_MAX_FIELDS = (len(APPLY_FIELDS) + 4 + len(RELATED_FIELDS) * L.RELATED_MAX
                    + L.PREFERRED_MAX)
#: what a related company's or a preference's field error says, by the field or the code
RELATED_MESSAGES = {
    "tax_id": N_("Not a valid tax id (VKN: 10 digits, or TCKN: 11 digits)."),
    "relation": N_("Choose one of the listed relations."),
    "share_pct": N_("A percentage from 0 to 100."),
    "duplicate": N_("Each related company only once."),
    "too_many": N_("Too many related companies."),
    "unknown_bank": N_("Not a partner bank."),
    "preferred_banks": N_("Choose among the listed partner banks."),
}
#: the relations' names on the form
RELATION_NAMES = {
    "partner": N_("partner"),
    "subsidiary": N_("subsidiary"),
    "parent": N_("parent company"),
    "sister": N_("sister company"),
    "affiliate": N_("affiliate"),
}
IDEM_KEY = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
IDEM_WAIT_S = 10.0  # how long a second copy of a form waits for the first one's answer


async def _apply_page(request: Request, page: Page, status: int = 200,
                      **ctx: Any) -> Response:
    assert page.session is not None
    p = portal(request)
    pkg = p.applying.package()
    companies = [dict(views.company(c)) for c in
                 await p.applying.companies(page.session.principal) if c.consent_active]
    ctx.setdefault("values", {"loan_type": "working_capital", "currency": "TRY",
                              "tenor_months": 24, "grace_months": 6,
                              "export_commitment": True})
    ctx.setdefault("errors", {})
    ctx.setdefault("related", [])
    ctx.setdefault("preferred", [])
    rows = min(L.RELATED_MAX, max(RELATED_ROWS_START, ctx.pop("rows", 0),
                                  len(ctx["related"])))
    ctx["related"] = ctx["related"][:rows] + [{} for _ in range(rows - len(ctx["related"]))]
    banks = [{"code": b.code, "name": b.name} for b in
             sorted(await p.accounts.banks(), key=lambda b: b.name.casefold()) if b.active]
    return page.render("exporter/apply.html", status, consent_text=pkg.consent_text,
                       consent_version=pkg.consent_text_version, companies=companies,
                       banks=banks, relations=RELATION_NAMES, max_rows=L.RELATED_MAX,
                       idem=secrets.token_urlsafe(16), **ctx)


async def apply_form(request: Request) -> Response:
    page = await page_of(request)
    if not _exporter(page):
        return _to_login(page)
    return await _apply_page(request, page, matched=request.query_params.get("matched"))


def _apply_text(page: Page, r: Refusal) -> str:
    return page._(APPLY_MESSAGES[r.code]) if r.code in APPLY_MESSAGES \
        else refusal_text(page, r)


async def match_company(request: Request) -> Response:
    """The trade-registry check and the consent to the text shown (its version recorded)."""
    page = await page_of(request)
    if not _exporter(page):
        return _to_login(page)
    form = await _form(request)
    if not csrf_ok(page, form):
        return refused(page)
    assert page.session is not None
    p = portal(request)
    version = p.applying.package().consent_text_version
    tax_id = str(form.get("tax_id", "")).strip()[:20]
    if form.get("consent") != "1":
        return await _apply_page(request, page, 422, tax_id=tax_id,
                                 match_error=page._(APPLY_MESSAGES["consent"]))
    got = read(CompanyMatchBody, {"tax_id": tax_id, "consent": {
        "text_version": str(form.get("consent_version", "")), "accepted": True}},
        {"consent_text_version": version})
    if got.errors or got.model is None:
        return await _apply_page(request, page, 422, tax_id=tax_id,
                                 match_error=page._(REGISTER_MESSAGES["national_id"])
                                 if any(e.field == "tax_id" for e in got.errors)
                                 else page._(OTHER_FIELD_ERROR))
    done = await p.applying.match_company(page.session.principal, got.model.tax_id)
    if isinstance(done, Refusal):
        return await _apply_page(request, page, 422, tax_id=tax_id,
                                 match_error=_apply_text(page, done))
    return page.redirect("/exporter/apply?matched=1")


def _application_values(form: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in APPLY_FIELDS:
        raw = form.get(name)
        if name == "export_commitment":
            out[name] = raw in ("1", "on", "true")
        elif raw is None:
            continue
        elif name in ("tenor_months", "grace_months"):
            text = str(raw).strip()
            out[name] = int(text) if text.isdigit() and len(text) < 6 else text
        elif name in ("loan_amount", "guarantee_amount"):
            text = str(raw).strip().replace(" ", "")
            out[name] = text.replace(",", ".") if "," in text and "." not in text else text
        else:
            out[name] = str(raw)
    return out


def _related_rows(form: Any) -> list[dict[str, str]]:
    """The related-company rows as typed (``rc-<row>-<field>``), up to the API's limit; the
    trailing blank ones dropped."""
    rows = [{f: str(form.get(f"rc-{i}-{f}", "")).strip() for f in RELATED_FIELDS}
            for i in range(L.RELATED_MAX)]
    while rows and not any(rows[-1].values()):
        rows.pop()
    return rows


def _related_values(rows: list[dict[str, str]]) -> tuple[list[dict[str, str]], list[int]]:
    """The rows the exporter filled, as the API's ``related_companies`` (a decimal comma read
    as a point), and the form's row of each."""
    out: list[dict[str, str]] = []
    where: list[int] = []
    for i, r in enumerate(rows):
        if not any(r.values()):
            continue
        share = r["share_pct"].replace(" ", "")
        if "," in share and "." not in share:
            share = share.replace(",", ".")
        out.append({"tax_id": r["tax_id"], "relation": r["relation"], "share_pct": share})
        where.append(i)
    return out, where


def _preferred_values(form: Any) -> list[str]:
    return [k[len(PREFERRED_PREFIX):] for k, v in form.items()
            if k.startswith(PREFERRED_PREFIX) and v == "1"]


def _error_key(field: str, where: list[int]) -> tuple[str, str | None]:
    """The form's place of an error of the API's field (``related_companies[2].tax_id`` is
    ``rc-<row>-tax_id``), and the related field's name (None: not a related field)."""
    m = re.fullmatch(r"related_companies\[(\d+)\]\.(tax_id|relation|share_pct)", field)
    if m is not None and int(m.group(1)) < len(where):
        return f"rc-{where[int(m.group(1))]}-{m.group(2)}", m.group(2)
    if field.startswith("related_companies"):
        return "related_companies", None
    if field.startswith("preferred_banks"):
        return "preferred_banks", None
    return field, None


def _error_text(page: Page, field: str, code: str, related: str | None) -> str:
    if code in ("duplicate", "too_many", "unknown_bank"):
        return page._(RELATED_MESSAGES[code])
    if related is not None:
        return page._(RELATED_MESSAGES[related])
    if field == "preferred_banks":
        return page._(RELATED_MESSAGES["preferred_banks"])
    return page._(APPLY_MESSAGES.get(code, FIELD_MESSAGES.get(code, OTHER_FIELD_ERROR)))


async def _once(request: Request, page: Page, key: str, body_hash: str
                ) -> dict[str, Any] | None:
    """The first answer to this rendering of the form (its idempotency key), waiting a moment
    for it while the first copy is still being decided; None: this is the first copy."""
    assert page.session is not None
    guards = portal(request).deps.guards
    pending_s = portal(request).deps.policy.idempotency_pending_s  # finished: the full TTL
    actor = f"page:{page.session.actor}"
    loop = asyncio.get_running_loop()
    until = loop.time() + IDEM_WAIT_S
    while True:
        prev = await guards.begin_request(actor, key, body_hash, pending_s)
        if prev is None:
            return None
        if prev.get("h") != body_hash:
            return {"mismatch": True}
        if not prev.get("pending"):
            return dict(prev.get("body") or {})
        if loop.time() > until:
            return {"pending": True}
        await asyncio.sleep(0.1)


async def apply(request: Request) -> Response:
    """The application form: the API's parser and rules, the decision at once."""
    page = await page_of(request)
    if not _exporter(page):
        return _to_login(page)
    form = await _form(request, APPLY_MAX_FIELDS)
    if not csrf_ok(page, form):
        return refused(page)
    assert page.session is not None
    values = _application_values(form)
    rows = _related_rows(form)
    preferred = _preferred_values(form)
    shown: dict[str, Any] = {"values": values, "related": rows, "preferred": preferred}
    raw_rows = str(form.get("rows", ""))
    shown["rows"] = int(raw_rows) if raw_rows.isdigit() and len(raw_rows) < 4 else 0
    if form.get("add_row") == "1":  # "add a row": the same form again, one row more
        shown["rows"] = max(shown["rows"], len(rows)) + 1
        return await _apply_page(request, page, **shown)
    related, where = _related_values(rows)
    body = {**values, "related_companies": related, "preferred_banks": preferred}
    key = str(form.get("idem", ""))
    if IDEM_KEY.match(key) is None:
        key = ""
    body_hash = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    if key:
        first = await _once(request, page, key, body_hash)
        if first is not None and first.get("application_id"):
            return page.redirect(f"/exporter/applications/{first['application_id']}")
        if first is not None:
            text = page._(REFUSALS["idempotency_mismatch"]) if first.get("mismatch") else \
                page._("This form is still being sent: open your applications in a moment.")
            return await _apply_page(request, page, 409, apply_error=text, **shown)
    got = read(ApplicationForm, body)
    draft = ApplicationDraft(got.values.get("company_id"),
                             None if got.model is None else got.model.request(),
                             got.values, got.errors)
    p = portal(request)
    try:
        state = await p.applying.apply(page.session.principal, draft)
    except BaseException:
        if key:
            await p.deps.guards.abandon_request(f"page:{page.session.actor}", key)
        raise
    if isinstance(state, ApplicationState):
        if key:
            await p.deps.guards.finish_request(
                f"page:{page.session.actor}", key, body_hash, 303,
                {"application_id": state.application.id}, p.deps.policy.idempotency_ttl_s)
        return page.redirect(f"/exporter/applications/{state.application.id}")
    if key:  # nothing was made: the form, shown again, gets a new key
        await p.deps.guards.abandon_request(f"page:{page.session.actor}", key)
    errors: dict[str, str] = {}
    for e in state.errors or ():
        at, rel = _error_key(e.field, where)
        errors.setdefault(at, _error_text(page, at, e.code, rel))
    return await _apply_page(request, page, 422, errors=errors,
                             apply_error=None if errors else _apply_text(page, state),
                             **shown)


ROUTES: list[BaseRoute] = [
    Route("/exporter/apply", apply_form),
    Route("/exporter/companies", match_company, methods=["POST"]),
    Route("/exporter/applications", apply, methods=["POST"]),
]
