"""The bid path's Redis connection: a few connections, each multiplexed (many commands in
flight, answers matched in order), for the one command an offer needs: EVALSHA.

Why not redis-py here: it checks a connection out of its pool, wraps each read in a timeout and
a retry, and packs the command in Python for every call: 37–46 µs of CPU per EVALSHA on this
machine, against 8 µs for this module (measured in loadtests/BENCH_NOTES.md; valkey-glide took
47 µs and coredis 69 µs for the same call). On the bid path that difference is most of what a
Python process can spare. Everything else (reads, the other scripts, pub/sub) stays on redis-py.

Replies are parsed by ``hiredis`` (the C parser redis-py uses). Failures are redis-py's
exceptions, so the callers' handling does not change: a connection that drops fails every
command in flight on it with ``ConnectionError`` (the command may or may not have run: exactly
as with redis-py; offers carry an Idempotency-Key for a safe retry); a command unanswered for
``timeout_s`` closes its connection the same way (a hung, not dead, Redis); an error reply is a
``ResponseError``. A server that lost its script cache (restarted without it) answers NOSCRIPT:
the command is sent once more as EVAL with the script's source, which caches it again.

With replica acks (``IGE_REDIS_REPLICA_ACKS``, ``auction.redis.acks``) a bid script's answer
waits for a WAIT on its connection; one WAIT in flight per connection covers every script
written before it (``_Conn.replicated``).

Single node: ``redis://[user:password@]host:port/db`` or ``unix:///path?db=n``. (A Redis Cluster
needs a connection per node and routing by slot: not here yet.)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlparse

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from auction.redis.acks import ReplicaAcks

Arg = str | bytes | int


def pack(args: Sequence[Arg]) -> bytes:
    """One command in the Redis protocol (RESP): an array of bulk strings (hiredis's packer,
    in C: a third of the Python loop's time)."""
    packed: bytes = hiredis.pack_command(tuple(args))  # type: ignore[arg-type]  # its stub: a 1-tuple
    return packed


class _Conn(asyncio.Protocol):
    """One connection: commands written as they come, answers matched to them in order."""

    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.pending: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self.transport: asyncio.Transport | None = None
        self.lost = False
        # commands of one turn of the event loop go out in one write (one system call)
        self._out: list[bytes] = []
        self.sent = 0  # commands written so far: a command's position is the count after it
        # replica acks (group commit): the WAIT in flight (its position and the future its
        # waiters share), and the future of those that need the next WAIT
        self._wait_at = 0
        self._wait_batch: asyncio.Future[int] | None = None
        self._next_batch: asyncio.Future[int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, yet have write()
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            fut, _ = self.pending.popleft()
            if not fut.done():
                fut.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.fail(RedisConnectionError(f"connection to Redis lost: {exc or 'closed'}"))

    def fail(self, exc: Exception) -> None:
        while self.pending:
            fut, _ = self.pending.popleft()
            if not fut.done():
                fut.set_exception(exc)

    def send(self, data: bytes) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        if self.lost:
            # lost before this command (e.g. reset right after connecting): nothing would
            # ever answer or fail it, and the watchdog skips lost connections
            fut.set_exception(RedisConnectionError("connection to Redis lost"))
            return fut
        self.pending.append((fut, time.monotonic()))
        self.sent += 1
        if not self._out:
            loop.call_soon(self._flush)
        self._out.append(data)
        return fut

    def replicated(self, after: int, replicas: int, timeout_ms: int) -> asyncio.Future[int]:
        """How many replicas confirmed every write up to the command at position ``after``
        on this connection: the answer of the first WAIT written after that command.

        Group commit: one WAIT in flight at a time. Redis blocks the connection while a WAIT
        waits (the commands behind it run after it), so a WAIT per script would stall every
        other request for a replica's round trip each; instead the requests that come while
        one is in flight share the next, sent when it returns."""
        if self._wait_batch is not None and self._wait_at > after:
            return self._wait_batch
        batch = self._next_batch
        if batch is None:
            batch = self._next_batch = asyncio.get_running_loop().create_future()
            # a batch whose every waiter was cancelled: its failure is nobody's to read
            batch.add_done_callback(_consume)
            if self._wait_batch is None:
                self._send_wait(replicas, timeout_ms)
        return batch

    def _send_wait(self, replicas: int, timeout_ms: int) -> None:
        batch, self._next_batch = self._next_batch, None
        assert batch is not None
        fut = self.send(pack(["WAIT", replicas, timeout_ms]))
        self._wait_at, self._wait_batch = self.sent, batch

        def answered(f: asyncio.Future[Any]) -> None:
            self._wait_batch = None
            if f.cancelled():
                batch.set_exception(RedisConnectionError("connection to Redis lost"))
            elif (e := f.exception()) is not None:
                batch.set_exception(e)
            elif isinstance(reply := f.result(), hiredis.ReplyError):
                batch.set_exception(ResponseError(str(reply)))
            else:
                batch.set_result(int(reply))
            if self._next_batch is not None:
                self._send_wait(replicas, timeout_ms)

        fut.add_done_callback(answered)

    def _flush(self) -> None:
        out, self._out = self._out, []
        if self.transport is not None and not self.lost:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _consume(f: asyncio.Future[Any]) -> None:
    if not f.cancelled():
        f.exception()


class MuxRedis:
    def __init__(self, url: str, connections: int = 2, timeout_s: float = 5.0) -> None:
        u = urlparse(url)
        if u.scheme not in ("redis", "unix"):
            raise ValueError(f"the multiplexed connection does not speak {u.scheme}://")
        query = parse_qs(u.query)
        self.unix = u.path if u.scheme == "unix" else None
        self.host = u.hostname or "127.0.0.1"
        self.port = u.port or 6379
        db = query.get("db", [""])[0] or (u.path.lstrip("/") if u.scheme == "redis" else "")
        self.db = int(db or 0)
        self.username = unquote(u.username) if u.username else None
        self.password = unquote(u.password) if u.password else None
        self.timeout_s = timeout_s
        self._conns: list[_Conn | None] = [None] * max(1, connections)
        self._opening: list[asyncio.Lock] = [asyncio.Lock() for _ in self._conns]
        self._next = 0
        self._watchdog: asyncio.Task[None] | None = None

    # -- connections -----------------------------------------------------------------------
    async def _conn(self) -> _Conn:
        i = self._next = (self._next + 1) % len(self._conns)
        c = self._conns[i]
        if c is not None and not c.lost:
            return c
        async with self._opening[i]:
            c = self._conns[i]
            if c is None or c.lost:
                c = self._conns[i] = await self._open()
        return c

    async def _open(self) -> _Conn:
        loop = asyncio.get_running_loop()
        try:
            if self.unix:
                _, conn = await asyncio.wait_for(
                    loop.create_unix_connection(_Conn, self.unix), self.timeout_s)
            else:
                _, conn = await asyncio.wait_for(
                    loop.create_connection(_Conn, self.host, self.port), self.timeout_s)
        except (OSError, TimeoutError) as e:
            raise RedisConnectionError(f"cannot connect to Redis: {e}") from e
        hello: list[bytes] = []
        if self.password is not None:
            hello.append(pack(["AUTH", *([self.username] if self.username else []),
                               self.password]))
        if self.db:
            hello.append(pack(["SELECT", self.db]))
        try:
            for cmd in hello:
                self._check(await asyncio.wait_for(conn.send(cmd), self.timeout_s))
        except BaseException:
            conn.close()
            raise
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.ensure_future(self._watch())
        return conn

    async def _watch(self) -> None:
        """Close a connection whose oldest command is unanswered for too long."""
        while True:
            await asyncio.sleep(min(1.0, self.timeout_s / 2))
            now = time.monotonic()
            for c in self._conns:
                if c is not None and not c.lost and c.pending \
                        and now - c.pending[0][1] > self.timeout_s:
                    c.lost = True
                    c.fail(RedisTimeoutError(f"Redis did not answer in {self.timeout_s:g} s"))
                    c.close()

    async def aclose(self) -> None:
        watchdog = self._watchdog
        self.close()
        if watchdog is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog

    def close(self) -> None:
        """Close every connection now (commands in flight fail with ConnectionError)."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        for c in self._conns:
            if c is not None:
                c.close()
        self._conns = [None] * len(self._conns)

    # -- commands --------------------------------------------------------------------------
    @staticmethod
    def _check(reply: Any) -> Any:
        if isinstance(reply, hiredis.ReplyError):
            raise ResponseError(str(reply))
        return reply

    async def evalsha(self, sha: str, source: str, keys: Sequence[Arg],
                      args: Sequence[Arg]) -> Any:
        """EVALSHA; once more as EVAL with ``source`` if the server does not know the script."""
        return self._check((await self._evalsha(sha, source, keys, args))[2])

    async def evalsha_replicated(self, sha: str, source: str, keys: Sequence[Arg],
                                 args: Sequence[Arg], acks: ReplicaAcks,
                                 needs_ack: Callable[[Any], bool]) -> Any:
        """``evalsha``, then, when ``needs_ack(reply)``, the answer of the first WAIT sent on
        the same connection after the script (shared with the other scripts it covers);
        ``ReplicationPending`` when fewer than ``acks.replicas`` confirmed in time."""
        conn, at, reply = await self._evalsha(sha, source, keys, args)
        reply = self._check(reply)
        if needs_ack(reply):
            acks.check(await asyncio.shield(
                conn.replicated(at, acks.replicas, acks.timeout_ms)))
        return reply

    async def _evalsha(self, sha: str, source: str, keys: Sequence[Arg],
                       args: Sequence[Arg]) -> tuple[_Conn, int, Any]:
        """The connection, the script's position on it, its reply."""
        conn = await self._conn()
        fut = conn.send(pack(["EVALSHA", sha, len(keys), *keys, *args]))
        at = conn.sent
        reply = await fut
        if isinstance(reply, hiredis.ReplyError) and str(reply).startswith("NOSCRIPT"):
            fut = conn.send(pack(["EVAL", source, len(keys), *keys, *args]))
            at = conn.sent
            reply = await fut
        return conn, at, reply

    async def evalsha_many(self, sha: str, source: str,
                           calls: Sequence[tuple[Sequence[Arg], Sequence[Arg]]]) -> list[Any]:
        """``evalsha`` of (keys, args) each, written together on one connection: one round
        trip, the answers in order. An error reply fails the whole call (as a pipeline's
        first error does)."""
        if not calls:
            return []
        conn = await self._conn()
        futs = [conn.send(pack(["EVALSHA", sha, len(k), *k, *a])) for k, a in calls]
        replies = [await f for f in futs]
        again = [i for i, r in enumerate(replies)
                 if isinstance(r, hiredis.ReplyError) and str(r).startswith("NOSCRIPT")]
        if again:
            futs = [conn.send(pack(["EVAL", source, len(calls[i][0]), *calls[i][0],
                                    *calls[i][1]])) for i in again]
            for i, f in zip(again, futs, strict=True):
                replies[i] = await f
        return [self._check(r) for r in replies]
