"""Every Redis client the server builds names its driver itself: a new connection never looks
redis-py's version up in the installed packages' metadata (``importlib.metadata`` scans
sys.path: 30-100 ms of a loaded process's event loop each time a pool grew)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis.utils

from gateway import bootstrap
from gateway.redis_server import RedisServer
from gateway.settings import Settings


def test_new_connections_do_not_read_package_metadata(redis_url: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    lookups: list[int] = []
    real = redis.utils.get_lib_version
    monkeypatch.setattr(redis.utils, "get_lib_version", lambda: lookups.append(1) or real())
    settings = Settings.from_env({"IGE_DEMO": "1", "REDIS_URL": redis_url,
                                  "DATABASE_URL": f"sqlite:///{tmp_path / 'ige.db'}"})

    async def main() -> int:
        rt = bootstrap.build(settings)
        try:
            await asyncio.gather(*(rt.redis.ping() for _ in range(20)))  # the pool grows
            await rt.listener.ping()
            await rt.throttle.storage.check()
            pool = rt.redis.connection_pool
            return len(pool._in_use_connections) + len(pool._available_connections)
        finally:
            await rt.aclose()

    opened = asyncio.run(main())
    assert opened > 1
    assert lookups == []


def test_connections_a_restarted_redis_closed_are_replaced_before_use(
        tmp_path: Path) -> None:
    """Redis restarts (kill -9, the same port): every connection the pools held is closed by
    then. The next commands, as many at once as there were connections, all succeed: a pool
    checks a connection before handing it out and opens a new one for a closed one. (With
    redis-py 8's default of RESP3 its pools skipped that check, redis-py PR #4260, and each
    closed connection failed one command: a 503 per connection after every Redis restart.)"""
    own = RedisServer(tmp_path / "redis").start()
    settings = Settings.from_env({"IGE_DEMO": "1", "REDIS_URL": own.url,
                                  "DATABASE_URL": f"sqlite:///{tmp_path / 'ige.db'}"})
    n = 8

    async def main() -> list[object]:
        rt = bootstrap.build(settings)
        try:
            await asyncio.gather(*(rt.redis.ping() for _ in range(n)))  # n connections
            await asyncio.gather(*(rt.throttle.storage.check() for _ in range(n)))
            await rt.listener.ping()
            own.kill()
            own.start()
            await asyncio.sleep(0.1)  # the closes have reached the event loop
            return list(await asyncio.gather(
                *(rt.redis.ping() for _ in range(n)), rt.listener.ping(),
                *(rt.throttle.storage.check() for _ in range(n)), return_exceptions=True))
        finally:
            await rt.aclose()

    try:
        got = asyncio.run(main())
    finally:
        own.stop()
    assert [g for g in got if g is not True] == []
