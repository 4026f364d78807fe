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
from collections.abc import Sequence
from dataclasses import dataclass

from auction import calendar
from auction.buckets import bucket_of
from auction.bus import RoundFinalized
from auction.model import CloseResult, OfferVersion, Outcome, RoundState, dt_to_ms, ms_to_dt
from auction.rules import has_lapsed
from persistence.store import Conflict
from usecases.context import Deps
from usecases.durability import Durability

log = logging.getLogger("ige.closing")

CLOSE_CONCURRENCY = 32  # due rounds one process closes at once
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
                await tx.audit.add(closed_at, "system", "round_closed", round_id, {
                    "reference_number": ref, "binding_until": binding_until,
                    "final_seq": final_seq, "offers": len(ranked)})
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
        wrote, their reference numbers and how long after the deadline they were written."""
        due = await self.d.book.due(limit, buckets)
        gate = asyncio.Semaphore(CLOSE_CONCURRENCY)

        async def close_one(rid: str) -> Closed | None:
            # a short claim so processes do not all close the same round; if the claimer
            # dies, the claim expires and another process completes the close
            async with gate:
                token = secrets.token_hex(8)
                if not await self.d.guards.acquire("close", rid, token, CLAIM_MS):
                    return None
                try:
                    cr, closed = await self._finalize(rid)
                    done = cr is not None and cr.outcome is not Outcome.NOT_DUE
                    return closed if done else None
                except Exception as e:  # noqa: BLE001 - one failed close must not stop the rest
                    # the class only: a database error's text may quote the statement's values
                    log.warning("close of %s interrupted: %s", rid, type(e).__name__)
                    return None
                finally:
                    await self.d.guards.release("close", rid, token)

        # rounds sharing a deadline close side by side: each close is a few book round trips
        # and two short SQL units, mostly waiting, so one at a time would leave the CPU idle
        return [c for c in await asyncio.gather(*(close_one(rid) for rid in due))
                if c is not None]

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
