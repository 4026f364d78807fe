"""What every use case is given: the adapters behind their ports and the policy numbers, in
one object that the composition root (``gateway/bootstrap.py``) builds once per process."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from applications.ports import Providers
from auction.book import Book
from auction.bus import Bus
from auction.calendar import CalendarRules
from persistence.store import Store
from usecases.ports import Clock, Guards
from usecases.security import TokenSigner


def now_ms() -> int:
    """The server clock (the only clock outside the book): ms since the epoch, UTC."""
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Policy:
    """The numbers of the product that are configuration, not rules."""

    calendar: CalendarRules = field(default_factory=CalendarRules)
    bank_token_ttl_s: int = 900
    exporter_token_ttl_s: int = 3600
    ticket_ttl_s: int = 30
    live_key_ttl_s: int = 7 * 24 * 3600  # how long a finished round's live state is kept
    idempotency_ttl_s: int = 24 * 3600
    #: how long the first request with an Idempotency-Key (not an offer's) holds the key while
    #: it runs: a request whose process died, or whose record's answer was lost, no longer
    #: answers its retry 409 ``conflict`` past this (far past any request's own timeouts)
    idempotency_pending_s: int = 60
    #: live offers one bank may keep in one round (revisions do not count); 0: no limit
    max_offers_per_bank: int = 5
    #: browser sessions (the pages): ended after this long without a request, and this long
    #: after the login whatever happens
    session_idle_s: int = 30 * 60
    session_max_s: int = 12 * 3600


@dataclass
class Deps:
    book: Book
    store: Store
    bus: Bus
    guards: Guards
    providers: Providers
    tokens: TokenSigner
    policy: Policy = field(default_factory=Policy)
    clock: Clock = now_ms
