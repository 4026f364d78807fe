"""The deployment's pub/sub channel (``auction.bus.Bus``): announcements out, and every
announcement in, decoded once (``envelope.decode``), for the processes serving the stream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from auction.bus import Announcement, RoundFinalized, RoundOpened
from auction.redis import envelope, keys

log = logging.getLogger("ige.bus")
RECONNECT_PAUSE_S = 0.5


class RedisBus:
    def __init__(self, redis: Redis, listener: Redis | None = None,
                 channel: str = keys.CHANNEL) -> None:
        """``listener`` is a client of its own: a subscribed connection blocks on reads."""
        self.redis = redis
        self.listener = listener or redis
        self.channel = channel

    async def publish(self, news: RoundOpened | RoundFinalized) -> None:
        await self.redis.publish(self.channel, envelope.encode(news))

    async def listen(self, on_connect: Callable[[], None]) -> AsyncIterator[Announcement]:
        """Every announcement, for ever. ``on_connect`` runs after each (re)subscription: what
        was announced while the link was down is lost, so listeners resynchronise there."""
        while True:
            pubsub = self.listener.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                on_connect()
                async for msg in pubsub.listen():
                    if msg.get("type") != "message":
                        continue
                    try:
                        yield envelope.decode(msg["data"])
                    except envelope.EnvelopeError as e:  # a bad message must not stop the rest
                        log.error("%s", e)
            except (RedisError, OSError) as e:
                log.warning("pub/sub lost (%s); reconnecting", e)
                await asyncio.sleep(RECONNECT_PAUSE_S)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
