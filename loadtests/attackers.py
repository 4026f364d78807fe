"""The hostile clients of ``loadtests/hostile.py``, one kind per process:

    python -m loadtests.attackers SPEC.json

SPEC: {"kind": "flood" | "swarm" | "brute", "host", "port", "addresses": [source addresses],
...the kind's own fields}. The process raises its own ``ulimit -n`` to the hard limit, starts
attacking, prints ``READY`` once the attack is up (the flood: once it holds its connections or
tried for ``ramp_s``), a ``report`` line on stdin prints what it has seen so far as one JSON
line, and ``stop`` (or end of input) ends it with a last JSON line. Every kind is persistent, as
an attacker is: what the server closes is opened again.

* ``flood``: ``connections`` TCP connections spread over the source addresses, a fraction
  ``slow`` of them slow-header (a request line, then one header byte every ``drip_s``), the
  others silent; at most ``connect_parallel`` connects in flight. A connection the server
  closes is reopened after ``reopen_s``. Counted: connections held now and at most, opened,
  closed by the server within a second of opening (refused at once) or later (a timeout),
  connect errors by errno.
* ``swarm``: ``clients`` WebSocket clients of one bank (``token``): each takes a ticket, opens
  the stream with a tiny receive buffer, reads the handshake's answer and never reads again,
  and sends ``subscribe`` to ``round`` (a snapshot each time) every ``every_s`` until its socket
  fails; then again from the start. Counted: handshakes accepted and refused (by status),
  subscribes sent, connections ended by the server.
* ``brute``: ``connections`` keep-alive connections spread over the source addresses, each
  posting wrong secrets for ``client_id`` to ``/v1/oauth/token`` as fast as the answers come.
  Counted: answers by status.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import json
import os
import resource
import secrets
import socket
import sys
import time
from typing import Any

from loadtests.rawhttp import Conn


class Counts:
    def __init__(self) -> None:
        self.c: dict[str, int] = {}

    def add(self, key: str, n: int = 1) -> None:
        self.c[key] = self.c.get(key, 0) + n


# ----------------------------------------------------------------------------- flood
class _Held(asyncio.Protocol):
    def __init__(self) -> None:
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        pass  # an answer (e.g. 408) is read and ignored; the server closes after it

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


class Flood:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.host, self.port = spec["host"], int(spec["port"])
        self.addresses: list[str] = spec["addresses"]
        self.n = int(spec["connections"])
        self.slow = float(spec.get("slow", 0.5))
        self.drip_s = float(spec.get("drip_s", 2.0))
        self.reopen_s = float(spec.get("reopen_s", 0.5))
        self.gate = asyncio.Semaphore(int(spec.get("connect_parallel", 256)))
        self.counts = Counts()
        self.held = 0
        self.peak = 0
        self.stopping = False
        self.transports: set[asyncio.Transport] = set()

    async def slot(self, i: int) -> None:
        loop = asyncio.get_running_loop()
        addr = self.addresses[i % len(self.addresses)]
        slow = (i % 100) < self.slow * 100
        while not self.stopping:
            try:
                async with self.gate:
                    tr, proto = await asyncio.wait_for(loop.create_connection(
                        _Held, self.host, self.port, local_addr=(addr, 0)), 10)
            except (OSError, TimeoutError) as e:
                err = getattr(e, "errno", None)
                self.counts.add("connect_error_" + (errno.errorcode.get(err, str(err))
                                                    if err else "timeout"))
                await asyncio.sleep(self.reopen_s * 2)
                continue
            opened = loop.time()
            self.counts.add("opened")
            self.held += 1
            self.peak = max(self.peak, self.held)
            self.transports.add(tr)
            try:
                if slow:
                    tr.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                    while not proto.lost.done() and not self.stopping:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(asyncio.shield(proto.lost), self.drip_s)
                        if not tr.is_closing():
                            tr.write(b"X")  # one byte of a header that never ends
                else:
                    await proto.lost
            finally:
                self.held -= 1
                self.transports.discard(tr)
            if self.stopping:
                break
            self.counts.add("closed_at_once" if loop.time() - opened < 1.0
                            else "closed_later")
            await asyncio.sleep(self.reopen_s)

    async def run(self, ready: asyncio.Event, ramp_s: float) -> None:
        tasks = [asyncio.ensure_future(self.slot(i)) for i in range(self.n)]
        t0 = time.monotonic()
        while self.held < self.n * 0.98 and time.monotonic() - t0 < ramp_s:  # noqa: ASYNC110
            await asyncio.sleep(0.25)  # polls a count, not an event
        self.counts.add("ramp_ms", int((time.monotonic() - t0) * 1000))
        ready.set()
        await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        self.stopping = True
        for tr in list(self.transports):
            tr.abort()

    def report(self) -> dict[str, Any]:
        return {"held": self.held, "peak": self.peak, **self.counts.c}


# ----------------------------------------------------------------------------- swarm
async def _ticket(conn: Conn, hosthdr: str, token: str) -> tuple[int, str]:
    raw = (f"POST /v1/stream/tickets HTTP/1.1\r\nHost: {hosthdr}\r\nAuthorization: {token}\r\n"
           "Content-Length: 0\r\n\r\n").encode()
    status, body = await conn.request(raw)
    return status, (json.loads(body)["ticket"] if status == 201 else "")


class Swarm:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.host, self.port = spec["host"], int(spec["port"])
        self.addresses: list[str] = spec["addresses"]
        self.n = int(spec["clients"])
        self.token: str = spec["token"]
        self.round: str = spec["round"]
        self.every_s = float(spec.get("every_s", 0.0))
        self.retry_s = float(spec.get("retry_s", 1.0))
        self.counts = Counts()
        self.open = 0
        self.peak = 0
        self.stopping = False

    async def client(self, i: int) -> None:
        addr = self.addresses[i % len(self.addresses)]
        hosthdr = f"{self.host}:{self.port}"
        http = Conn(self.host, self.port, addr)
        cmd = json.dumps({"op": "subscribe", "topic": f"round:{self.round}"}).encode()
        frame = bytes([0x81, 0x80 | len(cmd)]) + b"\0\0\0\0" + cmd  # masked with a zero key
        while not self.stopping:
            writer: asyncio.StreamWriter | None = None
            try:
                status, ticket = await _ticket(http, hosthdr, self.token)
                if status != 201:
                    self.counts.add(f"ticket_{status}")
                    await asyncio.sleep(self.retry_s)
                    continue
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.bind((addr, 0))
                s.setblocking(False)
                await asyncio.get_running_loop().sock_connect(s, (self.host, self.port))
                reader, writer = await asyncio.open_connection(sock=s, limit=4096)
                writer.write((
                    f"GET /v1/stream?ticket={ticket} HTTP/1.1\r\nHost: {hosthdr}\r\n"
                    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                    f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
                    "Sec-WebSocket-Version: 13\r\n"
                    "Sec-WebSocket-Protocol: ige.v1.json\r\n\r\n").encode())
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
                code = head.split(b" ", 2)[1].decode()
                if code != "101":
                    self.counts.add(f"handshake_{code}")
                    writer.close()
                    await asyncio.sleep(self.retry_s)
                    continue
                self.counts.add("handshake_101")
                self.open += 1
                self.peak = max(self.peak, self.open)
                try:
                    # never read again: the answers pile up at the server
                    while not self.stopping:
                        writer.write(frame)
                        await asyncio.wait_for(writer.drain(), 60)
                        self.counts.add("subscribes")
                        await asyncio.sleep(self.every_s)
                finally:
                    self.open -= 1
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError,
                    IndexError) as e:
                if not self.stopping:
                    self.counts.add("ended_" + type(e).__name__)
                    await asyncio.sleep(self.retry_s)
            finally:
                if writer is not None:
                    writer.transport.abort()
        http.close()

    async def run(self, ready: asyncio.Event) -> None:
        tasks = [asyncio.ensure_future(self.client(i)) for i in range(self.n)]
        ready.set()
        await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        self.stopping = True

    def report(self) -> dict[str, Any]:
        return {"open": self.open, "peak": self.peak, **self.counts.c}


# ----------------------------------------------------------------------------- brute
class Brute:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.host, self.port = spec["host"], int(spec["port"])
        self.addresses: list[str] = spec["addresses"]
        self.n = int(spec["connections"])
        self.client_id: str = spec["client_id"]
        self.counts = Counts()
        self.stopping = False

    async def conn(self, i: int) -> None:
        c = Conn(self.host, self.port, self.addresses[i % len(self.addresses)])
        hosthdr = f"{self.host}:{self.port}"
        while not self.stopping:
            body = (f"grant_type=client_credentials&client_id={self.client_id}"
                    f"&client_secret={secrets.token_urlsafe(24)}").encode()
            raw = (f"POST /v1/oauth/token HTTP/1.1\r\nHost: {hosthdr}\r\n"
                   "Content-Type: application/x-www-form-urlencoded\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n").encode() + body
            try:
                status, _ = await asyncio.wait_for(c.request(raw), 30)
                self.counts.add(str(status))
            except (OSError, TimeoutError) as e:
                self.counts.add("error_" + type(e).__name__)
                c.close()
                c = Conn(self.host, self.port, c.local)
                await asyncio.sleep(0.5)
        c.close()

    async def run(self, ready: asyncio.Event) -> None:
        tasks = [asyncio.ensure_future(self.conn(i)) for i in range(self.n)]
        ready.set()
        await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        self.stopping = True

    def report(self) -> dict[str, Any]:
        return dict(self.counts.c)


# ----------------------------------------------------------------------------- process
async def main_async(spec: dict[str, Any]) -> dict[str, Any]:
    kind = spec["kind"]
    ready = asyncio.Event()
    attacker: Flood | Swarm | Brute
    if kind == "flood":
        flood = attacker = Flood(spec)
        task = asyncio.ensure_future(flood.run(ready, float(spec.get("ramp_s", 30))))
    elif kind == "swarm":
        attacker = Swarm(spec)
        task = asyncio.ensure_future(attacker.run(ready))
    elif kind == "brute":
        attacker = Brute(spec)
        task = asyncio.ensure_future(attacker.run(ready))
    else:
        raise SystemExit(f"unknown kind {kind!r}")
    await ready.wait()
    print("READY " + json.dumps(attacker.report()), flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line or line.strip() == "stop":
            break
        if line.strip() == "report":
            print(json.dumps(attacker.report()), flush=True)
    attacker.stop()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(task, 15)
    return attacker.report()


def main() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with open(sys.argv[1]) as fh:
        spec = json.load(fh)
    import uvloop

    res = uvloop.run(main_async(spec))
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
