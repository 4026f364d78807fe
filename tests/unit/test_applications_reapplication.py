"""Re-application: a request rejected twice within 3 months may be assessed again only after a
quarterly financial-data period has passed since the last rejection (seed 001, PORTAL.md §4).

Quarters are calendar quarters in Europe/Istanbul (UTC+3); "passed" means a whole quarter lies
after the last rejection."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import pytest

from applications import rules
from applications.package import KGF_HD_2026_1 as P

TR = timezone(timedelta(hours=3))  # Europe/Istanbul has been UTC+3 all year since 2016


def tr(*args: int) -> datetime:
    return datetime(*args, tzinfo=TR)  # type: ignore[misc]


@pytest.mark.parametrize("rejections, not_before", [
    ([], None),
    ([tr(2026, 2, 10)], None),  # once: may apply again at once
    # twice within 3 months: the next whole quarter after the last one is Q3 -> 1 July
    ([tr(2026, 1, 5), tr(2026, 2, 10)], tr(2026, 7, 1)),
    ([tr(2026, 1, 10, 9), tr(2026, 4, 10, 9)], tr(2026, 10, 1)),  # exactly 3 months apart
    ([tr(2026, 1, 10, 9), tr(2026, 4, 10, 9, 0, 1)], None),  # one second more: not within
    ([tr(2025, 11, 30), tr(2026, 2, 28)], tr(2026, 7, 1)),  # 30 Nov + 3 months = 28 Feb
    ([tr(2025, 11, 30), tr(2026, 3, 1)], None),
    # rejected at the very start of a quarter: that quarter is whole after it
    ([tr(2026, 3, 1), tr(2026, 4, 1)], tr(2026, 7, 1)),
    ([tr(2026, 3, 1), tr(2026, 4, 1, 0, 0, 1)], tr(2026, 10, 1)),
    ([tr(2026, 3, 1), tr(2026, 3, 31, 23, 59)], tr(2026, 7, 1)),
    # only the last two count: an old rejection does not revive the block
    ([tr(2025, 1, 1), tr(2025, 2, 1), tr(2026, 5, 1)], None),
    # order of the list does not matter
    ([tr(2026, 2, 10), tr(2026, 1, 5)], tr(2026, 7, 1)),
])
def test_when_a_company_may_apply_again(rejections: list[datetime], not_before: datetime | None):
    got = rules.reapplication_not_before(rejections, P)
    assert got == not_before
    if got is not None:
        assert got.tzinfo is UTC


def test_quarters_are_local_istanbul_quarters_not_utc_ones():
    # 31 March 21:30 UTC is already 1 April 00:30 in Istanbul: a Q2 rejection
    last = datetime(2026, 3, 31, 21, 30, tzinfo=UTC)
    got = rules.reapplication_not_before([last - timedelta(days=10), last], P)
    assert got == tr(2026, 10, 1)
    assert got == datetime(2026, 9, 30, 21, 0, tzinfo=UTC)


def test_blocked_until_the_instant_it_is_allowed_then_free():
    rejections = [tr(2026, 1, 5), tr(2026, 2, 10)]
    nb = tr(2026, 7, 1)
    assert rules.may_reapply(rejections, nb - timedelta(milliseconds=1), P) == (False, nb)
    assert rules.may_reapply(rejections, nb, P) == (True, nb)


def test_a_third_rejection_soon_after_the_wait_blocks_again():
    rejections = [tr(2026, 1, 5), tr(2026, 2, 10), tr(2026, 7, 2)]
    assert rules.reapplication_not_before(rejections, P) is None  # 10 Feb..2 Jul: not within
    rejections.append(tr(2026, 8, 20))
    assert rules.reapplication_not_before(rejections, P) == tr(2027, 1, 1)


@pytest.mark.parametrize("changes, not_before", [
    ({"reapplication_quarters": 2}, tr(2026, 10, 1)),
    ({"reapplication_window_months": 1}, None),  # 5 Jan..10 Feb is more than a month
    ({"reapplication_rejections": 3}, None),
    ({"reapplication_rejections": 1}, tr(2026, 7, 1)),
])
def test_the_rule_reads_its_numbers_from_the_package(changes: dict[str, int],
                                                     not_before: datetime | None):
    pkg = dataclasses.replace(P, **changes)
    assert rules.reapplication_not_before([tr(2026, 1, 5), tr(2026, 2, 10)], pkg) == not_before


@pytest.mark.parametrize("start, months, expected", [
    (datetime(2026, 1, 31), 1, datetime(2026, 2, 28)),
    (datetime(2028, 1, 31), 1, datetime(2028, 2, 29)),
    (datetime(2025, 11, 30), 3, datetime(2026, 2, 28)),
    (datetime(2026, 10, 15, 8, 30), 3, datetime(2027, 1, 15, 8, 30)),
    (datetime(2026, 5, 31), 12, datetime(2027, 5, 31)),
])
def test_adding_calendar_months_clamps_to_the_month_end(start: datetime, months: int,
                                                        expected: datetime):
    assert rules.add_months(start, months) == expected
