"""Unit tests for the offer reference number (Teklif Referans Numarası): format and Luhn check
digit, checked against an independent Luhn implementation."""

from __future__ import annotations

import re

import pytest

from persistence.reference import is_valid_reference, reference_number

FORMAT = re.compile(r"IGE-(\d{4})-(\d{6})-(\d)")


def luhn_ok(digits: str) -> bool:
    """Textbook Luhn: double every second digit from the right; the sum is a multiple of 10."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


CASES = [(1, 2026), (42, 2026), (999_999, 2026), (7, 2030), (123_456, 2027), (100_000, 2099)]


@pytest.mark.parametrize(("closing_id", "year"), CASES)
def test_reference_number_is_prefix_year_padded_id_and_check_digit(closing_id: int,
                                                                   year: int) -> None:
    ref = reference_number(closing_id, year)
    m = FORMAT.fullmatch(ref)
    assert m is not None, ref
    assert int(m.group(1)) == year and int(m.group(2)) == closing_id


@pytest.mark.parametrize(("closing_id", "year"), CASES)
def test_reference_check_digit_satisfies_luhn(closing_id: int, year: int) -> None:
    ref = reference_number(closing_id, year)
    assert luhn_ok(ref.replace("IGE-", "").replace("-", ""))
    assert is_valid_reference(ref)


def test_reference_numbers_of_different_closings_differ() -> None:
    refs = {reference_number(i, 2026) for i in range(1, 2_000)}
    assert len(refs) == 1_999


@pytest.mark.parametrize(("closing_id", "year"), CASES)
def test_any_single_changed_digit_makes_the_reference_invalid(closing_id: int,
                                                              year: int) -> None:
    ref = reference_number(closing_id, year)
    for i, ch in enumerate(ref):
        if not ch.isdigit():
            continue
        for other in "0123456789":
            if other != ch:
                changed = ref[:i] + other + ref[i + 1:]
                assert not is_valid_reference(changed), changed


@pytest.mark.parametrize("ref", ["", "IGE", "IGE-2026-000042", "KGF-2026-000042-6",
                                 "IGE-2026-000042-6-1", "ige-2026-000042-6", "IGE-20x6-000042-6"])
def test_malformed_references_are_invalid(ref: str) -> None:
    assert not is_valid_reference(ref)
