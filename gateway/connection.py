"""One live-stream WebSocket connection: frames encoded once and shared, a small bounded queue,
the writer that drains it. Broadcast never waits for the slowest client: a frame that does not
fit marks the connection dropped; the writer then closes it with ``SLOW_CLIENT_CLOSE`` and the
client resyncs with ``since_seq``.

What a client sends is bounded too: each command (any frame, valid or not) takes one token of
the connection's ``CommandBudget`` (``IGE_WS_COMMAND_RATE``: a burst, refilled evenly); a
client with none left is closed with ``FLOOD_CLOSE``, so one connection cannot keep the hub busy
with subscribes, unsubscribes or garbage.

A frame goes to the socket at once when nothing is queued before it and the socket takes it
without waiting (``write_now``, the server's ``ige.write_now`` extension: gateway/serving.py);
otherwise it is queued for the writer, which waits for room. Either way the order is the order
of ``send``.

A live quote is queued with the moment its offer was accepted (``Quote``): once its frame is
written, the writer observes ``ige_push_seconds``, the time from the acceptance (the book's
clock: Redis's) to the write (this host's clock). The two clocks are one when Redis runs on the
gateway's machine; otherwise their offset is part of the number.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack
from starlette.websockets import WebSocket

from auction.feed import Subscription
from gateway import metrics
from gateway.contract.limits import (
    STREAM_FLOOD_CLOSE,
    STREAM_SLOW_CLIENT_CLOSE,
    STREAM_SUBPROTOCOLS,
)
from usecases.security import Principal

SLOW_CLIENT_CLOSE = STREAM_SLOW_CLIENT_CLOSE
FLOOD_CLOSE = STREAM_FLOOD_CLOSE
SUBPROTOCOLS = STREAM_SUBPROTOCOLS


def encode(msg: dict[str, Any], binary: bool) -> str | bytes:
    if binary:
        return msgpack.packb(msg, use_bin_type=True)  # type: ignore[no-any-return]
    return json.dumps(msg, separators=(",", ":"), ensure_ascii=False)


class Encoded:
    """A message encoded at most once per wire format, shared by every receiver."""

    __slots__ = ("_json", "_mp", "msg")

    def __init__(self, msg: dict[str, Any]) -> None:
        self.msg = msg
        self._json: str | None = None
        self._mp: bytes | None = None

    def frame(self, binary: bool) -> str | bytes:
        if binary:
            if self._mp is None:
                self._mp = msgpack.packb(self.msg, use_bin_type=True)
            return self._mp
        if self._json is None:
            self._json = json.dumps(self.msg, separators=(",", ":"), ensure_ascii=False)
        return self._json


class Quote:
    """A live quote's frame and when its offer was accepted (ms since the epoch)."""

    __slots__ = ("accepted_at_ms", "frame")

    def __init__(self, frame: str | bytes, accepted_at_ms: int) -> None:
        self.frame = frame
        self.accepted_at_ms = accepted_at_ms


Queued = str | bytes | Quote | None  # None: the end marker
CLOSE_TIMEOUT_S = 2.0  # closing a socket the hub is done with waits no longer


class CommandBudget:
    """A token bucket over the commands of one connection: ``burst`` at most, refilled at
    ``burst / per_s`` a second (``burst`` 0: no limit). ``take(now)`` spends one token."""

    __slots__ = ("_at", "_rate", "_tokens", "burst")

    def __init__(self, burst: int, per_s: float, now: float) -> None:
        self.burst = burst
        self._rate = burst / per_s if burst and per_s > 0 else 0.0
        self._tokens = float(burst)
        self._at = now

    def take(self, now: float) -> bool:
        if not self.burst:
            return True
        self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


@dataclass(eq=False)
class Sub:
    """One topic a connection subscribed to."""

    conn: Connection
    topic: str
    round_id: str = ""  # round and application topics: the round whose channel is watched
    feed: Subscription | None = None  # round topics: the seq state (auction/feed.py)
    watching: bool = False  # the hub watches the round's channel for this subscription


@dataclass(eq=False)
class Connection:
    ws: WebSocket
    principal: Principal
    binary: bool
    queue: asyncio.Queue[Queued]
    subs: dict[str, Sub] = field(default_factory=dict)
    dropped: bool = False
    slow: bool = False  # dropped because it fell behind
    sent: int = 0  # frames written
    max_bytes: int = 0  # unsent bytes the queue may hold (0: no bound but the frames')
    send_timeout_s: float = 0.0  # a frame the client does not take in this time drops it
    queued_bytes: int = 0  # unsent, in the queue
    offered_bytes: int = 0  # every frame given to send, queued or not (what it cost to make)
    reader: asyncio.Task[Any] | None = None  # the task reading the client's commands
    receiving: bool = False  # the reader waits for the client's next command
    budget: CommandBudget | None = None  # commands the client may still send (None: no bound)
    flooded: bool = False  # closed for sending commands faster than its budget allows
    close_code: int | None = None  # the close code the client sent (or the server's, on error)
    #: writes a frame now if the socket takes it without waiting (None: always queue)
    write_now: Callable[[str | bytes], bool] | None = None
    writing: bool = False  # the writer holds a frame taken from the queue, not yet written

    def drop(self, reason: str) -> None:
        """The client fell behind (``reason``: queue, queue_bytes, send_timeout): stop sending,
        wake the reader, close; the client resyncs with since_seq."""
        if self.dropped:
            return
        metrics.SLOW_CLIENTS.inc()
        metrics.REFUSED_CONNECTIONS.labels(reason).inc()
        self.abandon()

    def abandon(self) -> None:
        """Stop sending, wake the reader, close with SLOW_CLIENT_CLOSE: the client resyncs with
        since_seq. For a client that fell behind (``drop``), or one the hub could not bring up
        to date (a backing service failing for longer than its retries)."""
        if self.dropped:
            return
        self.dropped = self.slow = True
        reader = self.reader
        if self.receiving and reader is not None and reader is not asyncio.current_task() \
                and not reader.done():
            # a client that sends nothing would hold it forever; a command being carried out
            # is left to finish (the reader stops after it)
            reader.cancel()

    def send(self, frame: str | bytes | Quote) -> None:
        data = frame.frame if isinstance(frame, Quote) else frame
        size = len(data)
        self.offered_bytes += size
        if self.dropped:
            return
        if self.write_now is not None and not self.writing and self.queue.empty() \
                and self.write_now(data):
            self._written(frame)
            return
        if self.max_bytes and self.queued_bytes + size > self.max_bytes:
            self.drop("queue_bytes")
            return
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.drop("queue")
            return
        self.queued_bytes += size

    def _written(self, frame: str | bytes | Quote) -> None:
        """A frame reached the socket: counted, and a live quote's push latency observed."""
        self.sent += 1
        if isinstance(frame, Quote):
            metrics.PUSH.observe(max(0.0, time.time() - frame.accepted_at_ms / 1000))

    def send_msg(self, msg: dict[str, Any]) -> None:
        self.send(encode(msg, self.binary))

    def error(self, topic: str | None, code: str, detail: str = "") -> None:
        self.send_msg({"type": "error", "topic": topic, "code": code, "detail": detail})

    async def receive(self) -> dict[str, Any] | None:
        """The client's next command object; None when it hung up."""
        self.receiving = True
        try:
            m = await self.ws.receive()
        finally:
            self.receiving = False
        if m["type"] == "websocket.disconnect":
            code = m.get("code")
            self.close_code = code if isinstance(code, int) else None
            return None
        try:
            if m.get("bytes") is not None:
                obj = msgpack.unpackb(m["bytes"], raw=False)
            else:
                obj = json.loads(m.get("text") or "")
        except Exception:  # noqa: BLE001 - whatever a client sends that does not decode
            return {"op": "__bad__"}
        return obj if isinstance(obj, dict) else {"op": "__bad__"}

    async def write(self) -> None:
        """Send queued frames until the end marker (None) or until the connection is dropped."""
        ws = self.ws
        try:
            while True:
                if self.dropped:
                    # the close frame waits for room as a frame would (the client learns it
                    # must resync once it reads again); after that the socket is aborted
                    await asyncio.wait_for(ws.close(
                        code=SLOW_CLIENT_CLOSE, reason="slow consumer: resync with since_seq"),
                        self.send_timeout_s or None)
                    return
                item = await self.queue.get()
                if item is None:
                    return
                if self.dropped:
                    continue
                frame = item.frame if isinstance(item, Quote) else item
                self.queued_bytes -= len(frame)
                self.writing = True  # a frame sent meanwhile queues behind this one
                try:
                    async with asyncio.timeout(self.send_timeout_s or None):  # no extra task
                        if isinstance(frame, bytes):
                            await ws.send_bytes(frame)
                        else:
                            await ws.send_text(frame)
                except TimeoutError:  # the client does not read: its socket buffer is full
                    self.drop("send_timeout")
                    continue
                finally:
                    self.writing = False
                self._written(item)
        except Exception:  # noqa: BLE001 - a socket that fails in any way is gone
            self.dropped = True
