"""Unit tests for auction.rules and auction.ranking: offer and round validation (with the
tenor limits of the guarantee package in force), the ranking key, masked labels and the round
state machine. Pure functions, no services."""

from __future__ import annotations

import random
import re
import string
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from applications.package import KGF_HD_2026_1
from auction import rules
from auction.model import OfferTerms, RoundState, RoundTerms
from auction.ranking import KEY_WIDTH, member_ref, rank_key, rank_member
from auction.rules import (
    MAX_CONDITIONS_LEN,
    FieldError,
    can_transition,
    has_lapsed,
    is_due,
    label_pool,
    may_accept,
    may_bid,
    new_ref,
    refuse_acceptance,
)

#: the one table of tenor and grace limits: the guarantee package's
LOAN_TYPE_RULES = KGF_HD_2026_1.loan_types


def validate_offer(terms: OfferTerms, rnd: RoundTerms) -> list[FieldError]:
    return rules.validate_offer(terms, rnd, LOAN_TYPE_RULES[rnd.loan_type])


def validate_round_terms(rnd: RoundTerms) -> list[FieldError]:
    return rules.validate_round_terms(rnd, LOAN_TYPE_RULES.get(rnd.loan_type))

#: pure functions: no example database written into the tree, no per-example deadline
pure = settings(database=None, deadline=None)

ONE_MILLION_TL = 100_000_000  # kuruş

#: The KGF limits of PORTAL.md §4, written out independently of LOAN_TYPE_RULES:
#: loan type -> (min tenor, max tenor, max grace), months.
PORTAL_LIMITS = {
    "working_capital": (6, 60, 12),
    "investment": (6, 120, 36),
}


def a_round(loan_type: str = "working_capital", **changes: object) -> RoundTerms:
    base = RoundTerms(
        round_id="r1", currency="TRY", loan_type=loan_type, loan_amount=ONE_MILLION_TL,
        guarantee_amount=80_000_000, tenor_months=24, grace_months=6, export_commitment=True,
        opened_at_ms=0, closes_at_ms=1_000)
    return replace(base, **changes)  # type: ignore[arg-type]


def an_offer(**changes: object) -> OfferTerms:
    base = OfferTerms(
        annual_rate_e4=312_500, amount=ONE_MILLION_TL, tenor_months=24, grace_months=6,
        repayment_every_months=3, upfront_fee=0, assumes_export_commitment=True, conditions="")
    return replace(base, **changes)  # type: ignore[arg-type]


def codes(errors: list[FieldError]) -> list[tuple[str, str]]:
    return [(e.field, e.code) for e in errors]


# ----------------------------------------------------------------------------- validate_offer
def test_loan_type_rules_match_the_portal_guarantee_table() -> None:
    assert {k: (r.min_tenor_months, r.max_tenor_months, r.max_grace_months)
            for k, r in LOAN_TYPE_RULES.items()} == PORTAL_LIMITS


def _offer_edge_cases() -> list[object]:
    """(loan type, offer changes, expected errors): every limit just inside and just outside."""
    cases: list[object] = []
    for lt, (min_tenor, max_tenor, max_grace) in PORTAL_LIMITS.items():
        table: list[tuple[str, dict[str, object], list[tuple[str, str]]]] = [
            ("rate_smallest_positive", {"annual_rate_e4": 1}, []),
            ("rate_zero", {"annual_rate_e4": 0}, [("annual_rate", "not_positive")]),
            ("rate_negative", {"annual_rate_e4": -1}, [("annual_rate", "not_positive")]),
            ("rate_500_percent", {"annual_rate_e4": 5_000_000}, []),
            ("rate_above_500_percent", {"annual_rate_e4": 5_000_001},
             [("annual_rate", "too_high")]),
            ("amount_one_kurus", {"amount": 1}, []),
            ("amount_zero", {"amount": 0}, [("amount", "not_positive")]),
            ("amount_negative", {"amount": -1}, [("amount", "not_positive")]),
            ("amount_equal_to_request", {"amount": ONE_MILLION_TL}, []),
            ("amount_above_request", {"amount": ONE_MILLION_TL + 1},
             [("amount", "above_requested")]),
            ("tenor_minimum", {"tenor_months": min_tenor, "grace_months": 0}, []),
            ("tenor_below_minimum", {"tenor_months": min_tenor - 1, "grace_months": 0},
             [("tenor_months", "below_minimum")]),
            ("tenor_maximum", {"tenor_months": max_tenor}, []),
            ("tenor_above_maximum", {"tenor_months": max_tenor + 1},
             [("tenor_months", "above_maximum")]),
            ("grace_zero", {"grace_months": 0}, []),
            ("grace_negative", {"grace_months": -1}, [("grace_months", "negative")]),
            ("grace_maximum", {"tenor_months": max_tenor, "grace_months": max_grace}, []),
            ("grace_above_maximum", {"tenor_months": max_tenor, "grace_months": max_grace + 1},
             [("grace_months", "above_maximum")]),
            ("grace_one_below_tenor", {"tenor_months": 7, "grace_months": 6}, []),
            ("grace_equal_to_tenor", {"tenor_months": 6, "grace_months": 6},
             [("grace_months", "not_below_tenor")]),
            ("fee_zero", {"upfront_fee": 0}, []),
            ("fee_negative", {"upfront_fee": -1}, [("upfront_fee", "negative")]),
            ("fee_one_below_amount", {"amount": 1_000, "upfront_fee": 999}, []),
            ("fee_equal_to_amount", {"amount": 1_000, "upfront_fee": 1_000},
             [("upfront_fee", "not_below_amount")]),
            ("conditions_at_limit", {"conditions": "x" * MAX_CONDITIONS_LEN}, []),
            ("conditions_over_limit", {"conditions": "x" * (MAX_CONDITIONS_LEN + 1)},
             [("conditions", "too_long")]),
        ]
        table += [(f"repayment_every_{n}", {"repayment_every_months": n}, [])
                  for n in (1, 2, 3, 4, 6, 12)]
        table += [(f"repayment_every_{n}", {"repayment_every_months": n},
                   [("repayment_every_months", "unsupported")]) for n in (-1, 0, 5, 7, 13, 24)]
        cases += [pytest.param(lt, changes, expected, id=f"{lt}-{name}")
                  for name, changes, expected in table]
    return cases


@pytest.mark.parametrize(("loan_type", "changes", "expected"), _offer_edge_cases())
def test_offer_limits_are_enforced_exactly_at_their_edges(
        loan_type: str, changes: dict[str, object], expected: list[tuple[str, str]]) -> None:
    assert codes(validate_offer(an_offer(**changes), a_round(loan_type))) == expected


def test_grace_above_the_working_capital_maximum_is_fine_for_an_investment_loan() -> None:
    offer = an_offer(tenor_months=48, grace_months=24)
    assert codes(validate_offer(offer, a_round("working_capital"))) == [
        ("grace_months", "above_maximum")]
    assert validate_offer(offer, a_round("investment")) == []


def test_every_broken_rule_of_an_offer_is_reported_at_once() -> None:
    offer = an_offer(annual_rate_e4=0, amount=ONE_MILLION_TL + 1, tenor_months=61,
                     grace_months=13, repayment_every_months=5, upfront_fee=-1,
                     conditions="x" * (MAX_CONDITIONS_LEN + 1))
    assert codes(validate_offer(offer, a_round("working_capital"))) == [
        ("annual_rate", "not_positive"),
        ("amount", "above_requested"),
        ("tenor_months", "above_maximum"),
        ("grace_months", "above_maximum"),
        ("repayment_every_months", "unsupported"),
        ("upfront_fee", "negative"),
        ("conditions", "too_long"),
    ]


def test_offer_errors_carry_a_human_message_naming_the_field() -> None:
    errors = validate_offer(an_offer(tenor_months=121, grace_months=0), a_round("investment"))
    assert len(errors) == 1
    assert "tenor_months" in errors[0].message and "120" in errors[0].message


# ----------------------------------------------------------------------------- validate_round_terms
def _round_cases() -> list[object]:
    cases: list[object] = [
        pytest.param("working_capital", {}, [], id="valid"),
        pytest.param("working_capital", {"loan_amount": 0, "guarantee_amount": 0},
                     [("loan_amount", "not_positive"), ("guarantee_amount", "not_positive")],
                     id="zero_amounts"),
        pytest.param("working_capital", {"guarantee_amount": ONE_MILLION_TL}, [],
                     id="guarantee_100_percent"),
        pytest.param("working_capital", {"guarantee_amount": ONE_MILLION_TL + 1},
                     [("guarantee_amount", "above_loan")], id="guarantee_above_loan"),
    ]
    for lt, (min_tenor, max_tenor, max_grace) in PORTAL_LIMITS.items():
        table: list[tuple[str, dict[str, object], list[tuple[str, str]]]] = [
            ("tenor_minimum", {"tenor_months": min_tenor, "grace_months": 0}, []),
            ("tenor_below_minimum", {"tenor_months": min_tenor - 1, "grace_months": 0},
             [("tenor_months", "out_of_range")]),
            ("tenor_maximum", {"tenor_months": max_tenor}, []),
            ("tenor_above_maximum", {"tenor_months": max_tenor + 1},
             [("tenor_months", "out_of_range")]),
            ("grace_maximum", {"tenor_months": max_tenor, "grace_months": max_grace}, []),
            ("grace_above_maximum", {"tenor_months": max_tenor, "grace_months": max_grace + 1},
             [("grace_months", "out_of_range")]),
            ("grace_negative", {"grace_months": -1}, [("grace_months", "out_of_range")]),
            ("grace_equal_to_tenor", {"tenor_months": 6, "grace_months": 6},
             [("grace_months", "not_below_tenor")]),
        ]
        cases += [pytest.param(lt, changes, expected, id=f"{lt}-{name}")
                  for name, changes, expected in table]
    return cases


@pytest.mark.parametrize(("loan_type", "changes", "expected"), _round_cases())
def test_round_terms_are_checked_against_the_guarantee_rules(
        loan_type: str, changes: dict[str, object], expected: list[tuple[str, str]]) -> None:
    assert codes(validate_round_terms(a_round(loan_type, **changes))) == expected


def test_every_broken_rule_of_a_round_is_reported_at_once() -> None:
    rnd = a_round("working_capital", loan_amount=-5, guarantee_amount=0, tenor_months=5,
                  grace_months=13)
    assert codes(validate_round_terms(rnd)) == [
        ("loan_amount", "not_positive"), ("guarantee_amount", "not_positive"),
        ("tenor_months", "out_of_range"), ("grace_months", "out_of_range")]


# ----------------------------------------------------------------------------- ranking key
KEY_MAX = 10**KEY_WIDTH - 1
key_parts = st.tuples(st.integers(0, KEY_MAX), st.integers(0, KEY_MAX))


@pure
@given(st.lists(key_parts, min_size=1, max_size=40))
def test_rank_member_order_equals_rank_key_order(parts: list[tuple[int, int]]) -> None:
    # seq is unique within a round: the position in the list plays that part
    offers = [(apr, rate, seq, f"ref{seq}") for seq, (apr, rate) in enumerate(parts, start=1)]
    by_member = sorted(offers, key=lambda o: rank_member(*o))
    by_key = sorted(offers, key=lambda o: rank_key(*o[:3]))
    assert by_member == by_key


@pure
@given(st.integers(0, KEY_MAX), st.integers(0, KEY_MAX), st.integers(0, KEY_MAX),
       st.integers(0, KEY_MAX), st.integers(0, KEY_MAX), st.integers(0, KEY_MAX))
def test_rank_member_comparison_agrees_with_rank_key_pairwise(
        a1: int, r1: int, s1: int, a2: int, r2: int, s2: int) -> None:
    m1, m2 = rank_member(a1, r1, s1, "x"), rank_member(a2, r2, s2, "y")
    k1, k2 = rank_key(a1, r1, s1), rank_key(a2, r2, s2)
    if k1 != k2:
        assert (m1 < m2) == (k1 < k2)


@pytest.mark.parametrize(
    ("better", "worse"),
    [
        pytest.param((9, 500, 2), (10, 1, 1), id="lower_apr_wins_whatever_the_rate_and_time"),
        pytest.param((10, 99, 2), (10, 100, 1), id="equal_apr_lower_rate_wins"),
        pytest.param((10, 100, 1), (10, 100, 2), id="equal_terms_earlier_seq_wins"),
        pytest.param((999_999, 1, 1), (1_000_000, 1, 1), id="more_digits_is_not_smaller"),
        pytest.param((0, 0, 9), (0, 0, 10), id="seq_9_before_seq_10"),
    ],
)
def test_rank_member_orders_the_better_offer_first(
        better: tuple[int, int, int], worse: tuple[int, int, int]) -> None:
    assert rank_key(*better) < rank_key(*worse)
    assert rank_member(*better, "zzz") < rank_member(*worse, "aaa")


def test_rank_member_is_three_fixed_width_fields_then_the_ref() -> None:
    member = rank_member(126_825, 120_000, 7, "abc123")
    assert member == "000000126825" "000000120000" "000000000007" ":abc123"
    assert member.index(":") == 3 * KEY_WIDTH
    assert member_ref(member) == "abc123"


@pure
@given(st.integers(0, 10**KEY_WIDTH - 1), st.integers(0, 10**KEY_WIDTH - 1),
       st.integers(0, 10**KEY_WIDTH - 1), st.text("0123456789abcdef:", min_size=1, max_size=24))
def test_member_ref_reads_back_the_ref_of_any_member(apr: int, rate: int, seq: int,
                                                     ref: str) -> None:
    assert member_ref(rank_member(apr, rate, seq, ref)) == ref


# ----------------------------------------------------------------------------- labels
SINGLE_LETTER_LABELS = {"Banka " + c for c in string.ascii_uppercase}


def test_label_pool_holds_the_26_distinct_single_letter_names() -> None:
    pool = label_pool()
    assert len(pool) == 26
    assert set(pool) == SINGLE_LETTER_LABELS


@pytest.mark.parametrize("size", [0, 1, 5, 26, 27, 30, 100, 26 + 26 * 26])
def test_label_pool_gives_at_least_size_distinct_masked_names(size: int) -> None:
    pool = label_pool(size)
    assert len(pool) >= size
    assert len(set(pool)) == len(pool)
    assert all(re.fullmatch(r"Banka [A-Z]{1,2}", name) for name in pool)


def test_label_pool_beyond_26_adds_two_letter_names_after_all_single_letters() -> None:
    pool = label_pool(30)
    assert set(pool) == SINGLE_LETTER_LABELS | {"Banka AA", "Banka AB", "Banka AC", "Banka AD"}


def test_label_pools_are_shuffled_differently_for_each_round() -> None:
    pools = {tuple(label_pool()) for _ in range(20)}
    assert len(pools) > 1  # 20 equal shuffles of 26 names: probability 26!^-19


def test_label_pool_does_not_use_the_seedable_global_random() -> None:
    random.seed(1234)
    first = label_pool()
    random.seed(1234)
    second = label_pool()
    assert first != second


def test_label_pool_shuffles_with_the_rng_it_is_given() -> None:
    assert label_pool(rng=random.Random(7)) == label_pool(rng=random.Random(7))  # type: ignore[arg-type]


def test_new_ref_is_random_hex_carrying_no_identity() -> None:
    refs = {new_ref() for _ in range(200)}
    assert len(refs) == 200
    assert all(re.fullmatch(r"[0-9a-f]{12}", r) for r in refs)


# ----------------------------------------------------------------------------- state machine
OPEN, CLOSED, ACCEPTED, LAPSED = (RoundState.OPEN, RoundState.CLOSED, RoundState.ACCEPTED,
                                  RoundState.LAPSED)


@pytest.mark.parametrize(
    ("rule", "state", "limit_ms", "now_ms", "expected"),
    [
        (may_bid, OPEN, 1_000, 999, True),
        (may_bid, OPEN, 1_000, 1_000, False),
        (may_bid, OPEN, 1_000, 1_001, False),
        (may_bid, CLOSED, 1_000, 0, False),
        (may_bid, ACCEPTED, 1_000, 0, False),
        (is_due, OPEN, 1_000, 999, False),
        (is_due, OPEN, 1_000, 1_000, True),
        (is_due, OPEN, 1_000, 5_000, True),
        (is_due, CLOSED, 1_000, 5_000, False),
        (is_due, LAPSED, 1_000, 5_000, False),
        (may_accept, CLOSED, 5_000, 4_999, True),
        (may_accept, CLOSED, 5_000, 5_000, False),
        (may_accept, OPEN, 5_000, 0, False),
        (may_accept, ACCEPTED, 5_000, 0, False),
        (may_accept, LAPSED, 5_000, 0, False),
        (has_lapsed, CLOSED, 5_000, 4_999, False),
        (has_lapsed, CLOSED, 5_000, 5_000, True),
        (has_lapsed, OPEN, 5_000, 9_000, False),
        (has_lapsed, ACCEPTED, 5_000, 9_000, False),
    ],
    ids=lambda v: getattr(v, "__name__", None) or (v.value if isinstance(v, RoundState) else None),
)
def test_time_rules_switch_exactly_at_the_deadline(
        rule: object, state: RoundState, limit_ms: int, now_ms: int, expected: bool) -> None:
    assert rule(state, limit_ms, now_ms) is expected  # type: ignore[operator]


@pure
@given(st.integers(-10**13, 10**13), st.integers(-10**13, 10**13))
def test_an_open_round_is_either_biddable_or_due_never_both(deadline: int, now: int) -> None:
    assert may_bid(OPEN, deadline, now) != is_due(OPEN, deadline, now)
    assert may_accept(CLOSED, deadline, now) != has_lapsed(CLOSED, deadline, now)


ALLOWED = {(OPEN, CLOSED), (CLOSED, ACCEPTED), (CLOSED, LAPSED)}


@pytest.mark.parametrize("src", list(RoundState), ids=lambda s: s.value)
@pytest.mark.parametrize("dst", list(RoundState), ids=lambda s: s.value)
def test_round_moves_only_open_closed_then_accepted_or_lapsed(
        src: RoundState, dst: RoundState) -> None:
    assert can_transition(src, dst) is ((src, dst) in ALLOWED)


# ----------------------------------------------------------------------------- acceptance
@pytest.mark.parametrize(("state", "binding_until", "now", "expected"), [
    (RoundState.OPEN, None, 5, "round_open"),
    (RoundState.CLOSED, 10, 9, None),
    (RoundState.CLOSED, 10, 10, "binding_expired"),
    (RoundState.CLOSED, None, 0, "binding_expired"),
    (RoundState.ACCEPTED, 10, 5, "already_accepted"),
    (RoundState.LAPSED, 10, 5, "binding_expired"),
])
def test_an_offer_may_be_accepted_only_while_binding(
        state: RoundState, binding_until: int | None, now: int, expected: str | None) -> None:
    assert refuse_acceptance(state, binding_until, now) == expected
    assert (expected is None) == (binding_until is not None
                                  and may_accept(state, binding_until, now))
