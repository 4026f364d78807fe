"""Business rules of the offer round: pure functions over plain data, ``now`` passed in.

Every rule a reader needs is here: offer validation against the round and the KGF guarantee
rules (PORTAL.md §4), the masked labels and the round state machine (the ranking key is
``auction.ranking``).
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from typing import Protocol

from auction.model import RATE_SCALE, OfferTerms, RoundState, RoundTerms


class TenorLimits(Protocol):
    """Tenor and grace limits of one loan type. The numbers live in one place, the guarantee
    package in force (``applications.package``, PORTAL.md §4); the caller passes them in."""

    @property
    def min_tenor_months(self) -> int: ...

    @property
    def max_tenor_months(self) -> int: ...

    @property
    def max_grace_months(self) -> int: ...


#: Interest is collected at most once a year, so a repayment period is at most 12 months.
REPAYMENT_PERIODS = (1, 2, 3, 4, 6, 12)
MAX_ANNUAL_RATE_E4 = 500 * RATE_SCALE  # a "sane" ceiling: 500 % a year
MAX_CONDITIONS_LEN = 2000
#: C0 controls (but tab, LF, CR) and DEL: not text, and NUL cannot be stored in PostgreSQL
_UNSTORABLE = frozenset(chr(i) for i in (*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F))


@dataclass(frozen=True)
class FieldError:
    field: str
    code: str
    message: str


def validate_offer(terms: OfferTerms, rnd: RoundTerms, rule: TenorLimits) -> list[FieldError]:
    """Check an offer against its round and the tenor limits of the round's loan type.
    Returns every problem found (empty list = valid)."""
    errors: list[FieldError] = []

    def bad(fieldname: str, code: str, message: str) -> None:
        errors.append(FieldError(fieldname, code, message))

    if terms.annual_rate_e4 <= 0:
        bad("annual_rate", "not_positive", "annual_rate must be greater than 0")
    elif terms.annual_rate_e4 > MAX_ANNUAL_RATE_E4:
        bad("annual_rate", "too_high", "annual_rate must be at most 500.00 percent a year")
    if terms.amount <= 0:
        bad("amount", "not_positive", "amount must be greater than 0")
    elif terms.amount > rnd.loan_amount:
        bad("amount", "above_requested", "amount must not exceed the requested loan amount")
    if terms.tenor_months < rule.min_tenor_months:
        bad("tenor_months", "below_minimum",
            f"tenor_months must be at least {rule.min_tenor_months} for {rnd.loan_type}")
    elif terms.tenor_months > rule.max_tenor_months:
        bad("tenor_months", "above_maximum",
            f"tenor_months must be at most {rule.max_tenor_months} for {rnd.loan_type}")
    if terms.grace_months < 0:
        bad("grace_months", "negative", "grace_months must not be negative")
    elif terms.grace_months > rule.max_grace_months:
        bad("grace_months", "above_maximum",
            f"grace_months must be at most {rule.max_grace_months} for {rnd.loan_type}")
    elif terms.grace_months >= terms.tenor_months:
        bad("grace_months", "not_below_tenor", "grace_months must be shorter than tenor_months")
    if terms.repayment_every_months not in REPAYMENT_PERIODS:
        bad("repayment_every_months", "unsupported",
            f"repayment_every_months must be one of {list(REPAYMENT_PERIODS)} "
            "(interest is collected at least once a year)")
    if terms.upfront_fee < 0:
        bad("upfront_fee", "negative", "upfront_fee must not be negative")
    elif terms.amount > 0 and terms.upfront_fee >= terms.amount:
        bad("upfront_fee", "not_below_amount", "upfront_fee must be below the offer amount")
    if len(terms.conditions) > MAX_CONDITIONS_LEN:
        bad("conditions", "too_long", f"conditions must be at most {MAX_CONDITIONS_LEN} characters")
    elif any(c in _UNSTORABLE for c in terms.conditions) or any(
            "\ud800" <= c <= "\udfff" for c in terms.conditions):
        # PostgreSQL text cannot hold NUL and UTF-8 cannot carry lone surrogates: an offer the
        # book acknowledged but SQL refuses would block its round's persister and close for good
        bad("conditions", "invalid_characters",
            "conditions must not contain control characters other than tab and line breaks")
    return errors


def validate_round_terms(rnd: RoundTerms, rule: TenorLimits | None) -> list[FieldError]:
    """Checks for an operator's manual intake (the guarantee rules of an application are in
    ``applications.rules``); ``rule`` is None for a loan type the package does not know."""
    errors: list[FieldError] = []
    if rnd.loan_amount <= 0:
        errors.append(FieldError("loan_amount", "not_positive",
                                 "loan_amount must be greater than 0"))
    if rnd.guarantee_amount <= 0:
        errors.append(FieldError("guarantee_amount", "not_positive",
                                 "guarantee_amount must be greater than 0"))
    elif rnd.guarantee_amount > rnd.loan_amount:
        errors.append(FieldError("guarantee_amount", "above_loan",
                                 "guarantee_amount must not exceed loan_amount"))
    if rule is not None:
        if not rule.min_tenor_months <= rnd.tenor_months <= rule.max_tenor_months:
            errors.append(FieldError(
                "tenor_months", "out_of_range",
                f"tenor_months must be {rule.min_tenor_months}..{rule.max_tenor_months} "
                f"for {rnd.loan_type}"))
        if not 0 <= rnd.grace_months <= rule.max_grace_months:
            errors.append(FieldError("grace_months", "out_of_range",
                                     f"grace_months must be 0..{rule.max_grace_months}"))
        elif rnd.grace_months >= rnd.tenor_months:
            errors.append(FieldError("grace_months", "not_below_tenor",
                                     "grace_months must be shorter than tenor_months"))
    return errors


# ----------------------------------------------------------------------------- masking
LABEL_PREFIX = "Banka "


def label_pool(size: int = 26, rng: secrets.SystemRandom | None = None) -> list[str]:
    """A freshly shuffled list of masked names for one round ("Banka A" .. "Banka Z", then
    two-letter names when a round has more bidders). Drawn with a CSPRNG per round, so the
    label a bank gets in one round says nothing about its label in another."""
    rng = rng or secrets.SystemRandom()
    letters = list(string.ascii_uppercase)
    names = [LABEL_PREFIX + c for c in letters]
    if size > len(names):
        names += [LABEL_PREFIX + a + b for a in letters for b in letters][: size - len(names)]
    rng.shuffle(names)
    return names


def new_ref() -> str:
    """Opaque per-offer handle shown in masked books; random, carries no bank identity."""
    return secrets.token_hex(6)


# ----------------------------------------------------------------------------- state machine
def may_bid(state: RoundState, closes_at_ms: int, now_ms: int) -> bool:
    return state is RoundState.OPEN and now_ms < closes_at_ms


def is_due(state: RoundState, closes_at_ms: int, now_ms: int) -> bool:
    return state is RoundState.OPEN and now_ms >= closes_at_ms


def may_accept(state: RoundState, binding_until_ms: int, now_ms: int) -> bool:
    return state is RoundState.CLOSED and now_ms < binding_until_ms


def has_lapsed(state: RoundState, binding_until_ms: int, now_ms: int) -> bool:
    return state is RoundState.CLOSED and now_ms >= binding_until_ms


TRANSITIONS: dict[RoundState, frozenset[RoundState]] = {
    RoundState.OPEN: frozenset({RoundState.CLOSED}),
    RoundState.CLOSED: frozenset({RoundState.ACCEPTED, RoundState.LAPSED}),
    RoundState.ACCEPTED: frozenset(),
    RoundState.LAPSED: frozenset(),
}


def can_transition(src: RoundState, dst: RoundState) -> bool:
    return dst in TRANSITIONS[src]


def book_access(state: RoundState | None, has_bid: bool) -> str | None:
    """Whether a bank may see a round's masked book (PORTAL.md §2.3.4): None when it has bid
    in the round; ``offer_required`` for an open round it has not bid in yet (it sees the book
    from its first offer on); ``not_found`` for a finished or unknown round it took no part in,
    which does not exist for it."""
    if has_bid:
        return None
    return "offer_required" if state is RoundState.OPEN else "not_found"


def refuse_acceptance(state: RoundState, binding_until_ms: int | None, now_ms: int) -> str | None:
    """Why an offer of a round in ``state`` cannot be accepted now, or None when it can."""
    if state is RoundState.OPEN:
        return "round_open"
    if state is RoundState.ACCEPTED:
        return "already_accepted"
    if binding_until_ms is None or not may_accept(state, binding_until_ms, now_ms):
        return "binding_expired"
    return None
