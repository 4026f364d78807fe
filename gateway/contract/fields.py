"""Wire field converters: one JSON value in, one Python value out, or ``ValueError(message)``.

Converters raise ``ValueError`` even for a value of the wrong type (ruff's TRY004 is off in
this module): pydantic turns a ``ValueError`` from a validator into a validation error but
lets a ``TypeError`` escape, and the slow path reports both the same way.

Each converter is the single definition of what a field accepts and what it becomes (money
in integer minor units, rates in percent x 10^4, identity numbers checked by python-stdnum,
e-mail by email-validator, mobile numbers by libphonenumber). The request models use them on
the slow path, where the message of the ``ValueError`` becomes the field error's message
(``"<field>: <message>"``), exactly as the gateway has always written it.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from stdnum.tr import tckimlik, vkn

from auction.model import money_to_minor, parse_decimal, rate_to_e4
from gateway.contract import limits as L

Converter = Callable[[Any], Any]

__all__ = [
    "Converter",
    "bank_code_ok",
    "boolean",
    "cursor",
    "digits_in_range",
    "email_address",
    "integer",
    "json_object",
    "money",
    "national_id",
    "one_of",
    "password",
    "plain_text",
    "rate",
    "share_e4",
    "tax_id",
    "tax_id_round",
    "text",
    "timestamp_with_offset",
    "turkish_mobile",
]

money = money_to_minor  # "1500000.00" -> 150000000 (minor units)
rate = rate_to_e4  # "31.25" -> 312500 (percent x 10^4)


def integer(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError("must be an integer")
    return v


def boolean(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError("must be true or false")
    return v


def json_object(v: Any) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise ValueError("must be an object")
    return v


def text(max_len: int, nul_ok: bool = False) -> Callable[[Any], str]:
    def conv(v: Any) -> str:
        if not isinstance(v, str):
            raise ValueError("must be a string")
        if len(v) > max_len:
            raise ValueError(f"at most {max_len} characters")
        if not nul_ok and "\x00" in v:
            raise ValueError("must not contain a NUL character")
        return v
    return conv


def one_of(options: tuple[str, ...]) -> Callable[[Any], str]:
    def conv(v: Any) -> str:
        if v not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return str(v)
    return conv


def _unstorable(ch: str) -> bool:
    return (ord(ch) < 32 and ch not in "\t\r\n") or ch == "\x7f" or "\ud800" <= ch <= "\udfff"


def plain_text(max_len: int) -> Callable[[Any], str]:
    """Text without control characters other than tab and line breaks."""
    base = text(max_len)

    def conv(v: Any) -> str:
        s = base(v)
        if any(_unstorable(ch) for ch in s):
            raise ValueError("no control characters other than tab and line breaks")
        return s
    return conv


# ----------------------------------------------------------------------------- identities
def national_id(v: Any) -> str:
    """A Turkish national id (TCKN, 11 digits), compacted."""
    if not isinstance(v, str) or not tckimlik.is_valid(v):
        raise ValueError("not a valid Turkish national id (TCKN)")
    return str(tckimlik.compact(v))


def tax_id(v: Any) -> str:
    """A Turkish tax id: VKN (10 digits) or, for sole proprietors, the TCKN (11 digits)."""
    if not isinstance(v, str) or not (vkn.is_valid(v) or tckimlik.is_valid(v)):
        raise ValueError("not a valid Turkish tax id (VKN, 10 digits) or TCKN (11 digits)")
    return v


def tax_id_round(v: Any) -> str:
    """The same check as ``tax_id``, with the operator intake's historical message."""
    if not isinstance(v, str) or not (vkn.is_valid(v) or tckimlik.is_valid(v)):
        raise ValueError("not a valid Turkish tax id (VKN, 10 digits) or TCKN")
    return v


def email_address(v: Any) -> str:
    """An e-mail address checked by a maintained library (syntax only, no DNS), lower case."""
    if not isinstance(v, str) or len(v) > L.EMAIL_MAX:
        raise ValueError("not a valid e-mail address")
    try:
        return str(validate_email(v, check_deliverability=False).normalized).lower()
    except EmailNotValidError as e:
        raise ValueError(f"not a valid e-mail address: {e}") from None


_MOBILE = "not a Turkish mobile number (+905XXXXXXXXX)"


def turkish_mobile(v: Any) -> str:
    """A Turkish mobile number (libphonenumber: valid, mobile, +90), in E.164."""
    if not isinstance(v, str) or len(v) > L.MOBILE_MAX:
        raise ValueError(_MOBILE)
    try:
        n = phonenumbers.parse(v, "TR")
    except phonenumbers.NumberParseException:
        raise ValueError(_MOBILE) from None
    if n.country_code != 90 or not phonenumbers.is_valid_number(n) \
            or phonenumbers.number_type(n) != phonenumbers.PhoneNumberType.MOBILE:
        raise ValueError(_MOBILE)
    return str(phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164))


def password(v: Any) -> str:
    if not isinstance(v, str) or len(v) < L.PASSWORD_MIN or len(v) > L.PASSWORD_MAX:
        raise ValueError(f"{L.PASSWORD_MIN}..{L.PASSWORD_MAX} characters")
    return v


def share_e4(v: Any) -> int:
    """A percentage 0..100 with at most 2 places -> percent x 10^4."""
    d = parse_decimal(v, L.SHARE_PLACES)
    if not 0 <= d <= L.SHARE_MAX_PCT:
        raise ValueError(f"a percentage 0..{L.SHARE_MAX_PCT}")
    return int(d * 10_000)


_BANK_CODE = re.compile(L.BANK_CODE_PATTERN)


def bank_code_ok(code: str) -> bool:
    return _BANK_CODE.fullmatch(code) is not None


# ----------------------------------------------------------------------------- query strings
def digits_in_range(lo: int, hi: int | None) -> Callable[[str], int | None]:
    """A query-string integer: decimal digits only (``str.isdigit``), then ``lo..hi`` (no
    upper bound when ``hi`` is None); None when it is not one (the caller names the field)."""
    def conv(s: str) -> int | None:
        if not s.isdigit():
            return None
        try:
            n = int(s)
        except ValueError:  # digits int() cannot read, such as superscripts
            return None
        return n if lo <= n and (hi is None or n <= hi) else None
    return conv


def timestamp_with_offset(s: str) -> datetime | str:
    """An ISO 8601 timestamp with an offset (``Z`` allowed); an error code when it is not one:
    ``"invalid"`` (not a timestamp) or ``"no_offset"``."""
    try:
        t = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        return "invalid"
    if t.tzinfo is None:
        return "no_offset"
    return t


def cursor(raw: str) -> tuple[int, str]:
    """The opaque page cursor of GET /v1/bank/rounds: base64url of ``<closes_at>:<round_id>``."""
    a, _, b = base64.urlsafe_b64decode(raw.encode()).decode().partition(":")
    return int(a), b
