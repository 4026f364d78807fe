"""Offer parsing, old vs new: ``python -m tests.unit.bench_offer_parsing`` (not a test).

Times a typical valid offer body through today's ``gateway.parsing.offer_terms`` (after
``json.loads``, as the gateway does) and through ``gateway.contract`` (``read`` from the raw
bytes, and from an already decoded dict), plus the slow path (one bad field)."""

from __future__ import annotations

import json
import timeit
from collections.abc import Callable
from typing import Any

from auction.model import RoundTerms
from gateway.contract.merge import with_offer_rules
from gateway.contract.requests import OfferTermsBody, read
from gateway.parsing import offer_terms
from gateway.problems import Problem
from tests.support import OFFER_BODY

RND = RoundTerms("rnd", "TRY", "working_capital", 500_000_000, 400_000_000, 24, 6, True, 0, 0)
RAW = json.dumps(OFFER_BODY).encode()
BAD = json.dumps({**OFFER_BODY, "tenor_months": "24"}).encode()
CTX = {"currency": "TRY"}


def old(raw: bytes = RAW) -> Any:
    try:
        return offer_terms(json.loads(raw), "TRY", RND)
    except Problem as e:
        return e


def new_bytes(raw: bytes = RAW) -> Any:
    return read(OfferTermsBody, raw, CTX)


def new_dict() -> Any:
    return read(OfferTermsBody, json.loads(RAW), CTX)


def new_with_rules(raw: bytes = RAW) -> Any:
    return with_offer_rules(read(OfferTermsBody, raw, CTX), RND)


def main() -> None:
    assert new_bytes().model.terms() == old()
    cases: list[tuple[str, Callable[[], Any]]] = [
        ("old offer_terms(json.loads(raw))", old),
        ("new read(OfferTermsBody, raw)", new_bytes),
        ("new read(OfferTermsBody, json.loads(raw))", new_dict),
        ("new read + with_offer_rules (validate_offer too)", new_with_rules),
        ("old, one bad field", lambda: old(BAD)),
        ("new, one bad field (slow path) + rules", lambda: new_with_rules(BAD)),
    ]
    n = 20_000
    for name, fn in cases:
        best = min(timeit.repeat(fn, number=n, repeat=7)) / n
        print(f"{name:55s} {best * 1e6:7.2f} µs")


if __name__ == "__main__":
    main()
