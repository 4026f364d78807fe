"""Replica acks on a real Redis Cluster (``IGE_REDIS_REPLICA_ACKS``, auction/redis/acks.py
``cluster_then_wait``; tests/rediscluster.py: 3 masters, 3 replicas): a bid script and its
WAIT go to the master of the round's slot on one connection; an acknowledged offer is on that
master's replica; with that replica frozen (SIGSTOP) an offer is ``ReplicationPending``, never
an answer, and so is the persister's fence (``RedisBook.replicated``); a slot moved to another
master (MOVED), half-migrated (ASK, TRYAGAIN) or a master without the script (NOSCRIPT) are
handled inside, the offer still acknowledged once replicated."""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from redis.crc import key_slot

from auction.buckets import bucket_of
from auction.model import Outcome
from auction.redis import keys
from auction.redis.acks import ReplicaAcks, ReplicationPending
from auction.redis.book import RedisBook
from auction.rules import new_ref
from gateway.bootstrap import cluster_client
from gateway.settings import parse_redis_url
from tests.contract.test_book_contract import a_round, terms
from tests.rediscluster import LoopbackCluster

#: a second: a replica's fsync on this shared machine sometimes takes longer than 200 ms
ACKS = ReplicaAcks(1, 1000)
HANG_S = 4.0  # a loose bound: a frozen replica fails an offer at about WAIT's timeout


def round_on(cluster: LoopbackCluster, port: int) -> str:
    """A round id whose slot the master on ``port`` serves."""
    owners = cluster.slot_owners()
    while True:
        rid = "rnd_" + secrets.token_hex(5)
        if owners[key_slot(keys.round_keys(rid).meta.encode())] == port:
            return rid


@pytest.fixture
def frozen(redis_cluster: LoopbackCluster) -> Iterator[list[int]]:
    """Ports to thaw at the end, whatever happens (a frozen node left behind would stall the
    session's cluster)."""
    ports: list[int] = []
    yield ports
    for p in ports:
        redis_cluster.thaw(p)
    if ports:
        redis_cluster.wait_ok()


async def submit(book: RedisBook, rid: str, bank: str, key: str | None = None) -> Any:
    return await book.submit(rid, bank, "off_" + secrets.token_hex(4), new_ref(), terms(),
                             300_000, (key, "h-" + key) if key else None)


async def test_acknowledged_offers_are_on_the_replica_of_their_master(
        cluster_redis: Any, redis_cluster: LoopbackCluster) -> None:
    book = RedisBook(cluster_redis, acks=ACKS)
    for master in sorted(redis_cluster.master_ports()):
        rid = round_on(redis_cluster, master)
        assert await book.open_round(a_round(round_id=rid))
        res = await submit(book, rid, "bank-a", "k1")
        assert res.outcome is Outcome.OK and res.offer is not None
        rev = await book.revise(rid, "bank-a", res.offer.offer_id, terms(290_000), 290_000,
                                ("k2", "h2"))
        assert rev.outcome is Outcome.OK and rev.offer is not None and rev.offer.version == 2
        # read at once from the replica: WAIT said it has both versions
        replica = redis_cluster.node(redis_cluster.replica_of(master)).client()
        replica.execute_command("READONLY")
        rec = replica.hget(keys.round_keys(rid).offers, res.offer.offer_id)
        assert rec is not None and b'"v":2' in rec
        assert replica.exists(keys.offer_idempotency(rid, "k1"),
                              keys.offer_idempotency(rid, "k2")) == 2


async def test_with_the_replica_of_the_round_s_master_frozen_offers_are_never_acknowledged(
        cluster_redis: Any, redis_cluster: LoopbackCluster, frozen: list[int]) -> None:
    book = RedisBook(cluster_redis, acks=ACKS)
    owners = sorted(redis_cluster.master_ports())
    rid, other = round_on(redis_cluster, owners[0]), round_on(redis_cluster, owners[1])
    for r in (rid, other):
        assert await book.open_round(a_round(round_id=r))
    replica = redis_cluster.replica_of(owners[0])
    redis_cluster.freeze(replica)
    frozen.append(replica)
    t0 = asyncio.get_running_loop().time()
    with pytest.raises(ReplicationPending):
        await submit(book, rid, "bank-a", "k1")
    assert asyncio.get_running_loop().time() - t0 < HANG_S
    with pytest.raises(ReplicationPending):  # the retry is a replay, not acknowledged either
        await submit(book, rid, "bank-a", "k1")
    # the persister's fence in that round's slot is not confirmed either; elsewhere it is
    with pytest.raises(ReplicationPending):
        await book.replicated([rid])
    await book.replicated([other])
    ok = await submit(book, other, "bank-a", "k1")  # another master's rounds go on
    assert ok.outcome is Outcome.OK
    redis_cluster.thaw(replica)
    frozen.remove(replica)
    again = await submit(book, rid, "bank-a", "k1")
    assert again.outcome is Outcome.IDEMPOTENCY_REPLAY and again.offer is not None
    assert again.offer.seq == 1
    await book.replicated([rid, other])


async def test_a_master_without_the_script_is_given_it(
        cluster_redis: Any, redis_cluster: LoopbackCluster) -> None:
    book = RedisBook(cluster_redis, acks=ACKS)
    master = min(redis_cluster.master_ports())
    rid = round_on(redis_cluster, master)
    assert await book.open_round(a_round(round_id=rid))
    redis_cluster.node(master).client().script_flush()
    res = await submit(book, rid, "bank-a")
    assert res.outcome is Outcome.OK
    # the script it was given is the registered one (on a cluster: the one that SPUBLISHes to
    # the round's shard channel): its EVALSHA works from now on
    assert redis_cluster.node(master).client().script_exists(book.scripts.submit.sha) == [True]


async def test_a_slot_moved_to_another_master_is_followed(
        redis_cluster: Any, cluster_url: str) -> None:
    """A client whose slot map is stale gets MOVED: the offer goes to the new master and is
    acknowledged once that master's replica has it."""
    redis_cluster.flushall()
    stale = cluster_client(parse_redis_url(cluster_url), 5.0)
    await stale.initialize()
    try:
        book = RedisBook(stale, acks=ACKS)
        source = min(redis_cluster.master_ports())
        rid = round_on(redis_cluster, source)
        assert await book.open_round(a_round(round_id=rid))
        first = await submit(book, rid, "bank-a", "k1")
        assert first.outcome is Outcome.OK
        slot = key_slot(keys.round_keys(rid).meta.encode())
        target = max(redis_cluster.master_ports())
        redis_cluster.move_slot(slot, target)
        res = await submit(book, rid, "bank-b", "k2")  # MOVED, followed
        assert res.outcome is Outcome.OK and res.offer is not None and res.offer.seq == 2
        replica = redis_cluster.node(redis_cluster.replica_of(target)).client()
        replica.execute_command("READONLY")
        assert replica.hlen(keys.round_keys(rid).offers) == 2
        await book.replicated([rid])
    finally:
        await stale.aclose()


async def test_an_ask_to_a_master_without_the_script_is_followed(
        cluster_redis: Any, redis_cluster: LoopbackCluster) -> None:
    """The round's keys have all left for the importing master, the slot not yet handed over:
    the source answers ASK; the target has never run the script: NOSCRIPT, then EVAL, each
    after ASKING on the same connection; the WAIT there covers the target's replica."""
    book = RedisBook(cluster_redis, acks=ACKS)
    source = min(redis_cluster.master_ports())
    target = max(redis_cluster.master_ports())
    rid = round_on(redis_cluster, source)
    assert await book.open_round(a_round(round_id=rid))
    assert (await submit(book, rid, "bank-a")).outcome is Outcome.OK
    slot = key_slot(keys.round_keys(rid).meta.encode())
    redis_cluster.start_migration(slot, target)
    try:
        while redis_cluster.migrate_keys(slot, source, target, 100):
            pass
        redis_cluster.node(target).client().script_flush()
        # no Idempotency-Key: every key the script names exists (a new key in a slot being
        # imported would be TRYAGAIN until the slot is handed over)
        res = await submit(book, rid, "bank-b")
        assert res.outcome is Outcome.OK and res.offer is not None and res.offer.seq == 2
        assert redis_cluster.node(target).client().script_exists(
            book.scripts.submit.sha) == [True]
    finally:
        redis_cluster.hand_over(slot, source, target)
    replica = redis_cluster.node(redis_cluster.replica_of(target)).client()
    replica.execute_command("READONLY")  # (a replica serves its master's slots only)
    assert replica.hlen(keys.round_keys(rid).offers) == 2
    view = await book.view(rid)
    assert view is not None and len(view.offers) == 2


async def test_offers_during_a_slot_migration_are_acknowledged_or_retryable(
        cluster_redis: Any, redis_cluster: LoopbackCluster) -> None:
    """While the slot of a round's bucket migrates key by key (ASK for a key that left,
    TRYAGAIN for a script whose keys are split), offers flow: each is acknowledged (followed
    inside) or refused with a Redis error (a 503 to the bank), and every acknowledged one is
    in the book afterwards, on the new master."""
    book = RedisBook(cluster_redis, acks=ACKS)
    source = min(redis_cluster.master_ports())
    target = max(redis_cluster.master_ports())
    rids = [round_on(redis_cluster, source)]
    bucket = bucket_of(rids[0])
    while len(rids) < 4:  # rounds of the same bucket: the same slot
        rid = "rnd_" + secrets.token_hex(5)
        if bucket_of(rid) == bucket:
            rids.append(rid)
    for rid in rids:
        assert await book.open_round(a_round(round_id=rid))
        for i in range(3):  # keys to migrate
            assert (await submit(book, rid, f"seed-{i}")).outcome is Outcome.OK
    slot = key_slot(keys.round_keys(rids[0]).meta.encode())
    # the importing master has never run the scripts: an offer sent to it after an ASK gets
    # NOSCRIPT, and its EVAL must carry ASKING again
    redis_cluster.node(target).client().script_flush()
    acked: list[tuple[str, str]] = []
    errors: list[str] = []
    stop = asyncio.Event()

    async def flow(rid: str, n: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                res = await submit(book, rid, f"bank-{n}-{i}")
            except Exception as e:  # noqa: BLE001 - every error is recorded and judged below
                errors.append(type(e).__name__)
            else:
                assert res.outcome is Outcome.OK and res.offer is not None
                acked.append((rid, res.offer.offer_id))
            await asyncio.sleep(0.005)

    async def read(rid: str) -> None:  # redis-py's own commands meet MOVED and ASK too
        while not stop.is_set():
            try:
                await book.view(rid)
                await book.events_after({rid: 0})
            except Exception as e:  # noqa: BLE001 - judged below
                errors.append("read " + type(e).__name__)
            await asyncio.sleep(0)

    flows = [asyncio.create_task(flow(rid, n)) for n, rid in enumerate(rids)]
    flows += [asyncio.create_task(read(rid)) for rid in rids for _ in range(4)]
    half = threading.Event()
    mover = asyncio.create_task(asyncio.to_thread(
        redis_cluster.move_slot, slot, target, lambda: (half.set(), _pause())))
    await mover
    await asyncio.sleep(0.2)
    stop.set()
    await asyncio.gather(*flows)
    assert half.is_set() and redis_cluster.master_of(keys.round_keys(rids[0]).meta) == target
    assert acked, "no offer got through"
    # the redirections of a migration are followed inside; a TRYAGAIN is waited out for about
    # a second (past that, a 503 to the bank: allowed, if the machine is slow). Never a
    # connection cut under an offer: redis-py's client, by default, closed every connection
    # of every node at each fifth MOVED it met (``reinitialize_steps``; see cluster_client)
    assert set(errors) <= {"TryAgainError", "read TryAgainError"}, errors
    for rid in rids:
        view = await book.view(rid)
        assert view is not None
        have = {o.offer_id for o in view.offers}
        assert {o for r, o in acked if r == rid} <= have
    await book.replicated(rids)


def _pause() -> None:
    """Hold the slot half-migrated for a moment (offers meet ASK and TRYAGAIN meanwhile)."""
    threading.Event().wait(0.15)
