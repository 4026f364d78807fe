"""The bid path's integer APR flows (auction.apr.flow_floats) equal the documented Fraction
model (auction.apr.cash_flows) exactly, so ranking never depends on which one ran."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auction.apr import apr_e4, cash_flows, flow_floats


@st.composite
def loans(draw: st.DrawFn) -> dict[str, int]:
    tenor = draw(st.integers(1, 120))
    amount = draw(st.integers(1, 10**15))
    return {
        "amount_kurus": amount,
        "annual_rate_e4": draw(st.integers(0, 5_000_000)),
        "tenor_months": tenor,
        "grace_months": draw(st.integers(0, tenor - 1)),
        "repayment_every_months": draw(st.sampled_from([1, 2, 3, 4, 6, 12, 5, 7, 24])),
        "upfront_fee_kurus": draw(st.integers(0, amount)),
        "guarantee_rate_e4": draw(st.integers(0, 1_000_000)),
    }


@settings(max_examples=300, deadline=None)
@given(loans())
def test_integer_flows_equal_the_fraction_model_to_the_last_bit(loan: dict[str, int]) -> None:
    try:
        reference = [float(f) for f in cash_flows(**loan)]
    except ValueError:
        with pytest.raises(ValueError):
            flow_floats(**loan)
        return
    assert flow_floats(**loan) == reference


def test_half_quantum_flows_round_half_even_like_decimal() -> None:
    # 1 kuruş at 0.0006 % a year for one month: interest 5e-11 kuruş rounds to 0; an odd and
    # an even quantum with exactly half a quantum on top round to the even one
    for loan in (
        dict(amount_kurus=1, annual_rate_e4=6, tenor_months=1, grace_months=0,
             repayment_every_months=1, upfront_fee_kurus=0, guarantee_rate_e4=0),
        dict(amount_kurus=5, annual_rate_e4=12, tenor_months=3, grace_months=1,
             repayment_every_months=1, upfront_fee_kurus=0, guarantee_rate_e4=500_000),
    ):
        assert flow_floats(**loan) == [float(f) for f in cash_flows(**loan)]


def test_apr_of_a_typical_offer_is_unchanged_by_the_fast_path() -> None:
    import pyxirr

    loan = dict(amount_kurus=500_000_000, annual_rate_e4=385_000, tenor_months=24,
                grace_months=6, repayment_every_months=3, upfront_fee_kurus=250_000,
                guarantee_rate_e4=800_000)
    irr = pyxirr.irr([float(f) for f in cash_flows(**loan)])
    from decimal import ROUND_HALF_EVEN, Decimal

    expected = int((Decimal(repr(((1.0 + irr) ** 12 - 1.0) * 100.0)) * 10_000)
                   .quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
    assert apr_e4(**loan) == expected
