"""Unit tests for auction.apr (all-in annual cost of a loan offer)."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest
import pyxirr

from auction.apr import GUARANTEE_COMMISSION, apr_e4, apr_e4_memo, cash_flows

ONE_MILLION_TL = 100_000_000  # kuruş

# 12 % nominal, 12 months, monthly equal principal, no fee, no guarantee.
BASE: dict[str, int] = {
    "amount_kurus": ONE_MILLION_TL,
    "annual_rate_e4": 120_000,
    "tenor_months": 12,
    "grace_months": 0,
    "repayment_every_months": 1,
    "upfront_fee_kurus": 0,
    "guarantee_rate_e4": 0,
}


def offer(**changes: int) -> dict[str, int]:
    return {**BASE, **changes}


def test_twelve_percent_repaid_monthly_compounds_to_12_6825_percent() -> None:
    assert abs(apr_e4(**BASE) - 126_825) <= 1


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"annual_rate_e4": 0}, 0),
        # one bullet payment of 12 % simple interest after a year is exactly 12 %
        ({"repayment_every_months": 12}, 120_000),
        # with no fees the grace period only moves principal, the cost is unchanged
        ({"grace_months": 6}, 126_825),
    ],
)
def test_apr_of_fee_free_offers_matches_closed_form(changes: dict[str, int], expected: int) -> None:
    assert abs(apr_e4(**offer(**changes)) - expected) <= 1


def test_cash_flows_follow_the_documented_schedule() -> None:
    # 100 kuruş at 12 %, 10 months, quarterly: principal 25 at months 3, 6, 9
    # and the remainder at month 10 (short last period); interest 1 %/month.
    flows = cash_flows(**offer(amount_kurus=100, tenor_months=10, repayment_every_months=3))
    expected = ["-100", "0", "0", "28", "0", "0", "27.25", "0", "0", "26.5", "25.25"]
    assert flows == [Decimal(value) for value in expected]


def test_cash_flows_pay_interest_during_grace_on_repayment_multiples() -> None:
    # 1000 kuruş, grace 4, quarterly: interest only at month 3, principal at 7, 10, 12;
    # 100 % guarantee costs 0.03 % = 0.3 kuruş at t=0.
    flows = cash_flows(
        **offer(
            amount_kurus=1000, grace_months=4, repayment_every_months=3, guarantee_rate_e4=1_000_000
        )
    )
    expected = ["-999.7", "0", "0", "30", "0", "0", "0", "373", "0", "0", "353.01", "0", "340.68"]
    assert flows == [Decimal(value) for value in expected]


@pytest.mark.parametrize(
    ("tenor", "grace", "every"),
    [(12, 0, 1), (10, 0, 3), (24, 6, 3), (25, 6, 6), (7, 6, 12), (36, 12, 1)],
)
def test_cash_flows_repay_exactly_the_principal_with_payments_at_the_end(
    tenor: int, grace: int, every: int
) -> None:
    changes = {
        "amount_kurus": 1_234_567,
        "annual_rate_e4": 0,
        "tenor_months": tenor,
        "grace_months": grace,
        "repayment_every_months": every,
    }
    flows = cash_flows(**offer(**changes))
    assert len(flows) == tenor + 1
    assert flows[0] == -1_234_567
    assert sum(flows[1:]) == 1_234_567
    assert all(flow == 0 for flow in flows[1 : grace + 1])
    assert flows[-1] > 0


@pytest.mark.parametrize(
    ("fee", "guarantee_rate_e4", "expected_receipt"),
    [
        (0, 0, ONE_MILLION_TL),
        (500_000, 0, ONE_MILLION_TL - 500_000),
        (0, 1_000_000, ONE_MILLION_TL - 30_000),  # 0.03 % of a 100 % guarantee
        (0, 500_000, ONE_MILLION_TL - 15_000),
        (500_000, 1_000_000, ONE_MILLION_TL - 530_000),
    ],
)
def test_initial_receipt_is_net_of_fee_and_guarantee_commission(
    fee: int, guarantee_rate_e4: int, expected_receipt: int
) -> None:
    flows = cash_flows(**offer(upfront_fee_kurus=fee, guarantee_rate_e4=guarantee_rate_e4))
    assert flows[0] == -expected_receipt


def test_guarantee_commission_is_three_basis_points() -> None:
    assert Decimal("0.0003") == GUARANTEE_COMMISSION


@pytest.mark.parametrize(
    ("field", "values"),
    [
        ("upfront_fee_kurus", [0, 100_000, 1_000_000, 5_000_000]),
        ("guarantee_rate_e4", [0, 250_000, 500_000, 1_000_000]),
        ("annual_rate_e4", [100_000, 120_000, 312_500, 500_000]),
    ],
)
def test_higher_fee_commission_or_rate_raises_apr(field: str, values: list[int]) -> None:
    aprs = [apr_e4(**offer(**{field: value})) for value in values]
    assert aprs == sorted(aprs)
    assert len(set(aprs)) == len(aprs)


def test_longer_grace_spreads_the_fee_and_lowers_apr() -> None:
    aprs = [apr_e4(**offer(upfront_fee_kurus=1_000_000, grace_months=g)) for g in (0, 3, 6, 9)]
    assert aprs == sorted(aprs, reverse=True)
    assert len(set(aprs)) == len(aprs)


@pytest.mark.parametrize("fee", [0, 1_000_000])
def test_less_frequent_repayment_lowers_apr(fee: int) -> None:
    aprs = [
        apr_e4(**offer(upfront_fee_kurus=fee, repayment_every_months=every))
        for every in (1, 3, 6, 12)
    ]
    assert aprs == sorted(aprs, reverse=True)
    assert len(set(aprs)) == len(aprs)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {
            "annual_rate_e4": 312_500,
            "tenor_months": 24,
            "grace_months": 6,
            "repayment_every_months": 3,
            "upfront_fee_kurus": 500_000,
            "guarantee_rate_e4": 1_000_000,
        },
    ],
)
def test_equal_inputs_give_equal_integer_outputs(changes: dict[str, int]) -> None:
    first = apr_e4(**offer(**changes))
    second = apr_e4(**offer(**changes))
    assert type(first) is int
    assert first == second
    assert cash_flows(**offer(**changes)) == cash_flows(**offer(**changes))


@pytest.mark.parametrize(
    "changes",
    [
        {"tenor_months": 0},
        {"tenor_months": -12},
        {"grace_months": 12},
        {"grace_months": 13},
        {"grace_months": -1},
        {"repayment_every_months": 0},
        {"repayment_every_months": -3},
        {"amount_kurus": 0},
        {"amount_kurus": -1},
        {"upfront_fee_kurus": -1},
        {"upfront_fee_kurus": ONE_MILLION_TL},  # nothing left to receive
        {"upfront_fee_kurus": ONE_MILLION_TL - 30_000, "guarantee_rate_e4": 1_000_000},
        {"annual_rate_e4": -1},
        {"guarantee_rate_e4": -1},
        {"guarantee_rate_e4": 1_000_001},
    ],
)
def test_impossible_inputs_are_rejected(changes: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        cash_flows(**offer(**changes))
    with pytest.raises(ValueError):
        apr_e4(**offer(**changes))


def test_missing_irr_is_reported_as_value_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_irr(*_args: object, **_kwargs: object) -> None:
        return None

    monkeypatch.setattr(pyxirr, "irr", no_irr)
    with pytest.raises(ValueError, match="internal rate of return"):
        apr_e4(**BASE)


def test_the_remembered_apr_is_apr_e4_for_every_offer_and_a_repeat_is_a_hit() -> None:
    rng = random.Random(11)
    shapes = [offer(tenor_months=t, grace_months=g, repayment_every_months=e,
                    upfront_fee_kurus=f, guarantee_rate_e4=q)
              for t, g, e, f, q in [(12, 0, 1, 0, 0), (24, 6, 3, 0, 300), (36, 12, 6, 50_000,
                                                                             1_000)]]
    for shape in shapes:
        for _ in range(60):
            terms = {**shape, "annual_rate_e4": rng.randrange(0, 900_000, 100)}
            args = tuple(terms[k] for k in BASE)
            want = apr_e4(**terms)
            assert apr_e4_memo(*args) == want
            hits = apr_e4_memo.cache_info().hits
            assert apr_e4_memo(*args) == want  # the second time from the cache ...
            assert apr_e4_memo.cache_info().hits == hits + 1


def test_the_memo_is_bounded_and_remembers_no_refusal() -> None:
    assert apr_e4_memo.cache_parameters()["maxsize"] == 8192
    bad = tuple(offer(upfront_fee_kurus=ONE_MILLION_TL)[k] for k in BASE)  # nothing received
    size = apr_e4_memo.cache_info().currsize
    for _ in range(2):
        with pytest.raises(ValueError):
            apr_e4_memo(*bad)
    assert apr_e4_memo.cache_info().currsize == size
