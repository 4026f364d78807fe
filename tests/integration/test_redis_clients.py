"""Every Redis client the server builds names its driver itself: a new connection never looks
redis-py's version up in the installed packages' metadata (``importlib.metadata`` scans
sys.path: 30-100 ms of a loaded process's event loop each time a pool grew)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis.utils

from gateway import bootstrap
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
