"""Rounds, their offer versions, closing records with reference numbers, binding offers and
acceptances (repositories of a unit of work)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    and_,
    bindparam,
    case,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from auction.book import Event
from auction.model import OfferTerms, OfferVersion, RoundState, RoundTerms
from auction.rules import can_transition
from persistence.records import (
    AcceptanceRecord,
    ClosingRecord,
    RoundRecord,
    from_row,
)
from persistence.reference import reference_number
from persistence.tables import (
    acceptances,
    binding_offers,
    offer_versions,
    round_closings,
    rounds,
)


def version_of(r: Any) -> OfferVersion:
    return OfferVersion(
        round_id=r.round_id, offer_id=r.offer_id, ref=r.ref, bank_id=r.bank_id, label=r.label,
        version=r.version, seq=r.seq, accepted_at_ms=r.accepted_at, apr_e4=r.apr_e4,
        terms=OfferTerms(r.annual_rate_e4, r.amount, r.tenor_months, r.grace_months,
                         r.repayment_every_months, r.upfront_fee, r.assumes_export_commitment,
                         r.conditions),
    )


def _version_row(v: OfferVersion) -> dict[str, Any]:
    t = v.terms
    return dict(
        round_id=v.round_id, seq=v.seq, offer_id=v.offer_id, ref=v.ref, bank_id=v.bank_id,
        label=v.label, version=v.version, apr_e4=v.apr_e4, annual_rate_e4=t.annual_rate_e4,
        amount=t.amount, tenor_months=t.tenor_months, grace_months=t.grace_months,
        repayment_every_months=t.repayment_every_months, upfront_fee=t.upfront_fee,
        assumes_export_commitment=t.assumes_export_commitment, conditions=t.conditions,
        accepted_at=v.accepted_at_ms)


@dataclass(frozen=True)
class CloseRow:
    """What a closing record is made of (``Rounds.record_closes``)."""

    round_id: str
    closed_at: int
    binding_until: int
    final_seq: int
    ranked_offers: Sequence[OfferVersion]
    year: int


class BatchMoved(Exception):
    """A batched ``persist_batches`` found a round not where it was read."""


class Rounds:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def _move(self, round_id: str, src: RoundState, dst: RoundState,
                    **values: Any) -> bool:
        """One step of the round's state machine (auction.rules.can_transition), made only if
        the round is still in ``src``: of two processes racing, one moves it."""
        if not can_transition(src, dst):
            raise ValueError(f"a round never goes from {src.value} to {dst.value}")
        res = await self.conn.execute(update(rounds).where(
            rounds.c.id == round_id, rounds.c.state == src.value)
            .values(state=dst.value, **values))
        return bool(res.rowcount == 1)

    # -- opening and reading -------------------------------------------------------------
    async def add(self, terms: RoundTerms, company: dict[str, Any],
                  assessment: dict[str, Any] | None, exporter_user_id: str | None,
                  application_id: str | None, labels: Sequence[str]) -> None:
        await self.conn.execute(insert(rounds).values(
            id=terms.round_id, state=RoundState.OPEN.value, opened_at=terms.opened_at_ms,
            closes_at=terms.closes_at_ms, currency=terms.currency, loan_type=terms.loan_type,
            loan_amount=terms.loan_amount, guarantee_amount=terms.guarantee_amount,
            tenor_months=terms.tenor_months, grace_months=terms.grace_months,
            export_commitment=terms.export_commitment, company=company,
            assessment=assessment, exporter_user_id=exporter_user_id,
            application_id=application_id, label_pool=list(labels), persisted_seq=0,
            created_at=terms.opened_at_ms))

    async def get(self, round_id: str) -> RoundRecord | None:
        row = (await self.conn.execute(select(rounds).where(rounds.c.id == round_id))).first()
        return None if row is None else from_row(RoundRecord, row)

    async def get_many(self, round_ids: Sequence[str]) -> dict[str, RoundRecord]:
        """``get`` of many rounds in one query (rounds SQL does not know are left out)."""
        if not round_ids:
            return {}
        q = select(rounds).where(rounds.c.id.in_(list(round_ids)))
        return {r.id: from_row(RoundRecord, r) for r in await self.conn.execute(q)}

    async def persisted_seqs(self, round_ids: Sequence[str]) -> dict[str, int]:
        """The seq SQL holds of each round (rounds SQL does not know are left out)."""
        if not round_ids:
            return {}
        q = select(rounds.c.id, rounds.c.persisted_seq).where(rounds.c.id.in_(list(round_ids)))
        return {r.id: int(r.persisted_seq) for r in await self.conn.execute(q)}

    async def lock(self, round_id: str) -> RoundRecord | None:
        """The round, read under its row lock, held until the unit ends: a persister batch
        cannot land between this read and what the caller builds from it."""
        await self.conn.execute(update(rounds).where(rounds.c.id == round_id)
                                .values(persisted_seq=rounds.c.persisted_seq))
        return await self.get(round_id)

    async def by_application(self, application_id: str) -> RoundRecord | None:
        row = (await self.conn.execute(
            select(rounds).where(rounds.c.application_id == application_id))).first()
        return None if row is None else from_row(RoundRecord, row)

    async def page(self, states: Sequence[str], limit: int, after: tuple[int, str] | None,
                   bidder: str | None = None) -> list[RoundRecord]:
        """Rounds in ``states`` ordered by (closes_at, id), keyset-paginated after ``after``;
        with ``bidder``, only the rounds in which that bank has an offer."""
        q = select(rounds).where(rounds.c.state.in_(list(states)))
        if bidder is not None:
            q = q.where(rounds.c.id.in_(select(offer_versions.c.round_id).where(
                offer_versions.c.bank_id == bidder)))
        if after is not None:
            q = q.where((rounds.c.closes_at > after[0])
                        | (and_(rounds.c.closes_at == after[0], rounds.c.id > after[1])))
        q = q.order_by(rounds.c.closes_at, rounds.c.id).limit(limit)
        return [from_row(RoundRecord, r) for r in await self.conn.execute(q)]

    async def live(self) -> list[tuple[str, int]]:
        """(round_id, persisted_seq) of every round whose live state still matters."""
        q = select(rounds.c.id, rounds.c.persisted_seq).where(
            rounds.c.state.in_([RoundState.OPEN.value, RoundState.CLOSED.value]))
        return [(r.id, r.persisted_seq) for r in await self.conn.execute(q)]

    async def any_live(self) -> bool:
        """Whether any round's live state still matters (see ``live``)."""
        q = select(rounds.c.id).where(
            rounds.c.state.in_([RoundState.OPEN.value, RoundState.CLOSED.value])).limit(1)
        return (await self.conn.execute(q)).first() is not None

    async def overdue(self, now: int, limit: int) -> dict[str, int]:
        """Open rounds past their deadline (round_id -> closes_at), the earliest first."""
        q = select(rounds.c.id, rounds.c.closes_at).where(
            rounds.c.state == RoundState.OPEN.value, rounds.c.closes_at <= now
        ).order_by(rounds.c.closes_at, rounds.c.id).limit(limit)
        return {r.id: int(r.closes_at) for r in await self.conn.execute(q)}

    # -- closing -----------------------------------------------------------------------
    async def record_close(self, round_id: str, closed_at: int, binding_until: int,
                           final_seq: int,
                    ranked_offers: Sequence[OfferVersion], year: int) -> str | None:
        """The one closing record: the round flips to closed, the reference number, the binding
        offers with their final ranks. Returns the reference number, or None when the round
        was no longer open (another process closed it: nothing changes)."""
        got = await self.record_closes([CloseRow(round_id, closed_at, binding_until, final_seq,
                                                 ranked_offers, year)])
        return got[round_id]

    async def record_closes(self, closes: Sequence[CloseRow]) -> dict[str, str | None]:
        """``record_close`` of many rounds in four statements, whatever their number: round_id
        -> its reference number, None where the round was no longer open (nothing of it
        changes)."""
        if not closes:
            return {}
        if not can_transition(RoundState.OPEN, RoundState.CLOSED):  # pragma: no cover
            raise ValueError("a round never goes from open to closed")
        by = {c.round_id: c for c in closes}

        def per_round(attr: str) -> Any:
            return case({rid: literal(getattr(c, attr), BigInteger) for rid, c in by.items()},
                        value=rounds.c.id)

        moved = {r.id for r in await self.conn.execute(
            update(rounds).where(rounds.c.id.in_(list(by)),
                                 rounds.c.state == RoundState.OPEN.value)
            .values(state=RoundState.CLOSED.value, closed_at=per_round("closed_at"),
                    binding_until=per_round("binding_until"))
            .returning(rounds.c.id))}
        todo = [c for c in closes if c.round_id in moved]
        refs: dict[str, str | None] = dict.fromkeys(by)
        if not todo:
            return refs
        ins = await self.conn.execute(
            insert(round_closings).returning(round_closings.c.id, round_closings.c.round_id,
                                             sort_by_parameter_order=True),
            [dict(round_id=c.round_id, reference_number=f"pending:{c.round_id}",
                  closed_at=c.closed_at, binding_until=c.binding_until, final_seq=c.final_seq)
             for c in todo])
        ids = {r.round_id: int(r.id) for r in ins}
        for c in todo:
            refs[c.round_id] = reference_number(ids[c.round_id], c.year)
        await self.conn.execute(
            update(round_closings).where(round_closings.c.id == bindparam("closing_id"))
            .values(reference_number=bindparam("ref")),
            [{"closing_id": ids[c.round_id], "ref": refs[c.round_id]} for c in todo])
        binding = [dict(round_id=c.round_id, offer_id=o.offer_id, bank_id=o.bank_id,
                        version=o.version, final_rank=i + 1)
                   for c in todo for i, o in enumerate(c.ranked_offers)]
        if binding:
            await self.conn.execute(insert(binding_offers), binding)
        return refs

    async def closing(self, round_id: str) -> ClosingRecord | None:
        row = (await self.conn.execute(
            select(round_closings).where(round_closings.c.round_id == round_id))).first()
        return None if row is None else from_row(ClosingRecord, row)

    async def binding(self, round_id: str, bank_id: str | None = None
                      ) -> list[tuple[int, OfferVersion]]:
        """(final_rank, version) of the binding offers, best first."""
        j = binding_offers.join(offer_versions, and_(
            offer_versions.c.offer_id == binding_offers.c.offer_id,
            offer_versions.c.version == binding_offers.c.version))
        q = select(binding_offers.c.final_rank, offer_versions).select_from(j).where(
            binding_offers.c.round_id == round_id)
        if bank_id is not None:
            q = q.where(binding_offers.c.bank_id == bank_id)
        rows = await self.conn.execute(q.order_by(binding_offers.c.final_rank))
        return [(r.final_rank, version_of(r)) for r in rows]

    async def binding_offer(self, round_id: str, offer_id: str) -> tuple[str, int] | None:
        """(bank_id, version) of one binding offer of the round, or None."""
        row = (await self.conn.execute(select(binding_offers).where(
            binding_offers.c.round_id == round_id,
            binding_offers.c.offer_id == offer_id))).first()
        return None if row is None else (row.bank_id, int(row.version))

    # -- acceptance and lapse ----------------------------------------------------------
    async def accept(self, round_id: str, offer_id: str, user_id: str, now: int) -> bool:
        """Closed -> accepted with the acceptance row; False if the round was not closed."""
        if not await self._move(round_id, RoundState.CLOSED, RoundState.ACCEPTED):
            return False
        await self.conn.execute(insert(acceptances).values(
            round_id=round_id, offer_id=offer_id, exporter_user_id=user_id, accepted_at=now))
        return True

    async def acceptance(self, round_id: str) -> AcceptanceRecord | None:
        row = (await self.conn.execute(
            select(acceptances).where(acceptances.c.round_id == round_id))).first()
        return None if row is None else from_row(AcceptanceRecord, row)

    async def past_binding(self, now: int) -> list[tuple[str, int]]:
        """(round_id, binding_until) of the closed rounds whose binding window may have ended
        by ``now`` (the candidates; auction.rules.has_lapsed decides)."""
        return [(r.id, int(r.binding_until)) for r in await self.conn.execute(
            select(rounds.c.id, rounds.c.binding_until).where(
                rounds.c.state == RoundState.CLOSED.value, rounds.c.binding_until <= now))]

    async def lapse(self, round_id: str) -> bool:
        """Closed -> lapsed; False if the round was no longer closed."""
        return await self._move(round_id, RoundState.CLOSED, RoundState.LAPSED)


class Offers:
    """Every acknowledged version of every offer, copied from the live book."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def persist(self, round_id: str, from_seq: int, events: Sequence[Event],
                      still_current: Callable[[], Awaitable[bool]] | None = None
                      ) -> list[OfferVersion] | None:
        """Copy the quotes of ``events`` after ``from_seq`` into SQL and move the round's
        persisted_seq to the last event's seq. Conditional on persisted_seq == from_seq, so
        two persisters never both write a batch: returns None (write nothing) if someone
        else did, or if ``still_current`` (asked while the round's row is locked) says the
        events are no longer the live ones. Returns the versions written."""
        todo = [e for e in events if e.seq > from_seq]
        if not todo:
            return []
        res = await self.conn.execute(update(rounds).where(
            rounds.c.id == round_id, rounds.c.persisted_seq == from_seq)
            .values(persisted_seq=todo[-1].seq))
        if res.rowcount != 1:
            return None
        if still_current is not None and not await still_current():
            return None
        quotes = [e.offer for e in todo if e.offer is not None]
        if quotes:
            await self.conn.execute(insert(offer_versions), [_version_row(v) for v in quotes])
        return quotes

    async def persist_batches(self, batches: Mapping[str, tuple[int, Sequence[Event]]],
                              one_by_one: bool = False) -> dict[str, list[OfferVersion]]:
        """``persist`` of several rounds in as few statements as the database allows: each
        round's batch (from_seq, events, all after from_seq) lands only if SQL holds exactly
        its from_seq. Returns the versions written per round; a round left out was written by
        someone else (nothing of it changed). Where the driver counts the rows of a batched
        UPDATE (SQLite), the rounds move in one statement and their versions go in one more,
        and ``BatchMoved`` says that some round was not where it was read (roll the unit back
        and call again ``one_by_one``); elsewhere one round at a time."""
        todo = {rid: (frm, evs) for rid, (frm, evs) in batches.items() if evs}
        if not todo:
            return {}
        if self.conn.dialect.supports_sane_multi_rowcount and len(todo) > 1 and not one_by_one:
            moved = await self.conn.execute(
                update(rounds).where(rounds.c.id == bindparam("rid"),
                                     rounds.c.persisted_seq == bindparam("frm"))
                .values(persisted_seq=bindparam("to")),
                [{"rid": rid, "frm": frm, "to": evs[-1].seq} for rid, (frm, evs) in todo.items()])
            if moved.rowcount != len(todo):
                # some round was not where it was read (another persister moved it): which one
                # cannot be told from here; the caller rolls back and goes one by one
                raise BatchMoved
            out = {rid: [e.offer for e in evs if e.offer is not None]
                   for rid, (_, evs) in todo.items()}
            rows = [_version_row(v) for vs in out.values() for v in vs]
            if rows:
                await self.conn.execute(insert(offer_versions), rows)
            return out
        written: dict[str, list[OfferVersion]] = {}
        for rid, (frm, evs) in todo.items():
            got = await self.persist(rid, frm, evs)
            if got is not None:
                written[rid] = got
        return written

    async def at_seqs(self, seqs: Mapping[str, int]) -> dict[str, tuple[str, int]]:
        """(offer_id, version) of the version SQL holds at each round's seq, for the rounds
        that hold one there (a seq of another event, a round's close, holds none)."""
        if not seqs:
            return {}
        rows = await self.conn.execute(
            select(offer_versions.c.round_id, offer_versions.c.offer_id,
                   offer_versions.c.version)
            .where(or_(*(and_(offer_versions.c.round_id == rid, offer_versions.c.seq == seq)
                         for rid, seq in seqs.items()))))
        return {r.round_id: (r.offer_id, int(r.version)) for r in rows}

    async def of_round(self, round_id: str, bank_id: str | None = None) -> list[OfferVersion]:
        q = select(offer_versions).where(offer_versions.c.round_id == round_id)
        if bank_id is not None:
            q = q.where(offer_versions.c.bank_id == bank_id)
        return [version_of(r) for r in await self.conn.execute(q.order_by(offer_versions.c.seq))]

    async def amount(self, offer_id: str, version: int) -> int | None:
        row = (await self.conn.execute(select(offer_versions.c.amount).where(
            offer_versions.c.offer_id == offer_id,
            offer_versions.c.version == version))).first()
        return None if row is None else int(row.amount)

    async def rounds_bid_by(self, bank_id: str, round_ids: Sequence[str]) -> set[str]:
        q = select(offer_versions.c.round_id).distinct().where(
            offer_versions.c.bank_id == bank_id, offer_versions.c.round_id.in_(list(round_ids)))
        return {r.round_id for r in await self.conn.execute(q)}

    async def count(self) -> int:
        return int((await self.conn.execute(
            select(func.count()).select_from(offer_versions))).scalar_one())
