"""Plain data of the offer round and the exact-number helpers used everywhere.

Money is held in kuruş (int, 1 TL = 100 kuruş; the same minor unit for USD/EUR cents) and
rates in percent x 10^4 (``"31.25"`` -> 312500). Nothing in a decision is a binary float.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache

CURRENCIES = ("TRY", "USD", "EUR")
LOAN_TYPES = ("working_capital", "investment")
RATE_SCALE = 10_000  # percent x 10^4
MONEY_SCALE = 100  # minor units


class RoundState(str, enum.Enum):
    OPEN = "open"
    CLOSED = "closed"
    ACCEPTED = "accepted"
    LAPSED = "lapsed"


class Outcome(enum.IntEnum):
    """Result codes shared by the books (memory and Redis/Lua). Lua returns these numbers."""

    OK = 0
    ROUND_CLOSED = 1
    ROUND_UNKNOWN = 2
    OFFER_UNKNOWN = 3
    IDEMPOTENCY_REPLAY = 4
    IDEMPOTENCY_MISMATCH = 5
    ALREADY_CLOSED = 6
    NOT_DUE = 7
    OFFER_LIMIT = 8  # the bank keeps as many live offers in the round as it may


# ----------------------------------------------------------------------------- numbers
#: ASCII digits only: ``Decimal`` alone also takes "1_000", "1e3" and non-ASCII digits ("١٢").
_PLAIN_DECIMAL = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
#: Keeps every scaled value exact (Decimal's default 28-digit context would round larger ones)
#: and inside a signed 64-bit SQL column.
MAX_INTEGER_DIGITS = 15


def parse_decimal(text: object, places: int) -> Decimal:
    """Parse a decimal *string* with at most ``places`` decimals. Floats are refused."""
    if not isinstance(text, str):
        raise ValueError("must be a decimal string")
    s = text.strip()
    if not s or s != text or not _PLAIN_DECIMAL.fullmatch(s):
        raise ValueError("must be a plain decimal string like \"1500000.00\"")
    try:
        value = Decimal(s)
    except InvalidOperation:
        raise ValueError("must be a plain decimal string like \"1500000.00\"") from None
    if not value.is_finite():
        raise ValueError("must be finite")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > places:
        raise ValueError(f"at most {places} decimal places")
    if value and value.adjusted() >= MAX_INTEGER_DIGITS:
        raise ValueError(f"at most {MAX_INTEGER_DIGITS} digits before the decimal point")
    return value


def parse_scaled(text: object, places: int) -> int:
    """``int(parse_decimal(text, places) * 10**places)``, the same checks and messages, in
    integer arithmetic (no Decimal: this runs for every money and rate field of every offer)."""
    if not isinstance(text, str):
        raise ValueError("must be a decimal string")
    if not text or not _PLAIN_DECIMAL.fullmatch(text):  # the pattern has no blanks either
        raise ValueError("must be a plain decimal string like \"1500000.00\"")
    negative = text.startswith("-")
    whole, _, frac = (text[1:] if negative else text).partition(".")
    if len(frac) > places:
        raise ValueError(f"at most {places} decimal places")
    whole = whole.lstrip("0")
    if len(whole) > MAX_INTEGER_DIGITS:
        raise ValueError(f"at most {MAX_INTEGER_DIGITS} digits before the decimal point")
    value: int = int(whole or "0") * 10**places + int(frac.ljust(places, "0") or "0")
    return -value if negative else value


def money_to_minor(text: object) -> int:
    return parse_scaled(text, 2)


def minor_to_money(minor: int) -> str:
    sign = "-" if minor < 0 else ""
    minor = abs(minor)
    return f"{sign}{minor // MONEY_SCALE}.{minor % MONEY_SCALE:02d}"


def rate_to_e4(text: object) -> int:
    return parse_scaled(text, 4)


def e4_to_rate(e4: int, places: int = 2) -> str:
    """Render a percent x 10^4 integer; at least ``places`` decimals, more only if needed
    (exact integer arithmetic: 312500 -> "31.25", 312345 -> "31.2345", 300000 -> "30.00")."""
    whole, frac = divmod(abs(e4), RATE_SCALE)
    digits = f"{frac:04d}".rstrip("0").ljust(places, "0")
    return f"{'-' if e4 < 0 else ''}{whole}.{digits}"


@lru_cache(maxsize=4096)
def _iso_second(seconds: int) -> str:
    # isoformat, not strftime: its year always has 4 digits ("0193-08-23", never "193-08-23")
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat()[:19]


def iso_ms(ms: int) -> str:
    """``iso(ms_to_dt(ms))`` without building a datetime: ms since the epoch as UTC ISO 8601
    with ``Z``, milliseconds only when present."""
    seconds, rest = divmod(ms, 1000)
    return f"{_iso_second(seconds)}.{rest:03d}Z" if rest else f"{_iso_second(seconds)}Z"


def iso(ts: datetime) -> str:
    """UTC ISO 8601 with ``Z``; milliseconds only when present."""
    ts = ts.astimezone(UTC)
    second = ts.replace(microsecond=0, tzinfo=None).isoformat()  # a 4-digit year, always
    if ts.microsecond:
        return f"{second}.{ts.microsecond // 1000:03d}Z"
    return second + "Z"


def ms_to_dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def dt_to_ms(ts: datetime) -> int:
    """Exact integer arithmetic: ``int(ts.timestamp() * 1000)`` loses a millisecond to
    float rounding (1.001 s -> 1000 ms). Naive datetimes are local time, as in timestamp()."""
    return (ts.astimezone(UTC) - _EPOCH) // timedelta(milliseconds=1)


# ----------------------------------------------------------------------------- data
@dataclass(frozen=True)
class RoundTerms:
    """What the exporter asked for; fixed for the life of the round."""

    round_id: str
    currency: str
    loan_type: str
    loan_amount: int  # minor units
    guarantee_amount: int
    tenor_months: int
    grace_months: int
    export_commitment: bool
    opened_at_ms: int
    closes_at_ms: int

    @property
    def guarantee_rate_e4(self) -> int:
        """Guarantee amount / loan amount, percent x 10^4 (rounded down)."""
        return self.guarantee_amount * 100 * RATE_SCALE // self.loan_amount


@dataclass(frozen=True)
class OfferTerms:
    annual_rate_e4: int
    amount: int
    tenor_months: int
    grace_months: int
    repayment_every_months: int
    upfront_fee: int
    assumes_export_commitment: bool
    conditions: str = ""

    def to_wire(self) -> dict[str, object]:
        return {
            "annual_rate": e4_to_rate(self.annual_rate_e4),
            "amount": minor_to_money(self.amount),
            "tenor_months": self.tenor_months,
            "grace_months": self.grace_months,
            "repayment_every_months": self.repayment_every_months,
            "upfront_fee": minor_to_money(self.upfront_fee),
            "assumes_export_commitment": self.assumes_export_commitment,
            "conditions": self.conditions,
        }

    def to_record(self) -> dict[str, object]:
        """Compact, exact form stored in Redis and SQL. The letters o f b l v s t p are taken by
        the version envelope (auction/book.py), so terms use others."""
        return {
            "r": self.annual_rate_e4,
            "a": self.amount,
            "n": self.tenor_months,
            "g": self.grace_months,
            "e": self.repayment_every_months,
            "u": self.upfront_fee,
            "x": self.assumes_export_commitment,
            "c": self.conditions,
        }

    @classmethod
    def from_record(cls, rec: dict[str, object]) -> OfferTerms:
        return cls(
            annual_rate_e4=int(rec["r"]),  # type: ignore[call-overload]
            amount=int(rec["a"]),  # type: ignore[call-overload]
            tenor_months=int(rec["n"]),  # type: ignore[call-overload]
            grace_months=int(rec["g"]),  # type: ignore[call-overload]
            repayment_every_months=int(rec["e"]),  # type: ignore[call-overload]
            upfront_fee=int(rec["u"]),  # type: ignore[call-overload]
            assumes_export_commitment=bool(rec["x"]),
            conditions=str(rec.get("c", "")),
        )


@dataclass(frozen=True)
class OfferVersion:
    """One accepted version of an offer, as the book stores and the stream carries it."""

    round_id: str
    offer_id: str
    ref: str  # masked per-offer handle shown to other banks
    bank_id: str
    label: str
    version: int
    seq: int
    accepted_at_ms: int
    apr_e4: int
    terms: OfferTerms


@dataclass
class SubmitResult:
    outcome: Outcome
    offer: OfferVersion | None = None
    rank: int | None = None


@dataclass
class CloseResult:
    outcome: Outcome
    seq: int = 0
    closed_at_ms: int = 0
    offers: list[OfferVersion] = field(default_factory=list)  # final versions, best first
