"""The deployment's pub/sub channels (``auction.bus.Bus``): announcements out, and in, for the
processes serving the stream, only what their clients watch.

Each round has a channel of its own (``keys.Channels.round``: its book events, written by the
Lua scripts, and the completion of its close); new rounds are announced on the pool channel.
A listener is always on the pool channel and ``watch``es a round's channel while one of its
clients follows the round (counted: the last ``unwatch`` leaves it). ``watch`` returns once
Redis confirmed the subscription, so a read of the book made afterwards misses nothing.

On a single Redis the channels are classic pub/sub (PUBLISH/SUBSCRIBE: Redis 6.2 has nothing
else). On a Redis Cluster a round's channel is a shard channel (SPUBLISH/SSUBSCRIBE, Redis 7):
it carries the round's hash tag, so its messages stay on the master that owns the round's slot
(and its replicas) and reach only the processes that subscribed there; the listener keeps one
subscribed connection per master (``_Shards``). The pool channel stays classic (a cluster
broadcasts it to every node; a few messages a minute): the listener subscribes to it on one of
the masters. Any trouble on a cluster link (a connection lost, a master failing over, a slot
moved away: Redis then ends the slot's shard subscriptions with an SUNSUBSCRIBE of its own)
closes every link; the listener reads the topology again, subscribes again and calls
``on_connect`` (the resynchronisation), as after a reconnection on a single Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisError

from auction.bus import Announcement, RoundFinalized, RoundOpened
from auction.redis import envelope, keys
from auction.redis.conn import reset_aware
from auction.redis.scripts import AnyRedis, is_cluster

log = logging.getLogger("ige.bus")
RECONNECT_PAUSE_S = 0.5
WATCH_TIMEOUT_S = 5.0


class _Relink(RedisError):
    """The cluster's links must be made again (a slot moved, a master unknown so far)."""


class _Shards:
    """The listener's links to a Redis Cluster: one subscribed connection per master, their
    messages merged into one queue (``node name, message``, or an exception that ends them)."""

    def __init__(self, cluster: RedisCluster) -> None:
        self.cluster = cluster
        self.links: dict[str, PubSub] = {}
        self.where: dict[str, str] = {}  # shard channel -> node name it is subscribed on
        self.queue: asyncio.Queue[tuple[str, dict[str, Any] | BaseException]] = \
            asyncio.Queue()
        self._readers: list[asyncio.Task[None]] = []

    async def open(self) -> None:
        """Read the slots again (a failover or a reshard changed them) and connect to every
        master."""
        await self.cluster.nodes_manager.initialize()
        for node in self.cluster.get_primaries():
            kwargs = {k: v for k, v in node.connection_kwargs.items()
                      if k not in ("oss_cluster_maint_notifications_handler",
                                   "maint_notifications_config")}
            pool = ConnectionPool(connection_class=reset_aware(node.connection_class), **kwargs)
            ps = Redis(connection_pool=pool).pubsub(ignore_subscribe_messages=False)
            self.links[node.name] = ps
            await ps.connect()  # type: ignore[no-untyped-call]
        for name, ps in self.links.items():
            self._readers.append(asyncio.create_task(self._read(name, ps)))

    async def _read(self, name: str, ps: PubSub) -> None:
        try:
            while True:
                # listen() ends while nothing is subscribed yet: poll that link instead
                if not ps.subscribed:
                    await asyncio.sleep(0.05)
                    continue
                msg = await ps.get_message(timeout=None)
                if msg is not None:
                    self.queue.put_nowait((name, msg))
        except asyncio.CancelledError:
            raise
        except BaseException as e:  # noqa: BLE001 - handed to the listener, which relinks
            self.queue.put_nowait((name, e))

    def node_of(self, channel: str) -> str:
        node = self.cluster.nodes_manager.get_node_from_slot(key_slot(channel.encode()))
        if node.name not in self.links:
            raise _Relink(f"slot of {channel} on a master not linked: {node.name}")
        return node.name

    async def subscribe_pool(self, channel: str) -> None:
        await next(iter(self.links.values())).subscribe(channel)

    async def ssubscribe(self, channels: Sequence[str]) -> None:
        """SSUBSCRIBE each on its master, one command per slot (one slot per command)."""
        by_slot: dict[int, list[str]] = {}
        for ch in channels:
            by_slot.setdefault(key_slot(ch.encode()), []).append(ch)
        for part in by_slot.values():
            name = self.node_of(part[0])
            for ch in part:
                self.where[ch] = name
            await self.links[name].ssubscribe(*part)

    async def sunsubscribe(self, channel: str) -> None:
        name = self.where.pop(channel, None)
        if name is not None and name in self.links:
            await self.links[name].sunsubscribe(channel)

    async def aclose(self) -> None:
        for t in self._readers:
            t.cancel()
        for t in self._readers:
            with contextlib.suppress(BaseException):
                await t
        for ps in self.links.values():
            with contextlib.suppress(RedisError, OSError):
                await ps.aclose()  # type: ignore[no-untyped-call]
            with contextlib.suppress(RedisError, OSError):
                if ps.connection_pool is not None:
                    await ps.connection_pool.disconnect()


class RedisBus:
    def __init__(self, redis: AnyRedis, listener: AnyRedis | None = None,
                 channels: keys.Channels | None = None) -> None:
        """``listener`` is a client of its own: a subscribed connection blocks on reads. On a
        Redis Cluster (a ``RedisCluster`` listener) the round channels are sharded."""
        self.redis = redis
        self.listener = listener or redis
        self.sharded = is_cluster(self.listener)
        self._shards: _Shards | None = None
        self.channels = channels or keys.Channels()
        self._watching: dict[str, int] = {}  # round channel -> how many watch it
        self._confirmed: dict[str, asyncio.Future[None]] = {}
        # SUBSCRIBEs sent and not yet confirmed, per channel: a watch is confirmed by the
        # answer to its own SUBSCRIBE, never by an earlier one still in flight (after which an
        # UNSUBSCRIBE may yet be processed)
        self._unconfirmed: dict[str, int] = {}
        # SUNSUBSCRIBEs this process sent and Redis has not confirmed yet, per channel: their
        # confirmations are ours even when the round is watched again meanwhile (an unwatch
        # then a watch before the answer), never Redis ending the slot's subscriptions
        self._leaving: dict[str, int] = {}
        self._pubsub: PubSub | None = None
        self.reconnects = 0

    async def publish(self, news: RoundOpened | RoundFinalized) -> None:
        if isinstance(news, RoundOpened):
            await self.redis.publish(self.channels.pool, envelope.encode(news))
        elif self.sharded:
            await self.redis.spublish(self.channels.round(news.round_id), envelope.encode(news))
        else:
            await self.redis.publish(self.channels.round(news.round_id), envelope.encode(news))

    async def publish_many(self, news: Sequence[RoundOpened | RoundFinalized]) -> None:
        if not news:
            return
        if self.sharded:  # a cluster pipeline refuses PUBLISH: the pool's news one by one
            pipe = self.redis.pipeline(transaction=False)
            for n in news:
                if isinstance(n, RoundOpened):
                    await self.redis.publish(self.channels.pool, envelope.encode(n))
                else:
                    pipe.spublish(self.channels.round(n.round_id), envelope.encode(n))
            await pipe.execute()
            return
        pipe = self.redis.pipeline(transaction=False)
        for n in news:
            pipe.publish(self.channels.pool if isinstance(n, RoundOpened)
                         else self.channels.round(n.round_id), envelope.encode(n))
        await pipe.execute()

    # -- what this process listens to ------------------------------------------------------
    async def watch(self, round_id: str) -> None:
        """Listen to the round's channel (from the confirmation on)."""
        ch = self.channels.round(round_id)
        n = self._watching.get(ch, 0)
        self._watching[ch] = n + 1
        if n:
            fut = self._confirmed.get(ch)
            if fut is not None:
                await asyncio.wait_for(asyncio.shield(fut), WATCH_TIMEOUT_S)
            return
        fut = self._confirmed[ch] = asyncio.get_running_loop().create_future()
        if self._shards is not None:
            shards = self._shards
            self._unconfirmed[ch] = self._unconfirmed.get(ch, 0) + 1
            try:
                await shards.ssubscribe([ch])
            except (RedisError, OSError) as e:  # the listener relinks and resubscribes
                shards.queue.put_nowait(("", e))
        elif self._pubsub is not None:
            self._unconfirmed[ch] = self._unconfirmed.get(ch, 0) + 1
            with contextlib.suppress(RedisError, OSError):  # the listener resubscribes
                await self._pubsub.subscribe(ch)
        try:
            await asyncio.wait_for(asyncio.shield(fut), WATCH_TIMEOUT_S)
        except BaseException:
            self._forget(ch)
            raise

    async def unwatch(self, round_id: str) -> None:
        ch = self.channels.round(round_id)
        if not self._forget(ch):
            return
        if self._shards is not None:
            self._leaving[ch] = self._leaving.get(ch, 0) + 1
            with contextlib.suppress(RedisError, OSError):
                await self._shards.sunsubscribe(ch)
        elif self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.unsubscribe(ch)

    def _leave(self, ch: str) -> bool:
        """A SUNSUBSCRIBE of ``ch`` confirmed: True if this process had sent it."""
        n = self._leaving.get(ch, 0)
        if not n:
            return False
        if n > 1:
            self._leaving[ch] = n - 1
        else:
            del self._leaving[ch]
        return True

    def _forget(self, ch: str) -> bool:
        """One watcher less; True when it was the last."""
        n = self._watching.get(ch, 0) - 1
        if n > 0:
            self._watching[ch] = n
            return False
        self._watching.pop(ch, None)
        fut = self._confirmed.pop(ch, None)
        if fut is not None and not fut.done():
            fut.cancel()
        return True

    def watched(self) -> int:
        return len(self._watching)

    # -- the listener ------------------------------------------------------------------------
    async def listen(self, on_connect: Callable[[], None]) -> AsyncIterator[Announcement]:
        """Every announcement of the pool channel and the watched round channels, for ever.
        ``on_connect`` runs after each (re)subscription: what was announced while the link was
        down is lost, so listeners resynchronise there."""
        if self.sharded:
            async for a in self._listen_sharded(on_connect):
                yield a
            return
        while True:
            pubsub = self.listener.pubsub(ignore_subscribe_messages=False)
            try:
                await pubsub.connect()  # type: ignore[no-untyped-call]
                # from here a watch() subscribes by itself; the channels watched so far go in
                # one SUBSCRIBE (no await in between: none is missed, none is sent twice)
                self._pubsub = pubsub
                channels = [self.channels.pool, *self._watching]
                self._unconfirmed = dict.fromkeys(channels, 1)
                await pubsub.subscribe(*channels)
                on_connect()
                async for msg in pubsub.listen():
                    kind = msg.get("type")
                    if kind == "subscribe":
                        self._confirm(msg)
                        continue
                    if kind != "message":
                        continue
                    try:
                        yield envelope.decode(msg["data"])
                    except envelope.EnvelopeError as e:  # a bad message must not stop the rest
                        log.error("%s", e)
            except (RedisError, OSError) as e:
                log.warning("pub/sub lost (%s); reconnecting", e)
                self.reconnects += 1
                await asyncio.sleep(RECONNECT_PAUSE_S)
            finally:
                self._pubsub = None
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _listen_sharded(self, on_connect: Callable[[], None]
                              ) -> AsyncIterator[Announcement]:
        assert isinstance(self.listener, RedisCluster)
        while True:
            shards = _Shards(self.listener)
            try:
                await shards.open()
                # as on a single Redis: from here a watch() subscribes by itself, the channels
                # watched so far are subscribed with no await in between that could miss one
                self._shards = shards
                self._leaving = {}  # new links: nothing of theirs is leaving
                watched = list(self._watching)
                self._unconfirmed = dict.fromkeys([self.channels.pool, *watched], 1)
                await shards.subscribe_pool(self.channels.pool)
                await shards.ssubscribe(watched)
                on_connect()
                while True:
                    _, msg = await shards.queue.get()
                    if isinstance(msg, BaseException):
                        raise msg
                    kind = msg.get("type")
                    if kind in ("subscribe", "ssubscribe"):
                        self._confirm(msg)
                        continue
                    if kind == "sunsubscribe":
                        ch = _name(msg["channel"])
                        if self._leave(ch):
                            continue  # the answer to our own SUNSUBSCRIBE
                        if ch in self._watching:  # not ours: the slot moved to another master
                            raise _Relink(f"{ch} unsubscribed by Redis")
                    if kind not in ("message", "smessage"):
                        continue
                    try:
                        yield envelope.decode(msg["data"])
                    except envelope.EnvelopeError as e:
                        log.error("%s", e)
            except (RedisError, OSError) as e:
                log.warning("pub/sub lost (%s); reconnecting", e)
                self.reconnects += 1
                await asyncio.sleep(RECONNECT_PAUSE_S)
            finally:
                self._shards = None
                await shards.aclose()

    def _confirm(self, msg: dict[str, Any]) -> None:
        ch = _name(msg["channel"])
        left = self._unconfirmed.get(ch, 1) - 1
        if left > 0:
            self._unconfirmed[ch] = left
            return
        self._unconfirmed.pop(ch, None)
        fut = self._confirmed.get(ch)
        if fut is not None and not fut.done():
            fut.set_result(None)


def _name(channel: Any) -> str:
    return channel.decode() if isinstance(channel, bytes) else str(channel)
