"""The bid path's multiplexed Redis connection (auction/redis/mux.py) against real Redis servers:
the same answers as redis-py, answers matched to their commands under concurrency, the script
cache refilled after a flush, and failures as redis-py's exceptions (connection lost, a server
that hangs, an error reply). The book contract suite also runs over it (``redis-7-mux``)."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_sync
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from auction.redis.mux import MuxRedis, _Conn, pack
from gateway.redis_server import RedisServer

ECHO = "return {KEYS[1], ARGV[1], tonumber(ARGV[2]) + 1, {ARGV[3]}}"
FAIL = "return redis.error_reply('ERR refused by the script')"


def sha_of(source: str) -> str:
    import hashlib

    return hashlib.sha1(source.encode()).hexdigest()


def busy_script(seconds: float) -> str:
    """A script that keeps the (single-threaded) server busy for ``seconds``."""
    return ("local function now() local t = redis.call('TIME') return t[1] * 1000000 + t[2] end "
            f"local s = now() while now() - s < {int(seconds * 1e6)} do end return 1")


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    srv = RedisServer(tmp_path / "redis").start()
    yield srv
    srv.stop()


def test_pack_writes_resp_bulk_strings() -> None:
    assert pack(["EVALSHA", b"\x00\xff", 7, "ş"]) == (
        b"*4\r\n$7\r\nEVALSHA\r\n$2\r\n\x00\xff\r\n$1\r\n7\r\n$2\r\n\xc5\x9f\r\n")


async def test_answers_equal_redis_py_and_the_script_cache_is_refilled(
        private_redis: RedisServer) -> None:
    # a server of its own: a flush empties the script cache of the whole server, and the
    # shared one serves tests running beside this one (their scripts would vanish mid-call)
    mux = MuxRedis(private_redis.url)
    redis = Redis.from_url(private_redis.url)
    try:
        await redis.script_flush()  # the server does not know the script: EVAL once
        got = await mux.evalsha(sha_of(ECHO), ECHO, ["k:ş"], ["v", 41, b"\x00x"])
        want = await redis.eval(ECHO, 1, "k:ş", "v", 41, b"\x00x")  # type: ignore[misc]
        assert got == want == [b"k:\xc5\x9f", b"v", 42, [b"\x00x"]]
        assert await redis.script_exists(sha_of(ECHO)) == [True]
        assert await mux.evalsha(sha_of(ECHO), ECHO, ["k"], ["v", 1, "z"]) == [b"k", b"v", 2,
                                                                              [b"z"]]
    finally:
        await mux.aclose()
        await redis.aclose()


async def test_evalsha_many_answers_in_order_in_one_write_and_refills_the_cache(
        private_redis: RedisServer) -> None:
    mux = MuxRedis(private_redis.url)  # a server of its own, as above
    redis = Redis.from_url(private_redis.url)
    try:
        await redis.script_flush()  # unknown to the server: each call once more as EVAL
        calls = [([f"k{i}"], ["v", i, "x"]) for i in range(50)]
        got = await mux.evalsha_many(sha_of(ECHO), ECHO, calls)
        assert got == [[f"k{i}".encode(), b"v", i + 1, [b"x"]] for i in range(50)]
        assert await redis.script_exists(sha_of(ECHO)) == [True]
        assert await mux.evalsha_many(sha_of(ECHO), ECHO, calls[:2]) == got[:2]
        assert await mux.evalsha_many(sha_of(ECHO), ECHO, []) == []
        with pytest.raises(ResponseError):  # an error reply fails the call
            await mux.evalsha_many(sha_of(ECHO), ECHO, [(["k"], ["v", "not a number"])])
        assert await mux.evalsha(sha_of(ECHO), ECHO, ["k"], ["v", 1]) == [b"k", b"v", 2, []]
    finally:
        await mux.aclose()
        await redis.aclose()


async def test_concurrent_commands_get_their_own_answers(redis_url: str) -> None:
    mux = MuxRedis(redis_url, connections=3)
    try:
        got = await asyncio.gather(*(mux.evalsha(sha_of(ECHO), ECHO, [f"k{i}"], ["v", i, "x"])
                                     for i in range(600)))
        assert [g[2] for g in got] == [i + 1 for i in range(600)]
        assert [g[0] for g in got] == [f"k{i}".encode() for i in range(600)]
    finally:
        await mux.aclose()


async def test_an_error_reply_is_a_response_error_and_the_connection_goes_on(
        redis_url: str) -> None:
    mux = MuxRedis(redis_url, connections=1)
    try:
        with pytest.raises(ResponseError, match="refused by the script"):
            await mux.evalsha(sha_of(FAIL), FAIL, ["k"], [])
        assert (await mux.evalsha(sha_of(ECHO), ECHO, ["k"], ["v", 1, "x"]))[2] == 2
    finally:
        await mux.aclose()


async def test_a_lost_connection_fails_what_is_in_flight_then_reconnects(
        private_redis: RedisServer) -> None:
    mux = MuxRedis(private_redis.url, connections=1)
    slow = busy_script(1.0)
    try:
        assert (await mux.evalsha(sha_of(ECHO), ECHO, ["k"], ["v", 1, "x"]))[2] == 2
        # in flight behind a one-second script, when the server goes away
        busy = asyncio.ensure_future(asyncio.to_thread(
            redis_sync.Redis.from_url(private_redis.url).eval, slow, 0))
        await asyncio.sleep(0.2)
        pending = asyncio.ensure_future(mux.evalsha(sha_of(ECHO), ECHO, ["k"], ["v", 2, "x"]))
        await asyncio.sleep(0.1)
        private_redis.kill()
        with pytest.raises(RedisConnectionError):
            await pending
        with pytest.raises(RedisConnectionError):
            await mux.evalsha(sha_of(ECHO), ECHO, ["k"], ["v", 3, "x"])  # nobody listens
        await asyncio.gather(busy, return_exceptions=True)
        private_redis.start()
        assert (await mux.evalsha(sha_of(ECHO), ECHO, ["k"], ["v", 4, "x"]))[2] == 5
    finally:
        await mux.aclose()


async def test_a_command_on_a_connection_already_lost_fails_at_once() -> None:
    """Lost before the command was sent (a reset right after connecting): nothing would ever
    answer or fail it, and the watchdog skips lost connections, so it must fail at once (it
    used to hang for ever: found by the fault proxy's resets, tests/e2e/test_faults.py)."""
    conn = _Conn()
    conn.connection_lost(ConnectionResetError("reset by peer"))
    fut = conn.send(pack(["PING"]))
    assert fut.done()
    with pytest.raises(RedisConnectionError):
        await fut


async def test_a_server_that_resets_every_connection_fails_commands_never_hangs() -> None:
    """A listener that accepts and resets (SO_LINGER 0) at once: every command fails with
    ConnectionError, however the reset and the command interleave."""
    async def reset(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    server = await asyncio.start_server(reset, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    mux = MuxRedis(f"redis://127.0.0.1:{port}/0", connections=1, timeout_s=30)
    try:
        for i in range(50):
            with pytest.raises(RedisConnectionError):
                await asyncio.wait_for(mux.evalsha(sha_of(ECHO), ECHO, ["k"], ["v", i, "x"]),
                                       10)
            if i % 2:
                await asyncio.sleep(0.005)  # let the reset arrive before the next command
    finally:
        await mux.aclose()
        server.close()


async def test_a_server_that_does_not_answer_times_out(private_redis: RedisServer) -> None:
    mux = MuxRedis(private_redis.url, connections=1, timeout_s=0.4)
    hang = busy_script(2.0)
    try:
        assert (await mux.evalsha(sha_of(ECHO), ECHO, ["k"], ["v", 1, "x"]))[2] == 2
        busy = asyncio.ensure_future(asyncio.to_thread(
            redis_sync.Redis.from_url(private_redis.url).eval, hang, 0))
        await asyncio.sleep(0.2)
        t0 = time.monotonic()
        with pytest.raises(RedisTimeoutError):
            await mux.evalsha(sha_of(ECHO), ECHO, ["k"], ["v", 2, "x"])
        assert time.monotonic() - t0 < 1.5  # not held until the server is free again
        await asyncio.gather(busy, return_exceptions=True)
        assert (await mux.evalsha(sha_of(ECHO), ECHO, ["k"], ["v", 3, "x"]))[2] == 4
    finally:
        await mux.aclose()


async def test_password_and_database_number_from_the_url(tmp_path: Path) -> None:
    srv = RedisServer(tmp_path / "redis-auth").start()
    try:
        admin = redis_sync.Redis(port=srv.port)
        admin.config_set("requirepass", "s3cr:t")
        mux = MuxRedis(f"redis://:s3cr%3At@127.0.0.1:{srv.port}/3")
        try:
            await mux.evalsha(sha_of("return redis.call('SET', KEYS[1], 'x')"),
                              "return redis.call('SET', KEYS[1], 'x')", ["where"], [])
        finally:
            await mux.aclose()
        authed = redis_sync.Redis(port=srv.port, password="s3cr:t", db=3)
        assert authed.get("where") == b"x"
        assert redis_sync.Redis(port=srv.port, password="s3cr:t", db=0).get("where") is None
        bad = MuxRedis(f"redis://:wrong@127.0.0.1:{srv.port}/0")
        with pytest.raises(ResponseError):
            await bad.evalsha(sha_of(ECHO), ECHO, ["k"], ["v", 1, "x"])
        await bad.aclose()
    finally:
        srv.stop()


def test_it_runs_on_uvloop_as_the_server_does(redis_url: str) -> None:
    import uvloop

    async def run() -> list[int]:
        mux = MuxRedis(redis_url)
        try:
            got = await asyncio.gather(*(mux.evalsha(sha_of(ECHO), ECHO, ["k"], ["v", i, "x"])
                                         for i in range(50)))
            return [g[2] for g in got]
        finally:
            await mux.aclose()

    assert uvloop.run(run()) == [i + 1 for i in range(50)]


def test_only_plain_redis_and_unix_urls() -> None:
    with pytest.raises(ValueError, match="rediss"):
        MuxRedis("rediss://127.0.0.1:6379/0")
    assert MuxRedis("unix:///tmp/redis.sock?db=2").db == 2
    assert MuxRedis("redis://127.0.0.1:6380/5").db == 5
