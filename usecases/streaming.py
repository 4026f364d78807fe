"""Who may watch what on the live stream, and what the stream says besides the book.

Topics: ``round:<id>`` for the banks that bid in the round (a bank may subscribe to an open
round before its first offer: it is told ``offer_required`` and gets the book with its first
offer) and the operator; ``pool`` for banks and the operator; ``application:<id>`` for the
exporter who owns it."""

from __future__ import annotations

import enum

from auction.model import RoundState
from persistence.records import RoundRecord
from usecases.context import Deps
from usecases.results import ExporterResults, Results
from usecases.security import Principal


class Watch(enum.Enum):
    YES = "yes"
    AFTER_FIRST_OFFER = "after_first_offer"  # an open round this bank has not bid in yet
    NO = "no"  # does not exist for this caller


class Streaming:
    def __init__(self, deps: Deps, results: Results) -> None:
        self.d = deps
        self.results = results

    async def may_watch_round(self, who: Principal, round_id: str) -> Watch:
        if who.kind not in ("bank", "admin"):
            return Watch.NO
        async with self.d.store.read() as q:
            if await q.rounds.get(round_id) is None:
                return Watch.NO
        if who.kind == "admin" or await self.d.book.has_bid(round_id, who.id):
            return Watch.YES
        view = await self.d.book.view(round_id)
        if view is None or view.state is not RoundState.OPEN:
            return Watch.NO  # a finished round this bank took no part in does not exist for it
        return Watch.AFTER_FIRST_OFFER

    @staticmethod
    def may_watch_pool(who: Principal) -> bool:
        return who.kind in ("bank", "admin")

    async def may_watch_application(self, who: Principal, application_id: str) -> bool:
        if who.kind != "exporter":
            return False
        async with self.d.store.read() as q:
            row = await q.rounds.by_application(application_id)
        return row is not None and row.exporter_user_id == who.id

    async def opened(self, round_id: str) -> RoundRecord | None:
        """A round just announced as opened, for the pool."""
        async with self.d.store.read() as q:
            return await q.rounds.get(round_id)

    async def finalized(self, round_id: str) -> ExporterResults | None:
        """The results of a round whose close was just completed, for its exporter; None
        when the round belongs to no application."""
        async with self.d.store.read() as q:
            row = await q.rounds.get(round_id)
        if row is None or not row.application_id:
            return None
        return await self.results.of_round(row)
