"""A minimal keep-alive HTTP/1.1 client on asyncio protocols, for load generation: one request
in flight per connection, responses framed by Content-Length (what uvicorn sends). A few
microseconds per request, so the generator is never the bottleneck it measures."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlparse


class _Proto(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.transport: asyncio.Transport | None = None
        self.need = -1
        self.status = 0
        self.head_end = -1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.head_end < 0:
            i = self.buf.find(b"\r\n\r\n")
            if i < 0:
                return
            self.head_end = i + 4
            head = bytes(self.buf[:i]).decode("latin-1")
            lines = head.split("\r\n")
            self.status = int(lines[0].split(" ", 2)[1])
            self.need = 0
            for ln in lines[1:]:
                k, _, v = ln.partition(":")
                if k.lower() == "content-length":
                    self.need = int(v)
        if len(self.buf) - self.head_end >= self.need:
            body = bytes(self.buf[self.head_end:self.head_end + self.need])
            del self.buf[:self.head_end + self.need]
            self.head_end, self.need = -1, -1
            w, self.waiter = self.waiter, None
            if w is not None and not w.done():
                w.set_result((self.status, body))

    def connection_lost(self, exc: Exception | None) -> None:
        w, self.waiter = self.waiter, None
        if w is not None and not w.done():
            w.set_exception(ConnectionError(f"connection lost: {exc}"))


class Conn:
    """``local``: the source address to connect from (e.g. 127.0.0.2: any 127.0.0.x is a
    loopback address on Linux)."""

    def __init__(self, host: str, port: int, local: str | None = None) -> None:
        self.host, self.port, self.local = host, port, local
        self.proto: _Proto | None = None

    async def open(self) -> Conn:
        loop = asyncio.get_running_loop()
        _, self.proto = await loop.create_connection(
            _Proto, self.host, self.port,
            local_addr=None if self.local is None else (self.local, 0))
        return self

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if self.proto is None or self.proto.transport is None or self.proto.transport.is_closing():
            await self.open()
        assert self.proto is not None and self.proto.transport is not None
        fut: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        self.proto.waiter = fut
        self.proto.transport.write(raw)
        return await fut

    def close(self) -> None:
        if self.proto is not None and self.proto.transport is not None:
            self.proto.transport.close()


def build(method: str, path: str, host: str, headers: dict[str, str], body: Any = None) -> bytes:
    data = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: keep-alive"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


def host_port(base_url: str) -> tuple[str, int]:
    u = urlparse(base_url)
    return u.hostname or "127.0.0.1", u.port or 80
