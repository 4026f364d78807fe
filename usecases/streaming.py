"""Who may watch what on the live stream, and what the stream says besides the book.

Topics: ``round:<id>`` for the banks that bid in the round (a bank may subscribe to an open
round before its first offer: it is told ``offer_required`` and gets the book with its first
offer) and the operator; ``pool`` for banks and the operator; ``application:<id>`` for the
exporter who owns it."""

from __future__ import annotations

from dataclasses import dataclass

from auction.model import RoundState
from persistence.records import RoundRecord
from usecases.bidding import Terms
from usecases.context import Deps
from usecases.preferences import BankCodes, for_bank
from usecases.results import ExporterResults, Results
from usecases.security import Principal


@dataclass(frozen=True)
class RoundSeen:
    """What the stream needs to know of a round a caller subscribes to."""

    state: RoundState | None  # the live book's state (None: not in the book)
    must_bid_first: bool  # a bank without an offer in it (auction.rules.book_access decides)


class Streaming:
    def __init__(self, deps: Deps, terms: Terms, results: Results) -> None:
        self.d = deps
        self.terms = terms
        self.results = results
        self.codes = BankCodes(deps)

    async def round_seen_by(self, who: Principal, round_id: str) -> RoundSeen | None:
        """None when the round topic does not exist for this caller (not a bank or the
        operator, or no such round)."""
        if who.kind not in ("bank", "admin") or await self.terms.get(round_id) is None:
            return None
        if who.kind == "admin" or await self.d.book.has_bid(round_id, who.id):
            return RoundSeen(None, False)
        view = await self.d.book.view(round_id)
        return RoundSeen(None if view is None else view.state, True)

    @staticmethod
    def may_watch_pool(who: Principal) -> bool:
        return who.kind in ("bank", "admin")

    async def application_round(self, who: Principal, application_id: str) -> str | None:
        """The round of an application its exporter may watch; None: not for this caller."""
        if who.kind != "exporter":
            return None
        async with self.d.store.read() as q:
            row = await q.rounds.by_application(application_id)
        return row.id if row is not None and row.exporter_user_id == who.id else None

    async def opened(self, round_id: str) -> RoundRecord | None:
        """A round just announced as opened, for the pool (``for_bank`` before a bank sees
        it)."""
        async with self.d.store.read() as q:
            return await q.rounds.get(round_id)

    async def for_bank(self, row: RoundRecord, who: Principal) -> RoundRecord:
        """The round as this subscriber may see it: a bank's own preference only."""
        return await self.codes.mask(row, who.id) if who.kind == "bank" else for_bank(row, None)

    async def results_ready(self, round_id: str) -> bool:
        """Whether the round's closing record is in SQL (``round_closed`` may go out)."""
        async with self.d.store.read() as q:
            return await q.rounds.closing(round_id) is not None

    async def finalized(self, round_id: str) -> ExporterResults | None:
        """The results of a round whose close was just completed, for its exporter; None
        when the round belongs to no application."""
        async with self.d.store.read() as q:
            row = await q.rounds.get(round_id)
        if row is None or not row.application_id:
            return None
        return await self.results.of_round(row)
