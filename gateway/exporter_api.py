"""Exporter calls of the application flow (issue #3): company matching with consent, the
guarantee application with its decision, and the views of stored applications.

The imperative shell only: the rules and the scorecard are in ``applications/`` (pure, the
package and ``now`` passed in), the integrations behind ``applications.ports``, the SQL in
``persistence/applications_store.py``. Approval opens the round through the auction core
(``Core.open_round``), which announces it on the ``pool`` topic. Every expected refusal leaves
through ``refuse`` below, mapped to its RFC 9457 problem in one table.

Routes are appended to ``gateway.app.ROUTES``; the shared helpers of app.py (auth,
idempotency) are imported when a request runs, because app.py imports this module.
"""

from __future__ import annotations

import secrets
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from stdnum.tr import tckimlik, vkn

from applications import rules, service, simulated
from applications.model import (
    RELATIONS,
    ApplicationRequest,
    RegistryRecord,
    RelatedCompany,
    money_text,
    pct_text,
)
from applications.package import GuaranteePackage, package_in_force
from applications.ports import Providers
from auction.model import (
    CURRENCIES,
    LOAN_TYPES,
    iso,
    money_to_minor,
    ms_to_dt,
    parse_decimal,
)
from gateway.clock import now_ms
from gateway.http import body_of, core, idempotent, ok, principal
from gateway.parsing import Fields, boolean, integer, json_object, one_of, text
from gateway.problems import Problem, invalid
from gateway.security import Principal, new_id
from gateway.views import ts
from persistence.applications_store import ApplicationsStore

MAX_RELATED = 50
MAX_PREFERRED = 30
MAX_PURPOSE = 2000
GROUP_LOCK_MS = 30_000
APPLICATION_FIELDS = ("company_id", "loan_type", "currency", "loan_amount", "guarantee_amount",
                      "tenor_months", "grace_months", "related_companies", "preferred_banks",
                      "export_commitment", "purpose")

# ----------------------------------------------------------------------------- refusals
#: every expected refusal of this module: code -> (HTTP status, detail)
REFUSALS: dict[str, tuple[int, str]] = {
    "company_not_found": (422, "the trade registry (MERSİS) does not know this tax id"),
    "company_inactive": (422, "the trade registry lists the company as not active"),
    "not_signatory": (403, ("you are not an authorised signatory of this company in the trade "
                            "registry")),
    "consent_withdrawn": (409, ("the company's consent (muvafakatname) is withdrawn: give it "
                                "again with POST /v1/exporter/companies to apply")),
    "reapplication_blocked": (409, ("the company's requests were rejected twice within 3 "
                                    "months: it can be assessed again after a quarterly "
                                    "financial period has passed since the last rejection")),
    "not_found": (404, "no such company for this caller"),
    "conflict": (409, ("another application of this company's risk group is being assessed; "
                       "retry in a few seconds")),
}


def refuse(code: str, detail: str | None = None, **extra: Any) -> Problem:
    status, text_ = REFUSALS[code]
    return Problem(status, code, detail or text_, **extra)


# ----------------------------------------------------------------------------- wiring
def providers(request: Request) -> Providers:
    """The four integrations; the simulated ones unless something else was wired on
    ``app.state.application_providers`` (the composition root's choice)."""
    st = request.app.state
    p = getattr(st, "application_providers", None)
    if p is None:
        p = st.application_providers = simulated.providers()
    return p


def astore(request: Request) -> ApplicationsStore:
    st = request.app.state
    s = getattr(st, "applications_store", None)
    if s is None:
        s = st.applications_store = ApplicationsStore(core(request).engine)
    return s


def current_package(now: int) -> GuaranteePackage:
    return package_in_force(ms_to_dt(now))



# ----------------------------------------------------------------------------- field parsers
def email_address(v: Any) -> str:
    """An e-mail address checked by a maintained library (syntax only, no DNS), lower case."""
    if not isinstance(v, str) or len(v) > 254:
        raise ValueError("not a valid e-mail address")
    try:
        return str(validate_email(v, check_deliverability=False).normalized).lower()
    except EmailNotValidError as e:
        raise ValueError(f"not a valid e-mail address: {e}") from None


def turkish_mobile(v: Any) -> str:
    """A Turkish mobile number (libphonenumber: valid, mobile, +90), in E.164."""
    if not isinstance(v, str) or len(v) > 30:
        raise ValueError("not a Turkish mobile number (+905XXXXXXXXX)")
    try:
        n = phonenumbers.parse(v, "TR")
    except phonenumbers.NumberParseException:
        raise ValueError("not a Turkish mobile number (+905XXXXXXXXX)") from None
    if n.country_code != 90 or not phonenumbers.is_valid_number(n) \
            or phonenumbers.number_type(n) != phonenumbers.PhoneNumberType.MOBILE:
        raise ValueError("not a Turkish mobile number (+905XXXXXXXXX)")
    return str(phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164))


def tax_id(v: Any) -> str:
    """A Turkish tax id: VKN (10 digits) or, for sole proprietors, the TCKN (11 digits)."""
    if not isinstance(v, str) or not (vkn.is_valid(v) or tckimlik.is_valid(v)):
        raise ValueError("not a valid Turkish tax id (VKN, 10 digits) or TCKN (11 digits)")
    return v


def share_e4(v: Any) -> int:
    d = parse_decimal(v, 2)
    if not 0 <= d <= 100:
        raise ValueError("a percentage 0..100")
    return int(d * 10_000)


def _plain_text(max_len: int) -> Any:
    base = text(max_len)

    def conv(v: Any) -> str:
        s = base(v)
        if any(ord(ch) < 32 and ch not in "\t\r\n" or ch == "\x7f" or "\ud800" <= ch <= "\udfff"
               for ch in s):
            raise ValueError("no control characters other than tab and line breaks")
        return s
    return conv


def parse_application(body: dict[str, Any], package: GuaranteePackage
                      ) -> tuple[str, ApplicationRequest]:
    """The application form; one 422 lists every bad field, including the form rules of the
    guarantee package (tenor, grace, guarantee above loan) under their stable reason codes."""
    f = Fields(body)
    for k in body:
        if k not in APPLICATION_FIELDS:
            f.error(k, "unknown_field", f"{k} is not a field of the application form")
    company_id = f.get("company_id", text(40))
    loan_type = f.get("loan_type", one_of(LOAN_TYPES))
    currency = f.get("currency", one_of(CURRENCIES))
    loan_amount = f.get("loan_amount", money_to_minor)
    guarantee_amount = f.get("guarantee_amount", money_to_minor)
    tenor = f.get("tenor_months", integer)
    grace = f.get("grace_months", integer, required=False, default=0)
    commitment = f.get("export_commitment", boolean, required=False, default=False)
    purpose = f.get("purpose", _plain_text(MAX_PURPOSE), required=False, default="")
    related: list[RelatedCompany] = []
    raw_related = body.get("related_companies")
    if raw_related is not None:
        if not isinstance(raw_related, list):
            f.error("related_companies", "invalid", "related_companies must be a list")
        elif len(raw_related) > MAX_RELATED:
            f.error("related_companies", "too_many", f"at most {MAX_RELATED} related companies")
        else:
            seen: set[str] = set()
            for i, item in enumerate(raw_related):
                rf = Fields(item if isinstance(item, dict) else {}, f"related_companies[{i}].")
                if not isinstance(item, dict):
                    f.error(f"related_companies[{i}]", "invalid", "must be an object")
                    continue
                t = rf.get("tax_id", tax_id)
                rel = rf.get("relation", one_of(RELATIONS))
                share = rf.get("share_pct", share_e4)
                if t is not None and t in seen:
                    rf.error("tax_id", "duplicate", "each related company once")
                f.errors += rf.errors
                if t is not None and rel is not None and share is not None and t not in seen:
                    seen.add(t)
                    related.append(RelatedCompany(t, rel, share))
    preferred: list[str] = []
    raw_pref = body.get("preferred_banks")
    if raw_pref is not None:
        if not isinstance(raw_pref, list) or len(raw_pref) > MAX_PREFERRED or not all(
                isinstance(c, str) and 2 <= len(c) <= 20 for c in raw_pref):
            f.error("preferred_banks", "invalid",
                    f"a list of at most {MAX_PREFERRED} bank codes")
        else:
            preferred = list(dict.fromkeys(raw_pref))
    terms_ok = {"loan_type", "currency", "loan_amount", "guarantee_amount", "tenor_months",
                "grace_months"}.isdisjoint(e["field"] for e in f.errors)
    req = ApplicationRequest(
        loan_type or "", currency or "", loan_amount or 0, guarantee_amount or 0, tenor or 0,
        grace or 0, tuple(related), tuple(preferred), bool(commitment), purpose or "")
    if terms_ok:
        for r in rules.check_terms(req, package):
            f.error(r.field or "", r.code, r.text)
    f.check()
    assert company_id is not None
    return company_id, req


# ----------------------------------------------------------------------------- views
def company_out(row: Any, latest_consent: Any, consent_active: bool) -> dict[str, Any]:
    return {
        "company_id": row.id,
        "tax_id": row.tax_id,
        "name": row.name,
        "sector": row.sector,
        "is_sme": row.is_sme,
        "active": row.active,
        "signatory": True,
        "matched_at": ts(row.created_at),
        "consent": None if latest_consent is None else {
            "text_version": latest_consent.text_version,
            "accepted_at": ts(latest_consent.accepted_at),
            "withdrawn_at": ts(latest_consent.withdrawn_at),
            "active": consent_active,
        },
    }


def request_out(rec: dict[str, Any]) -> dict[str, Any]:
    loan, guarantee = int(rec["loan_amount"]), int(rec["guarantee_amount"])
    return {
        "loan_type": rec["loan_type"],
        "currency": rec["currency"],
        "loan_amount": money_text(loan),
        "guarantee_amount": money_text(guarantee),
        "guarantee_rate": pct_text(guarantee * 100 * 10_000 // loan) if loan else None,
        "tenor_months": rec["tenor_months"],
        "grace_months": rec["grace_months"],
        "related_companies": [{"tax_id": r["tax_id"], "relation": r["relation"],
                               "share_pct": pct_text(int(r["share_e4"]))}
                              for r in rec.get("related_companies", [])],
        "preferred_banks": list(rec.get("preferred_banks", [])),
        "export_commitment": rec.get("export_commitment", False),
        "purpose": rec.get("purpose", ""),
    }


async def application_out(request: Request, row: Any) -> dict[str, Any]:
    """APPLICATION (API.md) plus what explains it: the request, the package version and the
    scorecard's factors. No offer data: the round part says only where the round stands."""
    rnd = None
    if row.round_id:
        r = await core(request).store.get_round(row.round_id)
        if r is not None:
            rnd = {"round_id": r.id, "state": r.state, "opened_at": ts(r.opened_at),
                   "closes_at": ts(r.closes_at)}
            if r.closed_at:
                rnd["closed_at"] = ts(r.closed_at)
            if r.binding_until:
                rnd["binding_until"] = ts(r.binding_until)
    applicant = (row.inputs or {}).get("applicant") or {}
    return {
        "application_id": row.id,
        "status": row.status,
        "created_at": ts(row.created_at),
        "company": {"company_id": row.company_id, "tax_id": row.tax_id,
                    "name": applicant.get("name")},
        "package_version": row.package_version,
        "request": request_out(row.request),
        "decision": row.decision,
        "round": rnd,
    }


async def stored_application(request: Request) -> dict[str, Any] | None:
    """GET /v1/exporter/applications/{id} for an application decided here (approved with its
    round, or rejected without one); None when there is none of this caller's, so the caller
    falls back to rounds opened by the operator for this exporter."""
    p = principal(request, "exporter")
    row = await astore(request).application(request.path_params["application_id"])
    if row is None or row.user_id != p.id:
        return None
    return await application_out(request, row)


# ----------------------------------------------------------------------------- handlers
async def guarantee_package(request: Request) -> Response:
    principal(request, "exporter")
    pkg = current_package(now_ms())
    return ok({"package": pkg.to_wire(),
               "consent": {"text_version": pkg.consent_text_version, "text": pkg.consent_text}})


async def _refused(request: Request, p: Principal, action: str, code: str,
                   **detail: Any) -> Problem:
    await astore(request).audit(now_ms(), p.actor, action, None, {"code": code, **detail})
    return refuse(code)


async def match_company(request: Request) -> Response:
    p = principal(request, "exporter")
    body, raw = await body_of(request)
    pkg = current_package(now_ms())
    f = Fields(body)
    tid = f.get("tax_id", tax_id)
    consent = f.get("consent", json_object)
    if isinstance(consent, dict):
        cf = Fields(consent, "consent.")
        version = cf.get("text_version", text(40))
        accepted = cf.get("accepted", boolean)
        if accepted is False:
            cf.error("accepted", "must_accept", "the consent must be accepted (true)")
        if version is not None and version != pkg.consent_text_version:
            cf.error("text_version", "outdated",
                     f"the consent text in force is {pkg.consent_text_version}")
        f.errors += cf.errors
    f.check()
    assert tid is not None
    st = astore(request)

    async def run() -> JSONResponse:
        user = await st.exporter(p.id)
        if user is None:
            raise Problem(404, "not_found", "no such exporter")
        rec = await providers(request).registry.lookup(tid)
        if rec is None:
            raise await _refused(request, p, "company_match_refused", "company_not_found",
                                 tax_id=tid)
        if not rec.active:
            raise await _refused(request, p, "company_match_refused", "company_inactive",
                                 tax_id=tid)
        if not rec.is_signatory(user.national_id):
            raise await _refused(request, p, "company_match_refused", "not_signatory",
                                 tax_id=tid)
        now = now_ms()
        # 201 as the contract says, also when the caller's consent to this text was already
        # active (then nothing new is recorded: the store keeps one consent per text version)
        company, _consent, _created = await st.match_company(
            new_company_id=new_id("cmp"), registry=rec.to_record(), user_id=p.id,
            text_version=pkg.consent_text_version, now=now, actor=p.actor)
        latest, active = await st.consent_state(company.id)
        return ok(company_out(company, latest, active), 201)

    resp: Response = await idempotent(request, p.actor, raw, run)
    return resp


async def list_companies(request: Request) -> Response:
    p = principal(request, "exporter")
    st = astore(request)
    out = []
    for row in await st.companies_of(p.id):
        latest, active = await st.consent_state(row.id)
        out.append(company_out(row, latest, active))
    return ok({"companies": out})


async def withdraw_consent(request: Request) -> Response:
    """DELETE /v1/exporter/companies/{company_id}/consent: stops new applications and hides
    the company's data in the pool (its open rounds show no company data from now on)."""
    p = principal(request, "exporter")
    st = astore(request)
    row = await st.company_of_user(request.path_params["company_id"], p.id)
    if row is None:
        raise refuse("not_found")
    _, hidden = await st.withdraw_consent(row.id, p.id, now_ms(), p.actor)
    latest, active = await st.consent_state(row.id)
    out = company_out(row, latest, active)
    out["open_rounds_hidden"] = hidden
    return ok(out)


async def _check_preferred(request: Request, req: ApplicationRequest) -> None:
    if not req.preferred_banks:
        return
    known = {b.code for b in await core(request).store.all_banks()}
    errors = [{"field": f"preferred_banks[{i}]", "code": "unknown_bank",
               "message": f"no partner bank with code {code}"}
              for i, code in enumerate(req.preferred_banks) if code not in known]
    if errors:
        raise invalid(errors)


class _GroupLock:
    """Applications of one risk group are assessed one at a time (across processes): the
    group limit counts approved-but-not-accepted requests, so two at once could both fit."""

    def __init__(self, redis: Any, tax_ids: list[str]) -> None:
        self.redis = redis
        self.keys = [f"ige:apply-lock:{t}" for t in sorted(set(tax_ids))]
        self.token = secrets.token_hex(8)
        self.held: list[str] = []

    async def __aenter__(self) -> None:
        for k in self.keys:
            if not await self.redis.set(k, self.token, nx=True, px=GROUP_LOCK_MS):
                await self.release()
                raise refuse("conflict")
            self.held.append(k)

    async def release(self) -> None:
        for k in self.held:
            v = await self.redis.get(k)
            if v is not None and v.decode() == self.token:
                await self.redis.delete(k)
        self.held = []

    async def __aexit__(self, *exc: object) -> None:
        await self.release()


def _round_company(rec: RegistryRecord, user: Any) -> dict[str, Any]:
    return {"name": rec.name, "tax_id": rec.tax_id, "is_sme": rec.is_sme, "sector": rec.sector,
            "contact": {"name": user.full_name, "email": user.email, "phone": user.mobile}}


async def create_application(request: Request) -> Response:
    p = principal(request, "exporter")
    body, raw = await body_of(request)
    pkg = current_package(now_ms())
    company_id, req = parse_application(body, pkg)
    await _check_preferred(request, req)
    c = core(request)
    st = astore(request)

    async def run() -> JSONResponse:
        company = await st.company_of_user(company_id, p.id)
        if company is None:
            raise refuse("not_found")
        _, active = await st.consent_state(company.id)
        if not active:
            raise await _refused(request, p, "application_refused", "consent_withdrawn",
                                 company_id=company.id)
        user = await st.exporter(p.id)
        rec = await providers(request).registry.lookup(company.tax_id)
        if rec is None:
            raise await _refused(request, p, "application_refused", "company_not_found",
                                 company_id=company.id)
        if user is None or not rec.is_signatory(user.national_id):
            raise await _refused(request, p, "application_refused", "not_signatory",
                                 company_id=company.id)
        group_ids = [rec.tax_id, *(a.tax_id for a in rec.affiliates),
                     *(r.tax_id for r in req.related_companies)]
        async with _GroupLock(c.redis, group_ids):
            now = now_ms()
            allowed, not_before = rules.may_reapply(
                [ms_to_dt(t) for t in await st.rejection_times(rec.tax_id)], ms_to_dt(now), pkg)
            if not allowed:
                assert not_before is not None
                await st.audit(now, p.actor, "application_refused", None, {
                    "code": "reapplication_blocked", "company_id": company.id,
                    "not_before": iso(not_before)})
                raise refuse("reapplication_blocked", not_before=iso(not_before))
            result = await service.assess(providers(request), st, rec, req, pkg)
            d = result.decision
            app_id = new_id("app")
            inputs = result.inputs.to_record()
            inputs.update(assessed_at=now, guarantee_tl=d.guarantee_tl,
                          group_exposure_tl=d.group_exposure_tl, group_limit_tl=d.group_limit_tl,
                          is_exporter=d.is_exporter)
            await st.insert_application(dict(
                id=app_id, company_id=company.id, tax_id=rec.tax_id, user_id=p.id,
                status=d.status, package_version=pkg.version, currency=req.currency,
                loan_amount=req.loan_amount, guarantee_amount=req.guarantee_amount,
                guarantee_tl=d.guarantee_tl, score=d.scorecard.score, band=d.scorecard.band,
                request=req.to_record(), inputs=inputs, decision=d.to_wire(),
                package=pkg.to_record(), round_id=None, created_at=now), p.actor)
            if d.approved:
                t = await c.open_round(
                    loan_type=req.loan_type, currency=req.currency, loan_amount=req.loan_amount,
                    guarantee_amount=req.guarantee_amount, tenor_months=req.tenor_months,
                    grace_months=req.grace_months, export_commitment=req.export_commitment,
                    company=_round_company(rec, user),
                    assessment=rules.bank_assessment(result.inputs, d, pkg),
                    exporter_user_id=p.id, application_id=app_id, actor=p.actor)
                await st.attach_round(app_id, t.round_id, now_ms(), p.actor)
        row = await st.application(app_id)
        return ok(await application_out(request, row), 201)

    resp: Response = await idempotent(request, p.actor, raw, run)
    return resp


async def list_applications(request: Request) -> Response:
    p = principal(request, "exporter")
    rows = await astore(request).applications_of(p.id)
    return ok({"applications": [await application_out(request, r) for r in rows]})


async def admin_application(request: Request) -> Response:
    """The operator's view: the application with every input the decision read and the
    package's numbers, so that the decision can be explained later."""
    principal(request, "admin")
    row = await astore(request).application(request.path_params["application_id"])
    if row is None:
        raise Problem(404, "not_found", "no such application")
    out = await application_out(request, row)
    out.update(user_id=row.user_id, inputs=row.inputs, package=row.package)
    return ok(out)


ROUTES = [
    Route("/v1/exporter/guarantee-package", guarantee_package),
    Route("/v1/exporter/companies", match_company, methods=["POST"]),
    Route("/v1/exporter/companies", list_companies, methods=["GET"]),
    Route("/v1/exporter/companies/{company_id}/consent", withdraw_consent, methods=["DELETE"]),
    Route("/v1/exporter/applications", create_application, methods=["POST"]),
    Route("/v1/exporter/applications", list_applications, methods=["GET"]),
    Route("/v1/admin/applications/{application_id}", admin_application),
]
