"""Unit tests for auction.calendar (Turkish business-day rules).

Holiday dates asserted here were checked against ``holidays`` 0.109:
2026 Ramazan Bayramı 20–22 Mar (arife 19 Mar), Kurban Bayramı 27–30 May
(arife 26 May), 23 Apr, 1 May, 19 May; 2027 Ramazan 9–11 Mar (arife 8 Mar),
Kurban 16–19 May (arife Sat 15 May); 28 Oct half day, 29 Oct holiday.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from auction.calendar import (
    ISTANBUL,
    CalendarRules,
    add_business_days,
    binding_until,
    deadline,
    holidays_between,
    is_business_day,
    parse_iso_duration,
    round_closes_at,
)

DEFAULT = CalendarRules()
HALF_DAYS_OFF = CalendarRules(half_days_off=True)


def istanbul(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=ISTANBUL)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    ("day", "half_days_off", "expected"),
    [
        (date(2026, 4, 20), False, True),  # ordinary Monday
        (date(2026, 4, 25), False, False),  # Saturday
        (date(2026, 4, 26), False, False),  # Sunday
        (date(2026, 4, 23), False, False),  # National Sovereignty and Children's Day
        (date(2026, 5, 1), False, False),  # Labour Day
        (date(2026, 3, 19), False, True),  # Ramazan arife (half day) works by default
        (date(2026, 3, 19), True, False),  # ... but not with half_days_off
        (date(2026, 3, 20), False, False),  # Ramazan Bayramı day 1
        (date(2026, 5, 26), False, True),  # Kurban arife
        (date(2026, 5, 26), True, False),
        (date(2026, 5, 27), False, False),  # Kurban Bayramı day 1
        (date(2026, 5, 29), False, False),  # Kurban Bayramı day 3 (Friday)
        (date(2026, 10, 28), False, True),  # Republic Day eve (half day)
        (date(2026, 10, 28), True, False),
        (date(2026, 10, 29), False, False),  # Republic Day
        (date(2027, 1, 1), False, False),  # New Year's Day
        (date(2027, 3, 8), False, True),  # 2027 Ramazan arife
        (date(2027, 3, 8), True, False),
        (date(2027, 3, 11), False, False),  # 2027 Ramazan Bayramı day 3
        (date(2027, 3, 12), False, True),
        (date(2027, 5, 17), False, False),  # 2027 Kurban Bayramı
        (date(2027, 5, 19), False, False),  # Kurban + 19 May on the same day
        (date(2027, 5, 20), False, True),
    ],
)
def test_is_business_day_follows_weekends_and_turkish_holidays(
    day: date, half_days_off: bool, expected: bool
) -> None:
    assert is_business_day(day, half_days_off=half_days_off) is expected


@pytest.mark.parametrize(
    ("start", "n", "half_days_off", "expected"),
    [
        (date(2026, 4, 17), 1, False, date(2026, 4, 20)),  # Friday -> Monday
        (date(2026, 4, 18), 1, False, date(2026, 4, 20)),  # Saturday -> Monday
        (date(2026, 4, 20), 7, False, date(2026, 4, 30)),  # skips 23 Apr
        # 2026 Ramazan Bayramı: arife Thu 19 Mar, holiday Fri 20 - Sun 22 Mar
        (date(2026, 3, 18), 1, False, date(2026, 3, 19)),
        (date(2026, 3, 18), 1, True, date(2026, 3, 23)),
        (date(2026, 3, 19), 1, False, date(2026, 3, 23)),
        (date(2026, 3, 17), 3, False, date(2026, 3, 23)),
        (date(2026, 3, 17), 3, True, date(2026, 3, 24)),
        # 2026 Kurban Bayramı: arife Tue 26 May, holiday Wed 27 - Sat 30 May
        (date(2026, 5, 25), 1, False, date(2026, 5, 26)),
        (date(2026, 5, 25), 1, True, date(2026, 6, 1)),
        (date(2026, 5, 26), 1, False, date(2026, 6, 1)),
        (date(2026, 5, 18), 1, False, date(2026, 5, 20)),  # 19 May holiday
        # 2027 Ramazan Bayramı: arife Mon 8 Mar, holiday Tue 9 - Thu 11 Mar
        (date(2027, 3, 5), 1, False, date(2027, 3, 8)),
        (date(2027, 3, 5), 1, True, date(2027, 3, 12)),
        (date(2027, 3, 8), 1, False, date(2027, 3, 12)),
        # 2027 Kurban Bayramı: arife Sat 15 May, holiday Sun 16 - Wed 19 May
        (date(2027, 5, 14), 1, False, date(2027, 5, 20)),
        (date(2027, 5, 14), 1, True, date(2027, 5, 20)),  # arife is a Saturday anyway
        # 28 Oct half day, 29 Oct Republic Day
        (date(2026, 10, 27), 1, False, date(2026, 10, 28)),
        (date(2026, 10, 27), 1, True, date(2026, 10, 30)),
        # year end: Thu 31 Dec 2026 -> Fri 1 Jan 2027 is a holiday
        (date(2026, 12, 31), 1, False, date(2027, 1, 4)),
        (date(2026, 12, 30), 2, False, date(2027, 1, 4)),
    ],
)
def test_add_business_days_returns_nth_business_day_strictly_after(
    start: date, n: int, half_days_off: bool, expected: date
) -> None:
    assert add_business_days(start, n, half_days_off=half_days_off) == expected


@pytest.mark.parametrize("start", [date(2026, 4, 20), date(2026, 4, 25), date(2026, 4, 23)])
def test_add_zero_business_days_returns_the_same_date(start: date) -> None:
    assert add_business_days(start, 0) == start


def test_add_negative_business_days_is_rejected() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        add_business_days(date(2026, 4, 20), -1)


@pytest.mark.parametrize(
    ("start", "business_days", "rules", "expected"),
    [
        # reference example: opened Mon 20 Apr 2026, 23 Apr is a holiday
        (istanbul(2026, 4, 20, 10, 0), 7, DEFAULT, utc(2026, 4, 30, 14, 30)),
        # Friday after close_time still counts from Friday
        (istanbul(2026, 5, 8, 18, 0), 2, DEFAULT, utc(2026, 5, 12, 14, 30)),
        (istanbul(2026, 5, 8, 9, 0), 2, DEFAULT, utc(2026, 5, 12, 14, 30)),
        # Saturday and Sunday starts count from the weekend day
        (istanbul(2026, 5, 9, 10, 0), 2, DEFAULT, utc(2026, 5, 12, 14, 30)),
        (istanbul(2026, 5, 10, 23, 59), 1, DEFAULT, utc(2026, 5, 11, 14, 30)),
        # the Istanbul local date decides, not the UTC date
        (utc(2026, 5, 7, 20, 0), 2, DEFAULT, utc(2026, 5, 11, 14, 30)),  # Thu 23:00 local
        (utc(2026, 5, 7, 22, 0), 2, DEFAULT, utc(2026, 5, 12, 14, 30)),  # Fri 01:00 local
        # year end
        (istanbul(2026, 12, 31, 12, 0), 2, DEFAULT, utc(2027, 1, 5, 14, 30)),
        # half days
        (istanbul(2026, 5, 22, 17, 30), 2, DEFAULT, utc(2026, 5, 26, 14, 30)),
        (istanbul(2026, 5, 22, 17, 30), 2, HALF_DAYS_OFF, utc(2026, 6, 1, 14, 30)),
        # custom close time
        (
            istanbul(2026, 4, 20, 10, 0),
            1,
            CalendarRules(close_time=time(12, 0)),
            utc(2026, 4, 21, 9, 0),
        ),
    ],
)
def test_deadline_falls_at_close_time_on_the_nth_business_day(
    start: datetime, business_days: int, rules: CalendarRules, expected: datetime
) -> None:
    result = deadline(start, business_days, rules)
    assert result == expected
    assert result.utcoffset() == timedelta(0)


def test_reference_round_closes_on_30_april_2026_at_1730_istanbul() -> None:
    closes = round_closes_at(istanbul(2026, 4, 20, 9, 0), DEFAULT)
    assert closes == utc(2026, 4, 30, 14, 30)
    assert closes.astimezone(ISTANBUL).replace(tzinfo=None) == datetime(2026, 4, 30, 17, 30)


@pytest.mark.parametrize(
    ("opened_at", "rules", "expected"),
    [
        (istanbul(2026, 3, 16, 9, 0), DEFAULT, utc(2026, 3, 26, 14, 30)),
        (istanbul(2026, 3, 16, 9, 0), HALF_DAYS_OFF, utc(2026, 3, 27, 14, 30)),
        (istanbul(2026, 5, 20, 9, 0), DEFAULT, utc(2026, 6, 3, 14, 30)),
        (istanbul(2026, 5, 20, 9, 0), HALF_DAYS_OFF, utc(2026, 6, 4, 14, 30)),
        (istanbul(2026, 12, 28, 9, 0), DEFAULT, utc(2027, 1, 7, 14, 30)),
        (istanbul(2027, 3, 3, 9, 0), DEFAULT, utc(2027, 3, 17, 14, 30)),
        (istanbul(2027, 5, 12, 9, 0), DEFAULT, utc(2027, 5, 26, 14, 30)),
    ],
)
def test_round_closes_after_seven_business_days_around_holidays(
    opened_at: datetime, rules: CalendarRules, expected: datetime
) -> None:
    assert round_closes_at(opened_at, rules) == expected


@pytest.mark.parametrize(
    ("closes_at", "rules", "expected"),
    [
        # Thu 30 Apr close -> Fri 1 May holiday -> Mon 4, Tue 5 May
        (utc(2026, 4, 30, 14, 30), DEFAULT, utc(2026, 5, 5, 14, 30)),
        # Fri 22 May close -> Mon 25, Tue 26 (arife) unless half days are off
        (utc(2026, 5, 22, 14, 30), DEFAULT, utc(2026, 5, 26, 14, 30)),
        (utc(2026, 5, 22, 14, 30), HALF_DAYS_OFF, utc(2026, 6, 1, 14, 30)),
        (utc(2026, 12, 31, 14, 30), DEFAULT, utc(2027, 1, 5, 14, 30)),
        (utc(2026, 4, 30, 14, 30), CalendarRules(binding_business_days=1), utc(2026, 5, 4, 14, 30)),
    ],
)
def test_binding_until_counts_binding_business_days_from_the_close(
    closes_at: datetime, rules: CalendarRules, expected: datetime
) -> None:
    assert binding_until(closes_at, rules) == expected


def test_binding_chains_from_the_reference_round_close() -> None:
    closes = round_closes_at(istanbul(2026, 4, 20, 9, 0), DEFAULT)
    assert binding_until(closes, DEFAULT) == utc(2026, 5, 5, 14, 30)


@pytest.mark.parametrize(
    ("opened_at", "duration", "expected"),
    [
        (utc(2026, 4, 20, 10, 0), timedelta(seconds=20), utc(2026, 4, 20, 10, 0, 20)),
        # overrides ignore weekends and holidays
        (istanbul(2026, 4, 25, 12, 0), timedelta(days=1), utc(2026, 4, 26, 9, 0)),
        (istanbul(2026, 3, 19, 23, 0), timedelta(hours=2), utc(2026, 3, 19, 22, 0)),
    ],
)
def test_duration_overrides_replace_the_business_day_rule(
    opened_at: datetime, duration: timedelta, expected: datetime
) -> None:
    round_rules = CalendarRules(round_duration=duration)
    binding_rules = CalendarRules(binding_duration=duration)
    round_close = round_closes_at(opened_at, round_rules)
    binding_end = binding_until(opened_at, binding_rules)
    assert round_close == expected
    assert binding_end == expected
    assert round_close.utcoffset() == timedelta(0)


def test_round_duration_override_does_not_affect_binding_rule() -> None:
    rules = CalendarRules(round_duration=timedelta(minutes=5))
    closes = round_closes_at(utc(2026, 4, 30, 14, 25), rules)
    assert closes == utc(2026, 4, 30, 14, 30)
    assert binding_until(closes, rules) == utc(2026, 5, 5, 14, 30)


@pytest.mark.parametrize(
    "call",
    [
        lambda: deadline(datetime(2026, 4, 20, 10, 0), 7, DEFAULT),
        lambda: round_closes_at(datetime(2026, 4, 20, 10, 0), DEFAULT),
        lambda: round_closes_at(
            datetime(2026, 4, 20, 10, 0), CalendarRules(round_duration=timedelta(seconds=20))
        ),
        lambda: binding_until(datetime(2026, 4, 30, 17, 30), DEFAULT),
        lambda: binding_until(
            datetime(2026, 4, 30, 17, 30), CalendarRules(binding_duration=timedelta(seconds=20))
        ),
    ],
    ids=["deadline", "round", "round-override", "binding", "binding-override"],
)
def test_naive_datetimes_are_rejected(call: object) -> None:
    assert callable(call)
    with pytest.raises(ValueError, match="timezone-aware"):
        call()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"round_duration": timedelta(0)},
        {"binding_duration": timedelta(seconds=-1)},
        {"round_business_days": -1},
        {"binding_business_days": -1},
        {"close_time": time(17, 30, tzinfo=UTC)},
    ],
)
def test_invalid_calendar_rules_are_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        CalendarRules(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT20S", timedelta(seconds=20)),
        ("PT0.5S", timedelta(milliseconds=500)),
        ("PT0,25S", timedelta(milliseconds=250)),
        ("PT1M30S", timedelta(minutes=1, seconds=30)),
        ("P1DT2H", timedelta(days=1, hours=2)),
        ("P2W", timedelta(weeks=2)),
        ("P3D", timedelta(days=3)),
        ("PT1H", timedelta(hours=1)),
        ("PT1.5H", timedelta(minutes=90)),
        ("P1DT2H3M4.000005S", timedelta(days=1, hours=2, minutes=3, seconds=4, microseconds=5)),
        ("PT0S", timedelta(0)),
        ("  pt20s\n", timedelta(seconds=20)),
    ],
)
def test_parse_iso_duration_accepts_day_and_time_durations(text: str, expected: timedelta) -> None:
    assert parse_iso_duration(text) == expected


@pytest.mark.parametrize("text", ["P1Y", "P1M", "P1Y2M3D", "P2MT1H", "P0.5Y"])
def test_parse_iso_duration_rejects_years_and_months(text: str) -> None:
    with pytest.raises(ValueError, match="years or months"):
        parse_iso_duration(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "P",
        "PT",
        "P1DT",
        "20S",
        "T20S",
        "PT-1S",
        "-PT1S",
        "PT1S2M",  # components out of order
        "PT1H1H",
        "PT1.5M30S",  # only the last component may be fractional
        "P1.5DT1H",
        "PT.5S",
        "PT20 S",
        "P1D extra",
        "twenty seconds",
        "PT99999999999999999999999999999999S",
    ],
)
def test_parse_iso_duration_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        parse_iso_duration(text)


@pytest.mark.parametrize(
    ("start", "end", "half_days_off", "expected_days"),
    [
        (
            date(2026, 3, 16),
            date(2026, 3, 23),
            False,
            [date(2026, 3, 20), date(2026, 3, 21), date(2026, 3, 22)],
        ),
        (
            date(2026, 3, 16),
            date(2026, 3, 23),
            True,
            [date(2026, 3, 19), date(2026, 3, 20), date(2026, 3, 21), date(2026, 3, 22)],
        ),
        (
            date(2027, 5, 14),
            date(2027, 5, 20),
            True,
            [
                date(2027, 5, 15),
                date(2027, 5, 16),
                date(2027, 5, 17),
                date(2027, 5, 18),
                date(2027, 5, 19),
            ],
        ),
        (date(2026, 12, 25), date(2027, 1, 5), False, [date(2027, 1, 1)]),
        (date(2026, 4, 23), date(2026, 4, 23), False, [date(2026, 4, 23)]),
        (date(2026, 6, 1), date(2026, 7, 14), False, []),
        (date(2026, 5, 1), date(2026, 4, 1), False, []),  # empty range
    ],
)
def test_holidays_between_lists_non_working_holidays_in_inclusive_range(
    start: date, end: date, half_days_off: bool, expected_days: list[date]
) -> None:
    result = holidays_between(start, end, half_days_off=half_days_off)
    assert [day for day, _ in result] == expected_days
    assert all(name for _, name in result)


def test_holidays_between_names_half_day_eves() -> None:
    result = dict(holidays_between(date(2026, 10, 27), date(2026, 10, 29), half_days_off=True))
    assert result[date(2026, 10, 28)].endswith("(from 1pm)")
    assert not result[date(2026, 10, 29)].endswith("(from 1pm)")
