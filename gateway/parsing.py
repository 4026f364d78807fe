"""Request bodies and query strings to plain data, listing every offending field (422
validation_failed): what the routes hand to the use cases."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from stdnum.tr import tckimlik, vkn

from applications.model import RELATIONS, ApplicationRequest, RelatedCompany
from applications.package import GuaranteePackage
from applications.rules import check_terms
from auction.model import (
    CURRENCIES,
    LOAN_TYPES,
    money_to_minor,
    parse_decimal,
    rate_to_e4,
)
from auction.rules import FieldError
from gateway.problems import problem, refuse
from usecases.accounts import NewExporter
from usecases.bidding import OfferDraft
from usecases.outcomes import Refusal, invalid

T = TypeVar("T")

MAX_RELATED = 50
MAX_PREFERRED = 30
MAX_PURPOSE = 2000
MAX_CONDITIONS_READ = 10_000  # read at most this; the rule allows auction.rules.MAX_CONDITIONS_LEN
MAX_PAGE = 200
DEFAULT_PAGE = 50
MAX_BUSINESS_DAYS = 366
YEARS = (2000, 2100)


def parse_json(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise refuse("malformed_json", "the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise problem(Refusal("validation_failed", "the body must be a JSON object",
                              (FieldError("", "not_object", "expected an object"),)))
    return body


class Fields:
    """Collects field errors while reading a JSON object."""

    def __init__(self, body: dict[str, Any], prefix: str = "") -> None:
        self.body = body
        self.prefix = prefix
        self.errors: list[FieldError] = []

    def error(self, name: str, code: str, message: str) -> None:
        self.errors.append(FieldError(self.prefix + name, code, message))

    def get(self, name: str, conv: Callable[[Any], T], required: bool = True,
            default: T | None = None) -> T | None:
        if name not in self.body or self.body[name] is None:
            if required:
                self.error(name, "required", f"{name} is required")
            return default
        try:
            return conv(self.body[name])
        except (ValueError, TypeError) as e:
            self.error(name, "invalid", f"{name}: {e}")
            return default

    def check(self) -> None:
        if self.errors:
            raise problem(invalid(self.errors))


# ----------------------------------------------------------------------------- converters
def integer(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError("must be an integer")
    return v


def json_object(v: Any) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise ValueError("must be an object")
    return v


def boolean(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError("must be true or false")
    return v


def text(max_len: int) -> Callable[[Any], str]:
    def conv(v: Any) -> str:
        if not isinstance(v, str):
            raise ValueError("must be a string")
        if len(v) > max_len:
            raise ValueError(f"at most {max_len} characters")
        return v
    return conv


def plain_text(max_len: int) -> Callable[[Any], str]:
    base = text(max_len)

    def conv(v: Any) -> str:
        s = base(v)
        if any(ord(ch) < 32 and ch not in "\t\r\n" or ch == "\x7f" or "\ud800" <= ch <= "\udfff"
               for ch in s):
            raise ValueError("no control characters other than tab and line breaks")
        return s
    return conv


def one_of(options: tuple[str, ...]) -> Callable[[Any], str]:
    def conv(v: Any) -> str:
        if v not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return str(v)
    return conv


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


def national_id(v: Any) -> str:
    if not isinstance(v, str) or not tckimlik.is_valid(v):
        raise ValueError("not a valid Turkish national id (TCKN)")
    return str(tckimlik.compact(v))


def password(v: Any) -> str:
    if not isinstance(v, str) or len(v) < 10 or len(v) > 200:
        raise ValueError("10..200 characters")
    return v


def share_e4(v: Any) -> int:
    d = parse_decimal(v, 2)
    if not 0 <= d <= 100:
        raise ValueError("a percentage 0..100")
    return int(d * 10_000)


# ----------------------------------------------------------------------------- bodies
OFFER_FIELDS = ("annual_rate", "amount", "tenor_months", "grace_months", "repayment_every_months",
                "upfront_fee", "assumes_export_commitment", "conditions", "currency")


def offer_draft(body: dict[str, Any]) -> OfferDraft:
    """Offer terms as far as they parse; the round rules over them are the use case's."""
    f = Fields(body)
    for k in body:
        if k not in OFFER_FIELDS:
            f.error(k, "unknown_field", f"{k} is not an offer term")
    values: dict[str, Any] = {
        "annual_rate_e4": f.get("annual_rate", rate_to_e4),
        "amount": f.get("amount", money_to_minor),
        "tenor_months": f.get("tenor_months", integer),
        "grace_months": f.get("grace_months", integer, required=False, default=0),
        "repayment_every_months": f.get("repayment_every_months", integer, required=False,
                                        default=1),
        "upfront_fee": f.get("upfront_fee", money_to_minor, required=False, default=0),
        "assumes_export_commitment": bool(f.get("assumes_export_commitment", boolean,
                                                required=False, default=False)),
        "conditions": f.get("conditions", text(MAX_CONDITIONS_READ), required=False,
                            default=""),
    }
    currency = f.get("currency", one_of(CURRENCIES), required=False)
    if currency is not None:
        values["currency"] = currency
    return OfferDraft({k: v for k, v in values.items() if v is not None}, tuple(f.errors))


def exporter(body: dict[str, Any]) -> NewExporter:
    f = Fields(body)
    full_name = f.get("full_name", text(200))
    nid = f.get("national_id", national_id)
    email = f.get("email", email_address)
    mobile = f.get("mobile", turkish_mobile)
    pw = f.get("password", password)
    f.check()
    assert full_name is not None and nid is not None and email is not None
    assert mobile is not None and pw is not None
    return NewExporter(email, full_name, nid, mobile, pw)


def bank(body: dict[str, Any]) -> tuple[str, str]:
    f = Fields(body)
    code = f.get("bank_code", text(20))
    name = f.get("name", text(200))
    if code is not None and not re.fullmatch(r"[A-Z0-9_]{2,20}", code):
        f.error("bank_code", "invalid", "2..20 characters A-Z, 0-9, _")
    f.check()
    return code or "", name or ""


def accept(body: dict[str, Any]) -> str:
    f = Fields(body)
    offer_id = f.get("offer_id", text(60))
    f.check()
    return offer_id or ""


def round_intake(body: dict[str, Any]) -> tuple[dict[str, Any], list[FieldError]]:
    """The operator's manual intake: the values that parsed, and the errors."""
    f = Fields(body)
    company = f.get("company", json_object)
    if isinstance(company, dict):
        cf = Fields(company, "company.")
        cf.get("name", text(200))
        cf.get("tax_id", tax_id)
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
    return vals, f.errors


def consent(body: dict[str, Any], pkg: GuaranteePackage) -> str:
    """Company matching: the tax id, with the consent to the text in force."""
    f = Fields(body)
    tid = f.get("tax_id", tax_id)
    c = f.get("consent", json_object)
    if isinstance(c, dict):
        cf = Fields(c, "consent.")
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
    return tid


APPLICATION_FIELDS = ("company_id", "loan_type", "currency", "loan_amount", "guarantee_amount",
                      "tenor_months", "grace_months", "related_companies", "preferred_banks",
                      "export_commitment", "purpose")


def application(body: dict[str, Any], package: GuaranteePackage
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
    purpose = f.get("purpose", plain_text(MAX_PURPOSE), required=False, default="")
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
                "grace_months"}.isdisjoint(e.field for e in f.errors)
    req = ApplicationRequest(
        loan_type or "", currency or "", loan_amount or 0, guarantee_amount or 0, tenor or 0,
        grace or 0, tuple(related), tuple(preferred), bool(commitment), purpose or "")
    if terms_ok:
        for r in check_terms(req, package):
            f.error(r.field or "", r.code, r.text)
    f.check()
    assert company_id is not None
    return company_id, req


# ----------------------------------------------------------------------------- query strings
def _bad(name: str, message: str, code: str = "invalid") -> FieldError:
    return FieldError(name, code, message)


def cursor(raw: str | None) -> tuple[int, str] | None:
    if not raw:
        return None
    try:
        a, _, b = base64.urlsafe_b64decode(raw.encode()).decode().partition(":")
        return int(a), b
    except (ValueError, UnicodeDecodeError):
        raise problem(invalid([_bad("cursor", "bad cursor")])) from None


def pool_query(q: dict[str, str]) -> tuple[str, int, tuple[int, str] | None]:
    state = q.get("state", "open")
    if state not in ("open", "closed", "accepted", "lapsed"):
        raise problem(invalid([_bad("state", "state must be open, closed, accepted or lapsed")]))
    raw_limit = q.get("limit", str(DEFAULT_PAGE))
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_PAGE:
        raise problem(invalid([_bad("limit", f"an integer 1..{MAX_PAGE}")]))
    return state, int(raw_limit), cursor(q.get("cursor"))


def timestamp(name: str, value: str | None) -> datetime | FieldError:
    if not value:
        return _bad(name, f"{name} is required", "required")
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return _bad(name, "ISO 8601 timestamp expected")
    if t.tzinfo is None:
        return _bad(name, "timestamp needs an offset", "no_offset")
    return t


def deadline_query(q: dict[str, str]) -> tuple[datetime, int]:
    errors: list[FieldError] = []  # every offending parameter is listed, not the first
    start = timestamp("start", q.get("start"))
    if isinstance(start, FieldError):
        errors.append(start)
    raw_n = q.get("business_days", "7")
    if not raw_n.isdigit() or not 0 <= int(raw_n) <= MAX_BUSINESS_DAYS:
        errors.append(_bad("business_days", f"an integer 0..{MAX_BUSINESS_DAYS}"))
    if errors:
        raise problem(invalid(errors))
    assert isinstance(start, datetime)
    return start, int(raw_n)


def year_query(q: dict[str, str], default: int) -> int:
    year_s = q.get("year", str(default))
    if not year_s.isdigit() or not YEARS[0] <= int(year_s) <= YEARS[1]:
        raise problem(invalid([_bad("year", f"a year {YEARS[0]}..{YEARS[1]}")]))
    return int(year_s)


def after_id_query(q: dict[str, str]) -> int:
    after = q.get("after_id", "0")
    if not after.isdigit():
        raise problem(invalid([_bad("after_id", "an integer")]))
    return int(after)
