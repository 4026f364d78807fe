"""The server's own bounds on TCP connections, below HTTP: uvicorn's HTTP (httptools) and
WebSocket protocols with

* **connections per client address** (``IGE_MAX_CONNS_PER_ADDRESS``, per process): one more is
  closed at once, before a byte is read — a single source cannot use up the file descriptors;
* a **header timeout** (``IGE_HEADER_TIMEOUT``): a request head (request line and headers) must
  be complete within it, from the connection's start or from the first byte of a keep-alive
  request; a silent or slow-header connection is closed (idle keep-alive connections are
  closed by uvicorn's ``timeout_keep_alive``, ``IGE_KEEP_ALIVE``);
* a **write stall timeout** (``IGE_WS_SEND_TIMEOUT``): a connection whose send buffer stays
  full (the client reads nothing) that long is aborted. ``transport.close()`` waits for the
  buffer to flush, which a non-reader never lets happen; ``abort()`` does not wait.

Each refusal is counted in ``ige_refused_connections{reason}`` and logged (``connection_refused``,
the reason, never the address's traffic). ``ige serve`` passes these classes to uvicorn.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from gateway import metrics
from gateway.bounds import BODY_COMPLETE
from gateway.logs import get_logger
from gateway.settings import Settings

log = get_logger("ige.serving")

_open: dict[str, int] = {}  # open connections per client address, this process
_counted: dict[int, str] = {}  # id(transport) -> its address, while counted


@functools.cache
def _settings() -> Settings:
    return Settings.from_env()


def _refuse(reason: str) -> None:
    metrics.REFUSED_CONNECTIONS.labels(reason).inc()
    log.info("connection_refused", reason=reason)


def admit(transport: Any, client: tuple[str, int] | None) -> bool:
    """Count a new connection of ``client``'s address; False when it has too many."""
    if id(transport) in _counted:  # an upgrade hands the same connection on
        return True
    host = client[0] if client else "unknown"
    cap = _settings().max_conns_per_address
    n = _open.get(host, 0)
    if cap and n >= cap:
        return False
    _open[host] = n + 1
    _counted[id(transport)] = host
    return True


def release(transport: Any) -> None:
    host = _counted.pop(id(transport), None)
    if host is not None:
        n = _open.pop(host, 0) - 1
        if n > 0:
            _open[host] = n


def open_connections() -> dict[str, int]:
    """Open connections per address (tests, diagnostics)."""
    return dict(_open)


class _Stall:
    """Abort a transport whose write buffer stays above the high-water mark too long."""

    def __init__(self, loop: asyncio.AbstractEventLoop, transport: Any) -> None:
        self.loop, self.transport = loop, transport
        self.timer: asyncio.TimerHandle | None = None

    def paused(self) -> None:
        if self.timer is None:
            self.timer = self.loop.call_later(_settings().ws_send_timeout_s, self._abort)

    def resumed(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _abort(self) -> None:
        self.timer = None
        _refuse("write_stall")
        self.transport.abort()


class BoundedHttp(HttpToolsProtocol):
    _head: asyncio.TimerHandle | None = None
    _stall: _Stall | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        if not admit(transport, self.client):
            _refuse("per_address")
            transport.abort()
            return
        self._stall = _Stall(self.loop, transport)
        self._start_head()

    def _start_head(self) -> None:
        if self._head is None:
            self._head = self.loop.call_later(_settings().header_timeout_s, self._head_late)

    def _stop_head(self) -> None:
        if self._head is not None:
            self._head.cancel()
            self._head = None

    def _head_late(self) -> None:
        self._head = None
        _refuse("header_timeout")
        self.transport.abort()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_head()

    def on_headers_complete(self) -> None:
        self._stop_head()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.scope[BODY_COMPLETE] = True  # type: ignore[literal-required]
        super().on_message_complete()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stall is not None:
            self._stall.paused()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._stall is not None:
            self._stall.resumed()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head()
        if self._stall is not None:
            self._stall.resumed()
        release(self.transport)
        super().connection_lost(exc)


class BoundedWebSocket(WebSocketsSansIOProtocol):
    _stall: _Stall | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        admit(transport, self.client)  # counted already by the HTTP protocol it came from
        self._stall = _Stall(self.loop, transport)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stall is not None:
            self._stall.paused()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._stall is not None:
            self._stall.resumed()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._stall is not None:
            self._stall.resumed()
        release(self.transport)
        super().connection_lost(exc)
