"""Keeping every acknowledged offer: the live book is copied into SQL (the persister), and a
book that lost its data is rebuilt from SQL.

A round exists once it is in SQL. Every version the book acknowledged is copied into SQL,
idempotently on (round_id, seq), resuming from the round's persisted seq; a batch read from a
book that was rebuilt from SQL since is refused (its seqs may have been reused).

The persister learns which rounds have new events from the book itself: every quote marks its
round dirty in its bucket atomically with the change (``Book.take_dirty``), so nothing depends
on a pub/sub message arriving. A slow sweep over the live rounds (``catch_up``) is the safety
net for a worker that died between taking a round and persisting it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from auction.book import Event, RoundSnapshot, with_ranks
from auction.buckets import bucket_of
from auction.feed import MAX_CATCH_UP
from auction.model import OfferVersion, RoundState
from persistence.rounds import BatchMoved
from persistence.store import Conflict
from usecases.context import Deps

log = logging.getLogger("ige.durability")

REQUEUE_BATCH = 200
DIRTY_BATCH = 500  # dirty rounds taken per bucket and pass
SWEEP_SLICE = 200  # rounds whose book seq is read in one go
UNIT_ROUNDS = 100  # rounds whose new events go into SQL in one unit (one commit)
#: events of one round read from the book per unit (the anchor among them): a round far ahead
#: of SQL (a persister back after a while, a busy round) goes in slices and stays dirty until
#: SQL has caught up, so no one read or commit grows with a round's history (a read of
#: thousands of events held Redis, and every acknowledgement waiting on it, for milliseconds)
ROUND_EVENTS = 256
#: events SQL holds that the book keeps per round (the rest are forgotten after each unit):
#: as far back as a stream catch-up reaches, so no resume gets a snapshot it would not have
#: had; a round's history in Redis no longer grows with its revisions
KEEP_EVENTS = MAX_CATCH_UP


class _Stale(Exception):
    """A batch read from a book that has been rebuilt from SQL since: written by nobody."""


@dataclass(frozen=True)
class Clash:
    """The book and SQL disagree on a round's history: at ``seq`` (which SQL holds) the book
    has another version (``book``) than SQL's (``sql``), or the book's seq is behind SQL's
    (``book`` None: it lost events SQL holds). What a failover without replica acks can do:
    the promoted master lacked events already copied to SQL and reissued their seqs. Never
    resolved automatically (neither side is overwritten, the round's later events stay in the
    book only); an operator decides."""

    round_id: str
    seq: int
    sql: tuple[str, int] | None  # (offer_id, version) in SQL at seq
    book: tuple[str, int] | None  # the book's at seq; None: the book's seq is behind SQL's
    book_seq: int | None = None
    #: the book no longer holds the events after ``seq`` that SQL lacks: it forgot them
    #: (``Book.forget``) once SQL held them, so SQL has lost them since (restored from an older
    #: backup); the book keeps events only from this seq
    kept_from: int | None = None


class ClashError(Exception):
    """A round's events cannot be persisted: the book and SQL disagree (``Clash``)."""

    def __init__(self, clash: Clash) -> None:
        super().__init__(f"round {clash.round_id}: the book and SQL disagree at seq {clash.seq}")
        self.clash = clash


def _version_at(e: Event) -> tuple[str, int] | None:
    return (e.offer.offer_id, e.offer.version) if e.offer is not None else None


def _audit_row(round_id: str, v: OfferVersion) -> dict[str, Any]:
    return dict(at=v.accepted_at_ms, actor=f"bank:{v.bank_id}",
                action="offer_submitted" if v.version == 1 else "offer_revised",
                round_id=round_id,
                detail={"offer_id": v.offer_id, "version": v.version, "seq": v.seq,
                        "apr_e4": v.apr_e4, **v.terms.to_record()})


@dataclass(frozen=True)
class Persisted:
    """What one pass of the persister wrote into SQL."""

    rounds: int = 0  # rounds with new events written
    events: int = 0


@dataclass(frozen=True)
class CatchUp:
    """A catch-up pass: the seqs SQL holds of the live rounds, what the pass wrote, and how
    far SQL was behind the book when it looked (before it wrote)."""

    known: dict[str, int] = field(default_factory=dict)
    written: Persisted = Persisted()
    lag_events: int = 0  # events in the book not yet in SQL
    lag_ms: int = 0  # the age of the oldest of them (0: none)


def _forgotten(events: Sequence[Event], persisted_seq: int) -> bool:
    """Whether a read from the last event SQL holds (``persisted_seq``: the anchor, or the
    first event when 0) starts past it: the book forgot events up to there (``Book.forget``)."""
    return bool(events) and events[0].seq > max(1, persisted_seq)


class Durability:
    def __init__(self, deps: Deps) -> None:
        self.d = deps
        #: told of every clash found (once per round and seq in this process): the composition
        #: root counts it (``ige_persist_clashes_total``); it is logged here in any case
        self.on_clash: Callable[[Clash], None] | None = None
        self._clashed: set[tuple[str, int]] = set()

    def _report(self, clash: Clash) -> None:
        """Loudly, once per round and seq: an error log line and the clash counter."""
        if (clash.round_id, clash.seq) in self._clashed:
            return
        self._clashed.add((clash.round_id, clash.seq))
        if clash.kept_from is not None:
            log.error("persist_clash: round %s: SQL holds up to seq %d, the book's events start "
                      "at %d (SQL lost events the book forgot once SQL held them); the round's "
                      "new events are not copied to SQL until an operator resolves it",
                      clash.round_id, clash.seq, clash.kept_from)
        else:
            log.error("persist_clash: round %s seq %d: SQL holds %s, the book %s (book seq %s); "
                      "the round's new events are not copied to SQL until an operator "
                      "resolves it", clash.round_id, clash.seq, clash.sql, clash.book,
                      clash.book_seq)
        if self.on_clash is not None:
            self.on_clash(clash)

    def _clash_at(self, round_id: str, seq: int, anchor: Event | None,
                  sql: Mapping[str, tuple[str, int]]) -> Clash | None:
        """Whether the book's event at ``seq`` (the last one SQL holds; ``anchor``) is not the
        version SQL holds there."""
        held = sql.get(round_id)
        if held is None:
            return None  # no version at seq in SQL (seq 0, or a close): nothing to compare
        mine = _version_at(anchor) if anchor is not None and anchor.seq == seq else None
        return None if mine == held else Clash(round_id, seq, held, mine)

    async def persisted_seq(self, round_id: str) -> int:
        async with self.d.store.read() as q:
            row = await q.rounds.get(round_id)
        return int(row.persisted_seq) if row else 0

    async def persist_round(self, round_id: str, persisted_seq: int | None = None) -> int:
        """Copy a round's new events from the book into SQL; returns the seq SQL holds.
        ``persisted_seq``: what the caller knows SQL holds (a stale value is harmless: the
        conditional write refuses it and SQL is read again).
        The events go in units of at most ``ROUND_EVENTS`` each, read one slice at a time: a
        round with a long history costs more units, never one read or one transaction that
        grows with it."""
        while True:
            persisted_seq, more = await self._persist_slice(round_id, persisted_seq)
            if not more:
                return persisted_seq

    async def _persist_slice(self, round_id: str, persisted_seq: int | None
                             ) -> tuple[int, bool]:
        """One unit of ``persist_round``: the seq SQL holds after it, and whether the book
        may hold more (this unit was written from a full slice)."""
        if persisted_seq is None:
            persisted_seq = await self.persisted_seq(round_id)
        # from the last event SQL holds (the anchor): it must be the book's too
        got = (await self.d.book.events_after({round_id: max(0, persisted_seq - 1)},
                                              ROUND_EVENTS)).get(round_id, [])
        if _forgotten(got, persisted_seq):
            sql_seq = await self.persisted_seq(round_id)
            if sql_seq != persisted_seq:
                return sql_seq, True  # another persister moved on: go on from what SQL holds
            lost = Clash(round_id, persisted_seq, None, None, kept_from=got[0].seq)
            self._report(lost)
            raise ClashError(lost)
        anchor = got[0] if got and persisted_seq and got[0].seq == persisted_seq else None
        events = [e for e in got if e.seq > persisted_seq]
        if not events:
            return persisted_seq, False
        last = events[-1]
        await self.d.book.replicated([round_id])  # SQL never holds what a failover can lose
        if persisted_seq:
            async with self.d.store.read() as q:
                held = await q.offers.at_seqs({round_id: persisted_seq})
            if clash := self._clash_at(round_id, persisted_seq, anchor, held):
                self._report(clash)
                raise ClashError(clash)

        async def still_current() -> bool:
            # if the book lost the round and restore_round rebuilt it from SQL after these
            # events were read, they are gone from the live book (or their seqs reused)
            return await self.d.book.event(round_id, last.seq) == last

        if await self.write(round_id, persisted_seq, events, still_current):
            return last.seq, len(got) >= ROUND_EVENTS
        return await self.persisted_seq(round_id), False  # someone else persisted: read again

    async def write(self, round_id: str, from_seq: int, events: Sequence[Event],
                    still_current: Callable[[], Awaitable[bool]] | None = None) -> bool:
        """One batch into SQL with an audit row per version, in one unit: only if SQL holds
        exactly ``from_seq`` (else another persister wrote it: False, nothing changes)."""
        try:
            async with self.d.store.unit(serialized=True) as tx:
                written = await tx.offers.persist(round_id, from_seq, events, still_current)
                if written is None:
                    return False
                await tx.audit.add_many([_audit_row(round_id, v) for v in written])
                await tx.commit()
        except Conflict:
            return False
        return True

    async def persist_many(self, round_ids: Sequence[str], known: dict[str, int]) -> Persisted:
        """Copy the new events of several rounds into SQL in one unit (one commit: the
        persister's cost is the commits, not the rows). ``known``: the seqs the caller knows
        SQL holds, updated in place; a round another persister wrote meanwhile is forgotten
        there (read again next time) and comes back in ``stale``-free form on its next pass.
        Every round's batch is conditional on SQL holding exactly what was read, and the whole
        unit is abandoned if any batch was read from a book rebuilt from SQL since."""
        unknown = [rid for rid in round_ids if rid not in known]
        if unknown:
            async with self.d.store.read() as q:
                known.update(await q.rounds.persisted_seqs(unknown))
        after = {rid: known[rid] for rid in round_ids if rid in known}
        # from the last event SQL holds (the anchor): it must be the book's too
        got = await self.d.book.events_after({rid: max(0, n - 1) for rid, n in after.items()},
                                             ROUND_EVENTS)
        if forgotten := [rid for rid, evs in got.items() if _forgotten(evs, after[rid])]:
            # the book forgot events after the seq believed in SQL: a value remembered from
            # before another persister moved the round on (read SQL again next pass), or,
            # just read from SQL, SQL lost them (reported; left out until an operator acts)
            for rid in forgotten:
                if rid in unknown:
                    self._report(Clash(rid, after[rid], None, None, kept_from=got[rid][0].seq))
                known.pop(rid, None)
                del got[rid]
            await self.d.book.mark_dirty([rid for rid in forgotten if rid not in unknown])
        anchors = {rid: evs[0] for rid, evs in got.items()
                   if evs and after[rid] and evs[0].seq == after[rid]}
        batches = {rid: new for rid, evs in got.items()
                   if (new := [e for e in evs if e.seq > after[rid]])}
        if not batches:
            return Persisted()
        try:
            # with replica acks, only what the replicas have goes into SQL: else a failover
            # could lose an event SQL holds and the promoted master reissue its seq
            await self.d.book.replicated(list(batches))
        except BaseException:
            await self.d.book.mark_dirty(list(batches))
            raise
        try:
            try:
                written = await self._write_many(after, batches, anchors)
            except BatchMoved:  # another persister wrote some of them: one by one, then
                written = await self._write_many(after, batches, anchors, one_by_one=True)
        except (_Stale, Conflict):
            for rid in batches:
                known.pop(rid, None)
            await self.d.book.mark_dirty(list(batches))  # another pass reads them afresh
            return Persisted()
        for rid in batches.keys() - written.keys():
            known.pop(rid, None)  # another persister wrote this round: read it again
        for rid in written:
            known[rid] = batches[rid][-1].seq
        await self.d.book.forget({rid: known[rid] - KEEP_EVENTS for rid in written
                                  if known[rid] > KEEP_EVENTS})
        # a round read in a full slice may hold more: dirty again, the next pass goes on from here
        if more := [rid for rid in written if len(got[rid]) >= ROUND_EVENTS]:
            await self.d.book.mark_dirty(more)
        return Persisted(len(written), sum(len(batches[rid]) for rid in written))

    async def _write_many(self, after: Mapping[str, int], batches: Mapping[str, list[Event]],
                          anchors: Mapping[str, Event], one_by_one: bool = False
                          ) -> dict[str, list[OfferVersion]]:
        """One unit: the batches that are where they were read, their audit rows, after
        making sure they are still the live book's events. A round whose book disagrees
        with SQL at the last seq SQL holds (``Clash``) is reported and left out."""
        async with self.d.store.unit(serialized=True) as tx:
            held = await tx.offers.at_seqs({rid: after[rid] for rid in batches if after[rid]})
            for rid in list(held):
                if clash := self._clash_at(rid, after[rid], anchors.get(rid), held):
                    self._report(clash)
                    batches = {r: evs for r, evs in batches.items() if r != rid}
            written = await tx.offers.persist_batches(
                {rid: (after[rid], evs) for rid, evs in batches.items()}, one_by_one)
            # the rows are locked now: if the book lost a round and restore_round rebuilt it
            # from SQL after these events were read, they are gone from the live book (or
            # their seqs reused)
            last = {rid: batches[rid][-1] for rid in written}
            now = await self.d.book.events_at({rid: e.seq for rid, e in last.items()})
            if any(now[rid] != e for rid, e in last.items()):
                raise _Stale
            await tx.audit.add_many([_audit_row(rid, v) for rid, vs in written.items()
                                     for v in vs])
            await tx.commit()
        return written

    async def restore_round(self, round_id: str) -> bool:
        """Rebuild a round's live state from SQL into a book that lost it; True when the round
        is live now (rebuilt, or there already). SQL is read and the book written under the
        round's row lock, so a persister batch read from the lost book either lands first
        (and is rebuilt) or is refused afterwards (``persist_round``'s still_current)."""
        async with self.d.store.unit() as tx:
            row = await tx.rounds.lock(round_id)
            if row is None or row.state not in (RoundState.OPEN.value, RoundState.CLOSED.value):
                return False
            versions = await tx.offers.of_round(round_id)
            closing = await tx.rounds.closing(round_id)
            latest: dict[str, OfferVersion] = {}
            labels: dict[str, str] = {}
            for v in versions:
                latest[v.offer_id] = v
                labels[v.bank_id] = v.label
            events = with_ranks([Event(round_id, v.seq, "quote", v) for v in versions])
            if closing is not None:
                events.append(Event(round_id, int(closing.final_seq), "round_closed",
                                    at_ms=int(closing.closed_at)))
            # the book gets back what the persister would have let it keep: one script's
            # arguments, and Redis's time running it, do not grow with the round's history
            events = events[-KEEP_EVENTS:]
            in_use = set(labels.values())
            created = await self.d.book.restore(RoundSnapshot(
                round_id, RoundState(row.state), int(row.opened_at), int(row.closes_at),
                int(row.closed_at or 0), labels,
                [lb for lb in row.label_pool if lb not in in_use], list(latest.values()),
                events))
            await tx.commit()
        if created:
            log.warning("restored round %s from SQL (%d versions)", round_id, len(versions))
        return True

    async def rebuild_pending(self) -> bool:
        """True while the book has lost its data set and SQL holds live rounds to rebuild
        into it, i.e. until ``ensure_book`` has finished (readiness is false meanwhile). A
        fresh book with nothing to rebuild is not pending."""
        if await self.d.book.intact():
            return False
        async with self.d.store.read() as q:
            return await q.rounds.any_live()

    async def ensure_book(self) -> int:
        """If the book lost its data set, rebuild every live round from SQL. Returns how many
        rounds were rebuilt."""
        if await self.d.book.intact():
            return 0
        async with self.d.store.read() as q:
            live = await q.rounds.live()
        n = 0
        for rid, _ in live:
            if not await self.d.book.exists(rid):
                await self.restore_round(rid)
                n += 1
        await self.d.book.mark_intact()
        return n

    async def persist_dirty(self, buckets: Sequence[int], known: dict[str, int],
                            limit: int = DIRTY_BATCH) -> Persisted:
        """Persist the rounds of ``buckets`` with events not yet in SQL (at most ``limit`` per
        bucket). ``known``: the seqs the caller knows SQL holds (updated in place). Returns
        what was written; a round that failed is given back to the dirty set."""
        taken = await self.d.book.take_dirty(buckets, limit)
        rounds = events = 0
        for i in range(0, len(taken), UNIT_ROUNDS):
            try:
                done = await self.persist_many(taken[i:i + UNIT_ROUNDS], known)
            except BaseException:
                await self.d.book.mark_dirty(taken[i:])
                raise
            rounds, events = rounds + done.rounds, events + done.events
        return Persisted(rounds, events)

    async def requeue_overdue(self, limit: int = REQUEUE_BATCH,
                              buckets: Sequence[int] | None = None) -> int:
        """Put open rounds past their deadline back on the deadline index (a no-op normally).
        Catches rounds nothing else would ever close: an opening cut short between SQL and
        the book (the operator got a 5xx, yet the round is in the pool), or between the book
        and its deadline index, or an index entry the book lost on its own."""
        async with self.d.store.read() as q:
            overdue = await q.rounds.overdue(self.d.clock(), limit)
        if buckets is not None:
            mine = set(buckets)
            overdue = {rid: at for rid, at in overdue.items() if bucket_of(rid) in mine}
        return await self.d.book.reschedule(overdue)

    async def catch_up(self, known: dict[str, int], buckets: Sequence[int] | None = None
                       ) -> CatchUp:
        """Persist every live round (of ``buckets``, None: all) whose book is ahead of SQL.
        ``known``: the seqs the caller knows SQL holds; the answer has them for the live
        rounds, and how far behind SQL was (the persister's lag: events, and the age of the
        oldest, read from the book's first unpersisted event of each round behind)."""
        async with self.d.store.read() as q:
            live = await q.rounds.live()
        if buckets is not None:
            mine = set(buckets)
            live = [(rid, n) for rid, n in live if bucket_of(rid) in mine]
        out = {rid: n for rid, n in live if rid in known}  # forget finished rounds
        rounds = events = behind = lag = 0
        # in slices: reading thousands of rounds' seqs in one go would hold the event loop
        # (and every request waiting on it) for milliseconds while the replies are parsed
        for i in range(0, len(live), SWEEP_SLICE):
            part = live[i:i + SWEEP_SLICE]
            seqs = await self.d.book.seqs([rid for rid, _ in part])
            ahead: dict[str, int] = {}
            for (rid, persisted), seq in zip(part, seqs, strict=True):
                if seq is not None and seq < persisted:  # the book lost events SQL holds
                    async with self.d.store.read() as q:
                        held = (await q.offers.at_seqs({rid: persisted})).get(rid)
                    self._report(Clash(rid, persisted, held, None, seq))
                if seq is not None and seq > persisted:
                    ahead[rid] = persisted
                    behind += seq - persisted
            firsts = await self.d.book.events_at({rid: n + 1 for rid, n in ahead.items()})
            for first in firsts.values():
                if first is not None:
                    at = first.offer.accepted_at_ms if first.offer else first.at_ms
                    lag = max(lag, self.d.clock() - at)
            sql = dict(ahead)
            done = await self.persist_many(list(ahead), sql)
            out.update(sql)
            rounds, events = rounds + done.rounds, events + done.events
        return CatchUp(out, Persisted(rounds, events), behind, lag)
