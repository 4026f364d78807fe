"""What the operator's console reads (issue #8): rounds counted by state and listed by state, a
round's full unmasked history (every offer and version with its bank's real code and name,
their seqs and times, the round's events, the result, the reference number, the acceptance),
the audit trail filtered, the applications newest first. The operator sees everything: nothing
here is masked, and nothing here changes anything. Every read is bounded (persistence.operators).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from auction.model import OfferVersion, RoundState
from persistence.operators import AuditFilter
from persistence.records import (
    AcceptanceRecord,
    ApplicationRecord,
    AuditRecord,
    ClosingRecord,
    RoundRecord,
)
from usecases.context import Deps
from usecases.outcomes import NOT_FOUND_ROUND, Refusal

ROUNDS_PAGE = 50  # rounds a page of the console
AUDIT_PAGE = 50  # audit entries a page of the console
APPLICATIONS_PAGE = 50
ROUND_EVENTS = 500  # a round's events shown with its history (its offers are all shown)
STATES = tuple(s.value for s in RoundState)

__all__ = ["APPLICATIONS_PAGE", "AUDIT_PAGE", "ROUNDS_PAGE", "STATES", "AuditFilter",
           "Console", "RoundHistory"]


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """Rows and the keyset of the next page (None: the last page)."""

    rows: list[T]
    next: str | None


@dataclass(frozen=True)
class RoundHistory:
    round: RoundRecord
    closing: ClosingRecord | None
    versions: list[OfferVersion]  # every version of every offer, in seq order
    banks: dict[str, tuple[str, str]]  # bank id -> (code, name)
    ranks: dict[str, int]  # offer id -> rank now (open) or final rank (closed)
    final: bool  # ranks are the close's final ranks
    acceptance: AcceptanceRecord | None
    events: list[AuditRecord]
    more_events: bool
    offers: list[str] = field(default_factory=list)  # offer ids, best first

    def of_offer(self, offer_id: str) -> list[OfferVersion]:
        return [v for v in self.versions if v.offer_id == offer_id]


def _keyset(raw: str | None) -> tuple[int, str] | None:
    """``<ms>.<id>`` (what ``Page.next`` holds); None for anything else."""
    if not raw:
        return None
    ms, _, ident = raw.partition(".")
    if not ms.isdigit() or not ident or len(raw) > 100:
        return None
    return int(ms), ident


class Console:
    def __init__(self, deps: Deps) -> None:
        self.d = deps

    async def counts(self) -> dict[str, int]:
        """Rounds in each state, every state named (0 when none)."""
        async with self.d.store.read() as q:
            got = await q.console.round_counts()
        return {s: got.get(s, 0) for s in STATES}

    async def rounds(self, state: str, after: str | None = None,
                     limit: int = ROUNDS_PAGE) -> Page[RoundRecord]:
        """Rounds of a state, the latest deadline first; ``after``: a page's ``next``."""
        async with self.d.store.read() as q:
            rows = await q.console.rounds(state, limit + 1, _keyset(after))
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(rows, f"{rows[-1].closes_at}.{rows[-1].id}" if more else None)

    async def history(self, round_id: str) -> RoundHistory | Refusal:
        async with self.d.store.read() as q:
            row = await q.rounds.get(round_id)
            if row is None:
                return NOT_FOUND_ROUND
            closing = await q.rounds.closing(round_id)
            versions = await q.offers.of_round(round_id)
            binding = await q.rounds.binding(round_id) if closing is not None else []
            acceptance = await q.rounds.acceptance(round_id)
            events = await q.console.round_events(round_id, ROUND_EVENTS + 1)
            banks = await q.console.banks_of(sorted({v.bank_id for v in versions}))
        versions = sorted(versions, key=lambda v: v.seq)
        final = bool(binding)
        if final:
            order = [v.offer_id for _, v in binding]
        else:  # the live book's order (the persister may not have copied the newest yet)
            view = await self.d.book.view(round_id)
            order = [o.offer_id for o in view.offers] if view is not None else []
        ranks = {oid: i + 1 for i, oid in enumerate(order)}
        known = set(order)
        order += sorted({v.offer_id for v in versions} - known,
                        key=lambda oid: min(v.seq for v in versions if v.offer_id == oid))
        return RoundHistory(row, closing, versions, banks, ranks, final, acceptance,
                            events[:ROUND_EVENTS], len(events) > ROUND_EVENTS, order)

    async def audit(self, f: AuditFilter, before: int | None = None,
                    limit: int = AUDIT_PAGE) -> Page[AuditRecord]:
        """Entries matching ``f``, newest first; ``before``: a page's ``next`` (an id)."""
        async with self.d.store.read() as q:
            rows = await q.console.audit(f, limit + 1, before_id=before)
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(rows, str(rows[-1].id) if more else None)

    async def applications(self, after: str | None = None,
                           limit: int = APPLICATIONS_PAGE) -> Page[ApplicationRecord]:
        """Applications, newest first; ``after``: a page's ``next``."""
        async with self.d.store.read() as q:
            rows = await q.console.applications(limit + 1, _keyset(after))
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(rows, f"{rows[-1].created_at}.{rows[-1].id}" if more else None)
