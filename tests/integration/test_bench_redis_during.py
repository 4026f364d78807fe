"""The bench's record of what Redis did during a run (``loadtests/bench/tools.py``
``redis_during``): its forks, how long an AOF rewrite was running and its latency monitor's
slow seconds, on a real private Redis."""

from __future__ import annotations

import time
from pathlib import Path

import redis as redis_sync

from gateway.redis_server import RedisServer
from loadtests.bench.tools import redis_during, slow_fsyncs


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


#: a script that holds Redis ~30-100 ms (a busy loop in Lua): a slow "command" for the monitor
BUSY_LUA = "local i = 0 while i < 3000000 do i = i + 1 end return i"


def test_a_run_reports_the_latency_monitors_slow_seconds_of_that_run_only(
        tmp_path: Path) -> None:
    srv = RedisServer(tmp_path / "r", extra_args=("--latency-monitor-threshold", "5")).start()
    r = redis_sync.Redis.from_url(srv.url)
    try:
        r.eval(BUSY_LUA, 0)  # before the run: the run's reset forgets it
        with redis_during(srv.url) as quiet:
            r.get("k")  # a read: no fsync either
        assert quiet["slow"] == {}
        assert slow_fsyncs(quiet) == "0 s"
        with redis_during(srv.url) as held:
            r.eval(BUSY_LUA, 0)
        assert held["slow"]["command"]["seconds"] == 1
        assert held["slow"]["command"]["worst_ms"] >= 5
        # results from before the monitor was read show a dash, not a zero
        assert slow_fsyncs({"p99_ms": 1.0}) == "—"
        assert slow_fsyncs({"slow": {"aof-fsync-always": {"seconds": 3, "worst_ms": 17}}}) \
            == "3 s, worst 17 ms"
    finally:
        r.close()
        srv.stop()
