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
    "cursor_text",
    "digits_in_range",
    "email_address",
    "ident",
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


def ident(max_len: int) -> Callable[[Any], str]:
    """An id of ours: 1..``max_len`` letters, digits, ``_`` and ``-`` (``limits.ID_CHARS``)."""
    pattern = re.compile(f"[{L.ID_CHARS}]{{1,{max_len}}}")

    def conv(v: Any) -> str:
        if not isinstance(v, str) or not pattern.fullmatch(v):
            raise ValueError(f"an id: 1..{max_len} letters, digits, _ and -")
        return v
    return conv


_ACTOR = re.compile(L.ACTOR_REGEX)
_ACTION = re.compile(L.ACTION_REGEX)


def actor(v: Any) -> str:
    """Who acted, as the audit trail writes it: ``admin``, ``system``, ``bank:<id>``..."""
    if not isinstance(v, str) or len(v) > L.ACTOR_MAX or not _ACTOR.fullmatch(v):
        raise ValueError("an actor: a kind (admin, bank, desk, operator...) and maybe :<id>")
    return v


def action(v: Any) -> str:
    """An audit action's name: lower-case letters and ``_``."""
    if not isinstance(v, str) or not _ACTION.fullmatch(v):
        raise ValueError("an action: lower-case letters and _")
    return v


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
def _digits(v: Any, *lengths: int) -> bool:
    """ASCII digits only, of one of ``lengths`` (python-stdnum would also take blanks and
    separators, which the document's patterns do not)."""
    return isinstance(v, str) and len(v) in lengths and v.isascii() and v.isdigit()


def national_id(v: Any) -> str:
    """A Turkish national id (TCKN): 11 digits with valid check digits."""
    if not _digits(v, 11) or not tckimlik.is_valid(v):
        raise ValueError("not a valid Turkish national id (TCKN)")
    return str(v)


def _is_tax_id(v: Any) -> bool:
    return _digits(v, 10, 11) and (vkn.is_valid(v) or tckimlik.is_valid(v))


def tax_id(v: Any) -> str:
    """A Turkish tax id: VKN (10 digits) or, for sole proprietors, the TCKN (11 digits)."""
    if not _is_tax_id(v):
        raise ValueError("not a valid Turkish tax id (VKN, 10 digits) or TCKN (11 digits)")
    return str(v)


def tax_id_round(v: Any) -> str:
    """The same check as ``tax_id``, with the operator intake's historical message."""
    if not _is_tax_id(v):
        raise ValueError("not a valid Turkish tax id (VKN, 10 digits) or TCKN")
    return str(v)


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


_CURSOR = re.compile(L.CURSOR_PATTERN)


def cursor(raw: str) -> tuple[int, str]:
    """The opaque page cursor of GET /v1/bank/rounds: ``<closes_at ms>.<round_id>`` (what
    ``cursor_text`` writes); anything else is ``ValueError``."""
    if not _CURSOR.fullmatch(raw):
        raise ValueError("bad cursor")
    a, _, b = raw.partition(".")
    return int(a), b


def cursor_text(closes_at_ms: int, round_id: str) -> str:
    return f"{closes_at_ms}.{round_id}"


# ----------------------------------------------------------------------------- patterns
# What a decimal-string converter (with the rule every use of it applies, e.g. "above 0")
# accepts, as a regular expression for the document: tests/unit/test_patterns.py proves each
# pattern accepts exactly the strings its converter does. The converters read
# ``[0-9]+(.[0-9]*)?`` or ``.[0-9]+`` (auction.model.parse_scaled), leading zeros included.
_WHOLE_15 = "0*[1-9][0-9]{0,%d}" % (L.MONEY_MAX_INTEGER_DIGITS - 1)  # noqa: UP031


def _positive_fraction(places: int) -> str:
    """1..``places`` fraction digits, not all zero."""
    return "(?:" + "|".join("0" * z + "[1-9]" + (f"[0-9]{{0,{places - z - 1}}}"
                                                 if places - z - 1 else "")
                            for z in range(places)) + ")"



def _negative_zero(places: int) -> str:
    """"-0", "-0.00", "-.0": a signed zero, which the converters read as 0."""
    return rf"-(?:0+(?:\.0{{0,{places}}})?|\.0{{1,{places}}})"


#: money, 0 or more: at most 15 digits before the point and 2 after
MONEY_PATTERN = (rf"^(?:(?:{_WHOLE_15}|0+)(?:\.[0-9]{{0,{L.MONEY_PLACES}}})?"
                 rf"|\.[0-9]{{1,{L.MONEY_PLACES}}}|{_negative_zero(L.MONEY_PLACES)})$")
#: money above 0
POSITIVE_MONEY_PATTERN = (rf"^(?:{_WHOLE_15}(?:\.[0-9]{{0,{L.MONEY_PLACES}}})?"
                          rf"|0*\.{_positive_fraction(L.MONEY_PLACES)})$")
#: a rate above 0 and at most ANNUAL_RATE_MAX_PCT (500), 4 places
RATE_PATTERN = (rf"^(?:0*(?:[1-9][0-9]?|[1-4][0-9]{{2}})(?:\.[0-9]{{0,{L.RATE_PLACES}}})?"
                rf"|0*{L.ANNUAL_RATE_MAX_PCT}(?:\.0{{0,{L.RATE_PLACES}}})?"
                rf"|0*\.{_positive_fraction(L.RATE_PLACES)})$")
#: a share 0..SHARE_MAX_PCT (100) percent, 2 places
SHARE_PATTERN = (rf"^(?:0*[0-9]{{1,2}}(?:\.[0-9]{{0,{L.SHARE_PLACES}}})?"
                 rf"|0*{L.SHARE_MAX_PCT}(?:\.0{{0,{L.SHARE_PLACES}}})?"
                 rf"|\.[0-9]{{1,{L.SHARE_PLACES}}}|{_negative_zero(L.SHARE_PLACES)})$")
#: text without control characters other than tab and line breaks (``plain_text``)
PLAIN_TEXT_PATTERN = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f]*$"
