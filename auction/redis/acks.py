"""Acknowledged means replicated (``IGE_REDIS_REPLICA_ACKS``): a bid script's answer is given
only after ``WAIT replicas timeout`` on the connection that ran the script says enough replicas
have every write sent on it so far (WAIT covers the connection's earlier writes, the script's
among them).

The seam is one operation, "run this script, then WAIT on the same connection": here for a
single Redis, on the multiplexed connection (``MuxRedis.evalsha_replicated``: one WAIT in
flight per connection acknowledges every script sent before it, a group commit) or on one
redis-py connection taken from the pool (``script_then_wait``). On a Redis Cluster the same
operation runs on the connection to the master that owns the round's slot.

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

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError, ResponseError

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


async def script_then_wait(redis: Redis, sha: str, source: str, keys: Sequence[Arg],
                           args: Sequence[Arg], acks: ReplicaAcks,
                           needs_ack: Callable[[Any], bool]) -> Any:
    """EVALSHA (EVAL if the server lost its script cache), then, when ``needs_ack(reply)``,
    WAIT on the same connection of ``redis``'s pool.

    The connection is used directly, without redis-py's retry: a WAIT retried on a new
    connection covers none of the script's writes and would confirm at once."""
    pool = redis.connection_pool
    conn = await pool.get_connection()  # type: ignore[no-untyped-call]  # untyped in redis-py
    clean = False  # every command sent had its reply read: the connection may be reused
    try:
        try:
            await conn.send_command("EVALSHA", sha, len(keys), *keys, *args)
            reply = await conn.read_response()
        except NoScriptError:
            await conn.send_command("EVAL", source, len(keys), *keys, *args)
            reply = await conn.read_response()
        if needs_ack(reply):
            await conn.send_command("WAIT", acks.replicas, acks.timeout_ms)
            confirmed = int(await conn.read_response())
            clean = True
            acks.check(confirmed)
        clean = True
        return reply
    except ResponseError:
        clean = True  # an error reply, read in full
        raise
    finally:
        if not clean:  # failed or cancelled mid-exchange: a reply may still be on its way
            await conn.disconnect(nowait=True)
        await pool.release(conn)
