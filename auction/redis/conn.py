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
from typing import Any

from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    ConnectionPool,
    UnixDomainSocketConnection,
)
from redis.exceptions import ConnectionError as RedisConnectionError

Command = bytes | str | Iterable[bytes]


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
