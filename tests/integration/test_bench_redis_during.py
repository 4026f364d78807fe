"""The bench's record of what Redis did during a run (``loadtests/bench/tools.py``
``redis_during``): its forks and how long an AOF rewrite was running, on a real private Redis."""

from __future__ import annotations

import time
from pathlib import Path

import redis as redis_sync

from gateway.redis_server import RedisServer
from loadtests.bench.tools import redis_during


def test_a_run_with_an_aof_rewrite_in_it_counts_the_fork_and_the_time_it_ran(
        tmp_path: Path) -> None:
    srv = RedisServer(tmp_path / "r").start()
    r = redis_sync.Redis.from_url(srv.url)
    try:
        with r.pipeline(transaction=False) as p:  # ~40 MB: a rewrite of it takes a while
            for i in range(4000):
                p.set(f"k{i}", bytes(10_000))
            p.execute()
        with redis_during(srv.url, every_s=0.001) as quiet:
            time.sleep(0.05)
        assert quiet["redis_forks"] == 0 and quiet["rewrite_s"] == 0
        assert quiet["redis_mb"] > 40
        with redis_during(srv.url, every_s=0.001) as busy:
            r.bgrewriteaof()
            while r.info("persistence")["aof_rewrite_in_progress"] or \
                    r.info("persistence")["aof_rewrite_scheduled"]:
                time.sleep(0.001)
        assert busy["redis_forks"] == 1 and busy["rewrite_s"] > 0
    finally:
        r.close()
        srv.stop()
