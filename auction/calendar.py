"""Turkish business-day rules for auction rounds and binding periods.

A *business day* is a Monday-Friday that is not a Turkish official holiday.
Holidays come from the ``holidays`` library (never hand-typed here):

* ``categories=("public",)`` gives the full-day holidays (New Year, the
  Ramazan and Kurban Bayramı days, 23 April, 1 May, ...), which are always
  non-working;
* ``categories=("half_day",)`` gives the half-day eves (the *arife* before
  each Bayram and 28 October, names ending ``"(from 1pm)"``).  They are
  working days by default; with ``half_days_off=True`` they count as
  non-working days.

Deadlines fall at a fixed local Istanbul time (``CalendarRules.close_time``)
and are returned as aware UTC datetimes.  Every function here is pure: the
caller passes the reference instant in, nothing reads the clock.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import lru_cache
from types import MappingProxyType
from typing import Literal
from zoneinfo import ZoneInfo

from holidays.countries.turkey import Turkey

__all__ = [
    "ISTANBUL",
    "CalendarRules",
    "add_business_days",
    "binding_until",
    "deadline",
    "holidays_between",
    "is_business_day",
    "parse_iso_duration",
    "round_closes_at",
]

ISTANBUL = ZoneInfo("Europe/Istanbul")

_Category = Literal["public", "half_day"]
_ONE_DAY = timedelta(days=1)
_SATURDAY = 5  # date.weekday(): Monday == 0 ... Sunday == 6


@dataclass(frozen=True)
class CalendarRules:
    """Parameters of the auction calendar.

    Attributes:
        close_time: Local Istanbul wall-clock time at which deadlines fall.
        half_days_off: If True, the half-day eves (arife days and 28 October)
            are non-working days; otherwise they are ordinary business days.
        round_business_days: Business days a bidding round stays open.
        binding_business_days: Business days bids stay binding after close.
        round_duration: Fixed duration (e.g. from ``IGE_ROUND_DURATION``)
            that replaces the business-day rule for rounds when set.
        binding_duration: Fixed duration that replaces the business-day rule
            for the binding period when set.
    """

    close_time: time = time(17, 30)
    half_days_off: bool = False
    round_business_days: int = 7
    binding_business_days: int = 2
    round_duration: timedelta | None = None
    binding_duration: timedelta | None = None

    def __post_init__(self) -> None:
        if self.close_time.tzinfo is not None:
            raise ValueError("close_time must be a naive local (Istanbul) time")
        if self.round_business_days < 0 or self.binding_business_days < 0:
            raise ValueError("business-day counts must be non-negative")
        for name, value in (
            ("round_duration", self.round_duration),
            ("binding_duration", self.binding_duration),
        ):
            if value is not None and value <= timedelta(0):
                raise ValueError(f"{name} must be positive, got {value}")


@lru_cache(maxsize=128)
def _holidays_for(year: int, category: _Category) -> Mapping[date, str]:
    """Turkish holidays of one category in one year, as a read-only mapping."""
    calendar = Turkey(years=year, categories=(category,))
    return MappingProxyType({day: str(name) for day, name in calendar.items()})


def _non_working_holiday(d: date, half_days_off: bool) -> str | None:
    """Name of the non-working holiday on ``d``, or None if there is none."""
    name = _holidays_for(d.year, "public").get(d)
    if name is None and half_days_off:
        name = _holidays_for(d.year, "half_day").get(d)
    return name


def is_business_day(d: date, *, half_days_off: bool = False) -> bool:
    """Return True if ``d`` is a Turkish business day.

    Weekends and full public holidays are never business days; half-day
    eves are business days unless ``half_days_off`` is True.
    """
    if d.weekday() >= _SATURDAY:
        return False
    return _non_working_holiday(d, half_days_off) is None


def add_business_days(d: date, n: int, *, half_days_off: bool = False) -> date:
    """Return the ``n``-th business day strictly after ``d``.

    ``n == 0`` returns ``d`` unchanged (even if ``d`` is not a business
    day).  A negative ``n`` raises ValueError.
    """
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    current = d
    remaining = n
    while remaining:
        current += _ONE_DAY
        if is_business_day(current, half_days_off=half_days_off):
            remaining -= 1
    return current


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {value!r}")


def deadline(start: datetime, business_days: int, rules: CalendarRules) -> datetime:
    """Deadline ``business_days`` business days after ``start``.

    ``start`` is converted to its Istanbul local date; the result is the
    ``business_days``-th business day strictly after that date at
    ``rules.close_time`` Istanbul time, returned as an aware UTC datetime.
    The time of day of ``start`` does not matter (a start on Friday at
    20:00 counts from Friday just like one at 09:00).

    Raises:
        ValueError: if ``start`` is naive or ``business_days`` is negative.
    """
    _require_aware(start, "start")
    local_day = start.astimezone(ISTANBUL).date()
    due_day = add_business_days(local_day, business_days, half_days_off=rules.half_days_off)
    local_deadline = datetime.combine(due_day, rules.close_time, tzinfo=ISTANBUL)
    return local_deadline.astimezone(UTC)


def round_closes_at(opened_at: datetime, rules: CalendarRules) -> datetime:
    """When a round opened at ``opened_at`` closes (aware UTC datetime).

    Uses ``rules.round_duration`` (elapsed time) when set, otherwise
    ``rules.round_business_days`` business days via :func:`deadline`.
    """
    _require_aware(opened_at, "opened_at")
    if rules.round_duration is not None:
        return opened_at.astimezone(UTC) + rules.round_duration
    return deadline(opened_at, rules.round_business_days, rules)


def binding_until(closes_at: datetime, rules: CalendarRules) -> datetime:
    """Until when bids stay binding after a round closing at ``closes_at``.

    Uses ``rules.binding_duration`` (elapsed time) when set, otherwise
    ``rules.binding_business_days`` business days via :func:`deadline`.
    The result is an aware UTC datetime.
    """
    _require_aware(closes_at, "closes_at")
    if rules.binding_duration is not None:
        return closes_at.astimezone(UTC) + rules.binding_duration
    return deadline(closes_at, rules.binding_business_days, rules)


_NUMBER = r"\d+(?:[.,]\d+)?"
_DURATION_RE = re.compile(
    rf"P(?:(?P<weeks>{_NUMBER})W)?(?:(?P<days>{_NUMBER})D)?"
    rf"(?:T(?:(?P<hours>{_NUMBER})H)?(?:(?P<minutes>{_NUMBER})M)?(?:(?P<seconds>{_NUMBER})S)?)?"
)
_MICROSECONDS_PER: dict[str, int] = {
    "weeks": 7 * 86_400_000_000,
    "days": 86_400_000_000,
    "hours": 3_600_000_000,
    "minutes": 60_000_000,
    "seconds": 1_000_000,
}


def parse_iso_duration(text: str) -> timedelta:
    """Parse an ISO 8601 duration such as ``"PT20S"`` or ``"P1DT2H"``.

    Supported designators are W, D (date part) and H, M, S (after ``T``).
    Surrounding whitespace is ignored and designators may be lower case.
    Any component may be fractional (``"PT0.5S"``, ``"PT1,5H"``) but only
    the last one present, as ISO 8601 requires.  Sub-microsecond fractions
    are rounded half-even to whole microseconds.

    Raises:
        ValueError: for years or months (their length is ambiguous), for
            negative durations, and for anything that is not a duration.
    """
    raw = text
    text = text.strip().upper()
    if not text.startswith("P"):
        raise ValueError(f"not an ISO 8601 duration (must start with 'P'): {raw!r}")
    date_part = text[1:].partition("T")[0]
    if "Y" in date_part or "M" in date_part:
        raise ValueError(
            f"ISO 8601 durations with years or months are ambiguous and not supported, "
            f"use weeks/days/hours/minutes/seconds instead: {raw!r}"
        )
    match = _DURATION_RE.fullmatch(text)
    if match is None or text.endswith("T"):
        raise ValueError(
            f"not a valid ISO 8601 duration (expected e.g. 'PT20S', 'P1DT2H', 'P2W'): {raw!r}"
        )
    present = [(unit, value) for unit, value in match.groupdict().items() if value is not None]
    if not present:
        raise ValueError(f"ISO 8601 duration has no components: {raw!r}")
    if any(("." in value or "," in value) for _, value in present[:-1]):
        raise ValueError(f"only the last component of a duration may be fractional: {raw!r}")
    try:
        total = sum(
            (Decimal(value.replace(",", ".")) * _MICROSECONDS_PER[unit] for unit, value in present),
            Decimal(0),
        )
        microseconds = int(total.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
        return timedelta(microseconds=microseconds)
    except (OverflowError, InvalidOperation) as exc:
        raise ValueError(f"ISO 8601 duration is too large: {raw!r}") from exc


def holidays_between(
    start: date, end: date, *, half_days_off: bool = False
) -> list[tuple[date, str]]:
    """Non-working holidays in the inclusive range ``[start, end]``, by date.

    Full public holidays are always listed; half-day eves are listed only
    when ``half_days_off`` is True.  Holidays falling on a weekend are
    included.  An empty range (``start > end``) yields an empty list.
    """
    result: list[tuple[date, str]] = []
    for year in range(start.year, end.year + 1):
        merged: dict[date, str] = {}
        if half_days_off:
            merged.update(_holidays_for(year, "half_day"))
        merged.update(_holidays_for(year, "public"))  # a full holiday wins over an eve
        result.extend((day, name) for day, name in sorted(merged.items()) if start <= day <= end)
    return result
