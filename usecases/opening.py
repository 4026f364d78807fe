"""Opening a round: an application approved here, or one the operator takes in by hand.

SQL first: a round exists once it is in SQL (in the caller's unit of work, with whatever else
decided it); then it goes live in the book and is announced on the pool. If the process dies
in between, the requeue sweep puts the overdue round on the deadline index and the close
rebuilds its live state from SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from auction import calendar
from auction.bus import RoundOpened
from auction.model import RoundTerms, dt_to_ms, ms_to_dt
from auction.rules import label_pool
from persistence.store import Tx
from usecases.bidding import Terms
from usecases.context import Deps
from usecases.security import new_id

MIN_LABELS = 26  # "Banka A" .. "Banka Z"


@dataclass(frozen=True)
class RoundRequest:
    """What a round is opened with: the exporter's request as approved."""

    loan_type: str
    currency: str
    loan_amount: int
    guarantee_amount: int
    tenor_months: int
    grace_months: int
    export_commitment: bool
    company: dict[str, Any]
    assessment: dict[str, Any] | None = None
    exporter_user_id: str | None = None
    application_id: str | None = None


@dataclass(frozen=True)
class Opened:
    """A round written in SQL, not yet live (``Opening.go_live`` after the unit commits)."""

    terms: RoundTerms
    labels: Sequence[str]


class Opening:
    def __init__(self, deps: Deps, terms: Terms) -> None:
        self.d = deps
        self.terms = terms

    async def add(self, tx: Tx, req: RoundRequest, actor: str,
                  opened_at: datetime | None = None) -> Opened:
        """Write the round in the caller's unit of work, with its deadline by the calendar."""
        opened = opened_at or ms_to_dt(self.d.clock())
        closes = calendar.round_closes_at(opened.astimezone(UTC), self.d.policy.calendar)
        t = RoundTerms(new_id("rnd"), req.currency, req.loan_type, req.loan_amount,
                       req.guarantee_amount, req.tenor_months, req.grace_months,
                       req.export_commitment, dt_to_ms(opened), dt_to_ms(closes))
        # enough names for every partner bank, so no bidder ever gets a numbered fallback label
        labels = label_pool(max(MIN_LABELS, len(await tx.banks.all())))
        await tx.rounds.add(t, req.company, req.assessment, req.exporter_user_id,
                            req.application_id, labels)
        await tx.audit.add(t.opened_at_ms, actor, "round_opened", t.round_id,
                           {"closes_at": t.closes_at_ms, "currency": t.currency,
                            "loan_amount": t.loan_amount})
        return Opened(t, labels)

    async def go_live(self, opened: Opened) -> RoundTerms:
        """After the unit that added it committed: the book, the deadline index, the pool."""
        await self.d.book.open_round(opened.terms, opened.labels)
        await self.d.bus.publish(RoundOpened(opened.terms.round_id))
        self.terms.remember(opened.terms)
        return opened.terms

    async def open_round(self, req: RoundRequest, actor: str,
                         opened_at: datetime | None = None) -> RoundTerms:
        async with self.d.store.unit() as tx:
            opened = await self.add(tx, req, actor, opened_at)
            await tx.commit()
        return await self.go_live(opened)
