"""The SQL side: binding offers, closing records with reference numbers, acceptances, audit.

Every method is one transaction. Writes that may race across gateway processes are made
idempotent by unique constraints and conditional updates, never by in-process locks.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, Sequence

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from stdnum import luhn

from auction.book import Event
from auction.model import OfferTerms, OfferVersion, RoundState, RoundTerms
from persistence.applications_store import record_accepted_guarantee
from persistence.tables import (
    acceptances,
    audit_log,
    banks,
    binding_offers,
    exporter_users,
    offer_versions,
    round_closings,
    rounds,
)


class StoreError(Exception):
    """Infrastructure failure or broken invariant in the SQL store."""


class _StaleBatch(Exception):
    """The events of a batch are no longer the live ones: roll the batch back."""


def reference_number(closing_id: int, year: int) -> str:
    """Human-readable offer reference number (Teklif Referans Numarası) with a Luhn check
    digit over its digits, e.g. ``IGE-2026-000042-6``."""
    digits = f"{year:04d}{closing_id:06d}"
    return f"IGE-{year:04d}-{closing_id:06d}-{luhn.calc_check_digit(digits)}"


def is_valid_reference(ref: str) -> bool:
    parts = ref.split("-")
    if len(parts) != 4 or parts[0] != "IGE":
        return False
    return luhn.is_valid(parts[1] + parts[2] + parts[3])


@dataclass(frozen=True)
class Acceptance:
    ok: bool
    code: str = ""  # "" | binding_expired | already_accepted | offer_unknown | round_open


def _row_to_version(r: Any) -> OfferVersion:
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


def round_terms(row: Any) -> RoundTerms:
    return RoundTerms(row.id, row.currency, row.loan_type, row.loan_amount, row.guarantee_amount,
                      row.tenor_months, row.grace_months, row.export_commitment, row.opened_at,
                      row.closes_at)


class Store:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    # -- audit ------------------------------------------------------------------------
    @staticmethod
    async def _audit(conn: AsyncConnection, at: int, actor: str, action: str,
                     round_id: str | None, detail: dict[str, Any]) -> None:
        await conn.execute(insert(audit_log).values(at=at, actor=actor, action=action,
                                                    round_id=round_id, detail=detail))

    async def audit(self, at: int, actor: str, action: str, round_id: str | None,
                    detail: dict[str, Any]) -> None:
        async with self.engine.begin() as conn:
            await self._audit(conn, at, actor, action, round_id, detail)

    async def list_audit(self, round_id: str | None, limit: int = 1000,
                         after_id: int = 0) -> list[dict[str, Any]]:
        q = select(audit_log).where(audit_log.c.id > after_id).order_by(audit_log.c.id).limit(limit)
        if round_id:
            q = q.where(audit_log.c.round_id == round_id)
        async with self.engine.connect() as conn:
            return [dict(r._mapping) for r in await conn.execute(q)]

    # -- banks ------------------------------------------------------------------------
    async def create_bank(self, bank_id: str, code: str, name: str, client_id: str,
                          secret_hash: str, now: int, actor: str) -> bool:
        try:
            async with self.engine.begin() as conn:
                await conn.execute(insert(banks).values(
                    id=bank_id, code=code, name=name, client_id=client_id,
                    secret_hash=secret_hash, active=True, created_at=now))
                await self._audit(conn, now, actor, "bank_created", None,
                                  {"bank_id": bank_id, "bank_code": code, "name": name})
        except IntegrityError:
            return False
        return True

    async def bank_by_client_id(self, client_id: str) -> Any:
        async with self.engine.connect() as conn:
            return (await conn.execute(select(banks).where(banks.c.client_id == client_id))).first()

    async def all_banks(self) -> list[Any]:
        async with self.engine.connect() as conn:
            return list(await conn.execute(select(banks).order_by(banks.c.code)))

    # -- exporters --------------------------------------------------------------------
    async def create_exporter(self, row: dict[str, Any], actor: str) -> bool:
        try:
            async with self.engine.begin() as conn:
                await conn.execute(insert(exporter_users).values(**row))
                await self._audit(conn, row["created_at"], actor, "exporter_registered", None,
                                  {"user_id": row["id"]})
        except IntegrityError:
            return False
        return True

    async def exporter_by_email(self, email: str) -> Any:
        async with self.engine.connect() as conn:
            return (await conn.execute(
                select(exporter_users).where(exporter_users.c.email == email))).first()

    async def update_exporter(self, user_id: str, **values: Any) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(update(exporter_users).where(exporter_users.c.id == user_id)
                               .values(**values))

    # -- rounds -----------------------------------------------------------------------
    async def insert_round(self, terms: RoundTerms, company: dict[str, Any],
                           assessment: dict[str, Any] | None, exporter_user_id: str | None,
                           application_id: str | None, labels: list[str], actor: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(insert(rounds).values(
                id=terms.round_id, state=RoundState.OPEN.value, opened_at=terms.opened_at_ms,
                closes_at=terms.closes_at_ms, currency=terms.currency, loan_type=terms.loan_type,
                loan_amount=terms.loan_amount, guarantee_amount=terms.guarantee_amount,
                tenor_months=terms.tenor_months, grace_months=terms.grace_months,
                export_commitment=terms.export_commitment, company=company,
                assessment=assessment, exporter_user_id=exporter_user_id,
                application_id=application_id, label_pool=labels, persisted_seq=0,
                created_at=terms.opened_at_ms))
            await self._audit(conn, terms.opened_at_ms, actor, "round_opened", terms.round_id,
                              {"closes_at": terms.closes_at_ms, "currency": terms.currency,
                               "loan_amount": terms.loan_amount})

    async def get_round(self, round_id: str) -> Any:
        async with self.engine.connect() as conn:
            return (await conn.execute(select(rounds).where(rounds.c.id == round_id))).first()

    async def round_by_application(self, application_id: str) -> Any:
        async with self.engine.connect() as conn:
            return (await conn.execute(
                select(rounds).where(rounds.c.application_id == application_id))).first()

    async def list_rounds(self, states: Sequence[str], limit: int, after: tuple[int, str] | None,
                          bidder: str | None = None) -> list[Any]:
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
        async with self.engine.connect() as conn:
            return list(await conn.execute(q))

    async def rounds_with_offers_from(self, bank_id: str, round_ids: Sequence[str]) -> set[str]:
        q = select(offer_versions.c.round_id).distinct().where(
            offer_versions.c.bank_id == bank_id, offer_versions.c.round_id.in_(list(round_ids)))
        async with self.engine.connect() as conn:
            return {r.round_id for r in await conn.execute(q)}

    async def live_round_ids(self) -> list[tuple[str, int]]:
        """(round_id, persisted_seq) of every round whose Redis state still matters."""
        q = select(rounds.c.id, rounds.c.persisted_seq).where(
            rounds.c.state.in_([RoundState.OPEN.value, RoundState.CLOSED.value]))
        async with self.engine.connect() as conn:
            return [(r.id, r.persisted_seq) for r in await conn.execute(q)]

    # -- offer versions (the persister) ----------------------------------------------
    async def persist_events(self, round_id: str, from_seq: int, events: list[Event],
                             still_current: Callable[[], Awaitable[bool]] | None = None) -> bool:
        """Copy events after ``from_seq`` into SQL. Conditional on persisted_seq == from_seq so
        that two persisters can never both write a batch; returns False if someone else did.

        ``still_current`` is asked while the round's row is locked: False (the live book was
        rebuilt from SQL since the events were read, see ``round_snapshot``) rolls back."""
        todo = [e for e in events if e.seq > from_seq]
        if not todo:
            return True
        last = todo[-1].seq
        try:
            async with self.engine.begin() as conn:
                res = await conn.execute(update(rounds).where(
                    rounds.c.id == round_id, rounds.c.persisted_seq == from_seq)
                    .values(persisted_seq=last))
                if res.rowcount != 1:
                    return False
                if still_current is not None and not await still_current():
                    raise _StaleBatch
                quotes = [e.offer for e in todo if e.offer is not None]
                if quotes:
                    await conn.execute(insert(offer_versions), [_version_row(v) for v in quotes])
                    await conn.execute(insert(audit_log), [
                        dict(at=v.accepted_at_ms, actor=f"bank:{v.bank_id}",
                             action="offer_submitted" if v.version == 1 else "offer_revised",
                             round_id=round_id,
                             detail={"offer_id": v.offer_id, "version": v.version, "seq": v.seq,
                                     "apr_e4": v.apr_e4, **v.terms.to_record()})
                        for v in quotes])
        except (IntegrityError, _StaleBatch):
            return False
        return True

    @asynccontextmanager
    async def round_snapshot(self, round_id: str
                             ) -> AsyncIterator[tuple[Any, list[OfferVersion], Any]]:
        """(round row, versions, closing) read under the round's row lock, which is held until
        the block ends: a persister batch cannot land between this read and what the caller
        builds from it (a live book rebuilt from SQL)."""
        async with self.engine.begin() as conn:
            await conn.execute(update(rounds).where(rounds.c.id == round_id)
                               .values(persisted_seq=rounds.c.persisted_seq))
            row = (await conn.execute(select(rounds).where(rounds.c.id == round_id))).first()
            versions = [_row_to_version(r) for r in await conn.execute(
                select(offer_versions).where(offer_versions.c.round_id == round_id)
                .order_by(offer_versions.c.seq))]
            closing = (await conn.execute(select(round_closings).where(
                round_closings.c.round_id == round_id))).first()
            yield row, versions, closing

    async def versions(self, round_id: str, bank_id: str | None = None) -> list[OfferVersion]:
        q = select(offer_versions).where(offer_versions.c.round_id == round_id)
        if bank_id is not None:
            q = q.where(offer_versions.c.bank_id == bank_id)
        async with self.engine.connect() as conn:
            rows = await conn.execute(q.order_by(offer_versions.c.seq))
            return [_row_to_version(r) for r in rows]

    # -- close ------------------------------------------------------------------------
    async def closing(self, round_id: str) -> Any:
        async with self.engine.connect() as conn:
            return (await conn.execute(
                select(round_closings).where(round_closings.c.round_id == round_id))).first()

    async def record_close(self, round_id: str, closed_at: int, binding_until: int,
                           final_seq: int, ranked_offers: list[OfferVersion], year: int) -> bool:
        """The one closing record: reference number, binding offers and binding_until in one
        transaction. Returns False when another process already wrote it (nothing changes)."""
        try:
            async with self.engine.begin() as conn:
                res = await conn.execute(update(rounds).where(
                    rounds.c.id == round_id, rounds.c.state == RoundState.OPEN.value)
                    .values(state=RoundState.CLOSED.value, closed_at=closed_at,
                            binding_until=binding_until))
                if res.rowcount != 1:
                    return False
                ins = await conn.execute(insert(round_closings).values(
                    round_id=round_id, reference_number=f"pending:{round_id}",
                    closed_at=closed_at, binding_until=binding_until, final_seq=final_seq))
                closing_id = ins.inserted_primary_key[0]
                ref = reference_number(int(closing_id), year)
                await conn.execute(update(round_closings).where(round_closings.c.id == closing_id)
                                   .values(reference_number=ref))
                if ranked_offers:
                    await conn.execute(insert(binding_offers), [
                        dict(round_id=round_id, offer_id=o.offer_id, bank_id=o.bank_id,
                             version=o.version, final_rank=i + 1)
                        for i, o in enumerate(ranked_offers)])
                await self._audit(conn, closed_at, "system", "round_closed", round_id, {
                    "reference_number": ref, "binding_until": binding_until,
                    "final_seq": final_seq, "offers": len(ranked_offers)})
        except IntegrityError:
            return False
        return True

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
        async with self.engine.connect() as conn:
            rows = await conn.execute(q.order_by(binding_offers.c.final_rank))
            return [(r.final_rank, _row_to_version(r)) for r in rows]

    # -- acceptance and lapse ----------------------------------------------------------
    async def accept(self, round_id: str, offer_id: str, user_id: str, now: int) -> Acceptance:
        try:
            async with self.engine.begin() as conn:
                r = (await conn.execute(select(rounds).where(rounds.c.id == round_id))).first()
                if r is None:
                    return Acceptance(False, "not_found")
                if r.state == RoundState.OPEN.value:
                    return Acceptance(False, "round_open")
                if r.state == RoundState.ACCEPTED.value:
                    return Acceptance(False, "already_accepted")
                if r.state == RoundState.LAPSED.value or now >= r.binding_until:
                    return Acceptance(False, "binding_expired")
                b = (await conn.execute(select(binding_offers).where(
                    binding_offers.c.round_id == round_id,
                    binding_offers.c.offer_id == offer_id))).first()
                if b is None:
                    return Acceptance(False, "offer_unknown")
                res = await conn.execute(update(rounds).where(
                    rounds.c.id == round_id, rounds.c.state == RoundState.CLOSED.value)
                    .values(state=RoundState.ACCEPTED.value))
                if res.rowcount != 1:
                    return Acceptance(False, "already_accepted")
                await conn.execute(insert(acceptances).values(
                    round_id=round_id, offer_id=offer_id, exporter_user_id=user_id,
                    accepted_at=now))
                # the accepted guarantee joins the exposure ledger in the same transaction
                await record_accepted_guarantee(conn, r, b, now)
                await self._audit(conn, now, f"exporter:{user_id}", "offer_accepted", round_id,
                                  {"offer_id": offer_id, "bank_id": b.bank_id,
                                   "version": b.version})
        except IntegrityError:
            return Acceptance(False, "already_accepted")
        return Acceptance(True)

    async def acceptance(self, round_id: str) -> Any:
        async with self.engine.connect() as conn:
            return (await conn.execute(
                select(acceptances).where(acceptances.c.round_id == round_id))).first()

    async def lapse_due(self, now: int) -> list[str]:
        async with self.engine.connect() as conn:
            due = [r.id for r in await conn.execute(select(rounds.c.id).where(
                rounds.c.state == RoundState.CLOSED.value, rounds.c.binding_until <= now))]
        lapsed = []
        for rid in due:
            async with self.engine.begin() as conn:
                res = await conn.execute(update(rounds).where(
                    rounds.c.id == rid, rounds.c.state == RoundState.CLOSED.value)
                    .values(state=RoundState.LAPSED.value))
                if res.rowcount == 1:
                    await self._audit(conn, now, "system", "round_lapsed", rid, {})
                    lapsed.append(rid)
        return lapsed

    async def count(self, table: Any) -> int:
        async with self.engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())
