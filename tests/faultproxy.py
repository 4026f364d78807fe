"""A small TCP fault proxy for the fault tests: put it between a server process and Redis or
PostgreSQL and switch what the network does, while traffic flows.

Runs an asyncio loop in a thread of the test process. Modes (``set``):

- ``pass``: bytes go through as they come;
- ``latency``: every chunk is delivered ``latency_ms`` after it arrived, both ways (order kept,
  throughput not limited: a delay line, not a slow pipe);
- ``blackhole``: a partition. Nothing is forwarded any more (what arrives is held, as TCP holds
  unacknowledged segments, and delivered if the network heals while the connection lives); new
  connections are accepted and held without reaching the target;
- ``reset``: every connection is closed with a RST (SO_LINGER 0), both sides; new ones are
  accepted and reset at once.

Counters (``connections``, ``resets``) let a test see that its traffic really went through.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from gateway.redis_server import free_port

MODES = ("pass", "latency", "blackhole", "reset")


def _rst(writer: asyncio.StreamWriter) -> None:
    """Close with a RST instead of a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@dataclass(eq=False)
class _Link:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def reset(self) -> None:
        for w in (self.client, self.upstream):
            if w is not None:
                _rst(w)
        for t in self.tasks:
            t.cancel()


class FaultProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.mode = "pass"
        self.latency_s = 0.0
        self.connections = 0  # accepted so far
        self.resets = 0  # connections reset by the proxy
        self.history: list[tuple[float, str]] = []  # (time.time(), mode) of every switch
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._links: set[_Link] = set()
        self._flowing: asyncio.Event | None = None
        self._server: asyncio.Server | None = None

    # -- from the test's thread ------------------------------------------------------------
    def start(self) -> FaultProxy:
        self._thread.start()
        self._call(self._start())
        return self

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()

    def set(self, mode: str, latency_ms: float = 0) -> None:
        """Switch mode now (``latency_ms`` for ``latency``)."""
        assert mode in MODES, mode
        self._call(self._set(mode, latency_ms / 1000))
        self.history.append((time.time(), mode))

    def url(self, scheme_and_rest: str) -> str:
        """``redis://127.0.0.1:{port}/0`` style: the given URL template with the proxy's port."""
        return scheme_and_rest.format(port=self.port)

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    # -- in the proxy's loop ---------------------------------------------------------------
    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def _stop(self) -> None:
        assert self._flowing is not None
        if self._server is not None:
            self._server.close()
        self.mode = "reset"
        for link in list(self._links):
            link.reset()
        self._links.clear()
        self._flowing.set()  # held connections see they are gone and end
        me = asyncio.current_task()
        for _ in range(100):
            rest = [t for t in asyncio.all_tasks() if t is not me]
            if not rest:
                return
            await asyncio.sleep(0.01)
        for t in rest:
            t.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    async def _set(self, mode: str, latency_s: float) -> None:
        assert self._flowing is not None
        self.mode, self.latency_s = mode, latency_s
        if mode == "blackhole":
            self._flowing.clear()
            return
        if mode == "reset":
            for link in list(self._links):
                link.reset()
                self.resets += 1
            self._links.clear()
        self._flowing.set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        self.connections += 1
        link = _Link(writer)
        if self.mode == "reset":
            self.resets += 1
            _rst(writer)
            return
        self._links.add(link)
        try:
            # a new connection during a partition: accepted (the SYN got through to us) and
            # held, unread, until the network heals (a client that gave up meanwhile is seen
            # then: its EOF is forwarded like any other)
            await self._flowing.wait()
            if self.mode == "reset" or link not in self._links:
                _rst(writer)
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:
                _rst(writer)
                return
            link.upstream = up_writer
            link.tasks = [asyncio.ensure_future(self._pump(reader, up_writer, link)),
                          asyncio.ensure_future(self._pump(up_reader, writer, link))]
            await asyncio.gather(*link.tasks, return_exceptions=True)
        finally:
            self._links.discard(link)
            for w in (writer, link.upstream):
                if w is not None and not w.transport.is_closing():
                    w.close()

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                    link: _Link) -> None:
        """One direction: a reader filling a delay line, a writer emptying it when due and
        while the network flows."""
        assert self._flowing is not None
        line: collections.deque[tuple[float, bytes]] = collections.deque()
        more = asyncio.Event()
        done = False

        async def fill() -> None:
            nonlocal done
            while True:
                try:
                    data = await src.read(65536)
                except (OSError, ConnectionError):
                    data = b""
                if not data:
                    done = True
                    more.set()
                    return
                line.append((time.monotonic() + self.latency_s, data))
                more.set()

        filler = asyncio.ensure_future(fill())
        try:
            while True:
                while not line:
                    if done:
                        with contextlib.suppress(OSError):
                            dst.write_eof()
                        return
                    more.clear()
                    await more.wait()
                await self._flowing.wait()
                due, data = line[0]
                wait = due - time.monotonic() if self.mode == "latency" else 0
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue  # the mode may have changed meanwhile
                await self._flowing.wait()
                line.popleft()
                dst.write(data)
                await dst.drain()
        except (OSError, ConnectionError):
            link.reset()
        finally:
            filler.cancel()
