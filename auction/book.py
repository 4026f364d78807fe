"""The live offer book: one contract, two implementations.

``Book`` is everything the use cases ask of a round's live state: open and rebuild it, take
offers and revisions, read the masked book and its event sequence, find the rounds due to close
(the deadline index, by the book's own clock) and close them. ``MemoryBook`` is the reference: it
defines the semantics in plain Python by calling the pure rules. ``RedisBook``
(``auction/redis/book.py``) runs the same commands as Lua scripts on Redis and must pass the
same contract suite (``tests/contract``), with an invariant check after every step.
"""

from __future__ import annotations

import bisect
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from auction.buckets import bucket_of
from auction.model import (
    CloseResult,
    OfferTerms,
    OfferVersion,
    Outcome,
    RoundState,
    RoundTerms,
    SubmitResult,
)
from auction.ranking import key_of, ranked
from auction.rules import is_due, label_pool, may_bid

#: the idempotency of a command: (the caller's scoped key, a hash of the request)
Idem = tuple[str, str]


@dataclass(frozen=True)
class Event:
    """One event of a round's sequence: a quote (offer added or revised) or the close."""

    round_id: str
    seq: int
    kind: str  # "quote" | "round_closed"
    offer: OfferVersion | None = None
    at_ms: int = 0
    #: quotes: the offer's rank (1 = best) and the book's size just after the event; 0 when
    #: not known (an event read back from a book written before they were recorded)
    rank: int = 0
    size: int = 0


@dataclass(frozen=True)
class BookHead:
    """A round's book without its offers: the header of a snapshot, and what names the
    book's content. Within one ``epoch`` (a round's live state from its open or rebuild to its
    end: a rebuilt round has a new one) the offers change only with ``seq``, so
    ``(round_id, epoch, seq)`` names one content of the book."""

    round_id: str
    state: RoundState
    seq: int
    closes_at_ms: int
    closed_at_ms: int
    viewer_label: str | None
    epoch: str = ""


@dataclass
class BookView:
    round_id: str
    state: RoundState
    seq: int
    closes_at_ms: int
    closed_at_ms: int
    viewer_label: str | None
    offers: list[OfferVersion] = field(default_factory=list)  # best first
    epoch: str = ""  # as BookHead.epoch

    @property
    def head(self) -> BookHead:
        return BookHead(self.round_id, self.state, self.seq, self.closes_at_ms,
                        self.closed_at_ms, self.viewer_label, self.epoch)


@dataclass(frozen=True)
class RoundSnapshot:
    """Everything needed to rebuild a round's live state (from SQL, after Redis lost it)."""

    round_id: str
    state: RoundState  # open, or closed (binding) with closed_at_ms set
    opened_at_ms: int
    closes_at_ms: int
    closed_at_ms: int
    labels: Mapping[str, str]  # bank_id -> label in use
    unused_labels: Sequence[str]
    offers: Sequence[OfferVersion]  # the current version of every offer
    events: Sequence[Event]


@dataclass(frozen=True)
class History:
    """A stretch of a round's event sequence: the round's last seq (None: the book does not
    know the round) and at most the asked number of events after a given seq, in order."""

    seq: int | None
    events: list[Event]


def with_ranks(events: Sequence[Event]) -> list[Event]:
    """A round's events from its first, each quote with its rank and the book's size as of
    that event (rebuilding a round from SQL: the live book records them as it goes)."""
    keys: list[tuple[int, int, int]] = []
    current: dict[str, tuple[int, int, int]] = {}
    out: list[Event] = []
    for ev in events:
        if ev.offer is None:
            out.append(ev)
            continue
        old = current.get(ev.offer.ref)
        if old is not None:
            del keys[bisect.bisect_left(keys, old)]
        key = key_of(ev.offer)
        current[ev.offer.ref] = key
        at = bisect.bisect_left(keys, key)
        keys.insert(at, key)
        out.append(replace(ev, rank=at + 1, size=len(keys)))
    return out


# ----------------------------------------------------------------------------- contract
class Book(Protocol):
    # -- a round's live state
    async def open_round(self, terms: RoundTerms, labels: Sequence[str] | None = None) -> bool:
        """Create the round and index its deadline; False (nothing changed) if it exists."""
        ...

    async def restore(self, snap: RoundSnapshot) -> bool:
        """Rebuild a round the book lost; False (nothing changed) if it still exists."""
        ...

    async def exists(self, round_id: str) -> bool: ...

    async def retire(self, round_id: str, seconds: int) -> None:
        """The round's close is complete (SQL holds everything): drop it from the deadline
        index and let its live state go after ``seconds``."""
        ...

    # -- bidding
    async def submit(self, round_id: str, bank_id: str, offer_id: str, ref: str,
                     terms: OfferTerms, apr_e4: int, idem: Idem | None = None,
                     max_offers: int = 0) -> SubmitResult:
        """A new offer. ``max_offers``: how many live offers one bank may keep in the round
        (0: no limit); one more is refused with ``OFFER_LIMIT``."""
        ...

    async def revise(self, round_id: str, bank_id: str, offer_id: str, terms: OfferTerms,
                     apr_e4: int, idem: Idem | None = None) -> SubmitResult: ...

    # -- reading
    async def view(self, round_id: str, viewer_bank_id: str = "") -> BookView | None: ...

    async def head(self, round_id: str, viewer_bank_id: str = "") -> BookHead | None:
        """``view`` without the offers (its ``head``): a read whose cost does not grow with
        the book."""
        ...

    async def events(self, round_id: str, after_seq: int = 0) -> list[Event]: ...

    async def event(self, round_id: str, seq: int) -> Event | None: ...

    async def events_after(self, after: Mapping[str, int], limit: int | None = None
                           ) -> dict[str, list[Event]]:
        """``events`` of many rounds in one go: each round's events after its seq, at most
        ``limit`` of them per round (the first ones), so one read's cost does not grow with a
        round's history."""
        ...

    async def events_at(self, seqs: Mapping[str, int]) -> dict[str, Event | None]:
        """``event`` of many rounds in one go."""
        ...

    async def history(self, round_id: str, after_seq: int, limit: int) -> History:
        """The round's last seq and at most ``limit`` events after ``after_seq``: the work
        grows with what is asked for, not with the round's history."""
        ...

    async def has_bid(self, round_id: str, bank_id: str) -> bool: ...

    async def have_bid(self, round_ids: Sequence[str], bank_id: str) -> list[bool]:
        """``has_bid`` of many rounds in one go."""
        ...

    async def seqs(self, round_ids: Sequence[str]) -> list[int | None]:
        """The last seq of each round (None: unknown to the book), in one go."""
        ...

    async def labels(self, round_id: str) -> dict[str, str]: ...

    async def unused_labels(self, round_id: str) -> list[str]: ...

    # -- closing
    async def due(self, limit: int, buckets: Sequence[int] | None = None) -> list[str]:
        """Rounds of the deadline index (of ``buckets``; None: all) whose deadline has passed
        by the book's clock, the earliest first. Only candidates: ``close`` decides,
        atomically, by the same clock."""
        ...

    async def close(self, round_id: str) -> CloseResult: ...

    async def close_many(self, round_ids: Sequence[str]) -> list[CloseResult]:
        """``close`` of many rounds in one go (one round trip), in the order given."""
        ...

    async def retire_many(self, round_ids: Sequence[str], seconds: int) -> None:
        """``retire`` of many rounds in one go."""
        ...

    async def unschedule(self, round_id: str) -> None:
        """Drop a round from the deadline index (its close is complete, or it is unknown)."""
        ...

    async def reschedule(self, deadlines: Mapping[str, int]) -> int:
        """Put rounds missing from the deadline index back on it; returns how many were."""
        ...

    # -- the persister's work
    async def take_dirty(self, buckets: Sequence[int], limit: int) -> list[str]:
        """Take (and forget) up to ``limit`` rounds per bucket with events accepted since they
        were last taken: a quote marks its round dirty atomically with the change. A round
        taken but not persisted must be given back (``mark_dirty``)."""
        ...

    async def mark_dirty(self, round_ids: Sequence[str]) -> None: ...

    async def replicated(self, round_ids: Sequence[str]) -> None:
        """Return once every change made so far to these rounds would survive the book's
        failover (with Redis replica acks: on enough replicas); raise if that cannot be said
        in time. The persister asks before it copies events it read into SQL."""
        ...

    async def forget(self, seqs: Mapping[str, int]) -> None:
        """Drop each round's events up to its seq: events SQL holds, which the book need not
        keep, so a round's history in the book does not grow with its revisions. An
        implementation may keep some of them (Redis drops whole stream nodes); the events
        after the seq are never touched. ``events``, ``events_after`` and ``history`` then
        start at the first event kept: a catch-up from before it gets a snapshot."""
        ...

    # -- the data set
    async def intact(self) -> bool:
        """False when the book lost its data set since ``mark_intact`` (a Redis replaced
        without its AOF): every live round must then be rebuilt from SQL."""
        ...

    async def mark_intact(self) -> None: ...


# ----------------------------------------------------------------------------- reference
@dataclass
class _MemRound:
    terms: RoundTerms
    state: RoundState = RoundState.OPEN
    seq: int = 0
    closed_at_ms: int = 0
    pool: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    offers: dict[str, OfferVersion] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    idem: dict[str, tuple[str, OfferVersion, int]] = field(default_factory=dict)
    epoch: str = field(default_factory=lambda: secrets.token_hex(8))


class MemoryBook:
    """In-memory reference implementation of the book contract (the executable spec)."""

    def __init__(self, clock: Callable[[], int] | None = None) -> None:
        self._clock = clock or (lambda: int(time.time() * 1000))
        self._rounds: dict[str, _MemRound] = {}
        self._deadlines: dict[str, int] = {}
        self._dirty: set[str] = set()
        self._intact = False

    # -- a round's live state
    async def open_round(self, terms: RoundTerms, labels: Sequence[str] | None = None) -> bool:
        if terms.round_id in self._rounds:
            return False
        self._rounds[terms.round_id] = _MemRound(terms, pool=list(labels or label_pool()))
        self._deadlines[terms.round_id] = terms.closes_at_ms
        return True

    async def restore(self, snap: RoundSnapshot) -> bool:
        if snap.round_id in self._rounds:
            return False
        seq = max((e.seq for e in snap.events), default=0)
        terms = RoundTerms(snap.round_id, "", "", 0, 0, 0, 0, False, snap.opened_at_ms,
                           snap.closes_at_ms)
        self._rounds[snap.round_id] = _MemRound(
            terms, state=snap.state, seq=seq, closed_at_ms=snap.closed_at_ms,
            pool=list(snap.unused_labels), labels=dict(snap.labels),
            offers={o.offer_id: o for o in snap.offers}, events=list(snap.events))
        if snap.state is RoundState.OPEN:
            self._deadlines[snap.round_id] = snap.closes_at_ms
        return True

    async def exists(self, round_id: str) -> bool:
        return round_id in self._rounds

    async def retire(self, round_id: str, seconds: int) -> None:
        # the reference keeps finished rounds' state for the life of the process
        self._deadlines.pop(round_id, None)

    # -- bidding
    def _rank(self, r: _MemRound, ref: str) -> int:
        return [o.ref for o in ranked(r.offers.values())].index(ref) + 1

    def _begin(self, round_id: str, idem: Idem | None) -> _MemRound | SubmitResult:
        """The round, or the answer when there is nothing to do (unknown round, replay)."""
        r = self._rounds.get(round_id)
        if r is None:
            return SubmitResult(Outcome.ROUND_UNKNOWN)
        if idem is None or idem[0] not in r.idem:
            return r
        body_hash, first, rank = r.idem[idem[0]]
        if body_hash != idem[1]:
            return SubmitResult(Outcome.IDEMPOTENCY_MISMATCH)
        return SubmitResult(Outcome.IDEMPOTENCY_REPLAY, first, rank)  # the first answer

    def _accept(self, r: _MemRound, v: OfferVersion, idem: Idem | None) -> SubmitResult:
        r.offers[v.offer_id] = v
        rank = self._rank(r, v.ref)
        r.events.append(Event(r.terms.round_id, v.seq, "quote", v, rank=rank,
                              size=len(r.offers)))
        self._dirty.add(r.terms.round_id)
        if idem is not None:
            r.idem[idem[0]] = (idem[1], v, rank)
        return SubmitResult(Outcome.OK, v, rank)

    async def submit(self, round_id: str, bank_id: str, offer_id: str, ref: str,
                     terms: OfferTerms, apr_e4: int, idem: Idem | None = None,
                     max_offers: int = 0) -> SubmitResult:
        r = self._begin(round_id, idem)
        if isinstance(r, SubmitResult):
            return r
        now = self._clock()
        if not may_bid(r.state, r.terms.closes_at_ms, now):
            return SubmitResult(Outcome.ROUND_CLOSED)
        if offer_id in r.offers:
            return SubmitResult(Outcome.ROUND_UNKNOWN)
        if max_offers and sum(o.bank_id == bank_id for o in r.offers.values()) >= max_offers:
            return SubmitResult(Outcome.OFFER_LIMIT)
        label = r.labels.get(bank_id)
        if label is None:
            label = r.pool.pop(0) if r.pool else f"Banka {len(r.labels) + 1}"
            r.labels[bank_id] = label
        r.seq += 1
        v = OfferVersion(round_id, offer_id, ref, bank_id, label, 1, r.seq, now, apr_e4, terms)
        return self._accept(r, v, idem)

    async def revise(self, round_id: str, bank_id: str, offer_id: str, terms: OfferTerms,
                     apr_e4: int, idem: Idem | None = None) -> SubmitResult:
        r = self._begin(round_id, idem)
        if isinstance(r, SubmitResult):
            return r
        old = r.offers.get(offer_id)
        if old is None or old.bank_id != bank_id:
            return SubmitResult(Outcome.OFFER_UNKNOWN)
        now = self._clock()
        if not may_bid(r.state, r.terms.closes_at_ms, now):
            return SubmitResult(Outcome.ROUND_CLOSED)
        r.seq += 1
        v = OfferVersion(round_id, offer_id, old.ref, bank_id, old.label, old.version + 1,
                         r.seq, now, apr_e4, terms)
        return self._accept(r, v, idem)

    # -- reading
    async def view(self, round_id: str, viewer_bank_id: str = "") -> BookView | None:
        r = self._rounds.get(round_id)
        if r is None:
            return None
        return BookView(round_id, r.state, r.seq, r.terms.closes_at_ms, r.closed_at_ms,
                        r.labels.get(viewer_bank_id) if viewer_bank_id else None,
                        ranked(r.offers.values()), r.epoch)

    async def head(self, round_id: str, viewer_bank_id: str = "") -> BookHead | None:
        r = self._rounds.get(round_id)
        if r is None:
            return None
        return BookHead(round_id, r.state, r.seq, r.terms.closes_at_ms, r.closed_at_ms,
                        r.labels.get(viewer_bank_id) if viewer_bank_id else None, r.epoch)

    async def events(self, round_id: str, after_seq: int = 0) -> list[Event]:
        r = self._rounds.get(round_id)
        return [] if r is None else [e for e in r.events if e.seq > after_seq]

    async def event(self, round_id: str, seq: int) -> Event | None:
        r = self._rounds.get(round_id)
        return next((e for e in r.events if e.seq == seq), None) if r else None

    async def events_after(self, after: Mapping[str, int], limit: int | None = None
                           ) -> dict[str, list[Event]]:
        return {rid: (await self.events(rid, seq))[:limit] for rid, seq in after.items()}

    async def events_at(self, seqs: Mapping[str, int]) -> dict[str, Event | None]:
        return {rid: await self.event(rid, seq) for rid, seq in seqs.items()}

    async def history(self, round_id: str, after_seq: int, limit: int) -> History:
        r = self._rounds.get(round_id)
        if r is None:
            return History(None, [])
        return History(r.seq, [e for e in r.events if e.seq > after_seq][:limit])

    async def has_bid(self, round_id: str, bank_id: str) -> bool:
        r = self._rounds.get(round_id)
        return r is not None and bank_id in r.labels

    async def have_bid(self, round_ids: Sequence[str], bank_id: str) -> list[bool]:
        return [await self.has_bid(rid, bank_id) for rid in round_ids]

    async def seqs(self, round_ids: Sequence[str]) -> list[int | None]:
        return [r.seq if (r := self._rounds.get(rid)) else None for rid in round_ids]

    async def labels(self, round_id: str) -> dict[str, str]:
        r = self._rounds.get(round_id)
        return dict(r.labels) if r else {}

    async def unused_labels(self, round_id: str) -> list[str]:
        r = self._rounds.get(round_id)
        return list(r.pool) if r else []

    # -- closing
    async def due(self, limit: int, buckets: Sequence[int] | None = None) -> list[str]:
        now = self._clock()
        mine = None if buckets is None else set(buckets)
        due = sorted((at, rid) for rid, at in self._deadlines.items()
                     if at <= now and (mine is None or bucket_of(rid) in mine))
        return [rid for _, rid in due[:limit]]

    async def close(self, round_id: str) -> CloseResult:
        r = self._rounds.get(round_id)
        if r is None:
            return CloseResult(Outcome.ROUND_UNKNOWN)
        if r.state is not RoundState.OPEN:
            return CloseResult(Outcome.ALREADY_CLOSED, r.seq, r.closed_at_ms,
                               ranked(r.offers.values()))
        now = self._clock()
        if not is_due(r.state, r.terms.closes_at_ms, now):
            return CloseResult(Outcome.NOT_DUE, r.seq)
        r.seq += 1
        r.state = RoundState.CLOSED
        r.closed_at_ms = now
        r.events.append(Event(round_id, r.seq, "round_closed", at_ms=now))
        return CloseResult(Outcome.OK, r.seq, now, ranked(r.offers.values()))

    async def unschedule(self, round_id: str) -> None:
        self._deadlines.pop(round_id, None)

    async def close_many(self, round_ids: Sequence[str]) -> list[CloseResult]:
        return [await self.close(rid) for rid in round_ids]

    async def retire_many(self, round_ids: Sequence[str], seconds: int) -> None:
        for rid in round_ids:
            await self.retire(rid, seconds)

    async def reschedule(self, deadlines: Mapping[str, int]) -> int:
        added = [rid for rid in deadlines if rid not in self._deadlines]
        for rid in added:
            self._deadlines[rid] = deadlines[rid]
        return len(added)

    # -- the persister's work
    async def take_dirty(self, buckets: Sequence[int], limit: int) -> list[str]:
        out: list[str] = []
        for b in buckets:
            out += sorted(rid for rid in self._dirty if bucket_of(rid) == b)[:limit]
        self._dirty.difference_update(out)
        return out

    async def mark_dirty(self, round_ids: Sequence[str]) -> None:
        self._dirty.update(round_ids)

    async def replicated(self, round_ids: Sequence[str]) -> None:
        return None  # one copy, nothing to fail over to

    async def forget(self, seqs: Mapping[str, int]) -> None:
        for rid, seq in seqs.items():
            if (r := self._rounds.get(rid)) is not None:
                r.events = [e for e in r.events if e.seq > seq]

    # -- the data set
    async def intact(self) -> bool:
        return self._intact

    async def mark_intact(self) -> None:
        self._intact = True
