"""The exporter's fields: e-mail and mobile checked by maintained libraries, tax ids by their
check digits (the converters of gateway.contract.fields), and the application form read by its
model (``read(ApplicationForm, raw)``, as POST /v1/exporter/applications reads it) with the
guarantee package's form rules over it (``usecases.applying.check_form``): the company and the
exact request, or one 422 listing every bad field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from applications.model import ApplicationRequest
from applications.package import KGF_HD_2026_1 as P
from applications.package import GuaranteePackage
from applications.simulated import STD_REQUEST
from gateway.contract.fields import email_address, share_e4, tax_id, turkish_mobile
from gateway.contract.requests import ApplicationForm, read
from gateway.problems import Problem, problem
from usecases.applying import ApplicationDraft, check_form
from usecases.outcomes import Refusal


@pytest.mark.parametrize("value, expected", [
    ("ayse@example.com", "ayse@example.com"),
    ("Ayse.Yilmaz@Example.COM", "ayse.yilmaz@example.com"),
    ("ihracat@örnek.com.tr", "ihracat@örnek.com.tr"),
    ("not-an-email", None), ("a..b@example.com", None), ("x@localhost", None),
    ("@example.com", None), ("a@b@example.com", None), (" ayse@example.com", None),
    ("a" * 250 + "@x.com", None), (12, None), (None, None),
])
def test_email_addresses(value: Any, expected: str | None):
    if expected is None:
        with pytest.raises(ValueError):
            email_address(value)
    else:
        assert email_address(value) == expected


@pytest.mark.parametrize("value, expected", [
    ("+905321234567", "+905321234567"),
    ("0532 123 45 67", "+905321234567"),
    ("5321234567", "+905321234567"),
    ("+90 (505) 111-22-33", "+905051112233"),
    ("+902121234567", None),  # an Istanbul landline, not a mobile
    ("+905", None), ("+447911123456", None),  # too short; a UK mobile
    ("05321234567890", None), ("", None), ("abc", None), (5321234567, None),
])
def test_turkish_mobile_numbers(value: Any, expected: str | None):
    if expected is None:
        with pytest.raises(ValueError):
            turkish_mobile(value)
    else:
        assert turkish_mobile(value) == expected


@pytest.mark.parametrize("value, ok", [
    ("1100000014", True), ("1100000015", False),  # VKN check digit
    ("10000000146", True), ("10000000147", False),  # TCKN of a sole proprietor
    ("110000001", False), (1100000014, False),
])
def test_tax_ids(value: Any, ok: bool):
    if ok:
        assert tax_id(value) == value
    else:
        with pytest.raises(ValueError):
            tax_id(value)


@pytest.mark.parametrize("value, e4", [("25", 25_0000), ("24.99", 24_9900), ("0", 0),
                                       ("100", 100_0000), ("100.01", None), ("-1", None),
                                       ("25.001", None), (25, None)])
def test_share_percentages(value: Any, e4: int | None):
    if e4 is None:
        with pytest.raises(ValueError):
            share_e4(value)
    else:
        assert share_e4(value) == e4


def form(**changes: Any) -> dict[str, Any]:
    return {**STD_REQUEST, "company_id": "cmp_1", **changes}


def parse_application(body: dict[str, Any], package: GuaranteePackage
                      ) -> tuple[str, ApplicationRequest]:
    """As the route: read the form (its bytes; the decoded object reads the same), then the
    package's form rules; the company and the request, or the 422 problem."""
    got = read(ApplicationForm, json.dumps(body).encode())
    decoded = read(ApplicationForm, body)
    assert (decoded.values, decoded.errors, decoded.model) == (got.values, got.errors, got.model)
    checked = check_form(ApplicationDraft(got.values.get("company_id"),
                                          None if got.model is None else got.model.request(),
                                          got.values, got.errors), package)
    if isinstance(checked, Refusal):
        raise problem(checked)
    return checked


def errors(body: dict[str, Any]) -> set[tuple[str, str]]:
    with pytest.raises(Problem) as e:
        parse_application(body, P)
    assert e.value.status == 422 and e.value.code == "validation_failed"
    return {(x.field, x.code) for x in e.value.errors or []}


def test_a_valid_form_parses_to_exact_numbers():
    cid, req = parse_application(form(
        currency="USD", loan_amount="125000.50", guarantee_amount="100000.00",
        related_companies=[{"tax_id": "1100000119", "relation": "sister", "share_pct": "50"}],
        preferred_banks=["ZIRAAT", "AKBANK", "ZIRAAT"], export_commitment=True,
        purpose="hammadde\nalımı"), P)
    assert cid == "cmp_1"
    assert (req.currency, req.loan_amount, req.guarantee_amount) == ("USD", 125_000_50,
                                                                     100_000_00)
    assert [(r.tax_id, r.relation, r.share_e4) for r in req.related_companies] == [
        ("1100000119", "sister", 50_0000)]
    assert req.preferred_banks == ("ZIRAAT", "AKBANK")
    assert req.export_commitment and req.grace_months == 6


def test_defaults():
    _, req = parse_application({k: v for k, v in form().items() if k != "grace_months"}, P)
    assert (req.grace_months, req.related_companies, req.preferred_banks,
            req.export_commitment, req.purpose) == (0, (), (), False, "")


def test_one_422_lists_every_bad_field():
    got = errors({"loan_type": "leasing", "currency": "GBP", "loan_amount": 5000000,
                  "guarantee_amount": "1.234", "tenor_months": "24", "grace_months": True,
                  "related_companies": [{"tax_id": "123", "relation": "cousin",
                                         "share_pct": "101"}, "x"],
                  "preferred_banks": "ZIRAAT", "export_commitment": "yes",
                  "purpose": "a\x00b", "colour": "red"})
    assert got == {
        ("company_id", "required"), ("loan_type", "invalid"), ("currency", "invalid"),
        ("loan_amount", "invalid"), ("guarantee_amount", "invalid"),
        ("tenor_months", "invalid"), ("grace_months", "invalid"),
        ("related_companies[0].tax_id", "invalid"), ("related_companies[0].relation", "invalid"),
        ("related_companies[0].share_pct", "invalid"), ("related_companies[1]", "invalid"),
        ("preferred_banks", "invalid"), ("export_commitment", "invalid"),
        ("purpose", "invalid"), ("colour", "unknown_field")}


def test_the_package_form_rules_join_the_422_under_their_reason_codes():
    assert errors(form(tenor_months=61, grace_months=13, guarantee_amount="5000000.01")) == {
        ("tenor_months", "tenor_above_maximum"), ("grace_months", "grace_above_maximum"),
        ("guarantee_amount", "guarantee_above_loan")}
    assert errors(form(loan_type="investment", tenor_months=121)) == {
        ("tenor_months", "tenor_above_maximum")}
    parse_application(form(loan_type="investment", tenor_months=120, grace_months=36), P)


def test_related_companies_duplicates_and_limits():
    rel = {"tax_id": "1100000119", "relation": "sister", "share_pct": "10"}
    assert errors(form(related_companies=[rel, rel])) == {
        ("related_companies[1].tax_id", "duplicate")}
    assert errors(form(related_companies=[rel] * 51)) == {("related_companies", "too_many")}
    assert errors(form(related_companies={"tax_id": "1100000119"})) == {
        ("related_companies", "invalid")}
