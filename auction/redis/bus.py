"""The deployment's pub/sub channels (``auction.bus.Bus``): announcements out, and in, for the
processes serving the stream, only what their clients watch.

Each round has a channel of its own (``keys.Channels.round``: its book events, written by the
Lua scripts, and the completion of its close); new rounds are announced on the pool channel.
A listener is always on the pool channel and ``watch``es a round's channel while one of its
clients follows the round (counted: the last ``unwatch`` leaves it). ``watch`` returns once
Redis confirmed the subscription, so a read of the book made afterwards misses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from auction.bus import Announcement, RoundFinalized, RoundOpened
from auction.redis import envelope, keys

log = logging.getLogger("ige.bus")
RECONNECT_PAUSE_S = 0.5
WATCH_TIMEOUT_S = 5.0


class RedisBus:
    def __init__(self, redis: Redis, listener: Redis | None = None,
                 channels: keys.Channels | None = None) -> None:
        """``listener`` is a client of its own: a subscribed connection blocks on reads."""
        self.redis = redis
        self.listener = listener or redis
        self.channels = channels or keys.Channels()
        self._watching: dict[str, int] = {}  # round channel -> how many watch it
        self._confirmed: dict[str, asyncio.Future[None]] = {}
        # SUBSCRIBEs sent and not yet confirmed, per channel: a watch is confirmed by the
        # answer to its own SUBSCRIBE, never by an earlier one still in flight (after which an
        # UNSUBSCRIBE may yet be processed)
        self._unconfirmed: dict[str, int] = {}
        self._pubsub: PubSub | None = None
        self.reconnects = 0

    async def publish(self, news: RoundOpened | RoundFinalized) -> None:
        channel = (self.channels.pool if isinstance(news, RoundOpened)
                   else self.channels.round(news.round_id))
        await self.redis.publish(channel, envelope.encode(news))

    async def publish_many(self, news: Sequence[RoundOpened | RoundFinalized]) -> None:
        if not news:
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
        if self._pubsub is not None:
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
        if self._forget(ch) and self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.unsubscribe(ch)

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

    def _confirm(self, msg: dict[str, Any]) -> None:
        ch = msg["channel"]
        ch = ch.decode() if isinstance(ch, bytes) else str(ch)
        left = self._unconfirmed.get(ch, 1) - 1
        if left > 0:
            self._unconfirmed[ch] = left
            return
        self._unconfirmed.pop(ch, None)
        fut = self._confirmed.get(ch)
        if fut is not None and not fut.done():
            fut.set_result(None)
