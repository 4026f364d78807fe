"""A person at a bank acting through the pages: the bank's own use cases (``Bidding``: the
same rules, the same masking, the same book as the bank's API clients), with the person's role
checked and every offer they make audited with the person, not only the bank.

A bank's user administrator (role ``admin``) manages the desk users of its own bank and of no
other: the bank is always the session's, never a parameter, and a user of another bank is
``not_found`` exactly like an unknown id. What they do is audited with the person
(``desk:<user id>``)."""

from __future__ import annotations

from auction.book import Idem
from persistence.records import DeskUserRecord
from usecases.accounts import Accounts, NewDeskUser
from usecases.bidding import Accepted, Bidding, OfferDraft
from usecases.context import Deps
from usecases.outcomes import Refusal
from usecases.sessions import BrowserSession

VIEWER_REFUSED = Refusal("forbidden", "a viewer sees books and results; only a trader offers")
NOT_ADMIN = Refusal("forbidden", "only the bank's user administrator manages its desk users")
NO_DESK_USER = Refusal("not_found", "no such desk user")
NOT_YOURSELF = Refusal("self", "a user administrator does not deactivate their own account")


class Desk:
    def __init__(self, deps: Deps, bidding: Bidding, accounts: Accounts) -> None:
        self.d = deps
        self.bidding = bidding
        self.accounts = accounts

    # -- the bank's user administrator ----------------------------------------------------
    async def users(self, who: BrowserSession) -> list[DeskUserRecord] | Refusal:
        """The desk users of the administrator's own bank."""
        if not who.may_manage_users or who.bank_id is None:
            return NOT_ADMIN
        return await self.accounts.desk_users(who.bank_id)

    async def create_user(self, who: BrowserSession, email: str, full_name: str, role: str
                          ) -> NewDeskUser | Refusal:
        """A desk user of the administrator's own bank (the operator's rule: the activation
        code is shown once), audited with the person."""
        if not who.may_manage_users or who.bank_id is None:
            return NOT_ADMIN
        return await self.accounts.create_desk_user(who.bank_id, email, full_name, role,
                                                    who.actor)

    async def user(self, who: BrowserSession, user_id: str) -> DeskUserRecord | Refusal:
        """A desk user of the administrator's own bank; another bank's is ``not_found``."""
        if not who.may_manage_users or who.bank_id is None:
            return NOT_ADMIN
        async with self.d.store.read() as q:
            user = await q.desk_users.get(user_id)
        if user is None or user.bank_id != who.bank_id:
            return NO_DESK_USER
        return user

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

    async def deactivate_user(self, who: BrowserSession, user_id: str
                              ) -> DeskUserRecord | Refusal:
        """Deactivates a desk user of the administrator's own bank (their sessions end
        everywhere; their login is refused from then on), audited with the person. Another
        bank's user is ``not_found``; an administrator does not deactivate themselves (a bank
        would lose its last administrator that way: the operator does it)."""
        user = await self.user(who, user_id)
        if isinstance(user, Refusal):
            return user
        if user.id == who.user_id:
            return NOT_YOURSELF
        assert who.bank_id is not None
        done = await self.accounts.deactivate_desk_user(who.bank_id, user.id, who.actor)
        if isinstance(done, Refusal):
            return done
        return await self.user(who, user_id)
