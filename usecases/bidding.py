"""A bank's use cases: the pool, one round, offers and revisions, the masked book, the result.

The bid path is here: round terms from a per-process cache (immutable once opened), the
offer checked and priced by the pure rules, one book command. Visibility: a bank sees every
open round and the finished rounds it bid in; anything else does not exist for it (404).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from applications.package import package_in_force
from auction.apr import apr_e4_memo
from auction.book import BookView, Idem
from auction.model import (
    RATE_SCALE,
    OfferTerms,
    OfferVersion,
    Outcome,
    RoundState,
    RoundTerms,
    SubmitResult,
    ms_to_dt,
)
from auction.ranking import fits
from auction.rules import FieldError, TenorLimits, book_access, new_ref, validate_offer
from persistence.records import AcceptanceRecord, ClosingRecord, RoundRecord
from usecases.context import Deps
from usecases.durability import Durability
from usecases.outcomes import NOT_FOUND_ROUND, Draft, Refusal, invalid
from usecases.preferences import BankCodes, for_bank
from usecases.security import new_id

TERMS_CACHE = 20_000  # rounds whose terms a process keeps


#: an offer as the request gave it: the terms that parsed, by their wire names (``annual_rate``
#: in percent x 10^4, money in minor units, ``currency`` when sent), and the fields that did not
OfferDraft = Draft

#: the wire names of the terms, in the order of ``OfferTerms``' fields
_TERMS = ("annual_rate", "amount", "tenor_months", "grace_months", "repayment_every_months",
          "upfront_fee", "assumes_export_commitment", "conditions")
#: what a field that did not parse stands in as, so the round rules can check the others
_NEUTRAL: Mapping[str, Any] = {"annual_rate": 10 * RATE_SCALE, "grace_months": 0,
                                "repayment_every_months": 1, "upfront_fee": 0,
                                "assumes_export_commitment": False, "conditions": ""}


@dataclass(frozen=True)
class RoundPage:
    rounds: list[tuple[RoundRecord, bool]]  # (round, this bank has an offer in it)
    next_after: tuple[int, str] | None  # keyset of the next page


@dataclass(frozen=True)
class RoundDetail:
    round: RoundRecord
    has_bid: bool
    my_offers: list[tuple[OfferVersion, int | None]]  # (current version, rank when live)


@dataclass(frozen=True)
class Accepted:
    """An offer (or revision) the book acknowledged: a commitment."""

    offer: OfferVersion
    rank: int | None
    replayed: bool = False  # the answer to an earlier request with the same Idempotency-Key


@dataclass(frozen=True)
class BookSeen:
    view: BookView
    server_time_ms: int


@dataclass(frozen=True)
class BankResult:
    round: RoundRecord
    closing: ClosingRecord
    acceptance: AcceptanceRecord | None
    mine: list[tuple[int, OfferVersion]] = field(default_factory=list)  # (final rank, version)


class Terms:
    """Round terms and the tenor limits of the round's loan type under the guarantee package
    in force when it opened. Both never change once opened: cached per process."""

    def __init__(self, deps: Deps) -> None:
        self.d = deps
        self._cache: OrderedDict[str, tuple[RoundTerms, TenorLimits]] = OrderedDict()

    async def get(self, round_id: str) -> tuple[RoundTerms, TenorLimits] | None:
        got = self._cache.get(round_id)
        if got is None:
            async with self.d.store.read() as q:
                row = await q.rounds.get(round_id)
            if row is None:
                return None
            got = self.remember(row.terms)
        return got

    def remember(self, t: RoundTerms) -> tuple[RoundTerms, TenorLimits]:
        limits = package_in_force(ms_to_dt(t.opened_at_ms)).loan_types[t.loan_type]
        self._cache[t.round_id] = (t, limits)
        if len(self._cache) > TERMS_CACHE:
            self._cache.popitem(last=False)
        return t, limits


class Bidding:
    def __init__(self, deps: Deps, terms: Terms, durability: Durability) -> None:
        self.d = deps
        self.terms = terms
        self.durability = durability
        self.codes = BankCodes(deps)

    # -- visibility ----------------------------------------------------------------------
    async def _visible(self, bank_id: str, round_id: str) -> tuple[RoundRecord, bool] | Refusal:
        """A bank sees every open round (the pool) and the finished rounds it bid in."""
        async with self.d.store.read() as q:
            row = await q.rounds.get(round_id)
        if row is None:
            return NOT_FOUND_ROUND
        has = (await self._has_bid(bank_id, [row]))[0]
        if row.state != RoundState.OPEN.value and not has:
            return NOT_FOUND_ROUND
        return await self.codes.mask(row, bank_id), has

    async def _has_bid(self, bank_id: str, rows: Sequence[RoundRecord]) -> list[bool]:
        """Open rounds answer from the live book (one round trip), finished ones from SQL."""
        out = [False] * len(rows)
        live = [i for i, r in enumerate(rows) if r.state == RoundState.OPEN.value]
        for i, has in zip(live, await self.d.book.have_bid([rows[i].id for i in live], bank_id),
                          strict=True):
            out[i] = has
        done = [i for i, r in enumerate(rows) if r.state != RoundState.OPEN.value]
        if done:
            async with self.d.store.read() as q:
                bid = await q.offers.rounds_bid_by(bank_id, [rows[i].id for i in done])
            for i in done:
                out[i] = rows[i].id in bid
        return out

    async def pool(self, bank_id: str, state: str, limit: int,
                   after: tuple[int, str] | None) -> RoundPage:
        """The pool (state open: every open round) or the finished rounds this bank bid in."""
        async with self.d.store.read() as q:
            rows = await q.rounds.page([state], limit + 1, after,
                                       bidder=None if state == RoundState.OPEN.value else bank_id)
        page = rows[:limit]
        has = await self._has_bid(bank_id, page)
        nxt = (page[-1].closes_at, page[-1].id) if len(rows) > limit else None
        code = await self.codes.of(bank_id)
        return RoundPage([(for_bank(r, code), h) for r, h in zip(page, has, strict=True)], nxt)

    async def round(self, bank_id: str, round_id: str) -> RoundDetail | Refusal:
        seen = await self._visible(bank_id, round_id)
        if isinstance(seen, Refusal):
            return seen
        row, has = seen
        mine: list[tuple[OfferVersion, int | None]] = []
        if has:
            live = row.state in (RoundState.OPEN.value, RoundState.CLOSED.value)
            view = await self.d.book.view(row.id, bank_id) if live else None
            if view is not None:
                mine = [(o, i + 1) for i, o in enumerate(view.offers) if o.bank_id == bank_id]
            else:
                async with self.d.store.read() as q:
                    latest = {v.offer_id: v for v in await q.offers.of_round(row.id, bank_id)}
                mine = [(v, None) for v in latest.values()]
        return RoundDetail(row, has, mine)

    async def history(self, bank_id: str, round_id: str) -> list[OfferVersion] | Refusal:
        """Every version of this bank's own offers in the round that SQL holds (the
        persister copies a version within a fraction of a second), oldest first."""
        seen = await self._visible(bank_id, round_id)
        if isinstance(seen, Refusal):
            return seen
        async with self.d.store.read() as q:
            return await q.offers.of_round(round_id, bank_id)

    # -- offers --------------------------------------------------------------------------
    async def submit(self, bank_id: str, round_id: str, draft: OfferDraft,
                     idem: Idem | None) -> Accepted | Refusal:
        return await self._bid(bank_id, round_id, None, draft, idem)

    async def revise(self, bank_id: str, round_id: str, offer_id: str, draft: OfferDraft,
                     idem: Idem | None) -> Accepted | Refusal:
        return await self._bid(bank_id, round_id, offer_id, draft, idem)

    async def _bid(self, bank_id: str, round_id: str, offer_id: str | None, draft: OfferDraft,
                   idem: Idem | None) -> Accepted | Refusal:
        got = await self.terms.get(round_id)
        if got is None:
            return NOT_FOUND_ROUND
        rnd, limits = got
        priced = check_offer(draft, rnd, limits)
        if isinstance(priced, Refusal):
            # the round's rules are named only to a bank the round exists for
            finished = self.d.clock() >= rnd.closes_at_ms
            return NOT_FOUND_ROUND if finished and await self._never_bid(bank_id, round_id) \
                else priced
        terms, apr = priced
        for attempt in range(2):
            if offer_id is None:
                res = await self.d.book.submit(round_id, bank_id, new_id("off"), new_ref(),
                                               terms, apr, idem,
                                               self.d.policy.max_offers_per_bank)
            else:
                res = await self.d.book.revise(round_id, bank_id, offer_id, terms, apr, idem)
            # a round Redis lost is rebuilt from SQL on the spot, then the command runs again
            if res.outcome is not Outcome.ROUND_UNKNOWN or attempt \
                    or not await self.durability.restore_round(round_id):
                break
        if res.outcome is Outcome.ROUND_CLOSED and await self._never_bid(bank_id, round_id):
            return NOT_FOUND_ROUND  # a finished round it never bid in does not exist for it
        return _accepted(res, self.d.policy.max_offers_per_bank)

    async def _never_bid(self, bank_id: str, round_id: str) -> bool:
        """A finished round this bank never bid in does not exist for it
        (``auction.rules.book_access``): neither its state nor its rules are named to it.
        Read only on a refusal."""
        return book_access(RoundState.CLOSED, await self.d.book.has_bid(round_id, bank_id)) \
            == "not_found"

    # -- the book and the result -----------------------------------------------------------
    async def book(self, bank_id: str, round_id: str) -> BookSeen | Refusal:
        if await self.terms.get(round_id) is None:
            return NOT_FOUND_ROUND
        view = await self.d.book.view(round_id, bank_id)
        if view is None and await self.durability.restore_round(round_id):
            view = await self.d.book.view(round_id, bank_id)
        if view is None:
            return NOT_FOUND_ROUND
        refused = book_access(view.state, view.viewer_label is not None)
        if refused == "not_found":
            return NOT_FOUND_ROUND
        if refused is not None:
            return Refusal(refused, "send an offer in this round to see its book")
        return BookSeen(view, self.d.clock())

    async def result(self, bank_id: str, round_id: str) -> BankResult | Refusal:
        seen = await self._visible(bank_id, round_id)
        if isinstance(seen, Refusal):
            return seen
        row, has = seen
        if row.state == RoundState.OPEN.value:
            return Refusal("round_open", "results are available after the round closes")
        if not has:
            return NOT_FOUND_ROUND
        async with self.d.store.read() as q:
            closing = await q.rounds.closing(row.id)
            acceptance = await q.rounds.acceptance(row.id)
            mine = await q.rounds.binding(row.id, bank_id)
        if closing is None:  # closed live, its record not yet written: still open to a bank
            return Refusal("round_open", "results are available after the round closes")
        return BankResult(row, closing, acceptance, mine)


# ----------------------------------------------------------------------------- pure checks
def check_offer(draft: OfferDraft, rnd: RoundTerms, limits: TenorLimits
                ) -> tuple[OfferTerms, int] | Refusal:
    """The offer's terms and its apr, or one refusal listing every offending field: the
    fields that did not parse, and the round rules over those that did."""
    errors = list(draft.errors)
    currency = draft.values.get("currency")
    if currency is not None and currency != rnd.currency:
        errors.append(FieldError("currency", "currency_mismatch",
                                 f"this round is in {rnd.currency}"))
    bad = {e.field for e in errors}
    neutral = {**_NEUTRAL, "amount": rnd.loan_amount, "tenor_months": rnd.tenor_months}
    given = draft.values
    terms = OfferTerms(*(given[name] if given.get(name) is not None and name not in bad
                         else neutral[name] for name in _TERMS))
    errors += [e for e in validate_offer(terms, rnd, limits) if e.field not in bad]
    if errors:
        return invalid(errors)
    return price(terms, rnd)


def price(terms: OfferTerms, rnd: RoundTerms) -> tuple[OfferTerms, int] | Refusal:
    """The all-in annual cost of valid terms, as a rank key can hold it."""
    try:
        apr = apr_e4_memo(terms.amount, terms.annual_rate_e4, terms.tenor_months,
                          terms.grace_months, terms.repayment_every_months, terms.upfront_fee,
                          rnd.guarantee_rate_e4)
        if not fits(apr):
            raise ValueError(f"{apr / 10_000:.0f} % a year is beyond any sane offer")
    except (ValueError, ArithmeticError) as e:  # decimal.InvalidOperation on huge values
        return invalid([FieldError("annual_rate", "no_apr",
                                   f"the offer has no meaningful APR: {e}")])
    return terms, apr


def _accepted(res: SubmitResult, max_offers: int) -> Accepted | Refusal:
    """A book command's answer as the use case's outcome."""
    if res.outcome in (Outcome.OK, Outcome.IDEMPOTENCY_REPLAY):
        assert res.offer is not None
        return Accepted(res.offer, res.rank, res.outcome is Outcome.IDEMPOTENCY_REPLAY)
    if res.outcome is Outcome.ROUND_CLOSED:
        return Refusal("round_closed", "the round's deadline has passed")
    if res.outcome is Outcome.OFFER_LIMIT:
        return Refusal("offer_limit", f"a bank may keep at most {max_offers} live offers in "
                                      "a round: revise one of yours instead")
    if res.outcome is Outcome.IDEMPOTENCY_MISMATCH:
        return Refusal("idempotency_mismatch",
                       "this Idempotency-Key was used with a different request")
    return Refusal("not_found", "no such offer in this round")
