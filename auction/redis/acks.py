"""Acknowledged means replicated (``IGE_REDIS_REPLICA_ACKS``): a bid script's answer is given
only after ``WAIT replicas timeout`` on the connection that ran the script says enough replicas
have every write sent on it so far (WAIT covers the connection's earlier writes, the script's
among them).

The seam is one operation, "run this script, then WAIT on the same connection": here for a
single Redis, on the multiplexed connection (``MuxRedis.evalsha_replicated``: one WAIT in
flight per connection acknowledges every script sent before it, a group commit) or on one
redis-py connection taken from the pool (``script_then_wait``). On a Redis Cluster the same
operation runs on one connection to the master that owns the round's slot
(``cluster_then_wait``): a MOVED or ASK answer (the script did not run) is followed (up to
``CLUSTER_REDIRECTS`` times), a TRYAGAIN (a slot half-migrated) waited out for about a second
(``TRYAGAIN_PAUSES_S``); anything else (a
CLUSTERDOWN, a connection lost: the script may have run) is raised for a 503 and the client's
slot map is refreshed before the next command. Never redis-py's own cluster retry: it would
send the WAIT on another connection.

The persister uses the same seam with a fence write (``fence_then_wait``): once the events it
read are replicated, it may copy them to SQL (``RedisBook.replicated``).

Fewer replicas than asked within the timeout is ``ReplicationPending``: the script DID run on
the master (it is not rolled back; a failover may lose it, or not), so the client is told to
retry (503 ``replication_pending``, Retry-After) with its Idempotency-Key: the retry answers
the first result once it is replicated. That the replay's WAIT covers the first write, made
perhaps on another connection: Redis 6.2 and 7.0 set a connection's WAIT offset after every
command, reads included, to everything the master had by then; for a server that counts only
the connection's own writes, a replay with acks on writes too (it refreshes the
Idempotency-Key record's expiry, see submit.lua).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    NoScriptError,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

Arg = str | bytes | int


class ReplicationPending(RedisError):
    """Fewer than the required replicas confirmed a write in time. The write is on the master
    and may or may not survive a failover: retry with the same Idempotency-Key."""

    def __init__(self, wanted: int, confirmed: int, timeout_ms: int) -> None:
        super().__init__(f"{confirmed} of {wanted} replicas confirmed the write "
                         f"within {timeout_ms} ms")
        self.wanted = wanted
        self.confirmed = confirmed


@dataclass(frozen=True)
class ReplicaAcks:
    """How many replicas must confirm a bid, and how long to wait for them."""

    replicas: int
    timeout_ms: int

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ValueError("replica acks need at least one replica")
        if self.timeout_ms < 1:
            raise ValueError("WAIT's timeout must be at least 1 ms (0 would block forever)")

    def check(self, confirmed: int) -> None:
        """Raise ``ReplicationPending`` unless ``confirmed`` (WAIT's answer) is enough."""
        if confirmed < self.replicas:
            raise ReplicationPending(self.replicas, confirmed, self.timeout_ms)


#: redirections (MOVED, ASK) one cluster exchange follows before it gives up (a 503)
CLUSTER_REDIRECTS = 3
#: pauses before a TRYAGAIN is tried again (a slot's keys are being migrated: a batch of keys
#: takes milliseconds): about a second in all, then a 503
TRYAGAIN_PAUSES_S = (0.02, 0.05, 0.1, 0.2, 0.2, 0.2, 0.2)

#: sends a command on a connection and reads its reply (the exchange before the WAIT); the
#: flag: an ASK redirection is being followed (``ASKING`` must precede each command sent)
Exchange = Callable[[AbstractConnection, bool], Awaitable[Any]]


async def _command(conn: AbstractConnection, asking: bool, *args: Arg | memoryview) -> Any:
    """One command and its reply; after ``ASKING`` when following an ASK (the allowance holds
    for the next command on this connection only, whatever its outcome)."""
    if asking:
        await conn.send_command("ASKING")
        await conn.read_response()
    await conn.send_command(*args)
    return await conn.read_response()


def script_exchange(sha: str, source: str | bytes | memoryview, keys: Sequence[Arg],
                    args: Sequence[Arg]) -> Exchange:
    """EVALSHA, or EVAL when the server lost its script cache (a node promoted or restarted,
    a slot moved to a master that never ran the script)."""
    async def run(conn: AbstractConnection, asking: bool) -> Any:
        try:
            return await _command(conn, asking, "EVALSHA", sha, len(keys), *keys, *args)
        except NoScriptError:
            return await _command(conn, asking, "EVAL", source, len(keys), *keys, *args)
    return run


def fence_exchange(key: str, value: str, ttl_ms: int) -> Exchange:
    """A write to ``key`` (``SET key value PX ttl``): a WAIT after it on the same connection
    covers everything the master had before it."""
    async def run(conn: AbstractConnection, asking: bool) -> Any:
        return await _command(conn, asking, "SET", key, value, "PX", ttl_ms)
    return run


async def _exchange_then_wait(conn: AbstractConnection, run: Exchange, acks: ReplicaAcks,
                              needs_ack: Callable[[Any], bool], asking: bool) -> Any:
    """``run`` then, when ``needs_ack(reply)``, WAIT on ``conn``: the reply."""
    reply = await run(conn, asking)
    if needs_ack(reply):
        await conn.send_command("WAIT", acks.replicas, acks.timeout_ms)
        confirmed = int(await conn.read_response())
        acks.check(confirmed)
    return reply


async def _on(conn: AbstractConnection, run: Exchange, acks: ReplicaAcks,
              needs_ack: Callable[[Any], bool], asking: bool = False) -> Any:
    """``_exchange_then_wait``, dropping the connection if it failed mid-exchange."""
    try:
        return await _exchange_then_wait(conn, run, acks, needs_ack, asking)
    except (ResponseError, ReplicationPending):
        raise  # an error reply, read in full: the connection is clean
    except BaseException:
        # failed or cancelled mid-exchange: a reply may still be on its way
        await conn.disconnect(nowait=True)
        raise


async def script_then_wait(redis: Redis, sha: str, source: str, keys: Sequence[Arg],
                           args: Sequence[Arg], acks: ReplicaAcks,
                           needs_ack: Callable[[Any], bool]) -> Any:
    """EVALSHA (EVAL if the server lost its script cache), then, when ``needs_ack(reply)``,
    WAIT on the same connection of ``redis``'s pool.

    The connection is used directly, without redis-py's retry: a WAIT retried on a new
    connection covers none of the script's writes and would confirm at once."""
    return await single_then_wait(redis, script_exchange(sha, source, keys, args), acks,
                                  needs_ack)


async def single_then_wait(redis: Redis, run: Exchange, acks: ReplicaAcks,
                           needs_ack: Callable[[Any], bool]) -> Any:
    """``run`` then WAIT on one connection of a single Redis's pool."""
    pool = redis.connection_pool
    conn = await pool.get_connection()  # type: ignore[no-untyped-call]  # untyped in redis-py
    try:
        return await _on(conn, run, acks, needs_ack)
    finally:
        await pool.release(conn)


async def cluster_then_wait(rc: RedisCluster, key: str, run: Exchange, acks: ReplicaAcks,
                            needs_ack: Callable[[Any], bool]) -> Any:
    """``run`` then WAIT on one connection to the master of ``key``'s slot (see the module's
    doc for the redirections followed and the errors raised)."""
    await rc.initialize()  # a no-op unless the slot map is to be read again
    node: ClusterNode | None = rc.get_node_from_key(key)
    asking = False
    redirects, pauses = 0, iter(TRYAGAIN_PAUSES_S)
    while True:
        assert node is not None
        on, conn = node, node.acquire_connection()
        try:
            await on.disconnect_if_needed(conn)  # marked by a topology change: reconnect
            return await _on(conn, run, acks, needs_ack, asking)
        except MovedError as e:  # the slot has another master (a failover, a reshard)
            redirects += 1
            if redirects > CLUSTER_REDIRECTS:
                _refresh(rc)
                raise
            await rc.nodes_manager.move_slot(e)
            node, asking = rc.get_node_from_key(key), False
        except AskError as e:  # the slot is migrating and this key has left already
            redirects += 1
            target = rc.get_node(host=e.host, port=e.port)
            if redirects > CLUSTER_REDIRECTS or target is None:
                _refresh(rc)
                raise
            node, asking = target, True
        except TryAgainError:  # the script's keys are split by a migration in progress
            pause = next(pauses, None)
            if pause is None:
                raise
            await asyncio.sleep(pause)
        except (ClusterDownError, RedisConnectionError, RedisTimeoutError, OSError):
            # a failover under way, or the master gone: the script may have run; the client
            # retries with its Idempotency-Key, on the slot map read again by then
            _refresh(rc)
            raise
        finally:
            on.release(conn)


def _refresh(rc: RedisCluster) -> None:
    """Have the cluster client read the slot map again before its next command (what
    redis-py does itself after a connection error or a CLUSTERDOWN)."""
    rc._initialize = True  # redis-py's own flag, read by initialize()


async def then_wait(redis: Redis | RedisCluster, key: str, run: Exchange, acks: ReplicaAcks,
                    needs_ack: Callable[[Any], bool]) -> Any:
    """``run`` then WAIT on one connection to the master that holds ``key``."""
    if isinstance(redis, RedisCluster):
        return await cluster_then_wait(redis, key, run, acks, needs_ack)
    return await single_then_wait(redis, run, acks, needs_ack)


def always(_: Any) -> bool:
    return True
