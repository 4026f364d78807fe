"""Every request body, query string and form the API reads, as pydantic models.

A caller reads a request with ``read(Model, raw)`` (a ``Parsed``: the model or None, the
values that parsed, every field error) or ``parse(Model, raw)`` (the model, or
``InvalidRequest``). Converted values are exact: money in integer minor units, rates in
percent x 10^4, identity numbers checked. Limits come from ``limits.py``; the document
(``openapi.py``) is generated from the same ``Wire`` markers.

Rules that need the round or the guarantee package (offer, intake and application-form rules)
are not part of reading: the use cases run them over the values that parsed and answer with
one refusal listing the field errors and theirs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, ClassVar

from pydantic import ConfigDict, Field
from pydantic_core import core_schema

from applications.model import RELATIONS, ApplicationRequest, RelatedCompany
from auction.model import CURRENCIES, LOAN_TYPES, OfferTerms
from gateway.contract import fields as F
from gateway.contract import limits as L
from gateway.contract.errors import (
    FieldError,
    FieldProblem,
    InvalidRequest,
    validation_failed,
)
from gateway.contract.reading import (
    Collector,
    Parsed,
    RequestModel,
    Wire,
    construct,
    parse,
    read,
    read_fields,
)
from gateway.contract.schema import Schema, arr, described, integer, ref, string

__all__ = [
    "DESK_ROLES",
    "AcceptBody",
    "ActivateBody",
    "ApplicationForm",
    "AuditQuery",
    "BankBody",
    "BankRoundsQuery",
    "CompanyMatchBody",
    "ConsentIn",
    "DeadlineQuery",
    "DeskUserBody",
    "ExporterQuery",
    "HolidaysQuery",
    "InvalidRequest",
    "LoginBody",
    "OAuthTokenForm",
    "OfferTermsBody",
    "OperatorBody",
    "Parsed",
    "RegisterBody",
    "RelatedCompanyIn",
    "RoundCompanyIn",
    "RoundIntakeBody",
    "parse",
    "read",
]

_FORBID = ConfigDict(frozen=True, extra="forbid")


# the converters with an exact pydantic-core twin: the fast path makes no Python call for them
def Int(schema: Schema) -> Wire:
    return Wire(F.integer, schema, native=core_schema.int_schema(strict=True))


def Bool(schema: Schema) -> Wire:
    return Wire(F.boolean, schema, native=core_schema.bool_schema(strict=True))


def Text(max_len: int, schema: Schema, nul_ok: bool = False) -> Wire:
    """A string of at most ``max_len`` characters without NUL (PostgreSQL text cannot hold
    one, and no name needs one); ``nul_ok``: a rule of the field's own refuses it."""
    return Wire(F.text(max_len, nul_ok), schema, native=core_schema.str_schema(
        max_length=max_len, strict=True, pattern=None if nul_ok else r"^[^\x00]*$"))


def Ident(max_len: int, description: str) -> Wire:
    """An id of ours (``limits.ID_CHARS``), at most ``max_len`` characters."""
    return Wire(F.ident(max_len), described(ref("Id"), description, maxLength=max_len),
                native=core_schema.str_schema(pattern=f"^[{L.ID_CHARS}]+$", min_length=1,
                                              max_length=max_len, strict=True))


# ----------------------------------------------------------------------------- offers
RATE_TEXT = "Nominal interest rate, percent per year."
AMOUNT_TEXT = ("Loan amount offered, in the round's currency; at most the requested "
               "loan_amount.")
REPAYMENT_TEXT = "Months between repayments (interest is collected at least once a year)."
FEE_TEXT = "One-off fee charged at disbursement, below amount."
COMMITMENT_TEXT = "The bank takes over the round's export commitment."
CONDITIONS_TEXT = "Free-text conditions of the offer."
TENOR_TEXT = (f"Loan tenor in months ({L.TENOR_MIN}..{L.TENOR_MAX}, limits depend on "
               "loan_type: " + "; ".join(f"{k} {r.min_tenor_months}..{r.max_tenor_months}"
                                         for k, r in L.LOAN_TYPE_RULES.items()) + ").")
GRACE_TEXT = ("Grace period in months, shorter than the tenor (at most "
               + "; ".join(f"{r.max_grace_months} for {k}" for k, r in L.LOAN_TYPE_RULES.items())
               + ").")


class OfferTermsBody(RequestModel):
    """The terms a bank offers. Unknown fields are refused (422 unknown_field)."""

    model_config = _FORBID
    UNKNOWN_FIELD: ClassVar[str] = "{} is not an offer term"

    annual_rate: Annotated[int, Wire(F.rate, described(
        ref("RateInput"), RATE_TEXT))]
    amount: Annotated[int, Wire(F.money, described(
        ref("PositiveMoneyInput"), AMOUNT_TEXT))]
    tenor_months: Annotated[int, Int(integer(TENOR_TEXT, L.TENOR_MIN,
                                                         L.TENOR_MAX))]
    grace_months: Annotated[int, Int(integer(GRACE_TEXT, 0, L.GRACE_MAX,
                                                         default=0))] = 0
    repayment_every_months: Annotated[int, Int({
        "type": "integer", "enum": list(L.REPAYMENT_PERIODS),
        "description": REPAYMENT_TEXT, "default": 1})] = 1
    upfront_fee: Annotated[int, Wire(F.money, described(
        ref("MoneyInput"), FEE_TEXT, default="0.00"))] = 0
    assumes_export_commitment: Annotated[bool, Bool({
        "type": "boolean", "description": COMMITMENT_TEXT, "default": False})] = False
    conditions: Annotated[str, Text(L.CONDITIONS_PARSE_MAX, string(
        CONDITIONS_TEXT, maxLength=L.CONDITIONS_MAX, pattern=F.PLAIN_TEXT_PATTERN,
        default=""), nul_ok=True)] = ""
    currency: Annotated[str | None, Wire(F.one_of(CURRENCIES), described(
        ref("Currency"), "Optional; must equal the round's currency."))] = None

    @classmethod
    def check(cls, v: Mapping[str, Any], c: Collector, ctx: Mapping[str, Any]) -> None:
        """``context={"currency": <the round's>}``: another currency is ``currency_mismatch``."""
        currency, want = v.get("currency"), ctx.get("currency")
        if currency is not None and want is not None and currency != want:
            c.error("currency", "currency_mismatch", f"this round is in {want}")

    def terms(self) -> OfferTerms:
        return OfferTerms(self.annual_rate, self.amount, self.tenor_months, self.grace_months,
                          self.repayment_every_months, self.upfront_fee,
                          self.assumes_export_commitment, self.conditions)


# ----------------------------------------------------------------------------- exporters
class RegisterBody(RequestModel):
    """POST /v1/exporter/register."""

    model_config = _FORBID  # unauthenticated: a field it does not know is an error

    full_name: Annotated[str, Wire(F.plain_text(L.NAME_MAX), string(
        "Full name.", maxLength=L.NAME_MAX, pattern=F.PLAIN_TEXT_PATTERN))]
    national_id: Annotated[str, Wire(F.national_id, described(
        ref("NationalId"), "Turkish national id (TCKN, 11 digits)."))]
    email: Annotated[str, Wire(F.email_address, string(
        "E-mail address.", format="email", maxLength=L.EMAIL_MAX))]
    mobile: Annotated[str, Wire(F.turkish_mobile, described(
        ref("TurkishMobile"), "Turkish mobile number (+905XXXXXXXXX)."))]
    password: Annotated[str, Wire(F.password, string(
        f"{L.PASSWORD_MIN}..{L.PASSWORD_MAX} characters.", minLength=L.PASSWORD_MIN,
        maxLength=L.PASSWORD_MAX))]


_TOTP = string(f"{L.TOTP_DIGITS}-digit one-time code.", pattern=f"^[0-9]{{{L.TOTP_DIGITS}}}$")


class ActivateBody(RequestModel):
    """POST /v1/exporter/activate. Read as sent: a wrong e-mail or code is 401, not 422."""

    model_config = _FORBID  # unauthenticated: a field it does not know is an error

    REQUIRED_ON_WIRE: ClassVar[tuple[str, ...]] = ("email", "code")

    email: Annotated[Any, Wire(raw=True, schema=string("E-mail address."))] = None
    code: Annotated[Any, Wire(raw=True, schema=_TOTP)] = None


class LoginBody(RequestModel):
    """POST /v1/exporter/login. Read as sent: wrong credentials are 401, not 422.

    ``password`` is ``""`` when absent but ``None`` when sent as JSON null, as the login
    handler has always read it (``body.get("password", "")``).
    """

    REQUIRED_ON_WIRE: ClassVar[tuple[str, ...]] = ("email", "password", "code")
    model_config = _FORBID  # unauthenticated: a field it does not know is an error

    email: Annotated[Any, Wire(raw=True, schema=string("E-mail address."))] = None
    password: Annotated[Any, Wire(raw=True, schema=string("Password."))] = ""
    code: Annotated[Any, Wire(raw=True, schema=_TOTP)] = None


class AcceptBody(RequestModel):
    """POST /v1/exporter/applications/{application_id}/accept."""

    offer_id: Annotated[str, Ident(L.OFFER_ID_MAX, "An offer from the results.")]


class ConsentIn(RequestModel):
    """The consent (muvafakatname) given with a company match."""

    text_version: Annotated[str, Text(L.ID_MAX, string(
        "The version of GET /v1/exporter/guarantee-package's consent text."))]
    accepted: Annotated[bool, Bool({"const": True})]

    @classmethod
    def check(cls, v: Mapping[str, Any], c: Collector, ctx: Mapping[str, Any]) -> None:
        """``context={"consent_text_version": <in force>}``: another version is ``outdated``."""
        if v.get("accepted") is False:
            c.error("accepted", "must_accept", "the consent must be accepted (true)")
        version, want = v.get("text_version"), ctx.get("consent_text_version")
        if version is not None and want is not None and version != want:
            c.error("text_version", "outdated", f"the consent text in force is {want}")


class CompanyMatchBody(RequestModel):
    """POST /v1/exporter/companies."""

    tax_id: Annotated[str, Wire(F.tax_id, described(ref("TaxId"),
                                                    "VKN (10 digits) or TCKN (11 digits)."))]
    consent: Annotated[ConsentIn, Wire(F.json_object, nested=True)]


class RelatedCompanyIn(RequestModel):
    """A partner or related company (the risk group)."""

    tax_id: Annotated[str, Wire(F.tax_id, described(ref("TaxId"),
                                                    "VKN (10 digits) or TCKN (11 digits)."))]
    relation: Annotated[str, Wire(F.one_of(RELATIONS), {"type": "string",
                                                        "enum": list(RELATIONS)})]
    share_pct: Annotated[int, Wire(F.share_e4, string(
        "The share the applicant and/or its partners hold in it, percent (decimal string, "
        f"0..{L.SHARE_MAX_PCT}). Insolvency of a company held 25 % or more rejects the "
        "application.", pattern=F.SHARE_PATTERN))]

    def related(self) -> RelatedCompany:
        return RelatedCompany(self.tax_id, self.relation, self.share_pct)


def _related_list(v: Any) -> Any:
    if not isinstance(v, list) or len(v) > L.RELATED_MAX:
        raise ValueError("a list of related companies")
    return v


def _read_related(c: Collector, key: str, body: Mapping[str, Any],
                  ctx: Mapping[str, Any]) -> tuple[bool, Any]:
    raw = body.get(key)
    if raw is None:
        return True, []
    if not isinstance(raw, list):
        c.error(key, "invalid", f"{key} must be a list")
        return False, None
    if len(raw) > L.RELATED_MAX:
        c.error(key, "too_many", f"at most {L.RELATED_MAX} related companies")
        return False, None
    before = len(c.errors)
    seen: set[str] = set()
    out: list[RelatedCompanyIn] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            c.error(f"{key}[{i}]", "invalid", "must be an object")
            continue
        ic = c.nested(f"{key}[{i}].")
        vals = read_fields(RelatedCompanyIn, item, ic, ctx)
        t = vals.get("tax_id")
        if t is not None and t in seen:
            ic.error("tax_id", "duplicate", "each related company once")
        elif len(vals) == 3 and t is not None:
            seen.add(t)
            out.append(construct(RelatedCompanyIn, vals))
    return len(c.errors) == before, out


def _preferred(v: Any) -> list[str]:
    if not isinstance(v, list) or len(v) > L.PREFERRED_MAX or not all(
            isinstance(c, str) and L.BANK_CODE_MIN <= len(c) <= L.BANK_CODE_MAX for c in v):
        raise FieldProblem("invalid", f"a list of at most {L.PREFERRED_MAX} bank codes")
    return list(dict.fromkeys(v))


class ApplicationForm(RequestModel):
    """The application form (Kefalet Başvuru Formu). Unknown fields are refused (422
    unknown_field)."""

    model_config = _FORBID
    UNKNOWN_FIELD: ClassVar[str] = "{} is not a field of the application form"

    company_id: Annotated[str, Ident(L.ID_MAX,
                                     "A company matched with POST /v1/exporter/companies.")]
    loan_type: Annotated[str, Wire(F.one_of(LOAN_TYPES), ref("LoanType"))]
    currency: Annotated[str, Wire(F.one_of(CURRENCIES), ref("Currency"))]
    loan_amount: Annotated[int, Wire(F.money, ref("PositiveMoneyInput"))]
    guarantee_amount: Annotated[int, Wire(F.money, described(
        ref("PositiveMoneyInput"), "At most loan_amount; the guarantee rate cap of the package "
                           "applies (exporters / FX-earning 100 %, other SMEs 85 %, other "
                           "non-SMEs 80 %)."))]
    tenor_months: Annotated[int, Int(integer(
        f"Within the loan type's limits (minimum {L.TENOR_MIN}).", L.TENOR_MIN, L.TENOR_MAX))]
    grace_months: Annotated[int, Int(integer(
        "Shorter than the tenor, within the loan type's limit.", 0, L.GRACE_MAX,
        default=0))] = 0
    export_commitment: Annotated[bool, Bool({
        "type": "boolean", "description": "The exporter commits to bring the export proceeds "
                                          "to the lending bank.", "default": False})] = False
    purpose: Annotated[str, Wire(F.plain_text(L.PURPOSE_MAX), string(
        "What the loan is for.", maxLength=L.PURPOSE_MAX, pattern=F.PLAIN_TEXT_PATTERN,
        default=""))] = ""
    related_companies: Annotated[list[RelatedCompanyIn], Wire(
        _related_list, reader=_read_related, schema=arr(
            ref("RELATED_COMPANY"), "Partners and related companies (the risk group); the "
            "registry's known affiliates are added.", maxItems=L.RELATED_MAX, default=[]))
    ] = Field(default_factory=list)
    preferred_banks: Annotated[list[str], Wire(_preferred, arr(
        {"type": "string", "minLength": L.BANK_CODE_MIN, "maxLength": L.BANK_CODE_MAX},
        "Bank codes the exporter prefers: shown to every bank as a flag, never used to hide "
        "the request.", maxItems=L.PREFERRED_MAX, default=[]))] = Field(default_factory=list)

    @classmethod
    def check(cls, v: Mapping[str, Any], c: Collector, ctx: Mapping[str, Any]) -> None:
        seen: set[str] = set()  # duplicates (the slow path's reader has already named its own)
        for i, r in enumerate(v.get("related_companies") or ()):
            if r.tax_id in seen:
                c.error(f"related_companies[{i}].tax_id", "duplicate", "each related company once")
            seen.add(r.tax_id)

    def request(self) -> ApplicationRequest:
        return ApplicationRequest(
            self.loan_type, self.currency, self.loan_amount, self.guarantee_amount,
            self.tenor_months, self.grace_months,
            tuple(r.related() for r in self.related_companies), tuple(self.preferred_banks),
            self.export_commitment, self.purpose)


# ----------------------------------------------------------------------------- operator
DESK_ROLES = ("viewer", "trader", "admin")


class DeskUserBody(RequestModel):
    """POST /v1/admin/banks/{bank_id}/users."""

    email: Annotated[str, Wire(F.email_address, string(
        "E-mail address (the login).", format="email", maxLength=L.EMAIL_MAX))]
    full_name: Annotated[str, Wire(F.plain_text(L.NAME_MAX), string(
        "Full name.", maxLength=L.NAME_MAX, pattern=F.PLAIN_TEXT_PATTERN))]
    role: Annotated[str, Wire(F.one_of(DESK_ROLES), string(
        "viewer: sees books and results; trader: also offers and revises; admin: the bank's "
        "user administrator: sees what a viewer sees and creates and deactivates the bank's "
        "own desk users on the desk pages (never offers).",
        enum=list(DESK_ROLES)))]


class OperatorBody(RequestModel):
    """POST /v1/admin/operators."""

    email: Annotated[str, Wire(F.email_address, string(
        "E-mail address (the login).", format="email", maxLength=L.EMAIL_MAX))]
    full_name: Annotated[str, Wire(F.plain_text(L.NAME_MAX), string(
        "Full name.", maxLength=L.NAME_MAX, pattern=F.PLAIN_TEXT_PATTERN))]


class BankBody(RequestModel):
    """POST /v1/admin/banks."""

    bank_code: Annotated[str, Text(L.BANK_CODE_MAX, string(
        f"{L.BANK_CODE_MIN}..{L.BANK_CODE_MAX} characters A-Z, 0-9, _.",
        pattern=f"^{L.BANK_CODE_PATTERN}$"))]
    name: Annotated[str, Wire(F.plain_text(L.NAME_MAX), string(
        "Bank name.", maxLength=L.NAME_MAX, pattern=F.PLAIN_TEXT_PATTERN))]

    @classmethod
    def check(cls, v: Mapping[str, Any], c: Collector, ctx: Mapping[str, Any]) -> None:
        code = v.get("bank_code")
        if code is not None and not F.bank_code_ok(code):
            c.error("bank_code", "invalid",
                    f"{L.BANK_CODE_MIN}..{L.BANK_CODE_MAX} characters A-Z, 0-9, _")


CONTACT_KEYS = ("name", "email", "phone")


def _contact(v: Any) -> dict[str, str]:
    """Only name, e-mail and phone are kept; each is text (anything else was once stored as
    its ``str()``, a null as "None": the document says string)."""
    out = {}
    for k, x in F.json_object(v).items():
        if k in CONTACT_KEYS:
            if not isinstance(x, str):
                raise ValueError(f"{k} must be a string")
            out[k] = x
    return out


def _assessment(v: Any) -> dict[str, Any]:
    """An object (once anything else was dropped silently: the document says object)."""
    return F.json_object(v)


class RoundCompanyIn(RequestModel):
    """The company of a manual intake."""

    name: Annotated[str, Wire(F.plain_text(L.NAME_MAX), string(
        "Trade name.", maxLength=L.NAME_MAX, pattern=F.PLAIN_TEXT_PATTERN))]
    tax_id: Annotated[str, Wire(F.tax_id_round, described(
        ref("TaxId"), "VKN (10 digits) or TCKN (11 digits)."))]
    is_sme: Annotated[bool, Bool({"type": "boolean"})]
    sector: Annotated[str | None, Wire(F.plain_text(L.SECTOR_MAX), string(
        "Sector.", maxLength=L.SECTOR_MAX, pattern=F.PLAIN_TEXT_PATTERN))] = None
    contact: Annotated[dict[str, str], Wire(_contact, ref("Contact"))] = Field(
        default_factory=dict)

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "tax_id": self.tax_id, "is_sme": self.is_sme,
                "sector": self.sector, "contact": dict(self.contact)}


class RoundIntakeBody(RequestModel):
    """POST /v1/admin/rounds: a manual intake. Unknown fields are ignored."""

    company: Annotated[RoundCompanyIn, Wire(F.json_object, nested=True)]
    loan_type: Annotated[str, Wire(F.one_of(LOAN_TYPES), ref("LoanType"))]
    currency: Annotated[str, Wire(F.one_of(CURRENCIES), ref("Currency"))]
    loan_amount: Annotated[int, Wire(F.money, ref("PositiveMoneyInput"))]
    guarantee_amount: Annotated[int, Wire(F.money, described(ref("PositiveMoneyInput"),
                                                             "At most loan_amount."))]
    tenor_months: Annotated[int, Int(integer(
        "Within the loan type's limits.", L.TENOR_MIN, L.TENOR_MAX))]
    grace_months: Annotated[int, Int(integer(
        "Shorter than the tenor.", 0, L.GRACE_MAX, default=0))] = 0
    export_commitment: Annotated[bool, Bool({"type": "boolean",
                                                        "default": False})] = False
    exporter_user_id: Annotated[str | None, Ident(
        L.ID_MAX, "The exporter who may follow and accept the round; an application id is "
                  "created for it.")] = None
    assessment: Annotated[dict[str, Any] | None, Wire(_assessment, {
        "type": "object", "description": "Optional scoring to show banks."})] = None

    def values(self) -> dict[str, Any]:
        """The keyword arguments of ``Core.open_round`` (without ids and actor)."""
        return {"company": self.company.record(), "loan_type": self.loan_type,
                "currency": self.currency, "loan_amount": self.loan_amount,
                "guarantee_amount": self.guarantee_amount, "tenor_months": self.tenor_months,
                "grace_months": self.grace_months, "export_commitment": self.export_commitment,
                "exporter_user_id": self.exporter_user_id, "assessment": self.assessment}


# ----------------------------------------------------------------------------- forms
_GRANT = "grant_type must be client_credentials"


def _grant_type(v: Any) -> str:
    if v != "client_credentials":
        raise FieldProblem("unsupported_grant_type", _GRANT)
    return "client_credentials"


def _form_text(v: Any) -> str:
    return str(v or "")


class OAuthTokenForm(RequestModel):
    """POST /v1/oauth/token (application/x-www-form-urlencoded). A missing grant_type is 400
    validation_failed, another one 400 unsupported_grant_type; wrong credentials are 401."""

    REQUIRED_ON_WIRE: ClassVar[tuple[str, ...]] = ("client_id", "client_secret")
    NULL_IS_ABSENT: ClassVar[bool] = False

    grant_type: Annotated[str, Wire(_grant_type, {"type": "string",
                                                  "const": "client_credentials"},
                                    empty_is_missing=True)]
    client_id: Annotated[str, Wire(_form_text, string("From the operator."))] = ""
    client_secret: Annotated[str, Wire(_form_text, string("From the operator."))] = ""

    @classmethod
    def refusal(cls, errors: list[FieldError]) -> InvalidRequest:
        code = "unsupported_grant_type" if any(
            e.code == "unsupported_grant_type" for e in errors) else "validation_failed"
        return InvalidRequest(400, code, _GRANT)


# ----------------------------------------------------------------------------- headers
def idempotency_key(value: str | None) -> str | None:
    """The ``Idempotency-Key`` header: None when absent; empty is 422 (field
    ``Idempotency-Key``, code ``empty``: an empty key is no key, and a retry sent with it would
    make a second object), longer than ``IDEMPOTENCY_KEY_MAX`` characters is 422 (``too_long``).
    """
    if value is None:
        return None
    if not value:
        raise validation_failed([FieldError("Idempotency-Key", "empty",
                                            "must not be empty: send a key, or no header")])
    if len(value) > L.IDEMPOTENCY_KEY_MAX:
        raise validation_failed([FieldError("Idempotency-Key", "too_long",
                                            f"at most {L.IDEMPOTENCY_KEY_MAX} characters")])
    return value


# ----------------------------------------------------------------------------- query strings
def _bounded(lo: int, hi: int, message: str) -> F.Converter:
    digits = F.digits_in_range(lo, hi)

    def conv(s: Any) -> int:
        n = digits(s) if isinstance(s, str) else None
        if n is None:
            raise FieldProblem("invalid", message)
        return n
    return conv


_START = re.compile(L.START_PATTERN)
_START_YEARS = (f"the calendar's years: a start in {L.START_YEAR_MIN}..{L.START_YEAR_MAX}, so "
                f"that the deadline falls in {L.YEAR_MIN}..{L.YEAR_MAX}")


def _start(s: Any) -> datetime:
    t = F.timestamp_with_offset(str(s))
    if t == "invalid":
        raise FieldProblem("invalid", "ISO 8601 timestamp expected")
    if t == "no_offset":
        raise FieldProblem("no_offset", "timestamp needs an offset")
    assert isinstance(t, datetime)
    if not L.START_YEAR_MIN <= t.year <= L.START_YEAR_MAX:
        raise FieldProblem("out_of_range", _START_YEARS)
    if not _START.match(str(s)):  # an ISO 8601 basic or week date: the extended form only
        raise FieldProblem("invalid", "an RFC 3339 timestamp (2026-03-18T14:30:00Z) expected")
    return t


class DeadlineQuery(RequestModel):
    """GET /v1/calendar/deadline."""

    start: Annotated[datetime, Wire(_start, string(
        f"A timestamp with an offset (RFC 3339), in {L.START_YEAR_MIN}..{L.START_YEAR_MAX} (the "
        "holiday calendar's years, less the deadline's room); another year is 422 "
        "`out_of_range`.", format="date-time", pattern=L.START_PATTERN),
        empty_is_missing=True)]
    business_days: Annotated[int, Wire(_bounded(
        L.BUSINESS_DAYS_MIN, L.BUSINESS_DAYS_MAX,
        f"an integer {L.BUSINESS_DAYS_MIN}..{L.BUSINESS_DAYS_MAX}"), integer(
        "Business days to add.", L.BUSINESS_DAYS_MIN, L.BUSINESS_DAYS_MAX,
        default=L.BUSINESS_DAYS_DEFAULT))] = L.BUSINESS_DAYS_DEFAULT


class HolidaysQuery(RequestModel):
    """GET /v1/calendar/holidays. ``year`` None: the current year (UTC)."""

    year: Annotated[int | None, Wire(_bounded(
        L.YEAR_MIN, L.YEAR_MAX, f"a year {L.YEAR_MIN}..{L.YEAR_MAX}"), integer(
        f"{L.YEAR_MIN}..{L.YEAR_MAX}; the current year by default.", L.YEAR_MIN,
        L.YEAR_MAX))] = None


def _state(v: Any) -> str:
    if v not in L.ROUND_LIST_STATES:
        raise FieldProblem("invalid", "state must be " + ", ".join(L.ROUND_LIST_STATES[:-1])
                           + " or " + L.ROUND_LIST_STATES[-1])
    return str(v)


def _cursor(v: Any) -> tuple[int, str]:
    try:
        return F.cursor(str(v))
    except ValueError:
        raise FieldProblem("invalid", "bad cursor") from None


class BankRoundsQuery(RequestModel):
    """GET /v1/bank/rounds."""

    state: Annotated[str, Wire(_state, described(ref("RoundState"), "Which rounds.",
                                                 default="open"))] = "open"
    limit: Annotated[int, Wire(_bounded(L.PAGE_MIN, L.PAGE_MAX,
                                        f"an integer {L.PAGE_MIN}..{L.PAGE_MAX}"), integer(
        "Page size.", L.PAGE_MIN, L.PAGE_MAX, default=L.PAGE_DEFAULT))] = L.PAGE_DEFAULT
    cursor: Annotated[tuple[int, str] | None, Wire(_cursor, {
        "type": "string", "pattern": L.CURSOR_PATTERN_OR_EMPTY,
        "description": "`next_cursor` of the previous page (opaque)."},
        empty_is_missing=True)] = None


def _after_id(v: Any) -> int:
    n = F.digits_in_range(0, L.AUDIT_ID_MAX)(v) if isinstance(v, str) else None
    if n is None:
        raise FieldProblem("invalid", f"an integer 0..{L.AUDIT_ID_MAX}")
    return n


def _moment(s: Any) -> datetime:
    """A filter's time: an RFC 3339 timestamp with an offset, in the calendar's years."""
    return _start(s)


class ExporterQuery(RequestModel):
    """GET /v1/admin/exporters."""

    email: Annotated[str, Wire(F.text(L.EMAIL_MAX), string(
        "The account's e-mail address (any case).", minLength=1, maxLength=L.EMAIL_MAX),
        empty_is_missing=True)]


class AuditQuery(RequestModel):
    """GET /v1/admin/audit."""

    round_id: Annotated[str | None, Wire(F.ident(L.PATH_ID_MAX), {
        "type": "string", "pattern": f"^(?:{L.PATH_ID_REGEX})?$",
        "description": "Only this round."}, empty_is_missing=True)] = None
    after_id: Annotated[int, Wire(_after_id, integer(
        "Entries after this id (`next_after_id` of the previous page).", 0, L.AUDIT_ID_MAX,
        default=0))] = 0
    actor: Annotated[str | None, Wire(F.actor, {
        "type": "string", "pattern": f"^(?:{L.ACTOR_REGEX})?$", "maxLength": L.ACTOR_MAX,
        "description": "Only this actor's entries (`admin`, `system`, `bank:<id>`, "
                       "`desk:<id>`, `operator:<id>`...)."}, empty_is_missing=True)] = None
    action: Annotated[str | None, Wire(F.action, {
        "type": "string", "pattern": f"^(?:{L.ACTION_REGEX})?$",
        "description": "Only this action's entries (`offer_submitted`, `round_closed`...)."},
        empty_is_missing=True)] = None
    since: Annotated[datetime | None, Wire(_moment, string(
        "Entries at or after this time (RFC 3339, with an offset; empty is refused).",
        format="date-time", pattern=L.START_PATTERN))] = None
    until: Annotated[datetime | None, Wire(_moment, string(
        "Entries before this time (RFC 3339, with an offset; empty is refused).",
        format="date-time", pattern=L.START_PATTERN))] = None

