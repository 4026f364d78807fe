"""The document's patterns say exactly what the server accepts: for every string, a pattern
matches it if and only if the field's converter (with the rule every use of the field applies,
such as "above 0") accepts it. A looser pattern once let schema-driven clients send "0" amounts
and rates, which the server always refuses."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from auction.rules import MAX_ANNUAL_RATE_E4
from gateway.contract import fields as F
from gateway.contract import limits as L
from gateway.contract.openapi import spec


def accepts(convert: Callable[[Any], Any], rule: Callable[[Any], bool] = lambda _: True
            ) -> Callable[[str], bool]:
    def ok(s: str) -> bool:
        try:
            return rule(convert(s))
        except ValueError:
            return False
    return ok


CASES: dict[str, tuple[str, Callable[[str], bool]]] = {
    "money": (F.MONEY_PATTERN, accepts(F.money, lambda v: v >= 0)),
    "positive money": (F.POSITIVE_MONEY_PATTERN, accepts(F.money, lambda v: v > 0)),
    "rate": (F.RATE_PATTERN, accepts(F.rate, lambda v: 0 < v <= MAX_ANNUAL_RATE_E4)),
    "share": (F.SHARE_PATTERN, accepts(F.share_e4)),
    "cursor": (L.CURSOR_PATTERN, accepts(F.cursor)),
}

#: strings near the decimal forms: digits, points, signs, and a little of everything else
DECIMALISH = st.one_of(
    st.text(alphabet="0123456789.-", max_size=22),
    st.text(alphabet="0123456789.", min_size=1, max_size=8),
    st.from_regex(r"0*(500|[0-9]{1,3})(\.[0-9]{0,5})?", fullmatch=True),
    st.from_regex(r"[0-9]{14,17}(\.[0-9]{0,3})?", fullmatch=True),
    st.text(max_size=6),
)
CURSORISH = st.one_of(
    st.from_regex(r"[0-9]{0,17}\.?[A-Za-z0-9_+=/-]{0,42}", fullmatch=True),
    st.text(max_size=20),
)


@settings(max_examples=600, deadline=None)
@given(DECIMALISH, CURSORISH)
def test_every_pattern_matches_exactly_what_its_converter_accepts(s: str, c: str) -> None:
    for name, (pattern, ok) in CASES.items():
        value = c if name == "cursor" else s
        assert bool(re.fullmatch(pattern, value)) == ok(value), (name, value)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_what_a_pattern_generates_the_server_accepts(data: st.DataObject) -> None:
    for name, (pattern, ok) in CASES.items():
        value = data.draw(st.from_regex(pattern, fullmatch=True), label=name)
        assert ok(value), (name, value)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30))
def test_the_plain_text_pattern_is_the_plain_text_rule(s: str) -> None:
    """(Lone surrogates aside: no JSON generator sends them; the converter refuses them.)"""
    if any("\ud800" <= ch <= "\udfff" for ch in s):
        return
    assert bool(re.fullmatch(F.PLAIN_TEXT_PATTERN, s)) == accepts(F.plain_text(10_000))(s)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.from_regex(r"[0-9]{10,11}", fullmatch=True), st.text(max_size=12)))
def test_an_accepted_tax_id_or_national_id_matches_its_pattern(s: str) -> None:
    schemas = spec()["components"]["schemas"]
    if accepts(F.tax_id)(s):
        assert re.fullmatch(schemas["TaxId"]["pattern"], s)
    if accepts(F.national_id)(s):
        assert re.fullmatch(schemas["NationalId"]["pattern"], s)


def test_the_document_states_these_patterns() -> None:
    doc = spec()
    schemas = doc["components"]["schemas"]
    assert schemas["MoneyInput"]["pattern"] == F.MONEY_PATTERN
    assert schemas["PositiveMoneyInput"]["pattern"] == F.POSITIVE_MONEY_PATTERN
    assert schemas["RateInput"]["pattern"] == F.RATE_PATTERN
    terms = schemas["OFFER_TERMS"]["properties"]
    assert terms["amount"]["$ref"].endswith("/PositiveMoneyInput")
    assert terms["upfront_fee"]["anyOf"][0]["$ref"].endswith("/MoneyInput")  # optional
    assert terms["conditions"]["anyOf"][0]["pattern"] == F.PLAIN_TEXT_PATTERN
    form = schemas["APPLICATION_FORM"]["properties"]
    assert form["loan_amount"]["$ref"].endswith("/PositiveMoneyInput")
    assert schemas["RELATED_COMPANY"]["properties"]["share_pct"]["pattern"] == F.SHARE_PATTERN
    params = {p["name"]: p for p in doc["paths"]["/v1/bank/rounds"]["get"]["parameters"]}
    assert params["cursor"]["schema"]["pattern"] == L.CURSOR_PATTERN_OR_EMPTY
