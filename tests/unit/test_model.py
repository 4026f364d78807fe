"""Unit tests for auction.model: exact money and rate parsing and rendering, timestamps and the
compact record form of offer terms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auction.model import (
    OfferTerms,
    RoundTerms,
    dt_to_ms,
    e4_to_rate,
    iso,
    iso_ms,
    minor_to_money,
    money_to_minor,
    ms_to_dt,
    parse_decimal,
    parse_scaled,
    rate_to_e4,
)

#: pure functions: no example database written into the tree, no per-example deadline
pure = settings(database=None, deadline=None)


# ----------------------------------------------------------------------------- money
@pytest.mark.parametrize(
    ("text", "minor"),
    [
        ("1500000.00", 150_000_000),
        ("1500000.5", 150_000_050),
        ("1500000", 150_000_000),
        ("0.01", 1),
        ("0.00", 0),
        ("0", 0),
        ("-0.01", -1),
        ("999999999999999.99", 99_999_999_999_999_999),
    ],
)
def test_money_strings_become_exact_minor_units(text: str, minor: int) -> None:
    assert money_to_minor(text) == minor


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(1500000.0, id="float"),
        pytest.param(0.1, id="float_0.1"),
        pytest.param(1500000, id="int"),
        pytest.param(Decimal("1500000.00"), id="Decimal_object"),
        pytest.param(None, id="None"),
        pytest.param(True, id="bool"),
        pytest.param("1500000.001", id="three_decimals"),
        pytest.param("0.001", id="three_decimals_small"),
        pytest.param("1e6", id="exponent"),
        pytest.param("1E6", id="exponent_upper"),
        pytest.param("1.5e2", id="exponent_with_fraction"),
        pytest.param("+1.00", id="plus_sign"),
        pytest.param(" 1.00", id="leading_space"),
        pytest.param("1.00 ", id="trailing_space"),
        pytest.param("1.00\n", id="trailing_newline"),
        pytest.param("", id="empty"),
        pytest.param("abc", id="letters"),
        pytest.param("1,5", id="decimal_comma"),
        pytest.param("1.000.000", id="thousands_dots"),
        pytest.param("1_500_000.00", id="underscores"),
        pytest.param("\u0661\u0662", id="arabic_indic_digits"),
        pytest.param("0x10", id="hex"),
        pytest.param("NaN", id="nan"),
        pytest.param("Infinity", id="infinity"),
        pytest.param("-", id="lone_minus"),
        pytest.param(".", id="lone_dot"),
        pytest.param("1000000000000000", id="sixteen_integer_digits"),
        pytest.param("12345678901234567890123456789.01", id="beyond_decimal_precision"),
    ],
)
def test_money_that_is_not_a_plain_two_place_decimal_string_is_refused(value: object) -> None:
    with pytest.raises(ValueError):
        money_to_minor(value)


def test_floats_are_refused_with_a_message_asking_for_a_string() -> None:
    with pytest.raises(ValueError, match="decimal string"):
        money_to_minor(1500000.0)


def test_too_many_decimals_are_refused_with_the_allowed_number() -> None:
    with pytest.raises(ValueError, match="at most 2 decimal places"):
        money_to_minor("1.005")


def test_money_round_trips_through_minor_units() -> None:
    assert minor_to_money(money_to_minor("1500000.00")) == "1500000.00"


@pytest.mark.parametrize(
    ("minor", "text"),
    [(0, "0.00"), (1, "0.01"), (10, "0.10"), (100, "1.00"), (150_000_000, "1500000.00"),
     (-1, "-0.01"), (-150, "-1.50")],
)
def test_minor_units_render_with_exactly_two_places(minor: int, text: str) -> None:
    assert minor_to_money(minor) == text


@pure
@given(st.integers(-(10**17) + 1, 10**17 - 1))
def test_every_minor_amount_round_trips_through_its_wire_string(minor: int) -> None:
    assert money_to_minor(minor_to_money(minor)) == minor


# ----------------------------------------------------------------------------- rates
@pytest.mark.parametrize(
    ("text", "e4"),
    [("31.25", 312_500), ("31.2525", 312_525), ("0.0001", 1), ("500", 5_000_000),
     ("0", 0), ("31", 310_000)],
)
def test_rate_strings_become_exact_percent_e4(text: str, e4: int) -> None:
    assert rate_to_e4(text) == e4


@pytest.mark.parametrize("value", [31.25, "31.25001", "3.125e1", "%31.25", "31,25", 31])
def test_rates_that_are_not_plain_four_place_decimal_strings_are_refused(value: object) -> None:
    with pytest.raises(ValueError):
        rate_to_e4(value)


@pytest.mark.parametrize(
    ("e4", "places", "text"),
    [
        (312_500, 2, "31.25"),
        (312_550, 2, "31.255"),
        (312_525, 2, "31.2525"),
        (310_000, 2, "31.00"),
        (0, 2, "0.00"),
        (100, 2, "0.01"),
        (10, 2, "0.001"),
        (1, 2, "0.0001"),
        (5_000_000, 2, "500.00"),
        (-312_500, 2, "-31.25"),
        (312_500, 4, "31.2500"),
        (126_825, 4, "12.6825"),
        (1, 4, "0.0001"),
    ],
)
def test_rates_render_with_at_least_the_given_places_and_never_lose_digits(
        e4: int, places: int, text: str) -> None:
    assert e4_to_rate(e4, places) == text


@pure
@given(st.integers(-(10**12), 10**12), st.sampled_from([0, 2, 4]))
def test_every_rendered_rate_parses_back_to_the_same_e4(e4: int, places: int) -> None:
    text = e4_to_rate(e4, places)
    assert "e" not in text.lower()
    assert rate_to_e4(text) == e4


# ----------------------------------------------------------------------------- parse_decimal
@pytest.mark.parametrize(("text", "places"), [("1.5", 1), ("1.50", 2), ("-2", 0), ("1.", 0),
                                              (".5", 1)])
def test_parse_decimal_keeps_the_exact_value(text: str, places: int) -> None:
    assert parse_decimal(text, places) == Decimal(text)


# ----------------------------------------------------------------------------- time
@pytest.mark.parametrize(
    ("ts", "text"),
    [
        (datetime(2026, 3, 18, 14, 30, tzinfo=UTC), "2026-03-18T14:30:00Z"),
        (datetime(2026, 3, 18, 14, 30, 0, 123_000, tzinfo=UTC),
         "2026-03-18T14:30:00.123Z"),
        (datetime(2026, 3, 18, 17, 30, tzinfo=timezone(timedelta(hours=3))),
         "2026-03-18T14:30:00Z"),
    ],
)
def test_iso_renders_utc_with_z_and_milliseconds_only_when_present(
        ts: datetime, text: str) -> None:
    assert iso(ts) == text


@pytest.mark.parametrize("ms", [0, 1, 1_001, 262_143, 1_776_781_800_000, 1_776_781_800_123])
def test_millisecond_timestamps_convert_exactly(ms: int) -> None:
    # 1.001 s is 1.000999... as a float: a float round trip would give 1000
    assert dt_to_ms(ms_to_dt(ms)) == ms


@pure
@given(st.integers(0, 4_102_444_800_000))  # up to 2100-01-01
def test_millisecond_timestamps_round_trip_through_datetime(ms: int) -> None:
    assert dt_to_ms(ms_to_dt(ms)) == ms
    assert ms_to_dt(ms).tzinfo is UTC


# ----------------------------------------------------------------------------- data
TERMS = OfferTerms(annual_rate_e4=312_500, amount=150_000_000, tenor_months=24, grace_months=6,
                   repayment_every_months=3, upfront_fee=25_000, assumes_export_commitment=True,
                   conditions='Teminat: "ipotek" | kefil; ğüşiöç')


def test_offer_terms_survive_the_compact_record_form() -> None:
    assert OfferTerms.from_record(TERMS.to_record()) == TERMS


def test_record_form_leaves_the_version_envelope_letters_free() -> None:
    assert not set(TERMS.to_record()) & set("ofblvstp")


def test_offer_terms_go_on_the_wire_as_decimal_strings() -> None:
    assert TERMS.to_wire() == {
        "annual_rate": "31.25", "amount": "1500000.00", "tenor_months": 24, "grace_months": 6,
        "repayment_every_months": 3, "upfront_fee": "250.00", "assumes_export_commitment": True,
        "conditions": 'Teminat: "ipotek" | kefil; ğüşiöç'}


@pytest.mark.parametrize(
    ("loan", "guarantee", "rate_e4"),
    [(100, 80, 800_000), (100, 100, 1_000_000), (3, 1, 333_333), (3, 2, 666_666)],
)
def test_guarantee_rate_is_rounded_down_never_up(loan: int, guarantee: int, rate_e4: int) -> None:
    rnd = RoundTerms("r", "TRY", "investment", loan, guarantee, 12, 0, False, 0, 1)
    assert rnd.guarantee_rate_e4 == rate_e4


# ----------------------------------------------------------------------------- fast paths
def _outcome(f: Any, *args: Any) -> tuple[str, object]:
    try:
        return "ok", f(*args)
    except ValueError as e:
        return "refused", str(e)


@settings(max_examples=3000, deadline=None, database=None)
@given(st.from_regex(r"-?[0-9]{0,18}(\.[0-9]{0,6})?", fullmatch=True) | st.text(max_size=10),
       st.sampled_from([2, 4]))
def test_parse_scaled_is_the_decimal_parse_in_integers(text: str, places: int) -> None:
    """Every money and rate field is parsed without Decimal; the same answers and refusals."""
    assert _outcome(parse_scaled, text, places) == _outcome(
        lambda t, p: int(parse_decimal(t, p) * 10**p), text, places)


@settings(max_examples=3000, deadline=None, database=None)
@given(st.integers(-10**12, 10**12), st.sampled_from([2, 4]))
def test_e4_to_rate_keeps_the_decimal_rendering(e4: int, places: int) -> None:
    d = Decimal(e4) / 10_000
    q = d.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    want = f"{q:.{places}f}" if q == d else f"{d.normalize():f}"
    assert e4_to_rate(e4, places) == want


@settings(max_examples=3000, deadline=None, database=None)
@given(st.integers(0, 4_102_444_800_000))
def test_iso_ms_is_iso_of_the_datetime(ms: int) -> None:
    assert iso_ms(ms) == iso(ms_to_dt(ms))
