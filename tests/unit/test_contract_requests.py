"""Every request the API reads gives the exact outcome the gateway has always given.

A request is read the way its route reads it (``gateway/routes/*.py``): the body bytes (or the
decoded JSON object), the query string or the form through ``gateway.contract``'s
``read``/``parse``; where a rule needs the round or the guarantee package, the use case's
check follows over what was read (``usecases.bidding.check_offer``,
``usecases.applying.check_form``, ``usecases.operator.Operator.intake``), so one refusal lists
the fields that did not parse and the rules' errors together.

Table-driven cases sit just inside and just outside each limit. Each states its outcome as a
literal: the converted values (money in minor units, rates and shares in percent x 10^4,
identity numbers checked and normalised, the offer's APR) or the exact refusal: status, code,
detail and every offending field as ``(field, code, message)``, in order. The literals were
recorded from the hand-written parsers and handlers these readers replaced (``offer_terms``,
``parse_json``, ``parse_round_body``, ``parse_application``, the handlers of ``gateway.app``
and ``gateway.exporter_api``, ``Core.price`` and ``Core.idem``), so the file pins that a
client sees no change, except where a change was meant; those cases say why:

* ``GET /v1/bank/rounds`` lists every bad parameter (state, limit, cursor) as every other 422
  does, where the old handler named only the first;
* a query-string digit ``int()`` cannot read (``year=²``) is a 422, where it was a 500.

The rules that need the round or the package moved from the gateway into the use cases; their
outcomes did not change, which is what the cases through the use cases show (one difference
these tests found, a 500 for an intake whose export_commitment did not parse, was fixed in
``Operator.intake``).

Generated bodies (hypothesis) mix good values, values just outside each limit, wrong types,
nulls and unknown fields. On them the file proves what needs no recorded outcome: reading the
bytes and reading the decoded object agree, as do the fast path (pydantic-core) and the
per-field slow path; what is accepted round-trips through its wire form; every error names a
real field (or an unknown one that was sent), each once, and every missing required field and
every unknown field is named.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.datastructures import QueryParams
from starlette.requests import Request

from applications.model import ApplicationRequest, RelatedCompany
from applications.package import KGF_HD_2026_1
from auction.model import OfferTerms, RoundTerms, dt_to_ms, e4_to_rate, minor_to_money
from gateway.contract import fields as F
from gateway.contract import limits as L
from gateway.contract.errors import InvalidRequest
from gateway.contract.reading import _slow
from gateway.contract.requests import (
    AcceptBody,
    ActivateBody,
    ApplicationForm,
    AuditQuery,
    BankBody,
    BankRoundsQuery,
    CompanyMatchBody,
    DeadlineQuery,
    HolidaysQuery,
    LoginBody,
    OAuthTokenForm,
    OfferTermsBody,
    RegisterBody,
    RoundCompanyIn,
    RoundIntakeBody,
    idempotency_key,
    parse,
    read,
)
from tests.support import OFFER_BODY, ROUND_BODY
from usecases.applying import ApplicationDraft, check_form
from usecases.bidding import check_offer
from usecases.opening import RoundRequest
from usecases.operator import Operator
from usecases.outcomes import Draft, Refusal

PACKAGE = KGF_HD_2026_1  # in force on 2026-05-01 (NOW)
NOW = datetime(2026, 5, 1, tzinfo=UTC)
RND = RoundTerms("rnd_1", "TRY", "working_capital", 500_000_000, 400_000_000, 24, 6, True, 0, 0)
LIMITS = PACKAGE.loan_types[RND.loan_type]
VALID_VKN = "1234567890"
VALID_TCKN = "10000000146"
NOT_A_TAX_ID = "not a valid Turkish tax id (VKN, 10 digits) or TCKN (11 digits)"
CONTROL_CHARACTERS = ("conditions must not contain control characters other than tab and "
                      "line breaks")
PLAIN_DECIMAL = 'must be a plain decimal string like "1500000.00"'
NOT_AN_OBJECT = (422, "validation_failed", "the body must be a JSON object",
                 [("", "not_object", "expected an object")])
MALFORMED = (400, "malformed_json", "the body must be a JSON object", None)

Triple = tuple[str, str, str]
#: a refusal as a client sees it: (status, code, detail, [(field, code, message)] or None)
WireProblem = tuple[int, str, str, list[Triple] | None]


def as_bytes(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")


def triples(errors: Any) -> list[Triple]:
    return [(e.field, e.code, e.message) for e in errors]


def refused(e: InvalidRequest) -> WireProblem:
    return (e.status, e.code, e.detail, None if e.errors is None else triples(e.errors))


def use_case_refusal(r: Refusal) -> list[Triple]:
    """A use case's refusal of a request: always one 422 naming every offending field."""
    assert r.code == "validation_failed"
    assert r.detail == "invalid fields: " + ", ".join(sorted({e.field for e in r.errors or ()}))
    return triples(r.errors or ())


# ----------------------------------------------------------------------------- offers
def offer(raw: Any, rnd: RoundTerms = RND) -> tuple[OfferTerms, int] | list[Triple]:
    """As ``POST /v1/bank/rounds/{id}/offers``: the terms read (``gateway/routes/bank.py``),
    then ``Bidding``'s check over them (the round rules, the APR): the terms and their APR,
    or every offending field."""
    got = read(OfferTermsBody, raw)
    out = check_offer(Draft(got.values, got.errors), rnd, LIMITS)
    return use_case_refusal(out) if isinstance(out, Refusal) else out


def assert_offer(body: dict[str, Any], expected: Any) -> None:
    assert offer(body) == expected, body
    assert offer(as_bytes(body)) == expected, body


EVERY_BAD = {"annual_rate": 31.25, "amount": "1e6", "tenor_months": "24", "grace_months": 1.5,
             "repayment_every_months": None, "upfront_fee": "-", "assumes_export_commitment": 0,
             "conditions": [], "currency": "EUR", "offer_id": "off_1", "rank": 1}


@pytest.mark.parametrize(("body", "expected"), [
    (OFFER_BODY,
     (OfferTerms(385000, 500000000, 24, 6, 3, 0, True, "standard"), 444550)),
    ({},
     [("annual_rate", "required", "annual_rate is required"),
      ("amount", "required", "amount is required"),
      ("tenor_months", "required", "tenor_months is required")]),
    (EVERY_BAD,
     [("offer_id", "unknown_field", "offer_id is not an offer term"),
      ("rank", "unknown_field", "rank is not an offer term"),
      ("annual_rate", "invalid", "annual_rate: must be a decimal string"),
      ("amount", "invalid", f"amount: {PLAIN_DECIMAL}"),
      ("tenor_months", "invalid", "tenor_months: must be an integer"),
      ("grace_months", "invalid", "grace_months: must be an integer"),
      ("upfront_fee", "invalid", f"upfront_fee: {PLAIN_DECIMAL}"),
      ("assumes_export_commitment", "invalid",
       "assumes_export_commitment: must be true or false"),
      ("conditions", "invalid", "conditions: must be a string"),
      ("currency", "currency_mismatch", "this round is in TRY")]),
])
def test_a_typical_an_empty_and_an_all_bad_offer(body: dict[str, Any], expected: Any) -> None:
    assert_offer(body, expected)


@pytest.mark.parametrize(("changes", "expected"), [
    ({"conditions": "x" * L.CONDITIONS_MAX},
     (OfferTerms(385000, 500000000, 24, 6, 3, 0, True, "x" * 2000), 444550)),
    ({"conditions": "x" * (L.CONDITIONS_MAX + 1)},
     [("conditions", "too_long", "conditions must be at most 2000 characters")]),
    ({"conditions": "x" * L.CONDITIONS_PARSE_MAX},
     [("conditions", "too_long", "conditions must be at most 2000 characters")]),
    ({"conditions": "x" * (L.CONDITIONS_PARSE_MAX + 1)},
     [("conditions", "invalid", "conditions: at most 10000 characters")]),
    ({"conditions": "a\x00b"},
     [("conditions", "invalid_characters", CONTROL_CHARACTERS)]),
    ({"conditions": "a\tb\r\n"},
     (OfferTerms(385000, 500000000, 24, 6, 3, 0, True, "a\tb\r\n"), 444550)),
    ({"conditions": "\ud800"},
     [("conditions", "invalid_characters", CONTROL_CHARACTERS)]),
    ({"annual_rate": "38.5001"},
     (OfferTerms(385001, 500000000, 24, 6, 3, 0, True, "standard"), 444551)),
    ({"annual_rate": "38.50001"},
     [("annual_rate", "invalid", "annual_rate: at most 4 decimal places")]),
    ({"annual_rate": "500.00"},
     (OfferTerms(5000000, 500000000, 24, 6, 3, 0, True, "standard"), 24642948)),
    ({"annual_rate": "500.0001"},
     [("annual_rate", "too_high", "annual_rate must be at most 500.00 percent a year")]),
    ({"annual_rate": "0"},
     [("annual_rate", "not_positive", "annual_rate must be greater than 0")]),
    ({"annual_rate": "-1"},
     [("annual_rate", "not_positive", "annual_rate must be greater than 0")]),
    ({"annual_rate": 38.5},
     [("annual_rate", "invalid", "annual_rate: must be a decimal string")]),
    ({"annual_rate": "1e2"},
     [("annual_rate", "invalid", f"annual_rate: {PLAIN_DECIMAL}")]),
    ({"annual_rate": " 38.5"},
     [("annual_rate", "invalid", f"annual_rate: {PLAIN_DECIMAL}")]),
    ({"annual_rate": "٣٨.٥"},
     [("annual_rate", "invalid", f"annual_rate: {PLAIN_DECIMAL}")]),
    ({"annual_rate": ".5"},
     (OfferTerms(5000, 500000000, 24, 6, 3, 0, True, "standard"), 5185)),
    ({"annual_rate": "5."},
     (OfferTerms(50000, 500000000, 24, 6, 3, 0, True, "standard"), 51135)),
    ({"amount": "5000000.00"},
     (OfferTerms(385000, 500000000, 24, 6, 3, 0, True, "standard"), 444550)),
    ({"amount": "5000000.01"},
     [("amount", "above_requested", "amount must not exceed the requested loan amount")]),
    ({"amount": "1.001"},
     [("amount", "invalid", "amount: at most 2 decimal places")]),
    ({"amount": "9" * 15},
     [("amount", "above_requested", "amount must not exceed the requested loan amount")]),
    ({"amount": "9" * 16},
     [("amount", "invalid", "amount: at most 15 digits before the decimal point")]),
    ({"amount": "0" * 20 + "1"},
     (OfferTerms(385000, 100, 24, 6, 3, 0, True, "standard"), 444545)),
    ({"amount": "-0.00"},
     [("amount", "not_positive", "amount must be greater than 0")]),
    ({"amount": 5000000},
     [("amount", "invalid", "amount: must be a decimal string")]),
    ({"amount": None},
     [("amount", "required", "amount is required")]),
    ({"tenor_months": 5},
     [("tenor_months", "below_minimum", "tenor_months must be at least 6 for working_capital"),
      ("grace_months", "not_below_tenor", "grace_months must be shorter than tenor_months")]),
    ({"tenor_months": 6},
     [("grace_months", "not_below_tenor", "grace_months must be shorter than tenor_months")]),
    ({"tenor_months": 60},
     (OfferTerms(385000, 500000000, 60, 6, 3, 0, True, "standard"), 444436)),
    ({"tenor_months": 61},
     [("tenor_months", "above_maximum", "tenor_months must be at most 60 for working_capital")]),
    ({"tenor_months": True},
     [("tenor_months", "invalid", "tenor_months: must be an integer")]),
    ({"tenor_months": 24.0},
     [("tenor_months", "invalid", "tenor_months: must be an integer")]),
    ({"tenor_months": 10**30},
     [("tenor_months", "above_maximum", "tenor_months must be at most 60 for working_capital")]),
    ({"grace_months": 12},
     (OfferTerms(385000, 500000000, 24, 12, 3, 0, True, "standard"), 444509)),
    ({"grace_months": 13},
     [("grace_months", "above_maximum", "grace_months must be at most 12 for working_capital")]),
    ({"grace_months": -1},
     [("grace_months", "negative", "grace_months must not be negative")]),
    ({"grace_months": None},
     (OfferTerms(385000, 500000000, 24, 0, 3, 0, True, "standard"), 444613)),
    ({"repayment_every_months": 5},
     [("repayment_every_months", "unsupported",
       "repayment_every_months must be one of [1, 2, 3, 4, 6, 12] (interest is collected at "
       "least once a year)")]),
    ({"repayment_every_months": 12},
     (OfferTerms(385000, 500000000, 24, 6, 12, 0, True, "standard"), 361622)),
    ({"upfront_fee": "4999999.99"},
     [("annual_rate", "no_apr",
       "the offer has no meaningful APR: net receipt must be positive: amount 500000000 - fee "
       "499999999 - commission 120000.0 kuruş")]),
    ({"upfront_fee": "5000000.00"},
     [("upfront_fee", "not_below_amount", "upfront_fee must be below the offer amount")]),
    ({"upfront_fee": None},
     (OfferTerms(385000, 500000000, 24, 6, 3, 0, True, "standard"), 444550)),
    ({"assumes_export_commitment": 1},
     [("assumes_export_commitment", "invalid",
       "assumes_export_commitment: must be true or false")]),
    ({"assumes_export_commitment": None},
     (OfferTerms(385000, 500000000, 24, 6, 3, 0, False, "standard"), 444550)),
    ({"currency": "TRY"},
     (OfferTerms(385000, 500000000, 24, 6, 3, 0, True, "standard"), 444550)),
    ({"currency": "USD"},
     [("currency", "currency_mismatch", "this round is in TRY")]),
    ({"currency": "GBP"},
     [("currency", "invalid", "currency: must be one of TRY, USD, EUR")]),
    ({"currency": None},
     (OfferTerms(385000, 500000000, 24, 6, 3, 0, True, "standard"), 444550)),
    ({"bank_id": "b1"},
     [("bank_id", "unknown_field", "bank_id is not an offer term")]),
    ({"offer_id": "x", "rank": 1, "amount": "1e6"},
     [("offer_id", "unknown_field", "offer_id is not an offer term"),
      ("rank", "unknown_field", "rank is not an offer term"),
      ("amount", "invalid", f"amount: {PLAIN_DECIMAL}")]),
])
def test_offer_edges(changes: dict[str, Any], expected: Any) -> None:
    assert_offer({**OFFER_BODY, **changes}, expected)


JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 10**16),
    st.floats(allow_nan=False, allow_infinity=False),  # JSON has neither
    st.sampled_from(["", "0", "0.00", "38.50", "38.5001", "38.50001", "500.0001", "-5", ".5",
                     "5.", "1e3", "1_000", " 7", "５", "5000000.00", "5000000.01", "9" * 16,
                     "TRY", "USD", "GBP", "x" * 2001]),
    st.text(max_size=12))
JSON_VALUES = st.one_of(JSON_SCALARS, st.lists(JSON_SCALARS, max_size=2),
                        st.dictionaries(st.text(max_size=3), JSON_SCALARS, max_size=2))


def mutated(base: dict[str, Any], keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """A body from ``base`` with some fields replaced, dropped, or added."""
    drop = object()
    return st.builds(
        lambda changes, extra: {k: v for k, v in {**base, **changes, **extra}.items()
                                if v is not drop},
        st.dictionaries(st.sampled_from(keys), st.one_of(JSON_VALUES, st.just(drop)),
                        max_size=len(keys)),
        st.dictionaries(st.text(min_size=1, max_size=6), JSON_SCALARS, max_size=1))


OFFER_FIELDS = tuple(OfferTermsBody.model_fields)
#: what an optional term absent or null stands for
OFFER_DEFAULTS = {"grace_months": 0, "repayment_every_months": 1, "upfront_fee": 0,
                  "assumes_export_commitment": False, "conditions": ""}


def offer_wire(t: OfferTerms) -> dict[str, Any]:
    """Terms as a bank sends them."""
    return {"annual_rate": e4_to_rate(t.annual_rate_e4, L.RATE_PLACES),
            "amount": minor_to_money(t.amount), "tenor_months": t.tenor_months,
            "grace_months": t.grace_months, "repayment_every_months": t.repayment_every_months,
            "upfront_fee": minor_to_money(t.upfront_fee),
            "assumes_export_commitment": t.assumes_export_commitment,
            "conditions": t.conditions}


def assert_names_fields(errors: list[Triple], body: dict[str, Any], known: tuple[str, ...],
                        required: tuple[str, ...], unknown: str | None) -> None:
    """Each field named once; only known fields or unknown ones that were sent; every missing
    required field as ``required``; every unknown field (``unknown`` its message, None when
    the model ignores unknown fields) as ``unknown_field``."""
    named = [f for f, _, _ in errors]
    assert len(named) == len(set(named)), errors
    assert set(named) <= set(known) | set(body), errors
    for k in required:
        if body.get(k) is None:
            assert (k, "required", f"{k} is required") in errors
    for k in body:
        if k not in known:
            assert ((k, "unknown_field", unknown.format(k)) in errors) if unknown else \
                k not in named


@settings(max_examples=300, deadline=None)
@given(mutated(OFFER_BODY, [*OFFER_BODY, "currency"]))
def test_generated_offers(body: dict[str, Any]) -> None:
    got = offer(body)
    assert offer(as_bytes(body)) == got, body
    if isinstance(got, list):
        assert_names_fields(got, body, OFFER_FIELDS, ("annual_rate", "amount", "tenor_months"),
                            OfferTermsBody.UNKNOWN_FIELD)
        return
    terms, _ = got
    assert offer(offer_wire(terms)) == got, body  # the terms round-trip through the wire
    for name, default in OFFER_DEFAULTS.items():
        if body.get(name) is None:
            assert getattr(terms, name) == default


def test_parse_raises_the_422_listing_every_field() -> None:
    with pytest.raises(InvalidRequest) as info:
        parse(OfferTermsBody, b'{"amount": 1}')
    assert refused(info.value) == (
        422, "validation_failed", "invalid fields: amount, annual_rate, tenor_months",
        [("annual_rate", "required", "annual_rate is required"),
         ("amount", "invalid", "amount: must be a decimal string"),
         ("tenor_months", "required", "tenor_months is required")])


# ----------------------------------------------------------------------------- whole bodies
@pytest.mark.parametrize(("raw", "expected"), [
    (b"{not json", MALFORMED),
    (b"\xff\xfe", MALFORMED),
    (b"[1, 2]", NOT_AN_OBJECT),
    (b'"text"', NOT_AN_OBJECT),
    (b"", NOT_AN_OBJECT),
    (b"null", NOT_AN_OBJECT),
    (b'{"a": 1} x', MALFORMED),
    (b"\xef\xbb\xbf{}", "object"),
    (b"{\"s\": \"\\ud800\"}", "object"),
])
@pytest.mark.parametrize("model", [OfferTermsBody, RoundIntakeBody, ApplicationForm, RegisterBody,
                                   ActivateBody, LoginBody, AcceptBody, CompanyMatchBody,
                                   BankBody])
def test_a_body_that_is_not_a_json_object(model: type[Any], raw: bytes, expected: Any) -> None:
    """400 for what is not JSON, 422 ``not_object`` for JSON that is not an object: the same
    for every body the API reads."""
    try:
        read(model, raw)
        got: Any = "object"
    except InvalidRequest as e:
        got = refused(e)
    assert got == expected


# ----------------------------------------------------------------------------- manual intake
class Opened(Exception):
    """The intake passed every check: the round it would open (``args[0]``)."""


class StopAtOpening:
    async def add(self, tx: Any, request: RoundRequest, actor: str) -> Any:
        raise Opened(request)


class AnyExporter:
    """A store whose every exporter exists (the intake checks the one it names)."""

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[Any]:
        async def get(user_id: str) -> Any:
            return object()
        yield SimpleNamespace(exporters=SimpleNamespace(get=get))

    unit = read


def intake(raw: Any) -> dict[str, Any] | list[Triple]:
    """As ``POST /v1/admin/rounds``: the body read (``gateway/routes/admin.py``), then
    ``Operator.intake`` (the round rules of the package in force) up to the round it opens:
    what it opens the round with, or every offending field."""
    got = read(RoundIntakeBody, raw)
    values = got.model.values() if got.model is not None else got.values
    operator = Operator(SimpleNamespace(clock=lambda: dt_to_ms(NOW), store=AnyExporter()),
                        StopAtOpening())
    try:
        out = asyncio.run(operator.intake(values, got.errors, "admin"))
    except Opened as o:
        r: RoundRequest = o.args[0]
        assert r.application_id  # every intake is an application
        return {"company": r.company, "loan_type": r.loan_type, "currency": r.currency,
                "loan_amount": r.loan_amount, "guarantee_amount": r.guarantee_amount,
                "tenor_months": r.tenor_months, "grace_months": r.grace_months,
                "export_commitment": r.export_commitment,
                "exporter_user_id": r.exporter_user_id, "assessment": r.assessment}
    assert isinstance(out, Refusal)
    return use_case_refusal(out)


def assert_intake(body: dict[str, Any], expected: Any) -> None:
    assert intake(body) == expected, body
    assert intake(as_bytes(body)) == expected, body


COMPANY = ROUND_BODY["company"]
#: ROUND_BODY as the intake opens the round
INTAKE = {"company": {"name": "Anadolu Tekstil A.Ş.", "tax_id": "1234567890", "is_sme": True,
                      "sector": "textiles",
                      "contact": {"name": "Ayşe Yılmaz", "email": "ayse@example.com",
                                  "phone": "+905321234567"}},
          "loan_type": "working_capital", "currency": "TRY", "loan_amount": 500_000_000,
          "guarantee_amount": 400_000_000, "tenor_months": 24, "grace_months": 6,
          "export_commitment": True, "exporter_user_id": None, "assessment": None}


@pytest.mark.parametrize(("changes", "expected"), [
    ({},
     INTAKE),
    ({"company": None},
     [("company", "required", "company is required")]),
    ({"company": []},
     [("company", "invalid", "company: must be an object")]),
    ({"company": {}},
     [("company.name", "required", "name is required"),
      ("company.tax_id", "required", "tax_id is required"),
      ("company.is_sme", "required", "is_sme is required")]),
    ({"company": {**COMPANY, "name": "x" * L.NAME_MAX}},
     {**INTAKE, "company": {**INTAKE["company"], "name": "x" * 200}}),
    ({"company": {**COMPANY, "name": "x" * (L.NAME_MAX + 1)}},
     [("company.name", "invalid", "name: at most 200 characters")]),
    ({"company": {**COMPANY, "sector": "x" * L.SECTOR_MAX}},
     {**INTAKE, "company": {**INTAKE["company"], "sector": "x" * 100}}),
    ({"company": {**COMPANY, "sector": "x" * (L.SECTOR_MAX + 1)}},
     [("company.sector", "invalid", "sector: at most 100 characters")]),
    ({"company": {**COMPANY, "tax_id": VALID_TCKN}},
     {**INTAKE, "company": {**INTAKE["company"], "tax_id": "10000000146"}}),
    ({"company": {**COMPANY, "tax_id": "123"}},
     [("company.tax_id", "invalid",
       "tax_id: not a valid Turkish tax id (VKN, 10 digits) or TCKN")]),
    ({"company": {**COMPANY, "is_sme": "yes"}},
     [("company.is_sme", "invalid", "is_sme: must be true or false")]),
    ({"company": {**COMPANY, "contact": "x"}},
     [("company.contact", "invalid", "contact: must be an object")]),
    # once stored as str(): null as "None", 5 as "5"; the document says string
    ({"company": {**COMPANY, "contact": {"name": None, "fax": "1", "phone": 5}}},
     [("company.contact", "invalid", "contact: name must be a string")]),
    ({"company": {**COMPANY, "contact": {"name": "Ayşe", "fax": 1, "phone": "5"}}},
     {**INTAKE, "company": {**INTAKE["company"], "contact": {"name": "Ayşe", "phone": "5"}}}),
    ({"company": {**COMPANY, "extra": 1}},
     INTAKE),
    ({"loan_type": "mortgage"},
     [("loan_type", "invalid", "loan_type: must be one of working_capital, investment")]),
    ({"currency": "GBP"},
     [("currency", "invalid", "currency: must be one of TRY, USD, EUR")]),
    ({"loan_amount": "0"},
     [("loan_amount", "not_positive", "loan_amount must be greater than 0"),
      ("guarantee_amount", "above_loan", "guarantee_amount must not exceed loan_amount")]),
    ({"guarantee_amount": "5000000.01"},
     [("guarantee_amount", "above_loan", "guarantee_amount must not exceed loan_amount")]),
    ({"tenor_months": 61},
     [("tenor_months", "out_of_range", "tenor_months must be 6..60 for working_capital")]),
    ({"grace_months": 24},
     [("grace_months", "out_of_range", "grace_months must be 0..12")]),
    ({"grace_months": None},
     {**INTAKE, "grace_months": 0}),
    ({"export_commitment": None},
     {**INTAKE, "export_commitment": False}),
    # an export_commitment that does not parse is one more field error, never a 500 (the rule
    # probe once read it unconditionally)
    ({"export_commitment": "yes"},
     [("export_commitment", "invalid", "export_commitment: must be true or false")]),
    ({"exporter_user_id": "u" * L.ID_MAX},
     {**INTAKE, "exporter_user_id": "u" * 40}),
    ({"exporter_user_id": "u" * (L.ID_MAX + 1)},
     [("exporter_user_id", "invalid", "exporter_user_id: an id: 1..40 letters, digits, _ and -")]),
    ({"assessment": {"score": 80}},
     {**INTAKE, "assessment": {"score": 80}}),
    ({"company": {**ROUND_BODY["company"], "contact": {"phone": {}}}},
     [("company.contact", "invalid", "contact: phone must be a string")]),
    # once dropped silently: the document says object
    ({"assessment": [1]},
     [("assessment", "invalid", "assessment: must be an object")]),
    ({"assessment": None},
     INTAKE),
    ({"unknown": True},
     INTAKE),
    ({"loan_amount": 5, "tenor_months": "x", "company": {"tax_id": 1}},
     [("company.name", "required", "name is required"),
      ("company.tax_id", "invalid",
       "tax_id: not a valid Turkish tax id (VKN, 10 digits) or TCKN"),
      ("company.is_sme", "required", "is_sme is required"),
      ("loan_amount", "invalid", "loan_amount: must be a decimal string"),
      ("tenor_months", "invalid", "tenor_months: must be an integer")]),
])
def test_round_intake_edges(changes: dict[str, Any], expected: Any) -> None:
    assert_intake({**ROUND_BODY, **changes}, expected)


INTAKE_FIELDS = tuple(RoundIntakeBody.model_fields)
COMPANY_FIELDS = tuple(f"company.{k}" for k in RoundCompanyIn.model_fields)


def intake_wire(v: dict[str, Any]) -> dict[str, Any]:
    """What the intake opened a round with, as an operator sends it."""
    return {**v, "loan_amount": minor_to_money(v["loan_amount"]),
            "guarantee_amount": minor_to_money(v["guarantee_amount"])}


@settings(max_examples=200, deadline=None)
@given(mutated(ROUND_BODY, list(ROUND_BODY)), mutated(COMPANY, list(COMPANY)))
def test_generated_round_intakes(body: dict[str, Any], company: dict[str, Any]) -> None:
    for b in (body, {**body, "company": company}):
        got = intake(b)
        assert intake(as_bytes(b)) == got, b
        if isinstance(got, list):
            sent = {**b, **{f"company.{k}": v for k, v in (
                b["company"] if isinstance(b.get("company"), dict) else {}).items()}}
            assert_names_fields(got, sent, INTAKE_FIELDS + COMPANY_FIELDS,
                                ("company", "loan_type", "currency", "loan_amount",
                                 "guarantee_amount", "tenor_months"), None)
        else:
            assert intake(intake_wire(got)) == got, b  # round-trips through the wire


# ----------------------------------------------------------------------------- applications
def application(raw: Any) -> tuple[str, ApplicationRequest] | list[Triple]:
    """As ``POST /v1/exporter/applications``: the form read (``gateway/routes/exporter.py``),
    then ``check_form`` (the package's form rules): the company and the request, or every
    offending field."""
    got = read(ApplicationForm, raw)
    draft = ApplicationDraft(got.values.get("company_id"),
                             None if got.model is None else got.model.request(),
                             got.values, got.errors)
    out = check_form(draft, PACKAGE)
    return use_case_refusal(out) if isinstance(out, Refusal) else out


def assert_application(body: dict[str, Any], expected: Any) -> None:
    assert application(body) == expected, body
    assert application(as_bytes(body)) == expected, body


APPLICATION = {"company_id": "cmp_1", "loan_type": "working_capital", "currency": "TRY",
               "loan_amount": "1000000.00", "guarantee_amount": "800000.00",
               "tenor_months": 24, "grace_months": 6, "export_commitment": True,
               "purpose": "working capital",
               "related_companies": [{"tax_id": VALID_VKN, "relation": "partner",
                                      "share_pct": "25.5"}],
               "preferred_banks": ["AKBNK", "GARAN", "AKBNK"]}
RELATED = APPLICATION["related_companies"][0]
#: APPLICATION's request (for company cmp_1)
APPLIED = ApplicationRequest("working_capital", "TRY", 100_000_000, 80_000_000, 24, 6,
                             (RelatedCompany(VALID_VKN, "partner", 25_5000),),
                             ("AKBNK", "GARAN"), True, "working capital")


@pytest.mark.parametrize(("changes", "expected"), [
    ({},
     ("cmp_1", APPLIED)),
    ({"related_companies": None},
     ("cmp_1", replace(APPLIED, related_companies=()))),
    ({"related_companies": "x"},
     [("related_companies", "invalid", "related_companies must be a list")]),
    ({"related_companies": [RELATED] * L.RELATED_MAX},
     [(f"related_companies[{i}].tax_id", "duplicate", "each related company once")
      for i in range(1, L.RELATED_MAX)]),
    ({"related_companies": [RELATED] * (L.RELATED_MAX + 1)},
     [("related_companies", "too_many", "at most 50 related companies")]),
    ({"related_companies": [{**RELATED, "tax_id": f"{i:010d}"} for i in range(L.RELATED_MAX)]},
     # 0000000001, 0000000019, 0000000027, 0000000035 and 0000000042 are valid VKNs
     [(f"related_companies[{i}].tax_id", "invalid", f"tax_id: {NOT_A_TAX_ID}")
      for i in range(L.RELATED_MAX) if i not in (1, 19, 27, 35, 42)]),
    ({"related_companies": [RELATED, RELATED]},
     [("related_companies[1].tax_id", "duplicate", "each related company once")]),
    ({"related_companies": [RELATED, 5, RELATED]},
     [("related_companies[1]", "invalid", "must be an object"),
      ("related_companies[2].tax_id", "duplicate", "each related company once")]),
    ({"related_companies": [{"tax_id": "1"}, RELATED, {**RELATED, "share_pct": "100.01"}]},
     [("related_companies[0].tax_id", "invalid", f"tax_id: {NOT_A_TAX_ID}"),
      ("related_companies[0].relation", "required", "relation is required"),
      ("related_companies[0].share_pct", "required", "share_pct is required"),
      ("related_companies[2].share_pct", "invalid", "share_pct: a percentage 0..100"),
      ("related_companies[2].tax_id", "duplicate", "each related company once")]),
    ({"related_companies": [{**RELATED, "share_pct": "100"}, {**RELATED, "relation": "x"},
                           RELATED]},
     [("related_companies[1].relation", "invalid",
       "relation: must be one of partner, subsidiary, parent, sister, affiliate"),
      ("related_companies[1].tax_id", "duplicate", "each related company once"),
      ("related_companies[2].tax_id", "duplicate", "each related company once")]),
    ({"related_companies": [{**RELATED, "share_pct": "0.001"}]},
     [("related_companies[0].share_pct", "invalid", "share_pct: at most 2 decimal places")]),
    ({"preferred_banks": None},
     ("cmp_1", replace(APPLIED, preferred_banks=()))),
    ({"preferred_banks": ["A"]},
     [("preferred_banks", "invalid", "a list of at most 30 bank codes")]),
    ({"preferred_banks": ["AB"]},
     ("cmp_1", replace(APPLIED, preferred_banks=("AB",)))),
    ({"preferred_banks": ["A" * L.BANK_CODE_MAX]},
     ("cmp_1", replace(APPLIED, preferred_banks=("AAAAAAAAAAAAAAAAAAAA",)))),
    ({"preferred_banks": ["A" * 21]},
     [("preferred_banks", "invalid", "a list of at most 30 bank codes")]),
    ({"preferred_banks": ["AB"] * L.PREFERRED_MAX},
     ("cmp_1", replace(APPLIED, preferred_banks=("AB",)))),
    ({"preferred_banks": ["AB"] * (L.PREFERRED_MAX + 1)},
     [("preferred_banks", "invalid", "a list of at most 30 bank codes")]),
    ({"preferred_banks": "AKBNK"},
     [("preferred_banks", "invalid", "a list of at most 30 bank codes")]),
    ({"purpose": "p" * L.PURPOSE_MAX},
     ("cmp_1", replace(APPLIED, purpose="p" * 2000))),
    ({"purpose": "p" * (L.PURPOSE_MAX + 1)},
     [("purpose", "invalid", "purpose: at most 2000 characters")]),
    ({"purpose": "a\x07b"},
     [("purpose", "invalid", "purpose: no control characters other than tab and line breaks")]),
    ({"purpose": "a\tb"},
     ("cmp_1", replace(APPLIED, purpose="a\tb"))),
    ({"company_id": "c" * L.ID_MAX},
     ("c" * 40, APPLIED)),
    ({"company_id": "c" * (L.ID_MAX + 1)},
     [("company_id", "invalid", "company_id: an id: 1..40 letters, digits, _ and -")]),
    ({"tenor_months": 5},
     [("tenor_months", "tenor_below_minimum", "the tenor must be at least 6 months"),
      ("grace_months", "grace_not_below_tenor",
       "the grace period must be shorter than the tenor")]),
    ({"grace_months": 24},
     [("grace_months", "grace_above_maximum",
       "a working_capital loan's grace period is at most 12 months")]),
    ({"guarantee_amount": "1000000.01"},
     [("guarantee_amount", "guarantee_above_loan",
       "the guarantee amount must not exceed the loan amount")]),
    ({"currency": "USD"},
     ("cmp_1", replace(APPLIED, currency="USD"))),
    ({"loan_type": "x"},
     [("loan_type", "invalid", "loan_type: must be one of working_capital, investment")]),
    ({"colour": "red"},
     [("colour", "unknown_field", "colour is not a field of the application form")]),
    ({"colour": "red", "loan_amount": "x", "tenor_months": 1},
     [("colour", "unknown_field", "colour is not a field of the application form"),
      ("loan_amount", "invalid", f"loan_amount: {PLAIN_DECIMAL}")]),
])
def test_application_edges(changes: dict[str, Any], expected: Any) -> None:
    assert_application({**APPLICATION, **changes}, expected)


APPLICATION_FIELDS = tuple(ApplicationForm.model_fields)
RELATED_FIELD = re.compile(r"related_companies\[[0-9]+\](\.(tax_id|relation|share_pct))?")


def application_wire(company_id: str, r: ApplicationRequest) -> dict[str, Any]:
    """An accepted form as an exporter sends it."""
    return {"company_id": company_id, "loan_type": r.loan_type, "currency": r.currency,
            "loan_amount": minor_to_money(r.loan_amount),
            "guarantee_amount": minor_to_money(r.guarantee_amount),
            "tenor_months": r.tenor_months, "grace_months": r.grace_months,
            "related_companies": [{"tax_id": c.tax_id, "relation": c.relation,
                                   "share_pct": e4_to_rate(c.share_e4, L.SHARE_PLACES)}
                                  for c in r.related_companies],
            "preferred_banks": list(r.preferred_banks),
            "export_commitment": r.export_commitment, "purpose": r.purpose}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(APPLICATION, list(APPLICATION)), st.lists(mutated(RELATED, list(RELATED)),
                                                         max_size=3))
def test_generated_applications(body: dict[str, Any], related: list[dict[str, Any]]) -> None:
    for b in (body, {**body, "related_companies": related}):
        got = application(b)
        assert application(as_bytes(b)) == got, b
        if isinstance(got, list):
            top = [(f, c, m) for f, c, m in got if not RELATED_FIELD.fullmatch(f)]
            assert_names_fields(top, b, APPLICATION_FIELDS,
                                ("company_id", "loan_type", "currency", "loan_amount",
                                 "guarantee_amount", "tenor_months"),
                                ApplicationForm.UNKNOWN_FIELD)
        else:
            assert application(application_wire(*got)) == got, b  # round-trips


# ----------------------------------------------------------------------------- other bodies
def outcome(model: type[Any], raw: Any, fields: tuple[str, ...],
            context: dict[str, Any] | None = None) -> Any:
    """The values the route goes on with (one value, or a tuple), or the refusal."""
    try:
        p = read(model, raw, context)
    except InvalidRequest as e:
        return refused(e)
    if p.model is None:
        return refused(model.refusal(p.errors))
    got = tuple(getattr(p.model, f) for f in fields)
    return got[0] if len(got) == 1 else got


def assert_body(model: type[Any], body: Any, fields: tuple[str, ...], expected: Any,
                context: dict[str, Any] | None = None) -> None:
    raw = body if isinstance(body, bytes) else as_bytes(body)
    assert outcome(model, raw, fields, context) == expected, body
    if not isinstance(body, bytes):
        assert outcome(model, body, fields, context) == expected, body


REGISTER = {"full_name": "Ayşe Yılmaz", "national_id": VALID_TCKN, "email": "A@Example.com",
            "mobile": "0532 123 45 67", "password": "correct horse battery"}


@pytest.mark.parametrize(("changes", "expected"), [
    ({},
     ("Ayşe Yılmaz", "10000000146", "a@example.com", "+905321234567", "correct horse battery")),
    ({"full_name": "x" * L.NAME_MAX},
     ("x" * 200, "10000000146", "a@example.com", "+905321234567", "correct horse battery")),
    ({"full_name": "x" * (L.NAME_MAX + 1)},
     (422, "validation_failed", "invalid fields: full_name",
      [("full_name", "invalid", "full_name: at most 200 characters")])),
    ({"national_id": "10000000147"},
     (422, "validation_failed", "invalid fields: national_id",
      [("national_id", "invalid", "national_id: not a valid Turkish national id (TCKN)")])),
    ({"national_id": 10000000146},
     (422, "validation_failed", "invalid fields: national_id",
      [("national_id", "invalid", "national_id: not a valid Turkish national id (TCKN)")])),
    ({"email": "not-an-email"},
     (422, "validation_failed", "invalid fields: email",
      [("email", "invalid",
        "email: not a valid e-mail address: An email address must have an @-sign.")])),
    ({"email": "a@" + "b" * 250 + ".com"},
     (422, "validation_failed", "invalid fields: email",
      [("email", "invalid", "email: not a valid e-mail address")])),
    ({"mobile": "+902121234567"},
     (422, "validation_failed", "invalid fields: mobile",
      [("mobile", "invalid", "mobile: not a Turkish mobile number (+905XXXXXXXXX)")])),
    ({"mobile": "+905321234567"},
     ("Ayşe Yılmaz", "10000000146", "a@example.com", "+905321234567", "correct horse battery")),
    ({"mobile": "5" * 31},
     (422, "validation_failed", "invalid fields: mobile",
      [("mobile", "invalid", "mobile: not a Turkish mobile number (+905XXXXXXXXX)")])),
    ({"password": "p" * L.PASSWORD_MIN},
     ("Ayşe Yılmaz", "10000000146", "a@example.com", "+905321234567", "pppppppppp")),
    ({"password": "p" * (L.PASSWORD_MIN - 1)},
     (422, "validation_failed", "invalid fields: password",
      [("password", "invalid", "password: 10..200 characters")])),
    ({"password": "p" * L.PASSWORD_MAX},
     ("Ayşe Yılmaz", "10000000146", "a@example.com", "+905321234567", "p" * 200)),
    ({"password": "p" * (L.PASSWORD_MAX + 1)},
     (422, "validation_failed", "invalid fields: password",
      [("password", "invalid", "password: 10..200 characters")])),
    ({"password": None},
     (422, "validation_failed", "invalid fields: password",
      [("password", "required", "password is required")])),
    ({"email": None, "mobile": 5, "extra": 1},  # unknown fields are refused (issue #10)
     (422, "validation_failed", "invalid fields: email, extra, mobile",
      [("extra", "unknown_field", "extra is not a known field"),
       ("email", "required", "email is required"),
       ("mobile", "invalid", "mobile: not a Turkish mobile number (+905XXXXXXXXX)")])),
])
def test_registration(changes: dict[str, Any], expected: Any) -> None:
    """(full_name, national_id, email, mobile, password) as the account is created with."""
    assert_body(RegisterBody, {**REGISTER, **changes},
                ("full_name", "national_id", "email", "mobile", "password"), expected)


@pytest.mark.parametrize(("body", "expected"), [
    ({"bank_code": "AKBNK", "name": "Akbank"},
     ("AKBNK", "Akbank")),
    ({"bank_code": "bad code!"},
     (422, "validation_failed", "invalid fields: bank_code, name",
      [("name", "required", "name is required"),
       ("bank_code", "invalid", "2..20 characters A-Z, 0-9, _")])),
    ({"bank_code": "A", "name": "n"},
     (422, "validation_failed", "invalid fields: bank_code",
      [("bank_code", "invalid", "2..20 characters A-Z, 0-9, _")])),
    ({"bank_code": "AB", "name": "n"},
     ("AB", "n")),
    ({"bank_code": "A" * L.BANK_CODE_MAX, "name": "n"},
     ("AAAAAAAAAAAAAAAAAAAA", "n")),
    ({"bank_code": "A" * 21, "name": "n"},
     (422, "validation_failed", "invalid fields: bank_code",
      [("bank_code", "invalid", "bank_code: at most 20 characters")])),
    ({"bank_code": "AK_1", "name": "x" * L.NAME_MAX},
     ("AK_1", "x" * 200)),
    ({"bank_code": "AK", "name": "x" * 201},
     (422, "validation_failed", "invalid fields: name",
      [("name", "invalid", "name: at most 200 characters")])),
    ({},
     (422, "validation_failed", "invalid fields: bank_code, name",
      [("bank_code", "required", "bank_code is required"),
       ("name", "required", "name is required")])),
    ({"bank_code": 5, "name": None},
     (422, "validation_failed", "invalid fields: bank_code, name",
      [("bank_code", "invalid", "bank_code: must be a string"),
       ("name", "required", "name is required")])),
    (b"[]", NOT_AN_OBJECT),
    (b"{", MALFORMED),
])
def test_bank_registration(body: Any, expected: Any) -> None:
    assert_body(BankBody, body, ("bank_code", "name"), expected)


@pytest.mark.parametrize(("body", "expected"), [
    ({"offer_id": "off_1"},
     "off_1"),
    ({"offer_id": "o" * L.OFFER_ID_MAX},
     "o" * 60),
    ({"offer_id": "o" * (L.OFFER_ID_MAX + 1)},
     (422, "validation_failed", "invalid fields: offer_id",
      [("offer_id", "invalid", "offer_id: an id: 1..60 letters, digits, _ and -")])),
    ({"offer_id": None},
     (422, "validation_failed", "invalid fields: offer_id",
      [("offer_id", "required", "offer_id is required")])),
    ({},
     (422, "validation_failed", "invalid fields: offer_id",
      [("offer_id", "required", "offer_id is required")])),
    ({"offer_id": 5},
     (422, "validation_failed", "invalid fields: offer_id",
      [("offer_id", "invalid", "offer_id: an id: 1..60 letters, digits, _ and -")])),
    (b"null", NOT_AN_OBJECT),
])
def test_acceptance(body: Any, expected: Any) -> None:
    assert_body(AcceptBody, body, ("offer_id",), expected)


CONSENT = {"text_version": PACKAGE.consent_text_version, "accepted": True}


@pytest.mark.parametrize(("body", "expected"), [
    ({"tax_id": VALID_VKN, "consent": CONSENT},
     "1234567890"),
    ({"tax_id": VALID_TCKN, "consent": CONSENT},
     "10000000146"),
    ({"tax_id": "123", "consent": CONSENT},
     (422, "validation_failed", "invalid fields: tax_id",
      [("tax_id", "invalid", f"tax_id: {NOT_A_TAX_ID}")])),
    ({"tax_id": VALID_VKN},
     (422, "validation_failed", "invalid fields: consent",
      [("consent", "required", "consent is required")])),
    ({"tax_id": VALID_VKN, "consent": "yes"},
     (422, "validation_failed", "invalid fields: consent",
      [("consent", "invalid", "consent: must be an object")])),
    ({"tax_id": VALID_VKN, "consent": {}},
     (422, "validation_failed", "invalid fields: consent.accepted, consent.text_version",
      [("consent.text_version", "required", "text_version is required"),
       ("consent.accepted", "required", "accepted is required")])),
    ({"tax_id": VALID_VKN, "consent": {**CONSENT, "accepted": False}},
     (422, "validation_failed", "invalid fields: consent.accepted",
      [("consent.accepted", "must_accept", "the consent must be accepted (true)")])),
    ({"tax_id": VALID_VKN, "consent": {**CONSENT, "text_version": "MUV-1999-01"}},
     (422, "validation_failed", "invalid fields: consent.text_version",
      [("consent.text_version", "outdated", "the consent text in force is MUV-2026-01")])),
    ({"tax_id": VALID_VKN, "consent": {"text_version": "v" * 41, "accepted": "true"}},
     (422, "validation_failed", "invalid fields: consent.accepted, consent.text_version",
      [("consent.text_version", "invalid", "text_version: at most 40 characters"),
       ("consent.accepted", "invalid", "accepted: must be true or false")])),
    ({"consent": {"text_version": "MUV-1999-01", "accepted": False}},
     (422, "validation_failed", "invalid fields: consent.accepted, consent.text_version, tax_id",
      [("tax_id", "required", "tax_id is required"),
       ("consent.accepted", "must_accept", "the consent must be accepted (true)"),
       ("consent.text_version", "outdated", "the consent text in force is MUV-2026-01")])),
])
def test_company_match(body: Any, expected: Any) -> None:
    assert PACKAGE.consent_text_version == "MUV-2026-01"
    assert_body(CompanyMatchBody, body, ("tax_id",), expected,
                {"consent_text_version": PACKAGE.consent_text_version})


@pytest.mark.parametrize(("body", "expected"), [
    ({},
     (None, "", None)),
    ({"email": "a@b.c", "password": None, "code": 123456},
     ("a@b.c", None, 123456)),
    ({"email": 5, "code": None},
     (5, "", None)),
])
def test_login_reads_the_body_as_sent(body: dict[str, Any], expected: Any) -> None:
    """(email, password, code) as sent: wrong or missing credentials are the use case's 401,
    never a 422; an absent password is "" and a null one None."""
    assert_body(LoginBody, body, ("email", "password", "code"), expected)


# ----------------------------------------------------------------------------- converters
@pytest.mark.parametrize(("convert", "value", "expected"), [
    (F.email_address, "ayse@example.com", "ayse@example.com"),
    (F.email_address, "Ayse.Yilmaz@Example.COM", "ayse.yilmaz@example.com"),
    (F.email_address, "ihracat@örnek.com.tr", "ihracat@örnek.com.tr"),
    (F.email_address, "not-an-email",
     ("refused", "not a valid e-mail address: An email address must have an @-sign.")),
    (F.email_address, "a..b@example.com",
     ("refused", "not a valid e-mail address: An email address cannot have two periods in a row.")),
    (F.email_address, "x@localhost",
     ("refused", "not a valid e-mail address: The part after the @-sign is not valid. It "
                 "should have a period.")),
    (F.email_address, " ayse@example.com",
     ("refused", "not a valid e-mail address: The email address contains invalid characters "
                 "before the @-sign: SPACE.")),
    (F.email_address, "a" * 250 + "@x.com", ("refused", "not a valid e-mail address")),
    (F.email_address, "",
     ("refused", "not a valid e-mail address: An email address must have an @-sign.")),
    (F.email_address, 12, ("refused", "not a valid e-mail address")),
    (F.email_address, None, ("refused", "not a valid e-mail address")),
    (F.turkish_mobile, "+905321234567", "+905321234567"),
    (F.turkish_mobile, "0532 123 45 67", "+905321234567"),
    (F.turkish_mobile, "5321234567", "+905321234567"),
    (F.turkish_mobile, "+90 (505) 111-22-33", "+905051112233"),
    (F.turkish_mobile, "+902121234567", ("refused", "not a Turkish mobile number (+905XXXXXXXXX)")),
    (F.turkish_mobile, "+447911123456", ("refused", "not a Turkish mobile number (+905XXXXXXXXX)")),
    (F.turkish_mobile, "5" * 31, ("refused", "not a Turkish mobile number (+905XXXXXXXXX)")),
    (F.turkish_mobile, "ayse@example.com",
     ("refused", "not a Turkish mobile number (+905XXXXXXXXX)")),
    (F.turkish_mobile, "", ("refused", "not a Turkish mobile number (+905XXXXXXXXX)")),
    (F.turkish_mobile, 12, ("refused", "not a Turkish mobile number (+905XXXXXXXXX)")),
    (F.turkish_mobile, None, ("refused", "not a Turkish mobile number (+905XXXXXXXXX)")),
    (F.tax_id, "1234567890", "1234567890"),
    (F.tax_id, "1100000014", "1100000014"),
    (F.tax_id, "1100000015", ("refused", NOT_A_TAX_ID)),
    (F.tax_id, "10000000146", "10000000146"),
    (F.tax_id, "10000000147", ("refused", NOT_A_TAX_ID)),
    # once kept as sent (python-stdnum checks it without the space): 12 characters for an
    # 11-character column, and not what the document's pattern allows
    (F.tax_id, " 10000000146", ("refused", NOT_A_TAX_ID)),
    (F.tax_id, "1234 567890", ("refused", NOT_A_TAX_ID)),
    (F.tax_id, "١٢٣٤٥٦٧٨٩٠", ("refused", NOT_A_TAX_ID)),
    (F.tax_id, "pppppppppp", ("refused", NOT_A_TAX_ID)),
    (F.tax_id, "", ("refused", NOT_A_TAX_ID)),
    (F.tax_id, 12, ("refused", NOT_A_TAX_ID)),
    (F.tax_id, None, ("refused", NOT_A_TAX_ID)),
    (F.tax_id_round, "1234567890", "1234567890"),
    (F.tax_id_round, "10000000146", "10000000146"),
    (F.tax_id_round, "1100000015",
     ("refused", "not a valid Turkish tax id (VKN, 10 digits) or TCKN")),
    (F.tax_id_round, " 10000000146",
     ("refused", "not a valid Turkish tax id (VKN, 10 digits) or TCKN")),
    (F.tax_id_round, "", ("refused", "not a valid Turkish tax id (VKN, 10 digits) or TCKN")),
    (F.tax_id_round, None, ("refused", "not a valid Turkish tax id (VKN, 10 digits) or TCKN")),
    (F.national_id, "10000000146", "10000000146"),
    (F.national_id, " 10000000146", ("refused", "not a valid Turkish national id (TCKN)")),
    (F.national_id, "10000000147", ("refused", "not a valid Turkish national id (TCKN)")),
    (F.national_id, "1100000014", ("refused", "not a valid Turkish national id (TCKN)")),
    (F.national_id, "", ("refused", "not a valid Turkish national id (TCKN)")),
    (F.national_id, 12, ("refused", "not a valid Turkish national id (TCKN)")),
    (F.national_id, None, ("refused", "not a valid Turkish national id (TCKN)")),
    (F.password, "ppppppppp", ("refused", "10..200 characters")),
    (F.password, "pppppppppp", "pppppppppp"),
    (F.password, "p" * 200, "p" * 200),
    (F.password, "p" * 201, ("refused", "10..200 characters")),
    (F.password, " ayse@example.com", " ayse@example.com"),
    (F.password, "", ("refused", "10..200 characters")),
    (F.password, 12, ("refused", "10..200 characters")),
    (F.password, None, ("refused", "10..200 characters")),
    (F.share_e4, "25", 250000),
    (F.share_e4, "24.99", 249900),
    (F.share_e4, "0", 0),
    (F.share_e4, "100", 1000000),
    (F.share_e4, "100.01", ("refused", "a percentage 0..100")),
    (F.share_e4, "-1", ("refused", "a percentage 0..100")),
    (F.share_e4, "25.001", ("refused", "at most 2 decimal places")),
    (F.share_e4, 25, ("refused", "must be a decimal string")),
    (F.share_e4, "1e1", ("refused", PLAIN_DECIMAL)),
    (F.share_e4, " 5", ("refused", PLAIN_DECIMAL)),
    (F.share_e4, "٥", ("refused", PLAIN_DECIMAL)),
])
def test_identity_converters(convert: Any, value: Any, expected: Any) -> None:
    try:
        got = convert(value)
    except ValueError as e:
        got = ("refused", str(e))
    assert got == expected


MOBILE = re.compile(r"\+905[0-9]{9}")


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=40), st.from_regex(r"[0-9+ ()-]{8,16}", fullmatch=True),
                 st.from_regex(r"[a-zA-Z0-9._+-]{1,12}@[a-z0-9-]{1,12}\.[a-z]{2,4}",
                               fullmatch=True), st.integers(), st.none()))
def test_identity_converters_refuse_with_a_value_error_or_give_a_canonical_value(v: Any) -> None:
    """Whatever is sent, a converter refuses it with a ``ValueError`` (the field's 422) or
    returns the canonical value: what it returns, it accepts unchanged."""
    def outcome(convert: Any, value: Any) -> Any:
        try:
            return convert(value)
        except ValueError:
            return None

    email = outcome(F.email_address, v)
    if email is not None:
        assert email == email.lower() and "@" in email
    mobile = outcome(F.turkish_mobile, v)
    if mobile is not None:
        assert MOBILE.fullmatch(mobile) and F.turkish_mobile(mobile) == mobile
    for tax in (F.tax_id, F.tax_id_round):
        assert outcome(tax, v) in (None, v)
    nid = outcome(F.national_id, v)
    if nid is not None:
        assert re.fullmatch("[0-9]{11}", nid) and F.national_id(nid) == nid
    password = outcome(F.password, v)
    assert password is None or (password == v and
                                L.PASSWORD_MIN <= len(password) <= L.PASSWORD_MAX)


# ----------------------------------------------------------------------------- query strings
def query(params: list[tuple[str, str]]) -> QueryParams:
    """The query string as the route gets it (``request.query_params``)."""
    return QueryParams(urlencode(params))


@pytest.mark.parametrize(("params", "expected"), [
    ([("start", "2026-04-20T09:00:00+03:00")],
     (datetime(2026, 4, 20, 9, 0, tzinfo=timezone(timedelta(hours=3))), 7)),
    ([("start", "2026-04-20T09:00:00Z")],
     (datetime(2026, 4, 20, 9, 0, tzinfo=UTC), 7)),
    ([("start", "2026-04-20T09:00:00")],
     (422, "validation_failed", "invalid fields: start",
      [("start", "no_offset", "timestamp needs an offset")])),
    ([("start", "yesterday")],
     (422, "validation_failed", "invalid fields: start",
      [("start", "invalid", "ISO 8601 timestamp expected")])),
    ([("start", "")],
     (422, "validation_failed", "invalid fields: start",
      [("start", "required", "start is required")])),
    ([],
     (422, "validation_failed", "invalid fields: start",
      [("start", "required", "start is required")])),
    ([("start", "2026-04-20T09:00:00Z"), ("business_days", "0")],
     (datetime(2026, 4, 20, 9, 0, tzinfo=UTC), 0)),
    ([("start", "2026-04-20T09:00:00Z"), ("business_days", str(L.BUSINESS_DAYS_MAX))],
     (datetime(2026, 4, 20, 9, 0, tzinfo=UTC), 366)),
    ([("start", "2026-04-20T09:00:00Z"), ("business_days", str(L.BUSINESS_DAYS_MAX + 1))],
     (422, "validation_failed", "invalid fields: business_days",
      [("business_days", "invalid", "an integer 0..366")])),
    ([("start", "x"), ("business_days", "-1")],
     (422, "validation_failed", "invalid fields: business_days, start",
      [("start", "invalid", "ISO 8601 timestamp expected"),
       ("business_days", "invalid", "an integer 0..366")])),
    ([("business_days", "")],
     (422, "validation_failed", "invalid fields: business_days, start",
      [("start", "required", "start is required"),
       ("business_days", "invalid", "an integer 0..366")])),
    ([("start", "2026-04-20T09:00:00Z"), ("business_days", "٣")],
     (datetime(2026, 4, 20, 9, 0, tzinfo=UTC), 3)),
    # once 200 with "193-08-23T05:54:51Z", a timestamp the document's pattern refuses
    ([("start", "0193-08-23T05:54:51Z"), ("business_days", "3")],
     (422, "validation_failed", "invalid fields: start",
      [("start", "out_of_range", "the calendar's years: a start in 2000..2098, so that the "
                                 "deadline falls in 2000..2100")])),
    ([("start", "1999-12-31T23:59:59Z")],
     (422, "validation_failed", "invalid fields: start",
      [("start", "out_of_range", "the calendar's years: a start in 2000..2098, so that the "
                                 "deadline falls in 2000..2100")])),
    ([("start", "2099-01-01T00:00:00Z")],
     (422, "validation_failed", "invalid fields: start",
      [("start", "out_of_range", "the calendar's years: a start in 2000..2098, so that the "
                                 "deadline falls in 2000..2100")])),
    ([("start", "2000-01-01T00:00:00Z")],
     (datetime(2000, 1, 1, tzinfo=UTC), 7)),
    ([("start", "2098-12-31T23:59:59Z"), ("business_days", str(L.BUSINESS_DAYS_MAX))],
     (datetime(2098, 12, 31, 23, 59, 59, tzinfo=UTC), 366)),
    ([("start", "20260420T090000Z")],
     (422, "validation_failed", "invalid fields: start",
      [("start", "invalid", "an RFC 3339 timestamp (2026-03-18T14:30:00Z) expected")])),
])
def test_deadline_query(params: list[tuple[str, str]], expected: Any) -> None:
    """(start, business_days)."""
    assert outcome(DeadlineQuery, query(params), ("start", "business_days")) == expected


@pytest.mark.parametrize(("params", "expected"), [
    # the old handler took the current year here; the route now does (year None)
    ([],
     None),
    ([("year", str(L.YEAR_MIN))],
     2000),
    ([("year", str(L.YEAR_MIN - 1))],
     (422, "validation_failed", "invalid fields: year",
      [("year", "invalid", "a year 2000..2100")])),
    ([("year", str(L.YEAR_MAX))],
     2100),
    ([("year", str(L.YEAR_MAX + 1))],
     (422, "validation_failed", "invalid fields: year",
      [("year", "invalid", "a year 2000..2100")])),
    ([("year", "")],
     (422, "validation_failed", "invalid fields: year",
      [("year", "invalid", "a year 2000..2100")])),
    ([("year", "twenty")],
     (422, "validation_failed", "invalid fields: year",
      [("year", "invalid", "a year 2000..2100")])),
])
def test_holidays_query(params: list[tuple[str, str]], expected: Any) -> None:
    """The year; None is the current year (``gateway/routes/public.py``, as before)."""
    assert outcome(HolidaysQuery, query(params), ("year",)) == expected


def test_a_digit_that_int_cannot_read_is_invalid_where_it_was_a_500() -> None:
    """Deliberate difference: ``"²".isdigit()`` is true and the old handler's ``int("²")``
    raised an unhandled ValueError (500 internal_error); now it is the field's 422."""
    assert outcome(HolidaysQuery, query([("year", "²")]), ("year",)) == (
        422, "validation_failed", "invalid fields: year",
        [("year", "invalid", "a year 2000..2100")])


@pytest.mark.parametrize(("params", "expected"), [
    ([],
     ("open", 50, None)),
    ([("state", "open")],
     ("open", 50, None)),
    ([("state", "closed"), ("limit", "1")],
     ("closed", 1, None)),
    ([("state", "mine")],
     (422, "validation_failed", "invalid fields: state",
      [("state", "invalid", "state must be open, closed, accepted or lapsed")])),
    ([("state", "")],
     (422, "validation_failed", "invalid fields: state",
      [("state", "invalid", "state must be open, closed, accepted or lapsed")])),
    ([("limit", str(L.PAGE_MIN - 1))],
     (422, "validation_failed", "invalid fields: limit",
      [("limit", "invalid", "an integer 1..200")])),
    ([("limit", str(L.PAGE_MAX))],
     ("open", 200, None)),
    ([("limit", str(L.PAGE_MAX + 1))],
     (422, "validation_failed", "invalid fields: limit",
      [("limit", "invalid", "an integer 1..200")])),
    ([("limit", "ten")],
     (422, "validation_failed", "invalid fields: limit",
      [("limit", "invalid", "an integer 1..200")])),
    ([("cursor", "")],
     ("open", 50, None)),
    ([("cursor", "bm90IGEgY3Vyc29y")],
     (422, "validation_failed", "invalid fields: cursor",
      [("cursor", "invalid", "bad cursor")])),
    ([("cursor", "1777474000000.rnd_1")],
     ("open", 50, (1777474000000, "rnd_1"))),
    # the base64 form of earlier versions: a pattern cannot say which base64 strings decode
    # to a cursor, so the cursor became one the document's pattern describes exactly
    ([("cursor", "MTc3NzQ3NDAwMDAwMDpybmRfMQ==")],
     (422, "validation_failed", "invalid fields: cursor",
      [("cursor", "invalid", "bad cursor")])),
    ([("cursor", "1234567890123456.rnd_1")],
     (422, "validation_failed", "invalid fields: cursor",
      [("cursor", "invalid", "bad cursor")])),
    ([("cursor", "%%%")],
     (422, "validation_failed", "invalid fields: cursor",
      [("cursor", "invalid", "bad cursor")])),
    # deliberate: every bad parameter; the old handler listed the first alone (state)
    ([("state", "mine"), ("limit", "0"), ("cursor", "x")],
     (422, "validation_failed", "invalid fields: cursor, limit, state",
      [("state", "invalid", "state must be open, closed, accepted or lapsed"),
       ("limit", "invalid", "an integer 1..200"),
       ("cursor", "invalid", "bad cursor")])),
    # deliberate: every bad parameter; the old handler listed the first alone (limit)
    ([("limit", "0"), ("cursor", "x")],
     (422, "validation_failed", "invalid fields: cursor, limit",
      [("limit", "invalid", "an integer 1..200"),
       ("cursor", "invalid", "bad cursor")])),
])
def test_bank_rounds_query(params: list[tuple[str, str]], expected: Any) -> None:
    """(state, limit, cursor)."""
    assert outcome(BankRoundsQuery, query(params), ("state", "limit", "cursor")) == expected


@pytest.mark.parametrize(("params", "expected"), [
    ([],
     (None, 0)),
    ([("round_id", "rnd_1")],
     ("rnd_1", 0)),
    ([("round_id", "")],
     (None, 0)),
    ([("after_id", "0")],
     (None, 0)),
    ([("after_id", "")],
     (422, "validation_failed", "invalid fields: after_id",
      [("after_id", "invalid", "an integer 0..2147483647")])),
    ([("after_id", "-1")],
     (422, "validation_failed", "invalid fields: after_id",
      [("after_id", "invalid", "an integer 0..2147483647")])),
    ([("after_id", str(L.AUDIT_ID_MAX))],
     (None, L.AUDIT_ID_MAX)),
    # once answered 500 (an OverflowError binding it to SQL): bounded like the id column
    ([("after_id", str(L.AUDIT_ID_MAX + 1))],
     (422, "validation_failed", "invalid fields: after_id",
      [("after_id", "invalid", "an integer 0..2147483647")])),
    ([("after_id", "9223372036854775808")],
     (422, "validation_failed", "invalid fields: after_id",
      [("after_id", "invalid", "an integer 0..2147483647")])),
    ([("after_id", "x")],
     (422, "validation_failed", "invalid fields: after_id",
      [("after_id", "invalid", "an integer 0..2147483647")])),
])
def test_audit_query(params: list[tuple[str, str]], expected: Any) -> None:
    """(round_id, after_id); the page size is fixed, 1000 entries as before."""
    assert L.AUDIT_PAGE == 1000
    assert outcome(AuditQuery, query(params), ("round_id", "after_id")) == expected


# ----------------------------------------------------------------------------- the token form
def form(fields: dict[str, str]) -> Any:
    """The form as the route gets it (``await request.form()``)."""
    body = urlencode(fields).encode()
    scope = {"type": "http", "method": "POST", "path": "/v1/oauth/token", "query_string": b"",
             "headers": [(b"content-type", b"application/x-www-form-urlencoded")]}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def read_form() -> Any:
        return await Request(scope, receive).form()

    return asyncio.run(read_form())


@pytest.mark.parametrize(("fields", "expected"), [
    ({"grant_type": "client_credentials", "client_id": "c", "client_secret": "s"},
     ("c", "s")),
    ({"grant_type": "client_credentials"},
     ("", "")),
    ({"grant_type": "password"},
     (400, "unsupported_grant_type", "grant_type must be client_credentials", None)),
    ({"grant_type": ""},
     (400, "validation_failed", "grant_type must be client_credentials", None)),
    ({},
     (400, "validation_failed", "grant_type must be client_credentials", None)),
    ({"client_id": "c", "client_secret": "s"},
     (400, "validation_failed", "grant_type must be client_credentials", None)),
])
def test_token_form(fields: dict[str, str], expected: Any) -> None:
    """(client_id, client_secret) past the form; a wrong or empty one is the use case's 401
    invalid_client."""
    assert outcome(OAuthTokenForm, form(fields), ("client_id", "client_secret")) == expected


# ----------------------------------------------------------------------------- fast vs slow
@settings(max_examples=300, deadline=None)
@given(mutated(OFFER_BODY, [*OFFER_BODY, "currency"]),
       mutated(APPLICATION, list(APPLICATION)))
def test_the_fast_path_never_accepts_what_the_slow_path_refuses(
        offer: dict[str, Any], application: dict[str, Any]) -> None:
    """The fast path (pydantic-core) and the per-field slow path agree on every body."""
    for model, body, ctx in ((OfferTermsBody, offer, {"currency": "TRY"}),
                             (ApplicationForm, application, {})):
        slow = _slow(model, body, ctx)
        for raw in (body, as_bytes(body)):
            fast = read(model, raw, ctx)
            assert fast.errors == slow.errors, body
            assert fast.model == slow.model, body


# ----------------------------------------------------------------------------- headers
@pytest.mark.parametrize(("key", "expected"), [
    (None,
     None),
    # once "no key": two posts with it made two offers
    ("",
     (422, "validation_failed", "invalid fields: Idempotency-Key",
      [("Idempotency-Key", "empty", "must not be empty: send a key, or no header")])),
    ("k",
     "k"),
    ("k" * L.IDEMPOTENCY_KEY_MAX,
     "k" * L.IDEMPOTENCY_KEY_MAX),
    ("k" * (L.IDEMPOTENCY_KEY_MAX + 1),
     (422, "validation_failed", "invalid fields: Idempotency-Key",
      [("Idempotency-Key", "too_long", "at most 200 characters")])),
])
def test_the_idempotency_key(key: str | None, expected: Any) -> None:
    try:
        got: Any = idempotency_key(key)
    except InvalidRequest as e:
        got = refused(e)
    assert got == expected
