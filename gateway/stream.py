"""The live stream: one Redis pub/sub subscriber per process fans events out to WebSocket
connections. Each book change is masked and encoded once (one variant for the offer's owner,
one for everybody else); every connection has a small bounded queue and is dropped, never
waited for, when it falls behind. Per subscription the hub guarantees gap-free, duplicate-free
``seq`` order: a gap is filled from the round's Redis stream, a lost cause becomes a snapshot.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable

import msgpack
from redis.exceptions import RedisError
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from gateway import views

from auction.book import Event, replay_orders
from auction.bus import Announcement, BookChanged, RoundFinalized, RoundOpened
from auction.masking import book_for, quote_messages
from auction.model import iso, ms_to_dt
from usecases.security import Principal
from usecases.context import now_ms
from usecases.streaming import Watch

if TYPE_CHECKING:
    from gateway.bootstrap import Runtime

log = logging.getLogger("ige.stream")

SUBPROTOCOLS = ("ige.v1.json", "ige.v1.msgpack")
MAX_CATCH_UP = 1000  # a since_seq further behind than this gets a snapshot instead
SLOW_CLIENT_CLOSE = 4008
HEARTBEAT_SLICES = 10  # a period's heartbeats go out in this many slices


def encode(msg: dict[str, Any], binary: bool) -> str | bytes:
    if binary:
        return msgpack.packb(msg, use_bin_type=True)  # type: ignore[no-any-return]
    return json.dumps(msg, separators=(",", ":"), ensure_ascii=False)


class Encoded:
    """A message encoded at most once per wire format, shared by every receiver."""

    __slots__ = ("msg", "_json", "_mp")

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


@dataclass(eq=False)
class Sub:
    conn: Connection
    topic: str
    round_id: str = ""
    pending: bool = False  # waiting for the bank's first offer
    next_seq: int = 1
    buffer: list[Event] | None = None  # not None while catching up


@dataclass(eq=False)
class Connection:
    ws: WebSocket
    principal: Principal
    binary: bool
    queue: asyncio.Queue[str | bytes | None]
    subs: dict[str, Sub] = field(default_factory=dict)
    dropped: bool = False

    def send(self, frame: str | bytes) -> None:
        if self.dropped:
            return
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.dropped = True  # the writer closes the socket; the client resyncs with since_seq

    def send_msg(self, msg: dict[str, Any]) -> None:
        self.send(encode(msg, self.binary))

    def error(self, topic: str | None, code: str, detail: str = "") -> None:
        self.send_msg({"type": "error", "topic": topic, "code": code, "detail": detail})


class Hub:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.book = runtime.deps.book
        self.streaming = runtime.portal.streaming
        self.settings = runtime.settings
        self.topics: dict[str, set[Sub]] = {}
        self.connections: set[Connection] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self.on_event: list[Callable[[str], None]] = []  # round ids with new events (persister)

    # -- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._listen(), name="hub-listen"),
                       asyncio.create_task(self._heartbeat(), name="hub-heartbeat")]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _listen(self) -> None:
        async for news in self.rt.bus.listen(self._resync_all):
            try:
                await self._dispatch(news)
            except Exception:  # a bad message must not stop the fan-out
                log.exception("dispatch failed")

    def _resync_all(self) -> None:
        """After a (re)connect every live subscription may have missed events."""
        for subs in list(self.topics.values()):
            for sub in list(subs):
                if sub.round_id and not sub.pending and sub.buffer is None:
                    self._resync(sub)

    async def _heartbeat(self) -> None:
        """Every connection gets a heartbeat once per period, in slices spread over the period:
        one burst to thousands of connections would delay every quote queued behind it."""
        tick = 0
        while True:
            await asyncio.sleep(self.settings.heartbeat_s / HEARTBEAT_SLICES)
            hb = Encoded({"type": "heartbeat", "topic": None, "server_time": iso(ms_to_dt(_now()))})
            for c in list(self.connections):
                if hash(c) % HEARTBEAT_SLICES == tick:
                    c.send(hb.frame(c.binary))
            tick = (tick + 1) % HEARTBEAT_SLICES

    # -- fan-out ----------------------------------------------------------------------
    async def _dispatch(self, news: Announcement) -> None:
        if isinstance(news, RoundOpened):
            await self._round_opened(news.round_id)
            return
        if isinstance(news, RoundFinalized):
            await self._round_finalized(news.round_id)
            return
        assert isinstance(news, BookChanged)
        ev = news.event
        rid = ev.round_id
        for cb in self.on_event:
            cb(rid)
        subs = self.topics.get(f"round:{rid}")
        if not subs:
            return
        if ev.kind == "quote":
            assert ev.offer is not None and ev.order is not None
            mine, other = (Encoded(m) for m in quote_messages(ev, f"round:{rid}", ev.order))
            for sub in list(subs):
                if sub.pending:
                    if sub.conn.principal.id == ev.offer.bank_id:
                        sub.pending = False
                        self._resync(sub, snapshot=True)
                    continue
                enc = mine if sub.conn.principal.id == ev.offer.bank_id else other
                self._deliver(sub, ev, enc)
        else:
            closed = Encoded({"type": "round_closed", "topic": f"round:{rid}", "seq": ev.seq,
                              "closed_at": iso(ms_to_dt(ev.at_ms))})
            for sub in list(subs):
                if not sub.pending:
                    self._deliver(sub, ev, closed)

    def _deliver(self, sub: Sub, ev: Event, enc: Encoded | None) -> None:
        if sub.buffer is not None:
            sub.buffer.append(ev)
            return
        if ev.seq < sub.next_seq:
            return
        if ev.seq > sub.next_seq or enc is None:
            sub.buffer = [ev]
            self._spawn(self._catch_up(sub))
            return
        sub.conn.send(enc.frame(sub.conn.binary))
        sub.next_seq = ev.seq + 1

    def _resync(self, sub: Sub, snapshot: bool = False) -> None:
        sub.buffer = []
        self._spawn(self._snapshot(sub) if snapshot else self._catch_up(sub))

    def _spawn(self, coro: Awaitable[None]) -> None:
        t = asyncio.ensure_future(coro)
        self._tasks.append(t)  # type: ignore[arg-type]
        t.add_done_callback(lambda x: self._tasks.remove(x) if x in self._tasks else None)  # type: ignore[arg-type]

    async def _snapshot(self, sub: Sub) -> None:
        try:
            view = await self.book.view(sub.round_id, sub.conn.principal.id)
            if view is None:
                sub.conn.error(sub.topic, "not_found", "round not found")
                return
            msg = book_for(view, sub.conn.principal.id, iso(ms_to_dt(_now())))
            sub.conn.send_msg({"type": "snapshot", "topic": sub.topic, **msg})
            sub.next_seq = view.seq + 1
            await self._drain(sub)
        except (RedisError, OSError):
            sub.conn.dropped = True

    async def _catch_up(self, sub: Sub) -> None:
        """Send the events from sub.next_seq on, ranks recomputed by replaying the round."""
        try:
            events = await self.book.events(sub.round_id, 0)
            have = events[-1].seq if events else 0
            # the catch-up is queued at once: a backlog the connection's queue cannot take would
            # drop the client on every resync, so that far behind is "too old" as well
            q = sub.conn.queue
            room = q.maxsize - q.qsize() if q.maxsize > 0 else MAX_CATCH_UP + 1
            if sub.next_seq - 1 > have or have - (sub.next_seq - 1) >= min(MAX_CATCH_UP + 1, room):
                await self._snapshot(sub)
                return
            orders = replay_orders(events)
            for ev, order in zip(events, orders):
                if ev.seq == sub.next_seq:
                    self._send_event(sub, ev, order)
            await self._drain(sub)
        except (RedisError, OSError):
            sub.conn.dropped = True

    async def _drain(self, sub: Sub) -> None:
        """Deliver what arrived live while a snapshot/catch-up was in flight, then go live."""
        buffered = sorted(sub.buffer or [], key=lambda e: e.seq)
        sub.buffer = None
        for ev in buffered:
            if ev.seq < sub.next_seq:
                continue
            if ev.seq > sub.next_seq or (ev.kind == "quote" and ev.order is None):
                sub.buffer = []
                await self._catch_up(sub)
                return
            self._send_event(sub, ev, ev.order or ())

    def _send_event(self, sub: Sub, ev: Event, order: tuple[str, ...]) -> None:
        if ev.kind == "quote" and ev.offer is not None:
            mine, other = quote_messages(ev, sub.topic, order)
            sub.conn.send_msg(mine if ev.offer.bank_id == sub.conn.principal.id else other)
        else:
            sub.conn.send_msg({"type": "round_closed", "topic": sub.topic, "seq": ev.seq,
                               "closed_at": iso(ms_to_dt(ev.at_ms))})
        sub.next_seq = ev.seq + 1

    async def _round_opened(self, rid: str) -> None:
        subs = self.topics.get("pool")
        if not subs:
            return
        row = await self.streaming.opened(rid)
        if row is None:
            return
        enc = Encoded({"type": "round_opened", "topic": "pool", "round": views.round_out(row, False)})
        for sub in list(subs):
            sub.conn.send(enc.frame(sub.conn.binary))

    async def _round_finalized(self, rid: str) -> None:
        results = await self.streaming.finalized(rid)
        if results is None:
            return
        topic = f"application:{results.round.application_id}"
        subs = self.topics.get(topic)
        if not subs:
            return
        enc = Encoded({"type": "round_closed", "topic": topic,
                       "results": views.exporter_results(results)})
        for sub in list(subs):
            sub.conn.send(enc.frame(sub.conn.binary))

    # -- subscriptions ----------------------------------------------------------------
    async def subscribe(self, conn: Connection, topic: str, since_seq: int | None) -> None:
        if topic in conn.subs:
            self.unsubscribe(conn, topic)
        p = conn.principal
        kind, _, ident = topic.partition(":")
        sub = Sub(conn, topic)
        if kind == "pool" and not ident:
            if not self.streaming.may_watch_pool(p):
                return conn.error(topic, "not_found", "no such topic")
            self._add(sub)
            return None
        if kind == "application" and ident:
            if not await self.streaming.may_watch_application(p, ident):
                return conn.error(topic, "not_found", "no such application")
            self._add(sub)
            return None
        if kind == "round" and ident and p.kind in ("bank", "admin"):
            sub.round_id = ident
            sub.buffer = []  # buffer live events from now on, until synced
            self._add(sub)
            watch = await self.streaming.may_watch_round(p, ident)
            if watch is Watch.NO:
                self.unsubscribe(conn, topic)
                return conn.error(topic, "not_found", "no such round")
            if watch is Watch.AFTER_FIRST_OFFER:
                sub.pending = True
                sub.buffer = None
                conn.error(topic, "offer_required",
                           "send an offer in this round first; the snapshot follows your first offer")
                # the first offer may have landed between the check and now
                if await self.book.has_bid(ident, p.id) and sub.pending:
                    sub.pending = False
                    self._resync(sub, snapshot=True)
                return None
            if since_seq is None:
                await self._snapshot(sub)
            else:
                sub.next_seq = max(0, since_seq) + 1
                await self._catch_up(sub)
            return None
        return conn.error(topic, "not_found", "no such topic")

    def _add(self, sub: Sub) -> None:
        sub.conn.subs[sub.topic] = sub
        self.topics.setdefault(sub.topic, set()).add(sub)

    def unsubscribe(self, conn: Connection, topic: str) -> None:
        sub = conn.subs.pop(topic, None)
        if sub is not None:
            subs = self.topics.get(topic)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self.topics[topic]

    def remove(self, conn: Connection) -> None:
        for topic in list(conn.subs):
            self.unsubscribe(conn, topic)
        self.connections.discard(conn)

    # -- one connection -----------------------------------------------------------------
    async def serve(self, ws: WebSocket, principal: Principal, subprotocol: str) -> None:
        conn = Connection(ws, principal, subprotocol == "ige.v1.msgpack",
                          asyncio.Queue(self.settings.queue_size))
        self.connections.add(conn)
        writer = asyncio.create_task(self._writer(conn))
        try:
            while not conn.dropped:
                msg = await self._receive(ws, conn.binary)
                if msg is None:
                    break
                await self._command(conn, msg)
        except WebSocketDisconnect:
            pass
        finally:
            slow = conn.dropped  # dropped by the hub, not a hang-up: the client must resync
            self.remove(conn)
            conn.dropped = True
            conn.queue.put_nowait(None) if not conn.queue.full() else None
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
            if ws.application_state is WebSocketState.CONNECTED:
                try:
                    if slow:
                        await ws.close(code=SLOW_CLIENT_CLOSE,
                                       reason="slow consumer: resync with since_seq")
                    else:
                        await ws.close()
                except Exception:
                    pass

    @staticmethod
    async def _receive(ws: WebSocket, binary: bool) -> dict[str, Any] | None:
        m = await ws.receive()
        if m["type"] == "websocket.disconnect":
            return None
        try:
            if m.get("bytes") is not None:
                obj = msgpack.unpackb(m["bytes"], raw=False)
            else:
                obj = json.loads(m.get("text") or "")
        except Exception:
            return {"op": "__bad__"}
        return obj if isinstance(obj, dict) else {"op": "__bad__"}

    async def _command(self, conn: Connection, msg: dict[str, Any]) -> None:
        op = msg.get("op")
        topic = msg.get("topic")
        if op == "ping":
            conn.send_msg({"type": "pong", "topic": None, "server_time": iso(ms_to_dt(_now()))})
        elif op == "subscribe" and isinstance(topic, str):
            since = msg.get("since_seq")
            if since is not None and (isinstance(since, bool) or not isinstance(since, int)):
                conn.error(topic, "validation_failed", "since_seq must be an integer")
                return
            await self.subscribe(conn, topic, since)
        elif op == "unsubscribe" and isinstance(topic, str):
            self.unsubscribe(conn, topic)
        else:
            conn.error(topic if isinstance(topic, str) else None, "bad_command",
                       "expected {op: subscribe|unsubscribe|ping, topic, since_seq?}")

    async def _writer(self, conn: Connection) -> None:
        ws = conn.ws
        try:
            while True:
                if conn.dropped:
                    await ws.close(code=SLOW_CLIENT_CLOSE, reason="slow consumer: resync with since_seq")
                    return
                frame = await conn.queue.get()
                if frame is None:
                    return
                if conn.dropped:
                    continue
                if isinstance(frame, bytes):
                    await ws.send_bytes(frame)
                else:
                    await ws.send_text(frame)
        except Exception:
            conn.dropped = True


def _now() -> int:
    return now_ms()


def new_ticket() -> str:
    return secrets.token_urlsafe(24)
