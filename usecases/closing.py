"""Closing rounds exactly once, and lapsing binding windows.

The book flips a due round to closed exactly once, by its own clock (``Book.close``); then
every acknowledged offer is made sure to be in SQL, and one SQL unit writes the closing record:
the reference number, the binding offers with their final ranks, ``binding_until`` and the
audit row. A unique constraint and a conditional update make a second writer a no-op, and a
close interrupted by a crash is finished by whichever process next finds the round due.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from auction import calendar
from auction.buckets import bucket_of
from auction.bus import RoundFinalized
from auction.model import CloseResult, OfferVersion, Outcome, RoundState, dt_to_ms, ms_to_dt
from auction.rules import has_lapsed
from persistence.rounds import CloseRow
from persistence.store import Conflict
from usecases.context import Deps
from usecases.durability import UNIT_ROUNDS, Durability

log = logging.getLogger("ige.closing")

CLOSE_CONCURRENCY = 32  # rounds one process closes at once, one by one
UNITS_AT_ONCE = 3  # units of rounds (UNIT_ROUNDS each) one process closes at once
CLAIM_MS = 10_000  # a process's claim on a close; another process finishes it after this
PERSIST_WAIT_S = 0.01


@dataclass(frozen=True)
class Closed:
    """A round one call of ``close_batch`` closed."""

    round_id: str
    #: the closing record this call wrote: its reference number, and the time from the
    #: round's deadline to the record written (ms); None when it was there already (another
    #: process wrote it, or this call only finished the book's part)
    reference_number: str | None = None
    lag_ms: int | None = None


def _close_audit(round_id: str, ref: str, closed_at: int, binding_until: int, final_seq: int,
                 offers: int) -> dict[str, Any]:
    """The audit row of a closing record."""
    return {"at": closed_at, "actor": "system", "action": "round_closed",
            "round_id": round_id, "detail": {"reference_number": ref,
                                             "binding_until": binding_until,
                                             "final_seq": final_seq, "offers": offers}}


class Closing:
    def __init__(self, deps: Deps, durability: Durability) -> None:
        self.d = deps
        self.durability = durability

    async def finalize(self, round_id: str) -> CloseResult | None:
        """Close a due round: the book's flip (once), then the closing record (once). None
        when the round is unknown to SQL (it is dropped from the deadline index)."""
        return (await self._finalize(round_id))[0]

    async def _finalize(self, round_id: str) -> tuple[CloseResult | None, Closed | None]:
        """``finalize``'s answer, and what this call closed (None: nothing)."""
        cr = await self.d.book.close(round_id)
        if cr.outcome is Outcome.ROUND_UNKNOWN:
            if not await self.durability.restore_round(round_id):
                await self.d.book.unschedule(round_id)
                return None, None
            cr = await self.d.book.close(round_id)
        if cr.outcome is Outcome.NOT_DUE:
            return cr, None
        async with self.d.store.read() as q:
            row = await q.rounds.get(round_id)
        if row is None:
            return None, None
        if row.state == RoundState.OPEN.value:
            # binding_until counts from the scheduled deadline, not from when this ran
            closes_at = ms_to_dt(int(row.closes_at))
            binding = dt_to_ms(calendar.binding_until(closes_at, self.d.policy.calendar))
            # every acknowledged offer must be in SQL before the closing record
            seq = int(row.persisted_seq)
            # another process's batch may be landing: poll SQL until it holds the close
            while (seq := await self.durability.persist_round(round_id, seq)) < cr.seq:  # noqa: ASYNC110
                await asyncio.sleep(PERSIST_WAIT_S)
            year = closes_at.astimezone(calendar.ISTANBUL).year
            ref = await self.record(round_id, cr.closed_at_ms, binding, cr.seq, cr.offers, year)
            if ref is not None:
                lag = self.d.clock() - int(row.closes_at)
                await self.d.book.retire(round_id, self.d.policy.live_key_ttl_s)
                await self.d.bus.publish(RoundFinalized(round_id))
                return cr, Closed(round_id, ref, lag)
        await self.d.book.unschedule(round_id)
        return cr, Closed(round_id)

    async def record(self, round_id: str, closed_at: int, binding_until: int, final_seq: int,
                     ranked: Sequence[OfferVersion], year: int) -> str | None:
        """The one closing record and its audit row, in one unit; the reference number, or
        None when another process already wrote it (nothing changes)."""
        try:
            async with self.d.store.unit(serialized=True) as tx:
                ref = await tx.rounds.record_close(round_id, closed_at, binding_until, final_seq,
                                            ranked, year)
                if ref is None:
                    return None
                await tx.audit.add_many([_close_audit(round_id, ref, closed_at, binding_until,
                                                      final_seq, len(ranked))])
                await tx.commit()
        except Conflict:
            return None  # another process wrote it first
        return ref

    async def close_due(self, limit: int, buckets: Sequence[int] | None = None) -> int:
        """Close the rounds found due (at most ``limit``; of ``buckets``, None: all); returns
        how many this call closed."""
        return len(await self.close_batch(limit, buckets))

    async def close_batch(self, limit: int, buckets: Sequence[int] | None = None
                          ) -> list[Closed]:
        """``close_due``, telling which rounds this call closed and, for the closing records it
        wrote, their reference numbers and how long after the deadline they were written.

        Rounds sharing a deadline close together: one claim, one flip and one retirement
        command for all of them (each a pipeline: one round trip), their rows read in one
        query, and their closing records written ``UNIT_ROUNDS`` to a unit (one commit). A
        round whose book lost it, and every round of a unit that failed, go the way of
        ``finalize``, one at a time."""
        due = await self.d.book.due(limit, buckets)
        if not due:
            return []
        # a short claim so processes do not all close the same round; if the claimer dies,
        # the claim expires and another process completes the close
        token = secrets.token_hex(8)
        claims = await self.d.guards.acquire_many("close", due, token, CLAIM_MS)
        claimed = [rid for rid, ok in zip(due, claims, strict=True) if ok]
        try:
            flips = await self.d.book.close_many(claimed)
            alone = [rid for rid, cr in zip(claimed, flips, strict=True)
                     if cr.outcome is Outcome.ROUND_UNKNOWN]
            flipped = [(rid, cr) for rid, cr in zip(claimed, flips, strict=True)
                       if cr.outcome in (Outcome.OK, Outcome.ALREADY_CLOSED)]
            out: list[Closed] = []
            units = asyncio.Semaphore(UNITS_AT_ONCE)

            async def close_unit(unit: dict[str, CloseResult]) -> None:
                async with units:
                    try:
                        out.extend(await self._close_unit(unit))
                    except Exception as e:  # noqa: BLE001 - one failed unit must not stop the rest
                        log.warning("closing unit interrupted, one by one: %s",
                                    type(e).__name__)
                        alone.extend(unit)

            # units side by side: while one waits for its commit, the next reads and writes
            # Redis (the SQL units themselves take turns)
            await asyncio.gather(*(close_unit(dict(flipped[i:i + UNIT_ROUNDS]))
                                   for i in range(0, len(flipped), UNIT_ROUNDS)))
            gate = asyncio.Semaphore(CLOSE_CONCURRENCY)
            out += [c for c in await asyncio.gather(*(self._close_alone(rid, gate)
                                                       for rid in alone)) if c is not None]
            return out
        finally:
            await self.d.guards.release_many("close", claimed, token)

    async def _close_alone(self, rid: str, gate: asyncio.Semaphore) -> Closed | None:
        async with gate:
            try:
                cr, closed = await self._finalize(rid)
                done = cr is not None and cr.outcome is not Outcome.NOT_DUE
                return closed if done else None
            except Exception as e:  # noqa: BLE001 - one failed close must not stop the rest
                # the class only: a database error's text may quote the statement's values
                log.warning("close of %s interrupted: %s", rid, type(e).__name__)
                return None

    async def _close_unit(self, flipped: dict[str, CloseResult]) -> list[Closed]:
        """The SQL part of closing rounds the book has flipped: every acknowledged offer in
        SQL, then the closing records in one unit; then the rounds retired from the book and
        ``round_closed`` announced. A round whose offers cannot be made sure to be in SQL
        within the claim is left for the next pass (it stays due)."""
        async with self.d.store.read() as q:
            rows = await q.rounds.get_many(list(flipped))
        # a round SQL does not know is left alone (as by ``finalize``); one whose closing
        # record is there needs only to leave the deadline index
        done = [rid for rid, row in rows.items() if row.state != RoundState.OPEN.value]
        todo = {rid: row for rid, row in rows.items() if row.state == RoundState.OPEN.value}
        known = {rid: int(row.persisted_seq) for rid, row in todo.items()}
        give_up = time.monotonic() + CLAIM_MS / 2000
        while pending := [rid for rid in todo if known.get(rid, -1) < flipped[rid].seq]:
            wrote = await self.durability.persist_many(pending, known)
            if time.monotonic() > give_up:
                for rid in pending:
                    del todo[rid]
                break
            if not wrote.events:  # another process's batch may be landing: poll SQL
                await asyncio.sleep(PERSIST_WAIT_S)
        closes = []
        for rid, row in todo.items():
            cr = flipped[rid]
            # binding_until counts from the scheduled deadline, not from when this ran
            closes_at = ms_to_dt(int(row.closes_at))
            binding = dt_to_ms(calendar.binding_until(closes_at, self.d.policy.calendar))
            year = closes_at.astimezone(calendar.ISTANBUL).year
            closes.append(CloseRow(rid, cr.closed_at_ms, binding, cr.seq, cr.offers, year))
        refs = await self.record_many(closes)
        now = self.d.clock()
        written = [rid for rid, ref in refs.items() if ref is not None]
        await self.d.book.retire_many(written, self.d.policy.live_key_ttl_s)
        await self.d.bus.publish_many([RoundFinalized(rid) for rid in written])
        for rid in done + [rid for rid, ref in refs.items() if ref is None]:
            await self.d.book.unschedule(rid)
        return ([Closed(rid, ref, now - int(todo[rid].closes_at)) for rid, ref in refs.items()
                 if ref is not None]
                + [Closed(rid) for rid in done]
                + [Closed(rid) for rid, ref in refs.items() if ref is None])

    async def record_many(self, closes: Sequence[CloseRow]) -> dict[str, str | None]:
        """``record`` of many rounds in one unit: round_id -> its reference number, None where
        another process had written it. A conflict with another writer makes it ``record``
        them one by one."""
        if not closes:
            return {}
        try:
            async with self.d.store.unit(serialized=True) as tx:
                refs = await tx.rounds.record_closes(closes)
                await tx.audit.add_many([
                    _close_audit(c.round_id, ref, c.closed_at, c.binding_until, c.final_seq,
                                 len(c.ranked_offers))
                    for c in closes if (ref := refs[c.round_id]) is not None])
                await tx.commit()
        except Conflict:
            return {c.round_id: await self.record(c.round_id, c.closed_at, c.binding_until,
                                                  c.final_seq, c.ranked_offers, c.year)
                    for c in closes}
        return refs

    async def lapse_due(self, buckets: Sequence[int] | None = None) -> list[str]:
        """Closed rounds (of ``buckets``, None: all) past their binding window become lapsed
        (auction.rules.has_lapsed)."""
        now = self.d.clock()
        async with self.d.store.read() as q:
            candidates = await q.rounds.past_binding(now)
        mine = None if buckets is None else set(buckets)
        lapsed = []
        for rid, binding_until in candidates:
            if mine is not None and bucket_of(rid) not in mine:
                continue
            if not has_lapsed(RoundState.CLOSED, binding_until, now):
                continue
            async with self.d.store.unit() as tx:
                if await tx.rounds.lapse(rid):
                    await tx.audit.add(now, "system", "round_lapsed", rid, {})
                    await tx.commit()
                    lapsed.append(rid)
        return lapsed
