"""The Redis adapter on a real Redis Cluster (``tests/rediscluster.py``: 3 masters, 3 replicas):
sharded pub/sub by round (a listener hears only the rounds it watches, on every master; a slot
moved away or a link cut leads to a resubscription and an ``on_connect``, never silence), the
data-set marker per bucket (one master losing its data is seen), and the pool channel."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio.cluster import ClusterNode
from redis.crc import key_slot

from auction.bus import Announcement, BookChanged, RoundFinalized, RoundOpened
from auction.model import Outcome
from auction.redis import keys
from auction.redis.book import RedisBook
from auction.redis.bus import RedisBus
from auction.redis.cluster import WaitingCluster
from gateway.bootstrap import cluster_client
from gateway.settings import parse_redis_url
from tests.contract.test_book_contract import a_round, terms
from tests.rediscluster import LoopbackCluster

WAIT_S = 15.0  # a generous bound for a message to arrive (never reached when all is well)


def rounds_on_every_master(cluster: LoopbackCluster, per_master: int = 1) -> list[str]:
    """Round ids, ``per_master`` on each master: one of each master, then again."""
    owners = cluster.slot_owners()
    found: dict[int, list[str]] = {p: [] for p in cluster.master_ports()}
    while any(len(v) < per_master for v in found.values()):
        rid = "rnd_" + secrets.token_hex(5)
        mine = found[owners[key_slot(keys.round_keys(rid).meta.encode())]]
        if len(mine) < per_master:
            mine.append(rid)
    return [rids[i] for i in range(per_master) for rids in found.values()]


class Listener:
    """A RedisBus listening on the cluster in a task: what it hears, how often it (re)linked."""

    def __init__(self, bus: RedisBus) -> None:
        self.bus = bus
        self.heard: asyncio.Queue[Announcement] = asyncio.Queue()
        self.connects = 0
        self.linked = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def _on_connect(self) -> None:
        self.connects += 1
        self.linked.set()

    async def _run(self) -> None:
        async for a in self.bus.listen(self._on_connect):
            self.heard.put_nowait(a)

    async def start(self) -> Listener:
        self.task = asyncio.create_task(self._run())
        await asyncio.wait_for(self.linked.wait(), WAIT_S)
        return self

    async def next(self) -> Announcement:
        return await asyncio.wait_for(self.heard.get(), WAIT_S)

    async def relinked(self, before: int) -> None:
        """Until ``on_connect`` ran again since it had run ``before`` times."""
        while self.connects <= before:
            self.linked.clear()
            await asyncio.wait_for(self.linked.wait(), WAIT_S)

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def subscribed_on_owners(cluster: LoopbackCluster, channels: list[str]) -> None:
    """Until each shard channel has a subscriber on the master that owns its slot now (after
    a relink that read a slot map not yet updated everywhere, the listener relinks again)."""
    for _ in range(int(WAIT_S / 0.05)):
        if all(cluster.node(cluster.master_of(ch)).client().execute_command(
                "PUBSUB SHARDNUMSUB", ch)[0][1] for ch in channels):
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"not subscribed on the owners of {channels}")


@pytest.fixture
async def listener(cluster_redis: Any, redis_cluster: LoopbackCluster, channel: str
                   ) -> AsyncIterator[Listener]:
    sub = cluster_client(parse_redis_url(redis_cluster.url), 5.0)
    bus = RedisBus(cluster_redis, sub, keys.Channels(channel))
    heard = await Listener(bus).start()
    yield heard
    await heard.stop()
    await sub.aclose()


async def quote(book: RedisBook, rid: str, bank: str) -> None:
    res = await book.submit(rid, bank, "off_" + secrets.token_hex(4), "ref" + secrets.token_hex(4),
                            terms(), 330_000)
    assert res.outcome is Outcome.OK, res


def test_a_cluster_url_names_its_nodes_and_a_plain_url_one_redis() -> None:
    t = parse_redis_url("redis+cluster://app:s%40cret@10.0.0.1:7000,10.0.0.2:7001")
    assert (t.cluster, t.nodes, t.username, t.password) == (
        True, (("10.0.0.1", 7000), ("10.0.0.2", 7001)), "app", "s@cret")
    assert t.limits_uri() == "async+redis+cluster://app:s@cret@10.0.0.1:7000,10.0.0.2:7001"
    assert parse_redis_url("redis://127.0.0.1:6379/0").cluster is False
    assert parse_redis_url("unix:///tmp/r.sock").limits_uri() == "async+redis+unix:///tmp/r.sock"


ENV = {"IGE_ADMIN_TOKEN": "a-strong-admin-token-1", "IGE_SECRET_KEY": "k" * 40}


@pytest.mark.parametrize("bad", ["redis+cluster://", "redis+cluster://h1", "redis+cluster://h:1/0",
                                 "redis+cluster://h:1,h2:x", "redis+cluster://h:99999"])
def test_a_malformed_cluster_url_stops_the_start(bad: str) -> None:
    from gateway.settings import ConfigError, Settings

    good = Settings.from_env({**ENV, "REDIS_URL": "redis+cluster://h:1,h2:2"})
    assert good.redis_target.nodes == (("h", 1), ("h2", 2))
    with pytest.raises(ConfigError, match="REDIS_URL"):
        Settings.from_env({**ENV, "REDIS_URL": bad})


async def test_round_channels_are_sharded_and_heard_only_while_watched(
        cluster_redis: Any, redis_cluster: LoopbackCluster, listener: Listener,
        channel: str) -> None:
    book = RedisBook(cluster_redis, keys.Channels(channel))
    rids = rounds_on_every_master(redis_cluster, 2)
    watched, unwatched = rids[:3], rids[3:]
    assert {redis_cluster.master_of(keys.round_keys(r).meta) for r in watched} == \
        redis_cluster.master_ports()
    for rid in rids:
        assert await book.open_round(a_round(round_id=rid))
        # the channel is in the round's slot: SPUBLISH from the script is allowed
        assert key_slot(keys.Channels(channel).round(rid).encode()) == key_slot(
            keys.round_keys(rid).meta.encode())
    for rid in watched:
        await listener.bus.watch(rid)
    for rid in rids:
        await quote(book, rid, "bank_a")
    heard = [await listener.next() for _ in watched]
    assert sorted(a.event.round_id for a in heard if isinstance(a, BookChanged)) == \
        sorted(watched)
    # what was not watched was not sent here: the next message is the pool's announcement
    await listener.bus.publish(RoundOpened("rnd_pool"))
    assert await listener.next() == RoundOpened("rnd_pool")
    # the close's completion comes on the round's shard channel too; unwatched: silence
    await listener.bus.publish_many([RoundFinalized(watched[0]), RoundFinalized(unwatched[0]),
                                     RoundOpened("rnd_pool2")])
    # (two channels on two connections: in either order)
    assert {await listener.next(), await listener.next()} == {
        RoundFinalized(watched[0]), RoundOpened("rnd_pool2")}
    await listener.bus.unwatch(watched[0])
    await quote(book, watched[0], "bank_b")
    await quote(book, watched[1], "bank_b")
    got = await listener.next()
    assert isinstance(got, BookChanged) and got.event.round_id == watched[1]
    assert listener.connects == 1 and listener.bus.reconnects == 0


async def test_a_round_unwatched_then_watched_again_at_once_is_no_relink(
        cluster_redis: Any, redis_cluster: LoopbackCluster, listener: Listener,
        channel: str) -> None:
    """``make bench`` on the cluster: 2,000 WebSockets leaving and coming back made the answer
    to the bus's own SUNSUBSCRIBE arrive while the round was watched again, read as Redis
    ending the slot's subscriptions: every stream process relinked and resynchronised all its
    clients. Our own SUNSUBSCRIBEs are counted; only Redis's lead to a relink."""
    book = RedisBook(cluster_redis, keys.Channels(channel))
    rids = rounds_on_every_master(redis_cluster)
    for rid in rids:
        assert await book.open_round(a_round(round_id=rid))
        await listener.bus.watch(rid)
    for _ in range(20):
        for rid in rids:
            await listener.bus.unwatch(rid)
            await listener.bus.watch(rid)  # before the SUNSUBSCRIBE's answer came back
    for rid in rids:
        await quote(book, rid, "bank_a")
    heard = {(await listener.next()) for _ in rids}
    assert {a.event.round_id for a in heard if isinstance(a, BookChanged)} == set(rids)
    assert listener.connects == 1 and listener.bus.reconnects == 0


async def test_commands_past_the_connections_wait_their_turn(
        redis_cluster: LoopbackCluster) -> None:
    """redis-py's cluster client fails a command past ``max_connections`` on a node at once
    (MaxConnectionsError: 503); ours waits its turn as the single Redis's blocking pool does:
    400 concurrent reads through 8 connections all succeed, pipelines too."""
    client = WaitingCluster(startup_nodes=[ClusterNode("127.0.0.1", n.port)
                                           for n in redis_cluster.nodes[:3]],
                            max_in_flight=8, wait_s=10.0)
    try:
        await client.set("ige:{b01}:waiting", "1")

        async def read() -> Any:
            return await client.get("ige:{b01}:waiting")

        async def piped() -> Any:
            pipe = client.pipeline()
            pipe.get("ige:{b01}:waiting")
            pipe.get("ige:{b02}:waiting")
            return await pipe.execute()
        got = await asyncio.gather(*(read() for _ in range(400)), *(piped() for _ in range(50)))
        assert got[:400] == [b"1"] * 400 and got[400:] == [[b"1", None]] * 50
        assert max(len(n._connections) for n in client.get_nodes()) <= 8
    finally:
        await client.aclose()


async def test_a_link_cut_leads_to_a_resubscription_and_a_resync(
        cluster_redis: Any, redis_cluster: LoopbackCluster, listener: Listener,
        channel: str) -> None:
    book = RedisBook(cluster_redis, keys.Channels(channel))
    rids = rounds_on_every_master(redis_cluster)
    for rid in rids:
        assert await book.open_round(a_round(round_id=rid))
        await listener.bus.watch(rid)
    victim = redis_cluster.node(redis_cluster.master_of(keys.round_keys(rids[0]).meta))
    before = listener.connects
    victim.client().client_kill_filter(_type="pubsub")  # the master drops the subscriber
    await listener.relinked(before)
    assert listener.bus.reconnects >= 1
    await subscribed_on_owners(redis_cluster, [keys.Channels(channel).round(r) for r in rids])
    for rid in rids:  # every watched round is heard again, on every master
        await quote(book, rid, "bank_a")
    heard = {(await listener.next()) for _ in rids}
    assert {a.event.round_id for a in heard if isinstance(a, BookChanged)} == set(rids)


async def test_a_slot_moved_to_another_master_is_followed(
        cluster_redis: Any, redis_cluster: LoopbackCluster, listener: Listener,
        channel: str) -> None:
    """Redis ends the shard subscriptions of a slot that leaves a master (SUNSUBSCRIBE of its
    own): the listener links again, to the new owner, and resynchronises."""
    rid = "rnd_" + secrets.token_hex(5)
    ch = keys.Channels(channel).round(rid)
    slot = key_slot(ch.encode())
    source = redis_cluster.master_of(ch)
    target = next(p for p in sorted(redis_cluster.master_ports()) if p != source)
    await listener.bus.watch(rid)
    before = listener.connects
    # move the (empty: nothing of this round is written yet) slot: every master is told
    target_id = redis_cluster.node(target).client().execute_command("CLUSTER MYID")
    for port in (target, source):
        redis_cluster.node(port).client().execute_command(
            "CLUSTER SETSLOT", slot, "NODE", target_id)
    for port in redis_cluster.master_ports() - {source, target}:
        redis_cluster.node(port).client().execute_command(
            "CLUSTER SETSLOT", slot, "NODE", target_id)
    redis_cluster.wait_ok()
    await listener.relinked(before)
    for _ in range(int(WAIT_S / 0.05)):  # every node's slot map says so (gossip: a moment)
        if redis_cluster.master_of(ch) == target:
            break
        await asyncio.sleep(0.05)
    assert redis_cluster.master_of(ch) == target
    await subscribed_on_owners(redis_cluster, [ch])
    book = RedisBook(cluster_redis, keys.Channels(channel))
    assert await book.open_round(a_round(round_id=rid))
    await quote(book, rid, "bank_a")
    got = await listener.next()
    assert isinstance(got, BookChanged) and got.event.round_id == rid


async def test_a_master_that_lost_its_data_is_seen_by_the_markers_of_its_buckets(
        cluster_redis: Any, redis_cluster: LoopbackCluster) -> None:
    book = RedisBook(cluster_redis)
    rids = rounds_on_every_master(redis_cluster)
    for rid in rids:
        assert await book.open_round(a_round(round_id=rid))
    assert await book.intact() is False
    await book.mark_intact()
    assert await book.intact() is True
    lost = redis_cluster.master_of(keys.round_keys(rids[0]).meta)
    redis_cluster.node(lost).client().flushall()  # one master restarted empty
    assert await book.intact() is False
    # only that master's rounds are gone; the others are untouched
    assert [await book.exists(r) for r in rids] == [
        redis_cluster.master_of(keys.round_keys(r).meta) != lost for r in rids]
    await book.mark_intact()
    assert await book.intact() is True


async def test_script_pipelines_load_what_a_master_lacks(
        cluster_redis: Any, redis_cluster: LoopbackCluster) -> None:
    """A promoted replica or a new master has an empty script cache (scripts are not
    replicated): a pipeline of scripts over every master still runs each call once."""
    from auction.redis.guards import RedisGuards

    guards = RedisGuards(cluster_redis)
    book = RedisBook(cluster_redis)
    buckets = [str(b) for b in range(64)]  # leases on every master
    assert all(await guards.hold_many("bucket", buckets, "w1", 5000))
    rids = rounds_on_every_master(redis_cluster)
    for rid in rids:
        assert await book.open_round(a_round(closes_in_ms=-1, round_id=rid))
    for port in redis_cluster.master_ports():
        redis_cluster.node(port).client().script_flush()
    assert sorted(await book.due(10)) == sorted(rids)
    assert [c.outcome for c in await book.close_many(rids)] == [Outcome.OK] * len(rids)
    for port in redis_cluster.master_ports():
        redis_cluster.node(port).client().script_flush()
    assert not any(await guards.hold_many("bucket", buckets, "w2", 5000))  # w1 holds them
    await guards.release_many("bucket", buckets, "w1")
    assert all(await guards.hold_many("bucket", buckets, "w2", 5000))


@pytest.mark.slow
async def test_a_master_failing_over_leads_to_a_resubscription_on_its_replica(
        cluster_redis: Any, redis_cluster: LoopbackCluster, listener: Listener,
        channel: str) -> None:
    book = RedisBook(cluster_redis, keys.Channels(channel))
    rids = rounds_on_every_master(redis_cluster)
    for rid in rids:
        assert await book.open_round(a_round(round_id=rid))
        await listener.bus.watch(rid)
    old = redis_cluster.master_of(keys.round_keys(rids[0]).meta)
    before = listener.connects
    new = await asyncio.to_thread(redis_cluster.fail_over, old)
    assert new != old and redis_cluster.master_of(keys.round_keys(rids[0]).meta) == new
    await listener.relinked(before)
    await subscribed_on_owners(redis_cluster, [keys.Channels(channel).round(r) for r in rids])
    for rid in rids:  # heard again, the failed-over round included (on its new master)
        await quote(book, rid, "bank_a")
    heard = {(await listener.next()) for _ in rids}
    assert {a.event.round_id for a in heard if isinstance(a, BookChanged)} == set(rids)

