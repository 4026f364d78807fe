"""Request bodies to plain data, listing every offending field (422 validation_failed)."""

from __future__ import annotations

import json
from typing import Any, Callable, TypeVar

from auction.model import (
    CURRENCIES,
    LOAN_TYPES,
    RATE_SCALE,
    OfferTerms,
    RoundTerms,
    money_to_minor,
    rate_to_e4,
)
from auction.rules import validate_offer
from gateway.problems import Problem, invalid

T = TypeVar("T")


def parse_json(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise Problem(400, "malformed_json", "the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise Problem(422, "validation_failed", "the body must be a JSON object",
                      errors=[{"field": "", "code": "not_object", "message": "expected an object"}])
    return body


class Fields:
    """Collects field errors while reading a JSON object."""

    def __init__(self, body: dict[str, Any], prefix: str = "") -> None:
        self.body = body
        self.prefix = prefix
        self.errors: list[dict[str, str]] = []

    def error(self, name: str, code: str, message: str) -> None:
        self.errors.append({"field": self.prefix + name, "code": code, "message": message})

    def get(self, name: str, conv: Callable[[Any], T], required: bool = True,
            default: T | None = None) -> T | None:
        if name not in self.body or self.body[name] is None:
            if required:
                self.error(name, "required", f"{name} is required")
            return default
        try:
            return conv(self.body[name])
        except (ValueError, TypeError) as e:
            self.error(name, "invalid", f"{name}: {e}")
            return default

    def check(self) -> None:
        if self.errors:
            raise invalid(self.errors)


def integer(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError("must be an integer")
    return v


def json_object(v: Any) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise ValueError("must be an object")
    return v


def boolean(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError("must be true or false")
    return v


def text(max_len: int) -> Callable[[Any], str]:
    def conv(v: Any) -> str:
        if not isinstance(v, str):
            raise ValueError("must be a string")
        if len(v) > max_len:
            raise ValueError(f"at most {max_len} characters")
        return v
    return conv


def one_of(options: tuple[str, ...]) -> Callable[[Any], str]:
    def conv(v: Any) -> str:
        if v not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return str(v)
    return conv


OFFER_FIELDS = ("annual_rate", "amount", "tenor_months", "grace_months", "repayment_every_months",
                "upfront_fee", "assumes_export_commitment", "conditions", "currency")


def offer_terms(body: dict[str, Any], round_currency: str,
                rnd: RoundTerms | None = None) -> OfferTerms:
    """Offer terms from a request body. When some fields do not even parse and ``rnd`` is
    given, the round rules still run over the fields that did parse (the others replaced by
    neutral values), so one 422 lists every offending field."""
    f = Fields(body)
    for k in body:
        if k not in OFFER_FIELDS:
            f.error(k, "unknown_field", f"{k} is not an offer term")
    rate = f.get("annual_rate", rate_to_e4)
    amount = f.get("amount", money_to_minor)
    tenor = f.get("tenor_months", integer)
    grace = f.get("grace_months", integer, required=False, default=0)
    every = f.get("repayment_every_months", integer, required=False, default=1)
    fee = f.get("upfront_fee", money_to_minor, required=False, default=0)
    commit = f.get("assumes_export_commitment", boolean, required=False, default=False)
    cond = f.get("conditions", text(10_000), required=False, default="")
    currency = f.get("currency", one_of(CURRENCIES), required=False)
    if currency is not None and currency != round_currency:
        f.error("currency", "currency_mismatch", f"this round is in {round_currency}")
    if f.errors and rnd is not None:
        bad = {e["field"] for e in f.errors}
        probe = OfferTerms(
            rate if rate is not None and "annual_rate" not in bad else 10 * RATE_SCALE,
            amount if amount is not None and "amount" not in bad else rnd.loan_amount,
            tenor if tenor is not None and "tenor_months" not in bad else rnd.tenor_months,
            grace if grace is not None and "grace_months" not in bad else 0,
            every if every is not None and "repayment_every_months" not in bad else 1,
            fee if fee is not None and "upfront_fee" not in bad else 0,
            bool(commit), cond if isinstance(cond, str) else "")
        for e in validate_offer(probe, rnd):
            if e.field not in bad:
                f.error(e.field, e.code, e.message)
    f.check()
    return OfferTerms(rate or 0, amount or 0, tenor or 0, grace or 0, every or 0, fee or 0,
                      bool(commit), cond or "")


__all__ = ["Fields", "offer_terms", "parse_json", "integer", "boolean", "text", "one_of",
           "CURRENCIES", "LOAN_TYPES"]
