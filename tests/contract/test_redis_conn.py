"""redis-py's connections after the peer reset them, on uvloop as the server runs
(auction/redis/conn.py): the next command reconnects, where plain redis-py raised uvloop's
RuntimeError (a 500 for a request). The reset comes from the fault proxy (tests/faultproxy.py)
between the client and a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from redis.asyncio import BlockingConnectionPool, Redis

from auction.redis.conn import make_reset_aware
from tests.faultproxy import FaultProxy


@pytest.fixture
def proxy(redis_url: str) -> Iterator[FaultProxy]:
    from urllib.parse import urlparse

    u = urlparse(redis_url)
    p = FaultProxy(u.hostname or "127.0.0.1", u.port or 6379).start()
    yield p
    p.stop()


def after_a_reset(proxy: FaultProxy, redis_url: str, aware: bool) -> object:
    import uvloop

    db = redis_url.rsplit("/", 1)[1]

    async def run() -> object:
        pool = BlockingConnectionPool.from_url(f"redis://127.0.0.1:{proxy.port}/{db}",
                                               max_connections=1, socket_timeout=5)
        if aware:
            make_reset_aware(pool)
        r = Redis.from_pool(pool)
        try:
            assert await r.ping()
            proxy.set("reset")  # the pooled connection is reset by the peer
            proxy.set("pass")
            await asyncio.sleep(0.2)  # the loop has seen the reset
            try:
                return await r.ping()
            except Exception as e:  # noqa: BLE001 - what the caller would get
                return e
        finally:
            await r.aclose()

    return uvloop.run(run())


def test_a_connection_the_peer_reset_is_reconnected_on_uvloop(proxy: FaultProxy,
                                                             redis_url: str) -> None:
    assert after_a_reset(proxy, redis_url, aware=True) is True
    assert proxy.resets >= 1


@pytest.fixture
def plain(proxy: FaultProxy, redis_url: str) -> object:
    return after_a_reset(proxy, redis_url, aware=False)


def test_without_it_the_reset_is_a_runtime_error(plain: object) -> None:
    """Why the module exists: plain redis-py gives the same reset as uvloop's RuntimeError,
    not a ConnectionError it retries (if this starts failing, redis-py or uvloop changed and
    auction/redis/conn.py may go)."""
    assert isinstance(plain, RuntimeError), plain
