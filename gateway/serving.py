"""The server's own bounds on TCP connections, below HTTP: uvicorn's HTTP (httptools) and
WebSocket protocols with

* **connections per client address** (``IGE_MAX_CONNS_PER_ADDRESS``, per process): one more is
  closed at once, before a byte is read — a single source cannot use up the file descriptors;
* **connections per process** (``IGE_MAX_CONNECTIONS``; by default the descriptor limit less
  ``FD_RESERVE``): many sources together cannot use them up either. At the cap a new connection
  closes the oldest connection still owing its request head (a silent or slow-header one:
  ``evicted``), so a client that sends its request at once still gets in during a flood; when
  none owes one, the new connection is closed (``max_connections``). Without it the process
  reaches its descriptor limit, and then the event loop (libuv) accepts and resets every new
  connection, good ones too, without a word in the log;
* a **header timeout** (``IGE_HEADER_TIMEOUT``): a request head (request line and headers) must
  be complete within it, from the connection's start or from the first byte of a keep-alive
  request; a silent or slow-header connection is closed (idle keep-alive connections are
  closed by uvicorn's ``timeout_keep_alive``, ``IGE_KEEP_ALIVE``). One timer per process
  closes the late ones, oldest first and at most ``TURN_BUDGET`` per turn of the event
  loop: thousands of connections a flood opened together run out together, and closed in one
  turn they are one long stall for every other client;
* a **write stall timeout** (``IGE_WS_SEND_TIMEOUT``): a connection whose send buffer stays
  full (the client reads nothing) that long is aborted. ``transport.close()`` waits for the
  buffer to flush, which a non-reader never lets happen; ``abort()`` does not wait.

Each refusal is counted in ``ige_refused_connections{reason}`` and logged (``connection_refused``,
the reason and a ``count``, never the address's traffic): at once while refusals are rare, one
line per reason and second while they are not (gateway/tally.py). A connection is counted
against the caps before uvicorn sets it up, so a refused one costs its accept and its abort
only; and uvicorn sets a connection up only at its first byte (``WaitingHttp`` until then), so
a silent one costs about half the Python work to make and close, and a sixth of the objects for
the garbage collector to walk while it is held (RELIABILITY.md §4).
``ige serve`` passes ``WaitingHttp`` and ``BoundedWebSocket`` to uvicorn.
"""

from __future__ import annotations

import asyncio
import functools
import resource
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.utils import get_remote_addr
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

from gateway import metrics
from gateway.bounds import BODY_COMPLETE
from gateway.settings import Settings
from gateway.tally import Tally

_open: dict[str, int] = {}  # open connections per client address, this process
_counted: dict[int, str] = {}  # id(transport) -> its address, while counted
#: connections owing their request head, by id(transport), oldest first. An OrderedDict, not a
#: dict: a dict emptied from the front finds its first entry past every slot emptied before it
#: (~10 µs at 20,000 connections against ~1 µs, per eviction or header timeout of a flood)
_pending: OrderedDict[int, _OwesHead] = OrderedDict()
#: descriptors kept for the process itself (Redis and SQL connections, log and metrics files)
FD_RESERVE = 1024
#: connections closed per turn of the event loop for a late request head: the others wait for
#: the next turn, other clients' work between them
TURN_BUDGET = 100


@functools.cache
def _settings() -> Settings:
    return Settings.from_env()


#: refusals beyond a reason's first are logged once per second (gateway/tally.py)
_tally = Tally("connection_refused", metrics.REFUSED_CONNECTIONS, "reason")


def _refuse(reason: str) -> None:
    _tally.add(reason)


@functools.cache
def max_connections() -> int:
    """The cap on open connections of this process (0: none)."""
    cap = _settings().max_connections
    if cap is not None:
        return cap
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 0
    return max(64, soft - FD_RESERVE)


def admit(transport: Any) -> str | None:
    """Count a new connection of its client's address; the reason it is refused (its address
    has too many; the process has too many and none can be evicted), or None."""
    if id(transport) in _counted:  # a protocol handing the connection on: counted already
        return None
    client = get_remote_addr(transport)
    host = client[0] if client else "unknown"
    cap = _settings().max_conns_per_address
    n = _open.get(host, 0)
    if cap and n >= cap:
        return "per_address"
    total = max_connections()
    if total and len(_counted) >= total:
        victim = next(iter(_pending.values()), None)
        if victim is None:
            return "max_connections"
        victim.evict()
    _open[host] = n + 1
    _counted[id(transport)] = host
    return None


def release(transport: Any) -> None:
    host = _counted.pop(id(transport), None)
    if host is not None:
        n = _open.pop(host, 0) - 1
        if n > 0:
            _open[host] = n


def open_connections() -> dict[str, int]:
    """Open connections per address (tests, diagnostics)."""
    return dict(_open)


class _Soon:
    """``run(loop)`` scheduled on an event loop, at most once at a time: at the next turn, or
    at a given time."""

    def __init__(self, run: Callable[[asyncio.AbstractEventLoop], None]) -> None:
        self.run = run
        self.handle: asyncio.Handle | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def soon(self, loop: asyncio.AbstractEventLoop, when: float | None = None) -> None:
        if self.handle is not None and self.loop is loop and not self.handle.cancelled():
            return  # already due (a sweep: due no later, as every head gets the same timeout)
        self.loop = loop
        self.handle = (loop.call_soon(self._now, loop) if when is None
                       else loop.call_at(when, self._now, loop))

    def _now(self, loop: asyncio.AbstractEventLoop) -> None:
        self.handle = None
        self.run(loop)


def _oldest_pending(loop: asyncio.AbstractEventLoop) -> _OwesHead | None:
    while _pending:
        key, conn = next(iter(_pending.items()))
        if conn.loop is loop:
            return conn
        _pending.pop(key, None)  # left by an event loop that has ended (tests)
    return None


def _sweep_heads(loop: asyncio.AbstractEventLoop) -> None:
    """Close the connections whose request head is late, oldest first, ``TURN_BUDGET`` at
    most; then wake again for the next deadline, or at the next turn when more are late."""
    now = loop.time()
    for _ in range(TURN_BUDGET):
        conn = _oldest_pending(loop)
        if conn is None:
            return
        due = conn._head_due
        if due is not None and due > now:
            _sweep.soon(loop, due)
            return
        conn._head_late()
    _sweep.soon(loop)


_sweep = _Soon(_sweep_heads)


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


class _WatchesWrites(asyncio.Protocol):
    """A connection whose writes, once paused by a full socket buffer, must resume within the
    send timeout (``_Stall``); the HTTP and the WebSocket protocol alike."""

    _stall: _Stall | None = None  # made at the first pause: most connections never pause
    loop: asyncio.AbstractEventLoop
    transport: Any

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stall is None:
            self._stall = _Stall(self.loop, self.transport)
        self._stall.paused()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._stall is not None:
            self._stall.resumed()


class _OwesHead:
    """A connection as the header sweep and the connection cap see it: while it owes a request
    head, it is in ``_pending`` (by its transport, which it keeps when one protocol hands it to
    another) with the time it is due by."""

    _head_due: float | None = None  # while a request head is owed: by when (the loop's clock)
    _refused = False  # closed at once by the caps (nothing else was set up)
    loop: asyncio.AbstractEventLoop
    transport: Any

    def _admitted(self, transport: Any) -> bool:
        """Count a new connection against the caps; False: refused, and aborted."""
        refused = admit(transport)
        if refused is None:
            return True
        self._refused = True
        _refuse(refused)
        transport.abort()
        return False

    def _lost(self) -> bool:
        """At the connection's end: no longer owing a head nor counted. False for one the caps
        refused (it never was)."""
        if self._refused:
            return False
        self._stop_head()
        release(self.transport)
        return True

    def _start_head(self) -> None:
        if self._head_due is None:
            self._head_due = due = self.loop.time() + _settings().header_timeout_s
            _pending[id(self.transport)] = self
            _sweep.soon(self.loop, due)

    def _stop_head(self) -> None:
        if self._head_due is not None:
            self._head_due = None
            _pending.pop(id(self.transport), None)

    def _head_late(self) -> None:
        self._head_due = None
        _pending.pop(id(self.transport), None)
        _refuse("header_timeout")
        self.transport.abort()

    def evict(self) -> None:
        """Make room for a new connection: this one, owing its request head, is closed now
        (and no longer counted, though its loss is reported later)."""
        self._stop_head()
        release(self.transport)
        _refuse("evicted")
        self.transport.abort()


class WaitingHttp(_OwesHead, asyncio.Protocol):
    """The protocol of a new connection (``ige serve``'s ``http``) until its first byte: it is
    counted against the caps and owes its request head, and nothing more. The first byte hands
    the connection to a ``BoundedHttp`` (uvicorn's HTTP protocol: its parser, flow control,
    addresses), which owes the head from the same moment. A flood's silent connections are
    accepted, counted and closed without any of uvicorn's set-up (loadtests/churn.py)."""

    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._made = (config, server_state, app_state)
        self.loop = _loop or asyncio.get_event_loop()
        self.transport = None
        self._head_due = None

    def connection_made(self, transport: Any) -> None:
        if not self._admitted(transport):
            return
        self.transport = transport
        self._made[1].connections.add(self)  # uvicorn's shutdown closes it with the others
        self._start_head()

    def data_received(self, data: bytes) -> None:
        config, state, app_state = self._made
        http = BoundedHttp(config=config, server_state=state, app_state=app_state,
                           _loop=self.loop)
        state.connections.discard(self)
        if self._head_due is not None:  # owed since the connection began; its place kept
            http._head_due = self._head_due
            _pending[id(self.transport)] = http
        self.transport.set_protocol(http)
        http.connection_made(self.transport)
        http.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._lost():
            self._made[1].connections.discard(self)

    def shutdown(self) -> None:
        """uvicorn's, at the server's shutdown: nothing is under way, so close now."""
        self.transport.close()


class BoundedHttp(_OwesHead, _WatchesWrites, HttpToolsProtocol):
    """uvicorn's HTTP protocol with the caps (for a connection made here, not handed on by a
    ``WaitingHttp``), the request head's timeout and the write stall watch."""

    def connection_made(self, transport: Any) -> None:
        if not self._admitted(transport):
            return
        super().connection_made(transport)
        self._start_head()

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

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._lost():
            return
        if self._stall is not None:
            self._stall.resumed()
        super().connection_lost(exc)


#: the ASGI extension (``scope["extensions"]``) of a WebSocket that can be written at once
WRITE_NOW = "ige.write_now"


class BoundedWebSocket(_WatchesWrites, WebSocketsSansIOProtocol):

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:  # accepted: the app may write at once (gateway/connection.py)
            scope["extensions"][WRITE_NOW] = self.write_now

    def write_now(self, data: str | bytes) -> bool:
        """Frame ``data`` and hand it to the socket now, when the socket takes it without
        waiting: open, its write buffer under the high-water mark. False: nothing was written;
        the caller sends it the ASGI way, which waits for room (and times out)."""
        if self.close_sent or self.disconnected or not self.writable.is_set() \
                or self.conn.state is not State.OPEN or self.transport.is_closing():
            return False
        try:
            if isinstance(data, bytes):
                self.conn.send_binary(data)
            else:
                self.conn.send_text(data.encode())
            self.transport.write(b"".join(self.conn.data_to_send()))
        except Exception:  # noqa: BLE001 - nothing reached the socket: the ASGI way decides
            return False
        return True

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        admit(transport)  # counted already by the HTTP protocol it came from

    def connection_lost(self, exc: Exception | None) -> None:
        if self._stall is not None:
            self._stall.resumed()
        release(self.transport)
        super().connection_lost(exc)
