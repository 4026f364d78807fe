"""Generators for the document's own string formats, for schemathesis (loaded through
``SCHEMATHESIS_HOOKS`` by tests/e2e/test_schemathesis.py).

The document says of a tax id, a national id and a mobile number more than a pattern can: its
check digits, or what libphonenumber takes for a Turkish mobile. It names that with a format
(``tr-tax-id``, ``tr-national-id``, ``tr-mobile``); these generators make values of those
formats, so that a schema-valid request schemathesis sends is one the server accepts.
tests/unit/test_schemathesis_hooks.py proves the server's converters accept what they make.
"""

from __future__ import annotations

import uuid
from typing import Any

import phonenumbers
import schemathesis
from hypothesis import strategies as st
from stdnum.tr import tckimlik, vkn

from gateway.contract.limits import IDEMPOTENCY_KEY_MAX

#: mobile operators' prefixes in Türkiye (Turkcell 53x, Vodafone 54x, Türk Telekom 50x/55x)
MOBILE_PREFIXES = ("501", "505", "506", "507", "530", "532", "533", "535", "536", "537",
                   "538", "539", "541", "542", "543", "544", "545", "546", "549", "551",
                   "552", "553", "554", "555", "559")


def national_ids() -> st.SearchStrategy[str]:
    """TCKN: 9 digits not starting with 0, then the two check digits."""
    nine = st.from_regex(r"[1-9][0-9]{8}", fullmatch=True)
    return nine.map(lambda n: n + tckimlik.calc_check_digits(n))


def vkns() -> st.SearchStrategy[str]:
    """VKN: 9 digits, then the check digit."""
    return st.from_regex(r"[0-9]{9}", fullmatch=True).map(lambda n: n + vkn.calc_check_digit(n))


def tax_ids() -> st.SearchStrategy[str]:
    return st.one_of(vkns(), national_ids())


def mobiles() -> st.SearchStrategy[str]:
    def valid(number: str) -> bool:
        n = phonenumbers.parse(number, "TR")
        return phonenumbers.is_valid_number(n) and \
            phonenumbers.number_type(n) == phonenumbers.PhoneNumberType.MOBILE

    return st.builds(lambda p, rest: f"+90{p}{rest}", st.sampled_from(MOBILE_PREFIXES),
                     st.from_regex(r"[0-9]{7}", fullmatch=True)).filter(valid)


def emails() -> st.SearchStrategy[str]:
    """E-mail addresses (the document's ``email`` format) as the server's parser takes them:
    a maintained library (email-validator) that also refuses the special-use domains of RFC
    6761 (``.test``, ``.invalid``, ``.localhost``...), which schemathesis's own generator makes
    now and then (a run once failed on ``%2j@ybkctj1.xfn.test``), and labels with two dashes
    after two characters (``ab--c``: reserved for IDNA's ``xn--``; CI once drew one)."""
    local = st.from_regex(r"[a-z0-9](?:[a-z0-9_+-]{0,18}[a-z0-9])?", fullmatch=True)
    label = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,14}[a-z0-9])?", fullmatch=True).filter(
        lambda s: "--" not in s)
    tld = st.sampled_from(("com", "org", "net", "com.tr", "gov.tr"))
    return st.builds("{}@{}.{}".format, local, label, tld)


schemathesis.openapi.format("email", emails())
schemathesis.openapi.format("tr-tax-id", tax_ids())
schemathesis.openapi.format("tr-national-id", national_ids())
schemathesis.openapi.format("tr-mobile", mobiles())


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """A fresh ``Idempotency-Key`` for every request that sends a valid one: generated keys
    repeat ("0", "00"...), and a key used again with another body is 422
    ``idempotency_mismatch`` by design (a client's obligation the document states, which a
    generator cannot know). An empty or too long key, a negative case, is sent as generated."""
    headers = case.headers or {}
    for name in list(headers):
        if name.lower() == "idempotency-key":
            value = headers[name]
            if isinstance(value, str) and 1 <= len(value) <= IDEMPOTENCY_KEY_MAX:
                headers[name] = uuid.uuid4().hex
