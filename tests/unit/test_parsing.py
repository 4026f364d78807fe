"""Offer bodies become exact terms, or one 422 problem that lists every offending field: the
request read by its model (gateway.contract: ``read(OfferTermsBody, raw)``, as the offer routes
read it) and the round rules over what was read (``usecases.bidding.check_offer``); a body that
is not a JSON object is refused whole (``InvalidRequest``: 400 or 422)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from applications.package import KGF_HD_2026_1
from auction.model import OfferTerms, RoundTerms
from gateway.contract.errors import InvalidRequest
from gateway.contract.requests import OfferTermsBody, read
from gateway.problems import Problem, problem, unreadable
from usecases.bidding import check_offer
from usecases.outcomes import Draft, Refusal

GOOD: dict[str, Any] = {
    "annual_rate": "31.25", "amount": "1500000.00", "tenor_months": 24, "grace_months": 6,
    "repayment_every_months": 3, "upfront_fee": "2500.00", "assumes_export_commitment": True,
    "conditions": "ipotek",
}


def body(**changes: Any) -> dict[str, Any]:
    out = {**GOOD, **changes}
    return {k: v for k, v in out.items() if v is not DROP}


DROP = object()


def offer_terms(b: dict[str, Any], currency: str) -> OfferTerms:
    """Read the body as the route does (its bytes; the decoded object reads the same), then
    check it against a round in ``currency`` that every GOOD variant fits."""
    rnd = RoundTerms("rnd_t", currency, "working_capital", 500_000_000, 400_000_000, 24, 6,
                     True, 0, 1)
    body = read(OfferTermsBody, json.dumps(b).encode())
    decoded = read(OfferTermsBody, b)
    assert (decoded.values, decoded.errors) == (body.values, body.errors)
    got = check_offer(Draft(body.values, body.errors), rnd,
                      KGF_HD_2026_1.loan_types["working_capital"])
    if isinstance(got, Refusal):
        raise problem(got)
    return got[0]


def problem_of(b: dict[str, Any], currency: str = "TRY") -> Problem:
    with pytest.raises(Problem) as info:
        offer_terms(b, currency)
    return info.value


def field_codes(p: Problem) -> set[tuple[str, str]]:
    assert p.errors is not None
    return {(e.field, e.code) for e in p.errors}


# ----------------------------------------------------------------------------- accepted
def test_good_offer_body_becomes_exact_terms() -> None:
    assert offer_terms(body(), "TRY") == OfferTerms(
        annual_rate_e4=312_500, amount=150_000_000, tenor_months=24, grace_months=6,
        repayment_every_months=3, upfront_fee=250_000, assumes_export_commitment=True,
        conditions="ipotek")


def test_optional_offer_fields_take_their_defaults() -> None:
    minimal = {"annual_rate": "31.25", "amount": "1500000.00", "tenor_months": 24}
    assert offer_terms(minimal, "USD") == OfferTerms(312_500, 150_000_000, 24, 0, 1, 0, False, "")


@pytest.mark.parametrize("currency", ["TRY", "USD", "EUR"])
def test_currency_equal_to_the_rounds_is_accepted(currency: str) -> None:
    assert offer_terms(body(currency=currency), currency).amount == 150_000_000


def test_null_optional_fields_take_their_defaults() -> None:
    terms = offer_terms(body(grace_months=None, upfront_fee=None, conditions=None), "TRY")
    assert (terms.grace_months, terms.upfront_fee, terms.conditions) == (0, 0, "")


# ----------------------------------------------------------------------------- refused
@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param({"annual_rate": 31.25}, {("annual_rate", "invalid")}, id="rate_float"),
        pytest.param({"annual_rate": "31.25001"}, {("annual_rate", "invalid")},
                     id="rate_five_decimals"),
        pytest.param({"amount": 1500000.0}, {("amount", "invalid")}, id="amount_float"),
        pytest.param({"amount": 1500000}, {("amount", "invalid")}, id="amount_int"),
        pytest.param({"amount": "1.5e6"}, {("amount", "invalid")}, id="amount_exponent"),
        pytest.param({"amount": "1500000.001"}, {("amount", "invalid")},
                     id="amount_three_decimals"),
        pytest.param({"upfront_fee": 10.5}, {("upfront_fee", "invalid")}, id="fee_float"),
        pytest.param({"tenor_months": "24"}, {("tenor_months", "invalid")}, id="tenor_string"),
        pytest.param({"tenor_months": 24.0}, {("tenor_months", "invalid")}, id="tenor_float"),
        pytest.param({"tenor_months": True}, {("tenor_months", "invalid")}, id="tenor_bool"),
        pytest.param({"grace_months": "6"}, {("grace_months", "invalid")}, id="grace_string"),
        pytest.param({"repayment_every_months": 1.0}, {("repayment_every_months", "invalid")},
                     id="every_float"),
        pytest.param({"assumes_export_commitment": "yes"},
                     {("assumes_export_commitment", "invalid")}, id="commitment_string"),
        pytest.param({"assumes_export_commitment": 1},
                     {("assumes_export_commitment", "invalid")}, id="commitment_int"),
        pytest.param({"conditions": 5}, {("conditions", "invalid")}, id="conditions_number"),
        pytest.param({"conditions": "x" * 10_001}, {("conditions", "invalid")},
                     id="conditions_too_long"),
        pytest.param({"currency": "GBP"}, {("currency", "invalid")}, id="currency_unknown"),
        pytest.param({"currency": "USD"}, {("currency", "currency_mismatch")},
                     id="currency_mismatch"),
        pytest.param({"annual_rate": DROP}, {("annual_rate", "required")}, id="rate_missing"),
        pytest.param({"amount": None}, {("amount", "required")}, id="amount_null"),
        pytest.param({"tenor_months": DROP}, {("tenor_months", "required")},
                     id="tenor_missing"),
        pytest.param({"bank_id": "x"}, {("bank_id", "unknown_field")}, id="unknown_field"),
    ],
)
def test_each_bad_offer_field_is_named_in_a_422_problem(
        changes: dict[str, Any], expected: set[tuple[str, str]]) -> None:
    p = problem_of(body(**changes))
    assert (p.status, p.code) == (422, "validation_failed")
    assert field_codes(p) == expected


def test_every_bad_offer_field_is_listed_in_one_problem() -> None:
    bad = {"annual_rate": 31.25, "amount": "1e6", "tenor_months": "24", "grace_months": 1.5,
           "repayment_every_months": None, "upfront_fee": "-", "assumes_export_commitment": 0,
           "conditions": [], "currency": "EUR", "offer_id": "off_1", "rank": 1}
    p = problem_of(bad, "TRY")
    assert field_codes(p) == {
        ("annual_rate", "invalid"), ("amount", "invalid"), ("tenor_months", "invalid"),
        ("grace_months", "invalid"), ("upfront_fee", "invalid"),
        ("assumes_export_commitment", "invalid"), ("conditions", "invalid"),
        ("currency", "currency_mismatch"), ("offer_id", "unknown_field"),
        ("rank", "unknown_field")}
    assert all(e.message for e in p.errors or [])
    wire = p.body("/v1/bank/rounds/r/offers")
    assert wire["status"] == 422 and wire["code"] == "validation_failed"
    assert wire["errors"] == [{"field": e.field, "code": e.code, "message": e.message}
                              for e in p.errors or []]
    for name in ("amount", "annual_rate", "offer_id", "rank"):
        assert name in wire["detail"]


def test_empty_offer_body_lists_the_three_required_fields() -> None:
    assert field_codes(problem_of({})) == {("annual_rate", "required"), ("amount", "required"),
                                          ("tenor_months", "required")}


# ----------------------------------------------------------------------------- whole bodies
def test_a_json_object_body_is_read_field_by_field() -> None:
    """Any JSON object is read: what is wrong with it are field errors, not a refusal of the
    body."""
    got = read(OfferTermsBody, b'{"a": 1}')
    assert got.model is None
    assert {(e.field, e.code) for e in got.errors} == {
        ("a", "unknown_field"), ("annual_rate", "required"), ("amount", "required"),
        ("tenor_months", "required")}


@pytest.mark.parametrize(("raw", "status", "code"), [
    (b"{not json", 400, "malformed_json"),
    (b"\xff\xfe", 400, "malformed_json"),
    (b"[1, 2]", 422, "validation_failed"),
    (b'"text"', 422, "validation_failed"),
    (b"", 422, "validation_failed"),
    (b"null", 422, "validation_failed"),
])
def test_body_that_is_not_a_json_object_is_refused(raw: bytes, status: int, code: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        read(OfferTermsBody, raw)
    assert (info.value.status, info.value.code) == (status, code)
    wire = unreadable(info.value).body("/v1/bank/rounds/r/offers")
    assert (wire["status"], wire["code"]) == (status, code)
    if status == 422:
        assert wire["errors"] == [{"field": "", "code": "not_object",
                                   "message": "expected an object"}]
