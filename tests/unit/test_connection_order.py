"""gateway/connection.py: a frame goes to the socket at once only when nothing is queued before
it; once the socket makes frames wait, later frames queue behind them, and the order on the
wire is the order of ``send`` (pure logic: the socket is a recorder that can refuse)."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.connection import Connection, Quote
from usecases.security import Principal


class Socket:
    """What reached the wire, in order; ``room`` False: writing now is refused (a full buffer),
    and the ASGI send waits until ``room`` comes back."""

    def __init__(self) -> None:
        self.wire: list[bytes] = []
        self.room = asyncio.Event()
        self.room.set()

    def write_now(self, data: str | bytes) -> bool:
        if not self.room.is_set():
            return False
        self.wire.append(data if isinstance(data, bytes) else data.encode())
        return True

    async def send_bytes(self, data: bytes) -> None:
        await self.room.wait()
        self.wire.append(data)

    async def send_text(self, data: str) -> None:
        await self.room.wait()
        self.wire.append(data.encode())


def _conn(sock: Socket, direct: bool = True) -> Connection:
    ws: Any = sock
    return Connection(ws, Principal("bank", "B1"), True, asyncio.Queue(64),
                      send_timeout_s=5.0, write_now=sock.write_now if direct else None)


def test_frames_keep_their_order_across_the_direct_and_the_queued_path() -> None:
    async def main() -> list[bytes]:
        sock = Socket()
        conn = _conn(sock)
        writer = asyncio.create_task(conn.write())
        conn.send(b"1")
        conn.send(Quote(b"2", 0))
        assert sock.wire == [b"1", b"2"]  # written at once, no writer turn needed
        sock.room.clear()  # the socket's buffer is full
        conn.send(b"3")
        await asyncio.sleep(0)  # the writer takes 3 (the queue is empty) and waits for room
        sock.room.set()  # room again, but 3 is not written yet
        conn.send(b"4")  # must queue behind it
        conn.send(b"5")
        conn.send(Quote(b"6", 0))
        for _ in range(20):
            await asyncio.sleep(0)
        conn.send(b"7")  # the queue is empty again: at once
        assert conn.sent == 7
        conn.queue.put_nowait(None)
        await writer
        return sock.wire

    assert asyncio.run(main()) == [b"1", b"2", b"3", b"4", b"5", b"6", b"7"]


def test_without_the_extension_every_frame_is_queued() -> None:
    async def main() -> tuple[list[bytes], int]:
        sock = Socket()
        conn = _conn(sock, direct=False)
        writer = asyncio.create_task(conn.write())
        conn.send(b"1")
        queued = conn.queue.qsize()
        conn.send(b"2")
        conn.queue.put_nowait(None)
        await writer
        return sock.wire, queued

    wire, queued = asyncio.run(main())
    assert wire == [b"1", b"2"] and queued == 1


def test_a_dropped_connection_writes_nothing_more() -> None:
    async def main() -> list[bytes]:
        sock = Socket()
        conn = _conn(sock)
        conn.send(b"1")
        conn.dropped = True
        conn.send(b"2")
        return sock.wire

    assert asyncio.run(main()) == [b"1"]
