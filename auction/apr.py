"""All-in annual cost (APR) of a guaranteed export loan offer.

Inputs are exact integers and the result is an exact integer, so offers can
be ranked without ever comparing floats.

Units
-----
* money in kuruş (``int``; 1 TL = 100 kuruş);
* rates as integer percent * 10^4 (31.25 % → ``312500``; 100 % → ``1000000``).

Cash-flow model
---------------
Time is counted in whole months ``t = 0 .. tenor_months``.

* **t = 0** - the borrower receives ``amount - upfront_fee - commission``,
  where ``commission = amount * guarantee_rate * GUARANTEE_COMMISSION``
  (the guarantee amount is ``amount * guarantee_rate``; the commission is a
  one-off 0.03 % of it).  The net receipt must be positive.
* **Principal** - nothing is repaid during the first ``grace_months``.  It
  is then repaid in equal instalments on months ``grace + k * every``
  (``k = 1, 2, …``) that fall before ``tenor``, plus a final instalment at
  month ``tenor``; if ``tenor - grace`` is not a multiple of ``every`` the
  last period is shorter.  There are ``ceil((tenor - grace) / every)``
  instalments of ``amount // count`` kuruş each; the final one takes
  whatever is left, so principal flows are whole kuruş and sum to
  ``amount`` exactly.
* **Interest** - accrues monthly, simple (no compounding), at
  ``annual_rate / 12`` on the balance outstanding during that month.
  Accrued interest is paid on every principal date, during the grace
  period on months that are multiples of ``every`` and always at ``tenor``.

Sign convention: the t = 0 flow is negative (the net amount received) and
later flows are positive (what the borrower pays), so months with nothing to
pay carry a zero flow.  Interest is accrued exactly (as a fraction) and each
flow is rounded half-even to 10^-6 kuruş when converted to ``Decimal``.

APR
---
The monthly internal rate of return ``irr`` of the flows (``pyxirr.irr`` on
their float values) is annualised by compounding:
``APR = ((1 + irr)^12 - 1) * 100`` percent, and returned as
``round(APR * 10^4)`` (percent * 10^4, half-even, taken from the float's
``repr`` via ``Decimal``).  With no fee and no guarantee, 12 % nominal
repaid monthly gives 12.6825 % → ``126825``.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction
from functools import lru_cache

import pyxirr

__all__ = ["GUARANTEE_COMMISSION", "apr_e4", "apr_e4_memo", "cash_flows", "flow_floats"]

GUARANTEE_COMMISSION = Decimal("0.0003")
"""One-off commission: 0.03 % of the guarantee amount."""

_RATE_SCALE = 1_000_000  # percent * 10^4  →  fraction
_MONTHS_PER_YEAR = 12
_FLOW_QUANTUM = Decimal("0.000001")  # kuruş


def _to_decimal(value: Fraction) -> Decimal:
    """Round an exact fraction half-even to ``_FLOW_QUANTUM`` kuruş."""
    with localcontext() as ctx:
        ctx.prec = 80
        exact = Decimal(value.numerator) / Decimal(value.denominator)
        return exact.quantize(_FLOW_QUANTUM, rounding=ROUND_HALF_EVEN)


def _validate(
    *,
    amount_kurus: int,
    annual_rate_e4: int,
    tenor_months: int,
    grace_months: int,
    repayment_every_months: int,
    upfront_fee_kurus: int,
    guarantee_rate_e4: int,
) -> None:
    if amount_kurus <= 0:
        raise ValueError(f"amount_kurus must be positive, got {amount_kurus}")
    if annual_rate_e4 < 0:
        raise ValueError(f"annual_rate_e4 must be non-negative, got {annual_rate_e4}")
    if tenor_months <= 0:
        raise ValueError(f"tenor_months must be positive, got {tenor_months}")
    if grace_months < 0:
        raise ValueError(f"grace_months must be non-negative, got {grace_months}")
    if grace_months >= tenor_months:
        raise ValueError(
            f"grace_months ({grace_months}) must be shorter than tenor_months ({tenor_months})"
        )
    if repayment_every_months <= 0:
        raise ValueError(f"repayment_every_months must be positive, got {repayment_every_months}")
    if upfront_fee_kurus < 0:
        raise ValueError(f"upfront_fee_kurus must be non-negative, got {upfront_fee_kurus}")
    if not 0 <= guarantee_rate_e4 <= _RATE_SCALE:
        raise ValueError(
            f"guarantee_rate_e4 must be between 0 and {_RATE_SCALE} (0-100 %), "
            f"got {guarantee_rate_e4}"
        )


def cash_flows(
    *,
    amount_kurus: int,
    annual_rate_e4: int,
    tenor_months: int,
    grace_months: int,
    repayment_every_months: int,
    upfront_fee_kurus: int,
    guarantee_rate_e4: int,
) -> list[Decimal]:
    """Monthly cash flows of the loan in kuruş, index ``t`` = month ``t``.

    Returns ``tenor_months + 1`` values: the negative net receipt at t = 0
    followed by the (non-negative) payments; see the module docstring for
    the model.

    Raises:
        ValueError: for impossible inputs (non-positive amount or tenor,
            grace not shorter than tenor, non-positive repayment interval,
            negative fee or rate, guarantee rate outside 0-100 %, or a net
            receipt that is not positive).
    """
    _validate(
        amount_kurus=amount_kurus,
        annual_rate_e4=annual_rate_e4,
        tenor_months=tenor_months,
        grace_months=grace_months,
        repayment_every_months=repayment_every_months,
        upfront_fee_kurus=upfront_fee_kurus,
        guarantee_rate_e4=guarantee_rate_e4,
    )
    commission = Fraction(amount_kurus * guarantee_rate_e4, _RATE_SCALE) * Fraction(
        GUARANTEE_COMMISSION
    )
    net_receipt = amount_kurus - upfront_fee_kurus - commission
    if net_receipt <= 0:
        raise ValueError(
            f"net receipt must be positive: amount {amount_kurus} - fee {upfront_fee_kurus} "
            f"- commission {_to_decimal(commission)} kuruş"
        )

    every = repayment_every_months
    instalments = math.ceil((tenor_months - grace_months) / every)
    instalment = amount_kurus // instalments
    principal_months = {
        min(grace_months + k * every, tenor_months) for k in range(1, instalments + 1)
    }
    interest_months = principal_months | {t for t in range(every, grace_months + 1, every)}
    monthly_rate = Fraction(annual_rate_e4, _RATE_SCALE * _MONTHS_PER_YEAR)

    flows: list[Fraction] = [-net_receipt]
    balance = amount_kurus
    accrued = Fraction(0)
    for month in range(1, tenor_months + 1):
        accrued += balance * monthly_rate
        payment = Fraction(0)
        if month in interest_months:
            payment += accrued
            accrued = Fraction(0)
        if month in principal_months:
            principal = balance if month == tenor_months else instalment
            payment += principal
            balance -= principal
        flows.append(payment)
    return [_to_decimal(flow) for flow in flows]


# The bid path prices every offer, so apr_e4 does not go through ``Fraction``: every flow of
# ``cash_flows`` is an exact rational with a denominator dividing _DENOM (the commission's is
# 10^10, the monthly interest's 12 * 10^6), so integer numerators over _DENOM give the same
# exact values, rounded half-even to the same 10^-6 kuruş. tests/unit/test_apr_fast_path.py
# checks the two against each other.
_DENOM = 12 * 10**10
_PER_QUANTUM = _DENOM // 10**6  # numerator units per 10^-6 kuruş
_COMMISSION_E4 = 3  # GUARANTEE_COMMISSION = 3 / 10^4
_EXACT_FLOAT = 2**53


def _quantum_float(numerator: int) -> float:
    """``float(_to_decimal(Fraction(numerator, _DENOM)))`` without Fraction or Decimal."""
    q, rem = divmod(abs(numerator), _PER_QUANTUM)
    if 2 * rem > _PER_QUANTUM or (2 * rem == _PER_QUANTUM and q % 2):
        q += 1
    # q / 10^6 is correctly rounded (both exact) and so equals float() of the decimal
    f = q / 1_000_000 if q < _EXACT_FLOAT else float(Decimal(f"{q}e-6"))
    return -f if numerator < 0 else f


def flow_floats(
    *,
    amount_kurus: int,
    annual_rate_e4: int,
    tenor_months: int,
    grace_months: int,
    repayment_every_months: int,
    upfront_fee_kurus: int,
    guarantee_rate_e4: int,
) -> list[float]:
    """``[float(f) for f in cash_flows(...)]`` in integer arithmetic (same validation).

    Simple interest makes every flow linear in the rate: its numerator over ``_DENOM`` is
    ``principal + annual_rate_e4 * interest_basis``, where the principal and the basis (the
    balance-months the payment settles) depend only on the loan's shape. The shape is worked
    out once per loan (``_schedule``, cached: a round's offers share it); each offer then costs
    one multiply-add and one rounding per month."""
    _validate(
        amount_kurus=amount_kurus,
        annual_rate_e4=annual_rate_e4,
        tenor_months=tenor_months,
        grace_months=grace_months,
        repayment_every_months=repayment_every_months,
        upfront_fee_kurus=upfront_fee_kurus,
        guarantee_rate_e4=guarantee_rate_e4,
    )
    net_receipt, schedule = _schedule(amount_kurus, tenor_months, grace_months,
                                      repayment_every_months, upfront_fee_kurus,
                                      guarantee_rate_e4)
    return [_quantum_float(-net_receipt)] + [
        _quantum_float(principal + annual_rate_e4 * basis) if principal or basis else 0.0
        for principal, basis in schedule]


@lru_cache(maxsize=4096)
def _schedule(amount_kurus: int, tenor_months: int, grace_months: int, every: int,
              upfront_fee_kurus: int, guarantee_rate_e4: int
              ) -> tuple[int, tuple[tuple[int, int], ...]]:
    """The net receipt's numerator, and per month (principal numerator, interest basis) with
    the month's payment numerator ``principal + annual_rate_e4 * basis`` (all over _DENOM)."""
    commission = amount_kurus * guarantee_rate_e4 * _COMMISSION_E4 * (_DENOM // 10**10)
    net_receipt = (amount_kurus - upfront_fee_kurus) * _DENOM - commission
    if net_receipt <= 0:
        raise ValueError(
            f"net receipt must be positive: amount {amount_kurus} - fee {upfront_fee_kurus} "
            f"- commission {_quantum_float(commission)} kuruş"
        )
    instalments = math.ceil((tenor_months - grace_months) / every)
    instalment = amount_kurus // instalments
    principal_months = {
        min(grace_months + k * every, tenor_months) for k in range(1, instalments + 1)
    }
    interest_months = principal_months | set(range(every, grace_months + 1, every))
    per_rate = _DENOM // (_RATE_SCALE * _MONTHS_PER_YEAR)  # interest numerator per kuruş-month
    schedule: list[tuple[int, int]] = []
    balance = amount_kurus
    accrued = 0  # balance-months accrued since the last interest payment
    for month in range(1, tenor_months + 1):
        accrued += balance
        basis = 0
        if month in interest_months:
            basis, accrued = accrued * per_rate, 0
        principal = 0
        if month in principal_months:
            repaid = balance if month == tenor_months else instalment
            principal = repaid * _DENOM
            balance -= repaid
        schedule.append((principal, basis))
    return net_receipt, tuple(schedule)


def apr_e4(
    *,
    amount_kurus: int,
    annual_rate_e4: int,
    tenor_months: int,
    grace_months: int,
    repayment_every_months: int,
    upfront_fee_kurus: int,
    guarantee_rate_e4: int,
) -> int:
    """All-in annual cost of the loan in percent * 10^4 (12.6825 % → 126825).

    Raises:
        ValueError: for the invalid inputs listed in :func:`cash_flows`, or
            if no internal rate of return can be found.
    """
    flows = flow_floats(
        amount_kurus=amount_kurus,
        annual_rate_e4=annual_rate_e4,
        tenor_months=tenor_months,
        grace_months=grace_months,
        repayment_every_months=repayment_every_months,
        upfront_fee_kurus=upfront_fee_kurus,
        guarantee_rate_e4=guarantee_rate_e4,
    )
    try:
        monthly_irr = pyxirr.irr(flows)
    except pyxirr.InvalidPaymentsError as exc:
        raise ValueError(f"no internal rate of return for these cash flows: {exc}") from exc
    if monthly_irr is None or not math.isfinite(monthly_irr):
        raise ValueError("no internal rate of return found for these cash flows")
    apr_percent = ((1.0 + monthly_irr) ** _MONTHS_PER_YEAR - 1.0) * 100.0
    scaled = Decimal(repr(apr_percent)) * 10_000
    return int(scaled.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


@lru_cache(maxsize=8192)
def apr_e4_memo(amount_kurus: int, annual_rate_e4: int, tenor_months: int, grace_months: int,
                repayment_every_months: int, upfront_fee_kurus: int,
                guarantee_rate_e4: int) -> int:
    """:func:`apr_e4`, remembered for the last 8,192 distinct offers (the bid path's: a
    round's offers share their loan and its revisions move the rate in basis points, so the
    same terms come back). Bounded: no client can grow it. A refusal (``ValueError``) is not
    remembered and is raised again each time."""
    return apr_e4(amount_kurus=amount_kurus, annual_rate_e4=annual_rate_e4,
                  tenor_months=tenor_months, grace_months=grace_months,
                  repayment_every_months=repayment_every_months,
                  upfront_fee_kurus=upfront_fee_kurus, guarantee_rate_e4=guarantee_rate_e4)
