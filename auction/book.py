"""The live offer book: one contract, two implementations.

``MemoryBook`` is the reference: it defines the semantics in plain Python. ``RedisBook``
(auction/redis_book.py) runs the same commands as Lua scripts on Redis and must pass the same
contract tests (tests/contract). Both speak the record format below, which is also what the
event stream and the SQL persister carry.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

from auction.model import (
    CloseResult,
    OfferTerms,
    OfferVersion,
    Outcome,
    RoundState,
    RoundTerms,
    SubmitResult,
)
from auction.rules import label_pool, rank_key


@dataclass(frozen=True)
class Event:
    """One event of a round's sequence: a quote (offer added or revised) or the close."""

    round_id: str
    seq: int
    kind: str  # "quote" | "round_closed"
    offer: OfferVersion | None = None
    at_ms: int = 0
    order: tuple[str, ...] | None = None  # refs best-first after the event, when known


@dataclass
class BookView:
    round_id: str
    state: RoundState
    seq: int
    closes_at_ms: int
    closed_at_ms: int
    viewer_label: str | None
    offers: list[OfferVersion] = field(default_factory=list)  # best first


# ----------------------------------------------------------------------------- record format
def record_tail(terms: OfferTerms, apr_e4: int) -> str:
    """The offer's terms as JSON members (no braces) for the Lua scripts to wrap."""
    body = dict(terms.to_record())
    body["p"] = apr_e4
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)[1:-1]


def record_json(v: OfferVersion) -> str:
    rec: dict[str, object] = {
        "o": v.offer_id, "f": v.ref, "b": v.bank_id, "l": v.label, "v": v.version,
        "s": v.seq, "t": v.accepted_at_ms,
    }
    rec.update(v.terms.to_record())
    rec["p"] = v.apr_e4
    return json.dumps(rec, separators=(",", ":"), ensure_ascii=False)


def parse_record(round_id: str, raw: str | bytes | dict[str, object]) -> OfferVersion:
    rec: dict[str, object] = raw if isinstance(raw, dict) else json.loads(raw)
    return OfferVersion(
        round_id=round_id,
        offer_id=str(rec["o"]),
        ref=str(rec["f"]),
        bank_id=str(rec["b"]),
        label=str(rec["l"]),
        version=int(rec["v"]),  # type: ignore[call-overload]
        seq=int(rec["s"]),  # type: ignore[call-overload]
        accepted_at_ms=int(rec["t"]),  # type: ignore[call-overload]
        apr_e4=int(rec["p"]),  # type: ignore[call-overload]
        terms=OfferTerms.from_record(rec),
    )


def parse_event(raw: str | bytes) -> Event:
    ev = json.loads(raw)
    rid = str(ev["r"])
    order = tuple(m.rsplit(":", 1)[1] for m in ev["n"]) if "n" in ev else None
    if ev["k"] == "q":
        return Event(rid, int(ev["s"]), "quote", parse_record(rid, ev["o"]), order=order)
    return Event(rid, int(ev["s"]), "round_closed", at_ms=int(ev["t"]))


def event_json(ev: Event) -> str:
    if ev.kind == "quote" and ev.offer is not None:
        return f'{{"r":"{ev.round_id}","s":{ev.seq},"k":"q","o":{record_json(ev.offer)}}}'
    return f'{{"r":"{ev.round_id}","s":{ev.seq},"k":"c","t":{ev.at_ms}}}'


def ranked(offers: list[OfferVersion]) -> list[OfferVersion]:
    return sorted(offers, key=lambda o: rank_key(o.apr_e4, o.terms.annual_rate_e4, o.seq))


def replay_orders(events: list[Event]) -> list[tuple[str, ...]]:
    """Best-first ref order after each event, recomputed from a round's full event list."""
    current: dict[str, OfferVersion] = {}
    out: list[tuple[str, ...]] = []
    for ev in events:
        if ev.offer is not None:
            current[ev.offer.ref] = ev.offer
        out.append(tuple(o.ref for o in ranked(list(current.values()))))
    return out


# ----------------------------------------------------------------------------- contract
class Book(Protocol):
    async def open_round(self, terms: RoundTerms, labels: list[str] | None = None) -> bool: ...

    async def submit(self, round_id: str, bank_id: str, offer_id: str, ref: str,
                     terms: OfferTerms, apr_e4: int, idem: tuple[str, str] | None = None
                     ) -> SubmitResult: ...

    async def revise(self, round_id: str, bank_id: str, offer_id: str, terms: OfferTerms,
                     apr_e4: int, idem: tuple[str, str] | None = None) -> SubmitResult: ...

    async def close(self, round_id: str) -> CloseResult: ...

    async def view(self, round_id: str, viewer_bank_id: str = "") -> BookView | None: ...

    async def events(self, round_id: str, after_seq: int = 0) -> list[Event]: ...


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
    idem: dict[str, tuple[str, OfferVersion]] = field(default_factory=dict)


class MemoryBook:
    """In-memory reference implementation of the book contract (the executable spec)."""

    def __init__(self, clock: Callable[[], int] | None = None) -> None:
        self._clock = clock or (lambda: int(time.time() * 1000))
        self._rounds: dict[str, _MemRound] = {}

    async def open_round(self, terms: RoundTerms, labels: list[str] | None = None) -> bool:
        if terms.round_id in self._rounds:
            return False
        self._rounds[terms.round_id] = _MemRound(terms, pool=list(labels or label_pool()))
        return True

    def _rank(self, r: _MemRound, ref: str) -> int:
        order = [o.ref for o in ranked(list(r.offers.values()))]
        return order.index(ref) + 1

    def _replay(self, r: _MemRound, idem: tuple[str, str] | None) -> SubmitResult | None:
        if idem is None or idem[0] not in r.idem:
            return None
        body_hash, first = r.idem[idem[0]]
        if body_hash != idem[1]:
            return SubmitResult(Outcome.IDEMPOTENCY_MISMATCH)
        cur = r.offers[first.offer_id]
        return SubmitResult(Outcome.IDEMPOTENCY_REPLAY, first, self._rank(r, cur.ref))

    def _begin(self, round_id: str, idem: tuple[str, str] | None) -> _MemRound | SubmitResult:
        """The round, or the answer when there is nothing to do (unknown round, replay)."""
        r = self._rounds.get(round_id)
        if r is None:
            return SubmitResult(Outcome.ROUND_UNKNOWN)
        replay = self._replay(r, idem)
        return r if replay is None else replay

    def _accept(self, r: _MemRound, v: OfferVersion, idem: tuple[str, str] | None) -> SubmitResult:
        r.offers[v.offer_id] = v
        order = tuple(o.ref for o in ranked(list(r.offers.values())))
        r.events.append(Event(r.terms.round_id, v.seq, "quote", v, order=order))
        if idem is not None:
            r.idem[idem[0]] = (idem[1], v)
        return SubmitResult(Outcome.OK, v, order.index(v.ref) + 1)

    async def submit(self, round_id: str, bank_id: str, offer_id: str, ref: str,
                     terms: OfferTerms, apr_e4: int, idem: tuple[str, str] | None = None
                     ) -> SubmitResult:
        r = self._begin(round_id, idem)
        if isinstance(r, SubmitResult):
            return r
        now = self._clock()
        if r.state is not RoundState.OPEN or now >= r.terms.closes_at_ms:
            return SubmitResult(Outcome.ROUND_CLOSED)
        if offer_id in r.offers:
            return SubmitResult(Outcome.ROUND_UNKNOWN)
        label = r.labels.get(bank_id)
        if label is None:
            label = r.pool.pop(0) if r.pool else f"Banka {len(r.labels) + 1}"
            r.labels[bank_id] = label
        r.seq += 1
        v = OfferVersion(round_id, offer_id, ref, bank_id, label, 1, r.seq, now, apr_e4, terms)
        return self._accept(r, v, idem)

    async def revise(self, round_id: str, bank_id: str, offer_id: str, terms: OfferTerms,
                     apr_e4: int, idem: tuple[str, str] | None = None) -> SubmitResult:
        r = self._begin(round_id, idem)
        if isinstance(r, SubmitResult):
            return r
        old = r.offers.get(offer_id)
        if old is None or old.bank_id != bank_id:
            return SubmitResult(Outcome.OFFER_UNKNOWN)
        now = self._clock()
        if r.state is not RoundState.OPEN or now >= r.terms.closes_at_ms:
            return SubmitResult(Outcome.ROUND_CLOSED)
        r.seq += 1
        v = OfferVersion(round_id, offer_id, old.ref, bank_id, old.label, old.version + 1,
                         r.seq, now, apr_e4, terms)
        return self._accept(r, v, idem)

    async def close(self, round_id: str) -> CloseResult:
        r = self._rounds.get(round_id)
        if r is None:
            return CloseResult(Outcome.ROUND_UNKNOWN)
        if r.state is not RoundState.OPEN:
            return CloseResult(Outcome.ALREADY_CLOSED, r.seq, r.closed_at_ms,
                               ranked(list(r.offers.values())))
        now = self._clock()
        if now < r.terms.closes_at_ms:
            return CloseResult(Outcome.NOT_DUE, r.seq)
        r.seq += 1
        r.state = RoundState.CLOSED
        r.closed_at_ms = now
        r.events.append(Event(round_id, r.seq, "round_closed", at_ms=now))
        return CloseResult(Outcome.OK, r.seq, now, ranked(list(r.offers.values())))

    async def view(self, round_id: str, viewer_bank_id: str = "") -> BookView | None:
        r = self._rounds.get(round_id)
        if r is None:
            return None
        return BookView(round_id, r.state, r.seq, r.terms.closes_at_ms, r.closed_at_ms,
                        r.labels.get(viewer_bank_id) if viewer_bank_id else None,
                        ranked(list(r.offers.values())))

    async def events(self, round_id: str, after_seq: int = 0) -> list[Event]:
        r = self._rounds.get(round_id)
        return [] if r is None else [e for e in r.events if e.seq > after_seq]
