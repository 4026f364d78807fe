"""Offer reference numbers (Teklif Referans Numarası): one per closed round, unique, with a
Luhn check digit over its digits, e.g. ``IGE-2026-000042-6``."""

from __future__ import annotations

from stdnum import luhn


def reference_number(closing_id: int, year: int) -> str:
    digits = f"{year:04d}{closing_id:06d}"
    return f"IGE-{year:04d}-{closing_id:06d}-{luhn.calc_check_digit(digits)}"


def is_valid_reference(ref: str) -> bool:
    parts = ref.split("-")
    if len(parts) != 4 or parts[0] != "IGE":
        return False
    return bool(luhn.is_valid(parts[1] + parts[2] + parts[3]))
