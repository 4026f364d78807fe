"""A person at a bank acting through the pages: the bank's own use cases (``Bidding``: the
same rules, the same masking, the same book as the bank's API clients), with the person's role
checked and every offer they make audited with the person, not only the bank."""

from __future__ import annotations

from auction.book import Idem
from usecases.bidding import Accepted, Bidding, OfferDraft
from usecases.context import Deps
from usecases.outcomes import Refusal
from usecases.sessions import BrowserSession

VIEWER_REFUSED = Refusal("forbidden", "a viewer sees books and results; only a trader offers")


class Desk:
    def __init__(self, deps: Deps, bidding: Bidding) -> None:
        self.d = deps
        self.bidding = bidding

    async def offer(self, who: BrowserSession, round_id: str, offer_id: str | None,
                    draft: OfferDraft, idem: Idem | None) -> Accepted | Refusal:
        """A new offer (``offer_id`` None) or a revision of one of the bank's offers."""
        if not who.may_offer or who.bank_id is None:
            return VIEWER_REFUSED
        if offer_id is None:
            done = await self.bidding.submit(who.bank_id, round_id, draft, idem)
        else:
            done = await self.bidding.revise(who.bank_id, round_id, offer_id, draft, idem)
        if isinstance(done, Accepted) and not done.replayed:
            v = done.offer
            async with self.d.store.unit() as tx:
                await tx.audit.add(self.d.clock(), who.actor, "desk_offer", round_id, {
                    "bank_id": who.bank_id, "user_id": who.user_id, "offer_id": v.offer_id,
                    "version": v.version, "seq": v.seq})
                await tx.commit()
        return done
