"""redis-py's connections, made to treat a connection the peer reset as lost under uvloop.

redis-py counts a failed write as a lost connection (``ConnectionError``: its retry reconnects)
only when the write raises ``OSError``. Under uvloop (the server's event loop) writing on a
transport that the peer has reset (a Redis restarted, a proxy or load balancer dropping
connections) raises ``RuntimeError: unable to perform operation on <TCPTransport closed=True>;
the handler is closed`` instead: redis-py gave that up unretried, and a request answered 500
``internal_error`` (and a background loop logged ``loop_failed``) until the pool's connection
was replaced. Found by the fault proxy's resets (``tests/e2e/test_faults.py``).

Here a connection whose transport is already closing is reconnected before the write, and a
write that fails on a closed transport is a ``ConnectionError`` (retried by redis-py's Retry, or
answered 503 ``unavailable``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from typing import Any

import redis
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    ConnectionPool,
    UnixDomainSocketConnection,
)
from redis.driver_info import DriverInfo
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.maint_notifications import MaintNotificationsConfig

Command = bytes | str | Iterable[bytes]

#: what every connection tells Redis it is (CLIENT SETINFO), given to every client this process
#: makes: without it redis-py looks its own version up in the installed packages' metadata for
#: each new connection (``importlib.metadata``: a scan of sys.path), which held a loaded
#: process's event loop for 30-100 ms each time its pool grew (gateway/stalls.py found it)
DRIVER_INFO = DriverInfo(name="redis-py", lib_version=redis.__version__)

#: the options every single-Redis client this process makes is built with (its connection
#: pools). ``maint_notifications_config``: redis-py 8 speaks RESP3 by default, and a RESP3 pool
#: turns "maintenance notifications" (a Redis Enterprise and Redis Cloud feature) to "auto" on
#: its own. Such a pool skips its check of a connection before handing it out (redis-py PR
#: #4260, not in 8.1): after a Redis restart, or anything else that closed the pool's idle
#: connections, each of them failed the next command sent on it (``ConnectionError``: a 503
#: ``unavailable`` per connection, as many as the pool held; tests/e2e/test_crash.py met it).
#: Off, the check is back and a closed connection is replaced before use; each new connection
#: also saves the ``CLIENT MAINT_NOTIFICATIONS`` command that Redis itself refuses.
CLIENT_OPTIONS: dict[str, Any] = {
    "driver_info": DRIVER_INFO,
    "maint_notifications_config": MaintNotificationsConfig(enabled=False),
}


async def _send(conn: AbstractConnection, send: Callable[[], Awaitable[None]]) -> None:
    writer = conn._writer
    transport = writer.transport if writer is not None else None
    if transport is not None and transport.is_closing():
        await conn.disconnect(nowait=True)  # the peer reset it: connect afresh
        transport = None
    try:
        await send()
    except RuntimeError as e:
        # redis-py disconnected on the way out: the transport it wrote on is the one looked at
        now = conn._writer.transport if conn._writer is not None else transport
        if now is None or not now.is_closing():
            raise
        raise RedisConnectionError(f"connection to Redis lost: {e}") from e


class ResetAwareConnection(Connection):
    """A TCP connection (``redis://``)."""

    async def send_packed_command(self, command: Command, check_health: bool = True) -> None:
        await _send(self, lambda: super(ResetAwareConnection, self).send_packed_command(
            command, check_health))


class ResetAwareUnixConnection(UnixDomainSocketConnection):
    """A Unix socket connection (``unix://``)."""

    async def send_packed_command(self, command: Command, check_health: bool = True) -> None:
        await _send(self, lambda: super(ResetAwareUnixConnection, self).send_packed_command(
            command, check_health))


def reset_aware(cls: type[Any]) -> type[Any]:
    """The reset-aware class of redis-py's ``cls`` (TLS connections keep theirs)."""
    if cls is Connection:
        return ResetAwareConnection
    if cls is UnixDomainSocketConnection:
        return ResetAwareUnixConnection
    return cls


def make_reset_aware(pool: ConnectionPool) -> None:
    """Make the connections ``pool`` opens from now on reset-aware."""
    pool.connection_class = reset_aware(pool.connection_class)


# -- a Redis Cluster's ASK redirection, on one connection ----------------------------------
#: set by the ASKING that redis-py's cluster client sends after an ASK answer; consumed by
#: the same task's next command to a node (``make_ask_safe``)
_asking: ContextVar[bool] = ContextVar("ige_asking", default=False)


def make_ask_safe() -> None:
    """Make redis-py's cluster client follow an ASK redirection on one connection.

    After an ASK answer (a slot migrating, the key gone to the importing master) redis-py sends
    ``ASKING`` to the importing node as a command of its own, on a connection taken from and
    given back to the node's pool, then the command on whichever connection the pool hands
    out next. ASKING holds for the next command on its own connection only: under concurrency
    that is another connection, the importing node answers MOVED back to the source, which
    answers ASK again, until redis-py gives up (``ClusterError: TTL exhausted``, a 503) for as
    long as the slot migrates. Found by tests/integration/test_replica_acks_cluster.py.

    Here (one patch of ``ClusterNode.execute_command``, made once) an ``ASKING`` is not sent
    alone: it is remembered for the calling task, and its next command goes with ASKING in
    front of it on the same connection, in one write. (The bid path with replica acks routes
    its own commands: ``auction.redis.acks.cluster_then_wait``.)"""
    original = ClusterNode.execute_command
    if getattr(original, "_ige_ask_safe", False):
        return

    async def execute_command(self: ClusterNode, *args: Any, asking: bool = False,
                              **kwargs: Any) -> Any:
        if len(args) == 1 and str(args[0]).upper() == "ASKING":
            _asking.set(True)
            return b"OK"
        if not _asking.get():
            return await original(self, *args, asking=asking, **kwargs)
        _asking.set(False)
        conn = self.acquire_connection()
        clean = False
        try:
            await conn.send_packed_command(conn.pack_commands([("ASKING",), args]))
            await conn.read_response()  # +OK
            clean = True  # the command's reply, an error reply included, is read in full
            return await self.parse_response(conn, args[0], **kwargs)
        except BaseException:
            if not clean:
                await conn.disconnect(nowait=True)
            raise
        finally:
            self.release(conn)

    execute_command._ige_ask_safe = True  # type: ignore[attr-defined]
    ClusterNode.execute_command = execute_command  # type: ignore[method-assign]
