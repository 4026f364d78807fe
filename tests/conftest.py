"""Shared fixtures. Everything here is real: Redis, SQLite, PostgreSQL, server processes."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis as redis_sync
from redis.asyncio import Redis

from gateway.redis_server import RedisServer
from tests.rediscluster import cluster_redis, cluster_url, redis_cluster  # noqa: F401
from tests.support import (
    ServerProcess,
    claim_redis_db,
    create_pg_database,
    drop_pg_database,
    release_redis_db,
    sqlite_url,
)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The machine's Redis (TEST_REDIS_URL or 127.0.0.1:6379) on a claimed db number, else a
    private redis-server started for this session."""
    base = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    url = claim_redis_db(base)
    if url is not None:
        redis_sync.Redis.from_url(url).flushdb()
        yield url
        redis_sync.Redis.from_url(url).flushdb()
        release_redis_db(url)
        return
    srv = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield srv.url
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def channel() -> str:
    """A pub/sub channel prefix of this session's own (pub/sub ignores db numbers)."""
    return "ige-test-" + secrets.token_hex(4)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    r = Redis.from_url(redis_url)
    await r.flushdb()
    yield r
    await r.aclose()


def _db_params() -> list[str]:
    return ["sqlite", "postgresql"] if os.environ.get("TEST_DATABASE_URL") else ["sqlite"]


@pytest.fixture(scope="session")
def pg_base_url() -> str | None:
    return os.environ.get("TEST_DATABASE_URL")


@pytest.fixture(params=_db_params())
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database: SQLite always, PostgreSQL too when TEST_DATABASE_URL is set."""
    from persistence.db import migrate

    if request.param == "sqlite":
        url = sqlite_url(tmp_path)
        migrate(url)
        yield url
        return
    base = os.environ["TEST_DATABASE_URL"]
    url, name = create_pg_database(base)
    migrate(url)
    try:
        yield url
    finally:
        drop_pg_database(base, name)


@pytest.fixture
def server_factory(redis_url: str, channel: str, tmp_path: Path) -> Iterator[object]:
    """Start real `ige serve` processes: factory(database_url=None, **env) -> ServerProcess."""
    started: list[ServerProcess] = []

    def factory(database_url: str | None = None, redis: str | None = None, workers: int = 1,
                role: str | None = None, **env: str) -> ServerProcess:
        from persistence.db import migrate

        db = database_url or sqlite_url(tmp_path)
        if database_url is None:
            migrate(db)
        extra = {"IGE_REDIS_CHANNEL": channel, **env}
        srv = ServerProcess(redis or redis_url, db, extra, workers=workers, role=role,
                            log_path=tmp_path / f"server-{len(started)}.log")
        started.append(srv)
        return srv.start()

    yield factory
    for s in started:
        s.stop()
