"""The ``stream`` role: one Redis pub/sub subscriber per process fans events out to WebSocket
connections, listening only to the rounds its clients follow (``RedisBus.watch``: a round's
channel while one of its subscriptions needs it) and to the pool. Each book change is masked and
encoded once (one variant for the offer's owner, one for everybody else); every connection
(gateway/connection.py) has a small bounded queue and is dropped, never waited for, when it
falls behind; one that sends commands faster than ``IGE_WS_COMMAND_RATE`` is closed (4029).

The hub only does the I/O. Per round subscription, the order of ``seq`` (gap-free,
duplicate-free, snapshots and catch-ups, the bank waiting for its first offer) is decided by
``auction.feed.Subscription``: the hub feeds it live events and the answers to the reads it asks
for, and carries out the actions it returns.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from auction.bus import Announcement, BookChanged, RoundFinalized, RoundOpened
from auction.feed import (
    MAX_CATCH_UP,
    Action,
    Deliver,
    Fetch,
    FetchSnapshot,
    Phase,
    Send,
    SendError,
    Subscription,
    Unsubscribe,
    catch_up_limit,
    event_messages,
)
from auction.model import iso, ms_to_dt
from gateway import metrics, views
from gateway.bootstrap import INFRASTRUCTURE_ERRORS, service_of
from gateway.connection import (
    CLOSE_TIMEOUT_S,
    FLOOD_CLOSE,
    SLOW_CLIENT_CLOSE,
    SUBPROTOCOLS,
    CommandBudget,
    Connection,
    Encoded,
    Quote,
    Sub,
    encode,
)
from gateway.contract.limits import PATH_ID_REGEX
from gateway.contract.responses import SEQ_MAX
from gateway.logs import get_logger
from gateway.readbudget import ReadBudget
from gateway.serving import WRITE_NOW
from gateway.snapshots import Snapshots
from gateway.tasks import stop_all
from usecases.security import Principal

if TYPE_CHECKING:
    from gateway.bootstrap import Runtime

__all__ = ["MAX_CATCH_UP", "SLOW_CLIENT_CLOSE", "SUBPROTOCOLS", "Encoded", "Hub", "encode",
           "new_ticket"]

log = get_logger("ige.stream")

HEARTBEAT_SLICES = 10  # a period's heartbeats go out in this many slices
#: a subscriber's read (snapshot, history) that failed is tried again after each pause (a
#: Redis failover or a slot migration lasts seconds); then the client is closed to resync
SYNC_RETRY_PAUSES_S = (0.2, 0.5, 1.0, 2.0, 4.0)
_ID = re.compile(PATH_ID_REGEX)  # what an id of a topic can be
#: a round's channel could not be listened to (the client is told "unavailable")
WATCH_ERRORS: tuple[type[Exception], ...] = (TimeoutError, *INFRASTRUCTURE_ERRORS)

Shared = tuple[Encoded, Encoded]  # a live event's frames: for the offer's owner, for others


class Hub:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.book = runtime.deps.book
        self.streaming = runtime.portal.streaming
        self.settings = runtime.settings
        self.clock = runtime.deps.clock
        self.topics: dict[str, set[Sub]] = {}
        # rounds an exporter's application topic follows here (round_id -> subscriptions): a
        # finished round's results are read only for them
        self._results_wanted: dict[str, int] = {}
        self.connections: set[Connection] = set()
        self._per_principal: dict[str, int] = {}  # open WebSockets per principal, here
        self.budget = ReadBudget(self.settings.ws_snapshot_rate, self.settings.ws_snapshot_burst)
        self.snapshots = Snapshots(self.book, self.settings.ws_snapshot_cache_bytes)
        self._tasks: list[asyncio.Task[None]] = []
        self._reconnects = 0  # the bus's count of lost links, as far as reported

    # -- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._listen(), name="hub-listen"),
                       asyncio.create_task(self._heartbeat(), name="hub-heartbeat")]

    async def stop(self) -> None:
        await stop_all(self._tasks)

    async def _listen(self) -> None:
        async for news in self.rt.bus.listen(self._reconnected):
            try:
                await self._dispatch(news)
            except Exception:  # a bad message must not stop the fan-out
                log.exception("dispatch_failed")

    def _reconnected(self) -> None:
        """After a (re)connect every live subscription may have missed events."""
        lost = self.rt.bus.reconnects - self._reconnects
        if lost > 0:
            metrics.PUBSUB_RECONNECTS.inc(lost)
            self._reconnects += lost
        for subs in list(self.topics.values()):
            for sub in list(subs):
                if sub.feed is not None:
                    self._follow(sub, sub.feed.on_reconnect())

    async def _heartbeat(self) -> None:
        """Every connection gets a heartbeat once per period, in slices spread over the period:
        one burst to thousands of connections would delay every quote queued behind it."""
        tick = 0
        while True:
            await asyncio.sleep(self.settings.heartbeat_s / HEARTBEAT_SLICES)
            hb = Encoded({"type": "heartbeat", "topic": None,
                          "server_time": iso(ms_to_dt(self.clock()))})
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
        subs = self.topics.get(f"round:{rid}")
        if not subs:
            return
        mine, other = event_messages(ev, f"round:{rid}")  # built and encoded once per change
        shared = (Encoded(mine), Encoded(other))
        for sub in list(subs):
            if sub.feed is not None:
                self._follow(sub, sub.feed.on_live(ev), shared)

    def _apply(self, sub: Sub, actions: list[Action], shared: Shared | None = None
               ) -> Fetch | None:
        """Carry out the feed's actions for one subscription; return the read it asks for."""
        conn = sub.conn
        for a in actions:
            if isinstance(a, Deliver):
                assert shared is not None  # only on_live delivers, only the event it was given
                frame = shared[0 if a.owner else 1].frame(conn.binary)
                offer = a.event.offer
                conn.send(frame if offer is None else Quote(frame, offer.accepted_at_ms))
            elif isinstance(a, Send):
                conn.send_msg(a.msg)
            elif isinstance(a, SendError):
                conn.error(sub.topic, a.code, a.detail)
            elif isinstance(a, Unsubscribe):
                self.unsubscribe(conn, sub.topic)
            else:
                return a  # a fetch is always the last action
        return None

    def _follow(self, sub: Sub, actions: list[Action], shared: Shared | None = None) -> None:
        """Carry out the actions; a read they ask for runs in its own task."""
        fetch = self._apply(sub, actions, shared)
        if fetch is not None:
            self._spawn(self._sync(sub, fetch))

    def _spawn(self, coro: Awaitable[None]) -> None:
        t = asyncio.ensure_future(coro)
        self._tasks.append(t)
        t.add_done_callback(lambda x: self._tasks.remove(x) if x in self._tasks else None)

    async def _sync(self, sub: Sub, fetch: Fetch | None) -> None:
        """Answer the feed's reads (snapshot, history) until it needs no more. A read that
        fails (Redis failing over, a slot migrating) is tried again after each of
        ``SYNC_RETRY_PAUSES_S``; past them the client is closed to resync by itself."""
        assert sub.feed is not None
        conn = sub.conn
        key = f"{conn.principal.kind}:{conn.principal.id}"
        pauses = iter(SYNC_RETRY_PAUSES_S)
        try:
            while fetch is not None:
                try:
                    fetch = await self._sync_step(sub, fetch, key)
                except INFRASTRUCTURE_ERRORS as e:
                    # a failover or a reshard under way: the same read again, a little later
                    metrics.BACKEND_ERRORS.labels(service_of(e)).inc()
                    pause = next(pauses, None)
                    if pause is None:
                        raise
                    await asyncio.sleep(pause)
                    if conn.dropped:
                        return
        except INFRASTRUCTURE_ERRORS:
            # the client cannot be brought up to date here: closed, it resyncs with since_seq
            # (a flag alone left it open and silent for good: its reader waits on the client)
            conn.abandon()

    async def _sync_step(self, sub: Sub, fetch: Fetch, key: str) -> Fetch | None:
        """One of ``_sync``'s reads and what it sends; the next read asked for."""
        assert sub.feed is not None
        conn = sub.conn
        # one read of a principal at a time, each once its budget allows: its waiting
        # reads do not all wake at once and stall the loop together
        async with self.budget.turn(key):
            delayed = False
            while (wait := self.budget.wait_s(key)) > 0:
                if not delayed:
                    metrics.SNAPSHOTS_DELAYED.inc()
                    delayed = True
                await asyncio.sleep(wait)
                if conn.dropped:
                    return None
            offered = conn.offered_bytes
            if isinstance(fetch, FetchSnapshot):
                actions = await self._snapshot(sub, sub.feed)
            else:
                q = sub.conn.queue
                room = q.maxsize - q.qsize() if q.maxsize > 0 else None
                history = await self.book.history(sub.round_id, fetch.after_seq,
                                                  catch_up_limit(room) + 1)
                feed = sub.feed
                if not feed.finalized and (feed.held is not None or any(
                        e.kind == "round_closed" for e in history.events)) \
                        and await self.streaming.results_ready(sub.round_id):
                    self._apply(sub, feed.on_finalized())  # RoundFinalized missed
                actions = feed.on_history(history, room)
            after = self._apply(sub, actions)
            self.budget.charge(key, conn.offered_bytes - offered)
            return after

    async def _snapshot(self, sub: Sub, feed: Subscription) -> list[Action]:
        """Send the subscriber the round's snapshot (gateway/snapshots.py: its offers built
        once per content of the book and viewer); what the feed does next."""
        conn = sub.conn
        got = await self.snapshots.frame(sub.round_id, conn.principal.id, sub.topic,
                                         conn.binary, iso(ms_to_dt(self.clock())))
        if got is None:
            return feed.on_snapshot(None, self.clock())
        frame, seq, hit = got
        metrics.SNAPSHOTS.labels("hit" if hit else "miss").inc()
        conn.send(frame)
        return feed.snapshot_sent(seq)

    async def _round_opened(self, rid: str) -> None:
        subs = self.topics.get("pool")
        if not subs:
            return
        row = await self.streaming.opened(rid)
        if row is None:
            return
        frames: dict[str, Encoded] = {}  # one per principal: each sees only its own preference
        for sub in list(subs):
            p = sub.conn.principal
            enc = frames.get(f"{p.kind}:{p.id}")
            if enc is None:
                enc = frames[f"{p.kind}:{p.id}"] = Encoded({
                    "type": "round_opened", "topic": "pool",
                    "round": views.round_out(await self.streaming.for_bank(row, p), False)})
            sub.conn.send(enc.frame(sub.conn.binary))

    async def _round_finalized(self, rid: str) -> None:
        for sub in list(self.topics.get(f"round:{rid}", ())):  # a held round_closed goes out
            if sub.feed is not None:
                self._follow(sub, sub.feed.on_finalized())
        if not self._results_wanted.get(rid):
            return  # nobody here follows the round's application: no read
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
        cap = self.settings.topics_per_connection
        if cap and len(conn.subs) >= cap:
            return conn.error(topic[:100], "too_many_topics",
                              f"a connection follows at most {cap} topics; unsubscribe first")
        p = conn.principal
        kind, _, ident = topic.partition(":")
        if ident and not _ID.fullmatch(ident):  # names nothing; never sent to a database
            return conn.error(topic, "not_found", "no such topic")
        sub = Sub(conn, topic)
        if kind == "pool" and not ident:
            if not self.streaming.may_watch_pool(p):
                return conn.error(topic, "not_found", "no such topic")
            self._add(sub)
            return None
        if kind == "application" and ident:
            rid = await self.streaming.application_round(p, ident)
            if rid is None:
                return conn.error(topic, "not_found", "no such application")
            sub.round_id = rid
            if await self._watch(sub):
                self._add(sub)
            return None
        if kind == "round" and ident:
            seen = await self.streaming.round_seen_by(p, ident)
            if seen is None:
                return conn.error(topic, "not_found", "no such round")
            sub.round_id = ident
            # listen to the round before reading it: nothing published after the read is missed
            if not await self._watch(sub):
                return None
            sub.feed = feed = Subscription(topic, p.id)  # buffers live events until synced
            self._add(sub)
            if seen.must_bid_first:
                self._apply(sub, feed.require_offer(seen.state))
                # the first offer may have landed between the check and now
                if feed.phase is Phase.PENDING and await self.book.has_bid(ident, p.id):
                    self._follow(sub, feed.on_offer_seen())
                return None
            await self._sync(sub, self._apply(sub, feed.start(since_seq)))
            return None
        return conn.error(topic, "not_found", "no such topic")

    async def _watch(self, sub: Sub) -> bool:
        """Listen to the round's channel for this subscription; False (the client is told)
        when that cannot be done now."""
        try:
            await self.rt.bus.watch(sub.round_id)
        except WATCH_ERRORS:
            sub.conn.error(sub.topic, "unavailable", "cannot follow this topic now; "
                                                     "subscribe again")
            return False
        sub.watching = True
        if sub.conn.dropped:  # the connection went away meanwhile
            self._unwatch(sub)
            return False
        return True

    def _unwatch(self, sub: Sub) -> None:
        if sub.watching:
            sub.watching = False
            self._spawn(self.rt.bus.unwatch(sub.round_id))

    def _add(self, sub: Sub) -> None:
        old = sub.conn.subs.get(sub.topic)
        if old is not None:  # subscribed again while this one was being set up
            self.unsubscribe(sub.conn, sub.topic)
        sub.conn.subs[sub.topic] = sub
        self.topics.setdefault(sub.topic, set()).add(sub)
        if sub.topic.startswith("application:") and sub.round_id:
            self._results_wanted[sub.round_id] = self._results_wanted.get(sub.round_id, 0) + 1

    def unsubscribe(self, conn: Connection, topic: str) -> None:
        sub = conn.subs.pop(topic, None)
        if sub is not None:
            self._unwatch(sub)
            subs = self.topics.get(topic)
            if subs is not None and sub in subs:
                subs.discard(sub)
                if not subs:
                    del self.topics[topic]
                if topic.startswith("application:") and sub.round_id:
                    n = self._results_wanted.pop(sub.round_id, 0) - 1
                    if n > 0:
                        self._results_wanted[sub.round_id] = n

    def remove(self, conn: Connection) -> None:
        for topic in list(conn.subs):
            self.unsubscribe(conn, topic)
        self.connections.discard(conn)

    # -- one connection -----------------------------------------------------------------
    def admit(self, principal: Principal) -> bool:
        """Whether this principal may open one more WebSocket here
        (``IGE_WS_PER_PRINCIPAL``, 0: no limit); counted until ``serve`` ends."""
        key = f"{principal.kind}:{principal.id}"
        n = self._per_principal.get(key, 0)
        cap = self.settings.ws_per_principal
        if cap and n >= cap:
            metrics.REFUSED_CONNECTIONS.labels("per_principal").inc()
            log.info("stream_refused", reason="per_principal", principal=principal.kind,
                     principal_id=principal.id, limit=cap)
            return False
        self._per_principal[key] = n + 1
        return True

    def release(self, principal: Principal) -> None:
        key = f"{principal.kind}:{principal.id}"
        n = self._per_principal.pop(key, 0) - 1
        if n > 0:
            self._per_principal[key] = n

    async def serve(self, ws: WebSocket, principal: Principal, subprotocol: str) -> None:
        """One admitted connection (``admit`` said yes) until it ends."""
        opened = time.monotonic()
        burst, per_s = self.settings.ws_command_rate
        conn = Connection(ws, principal, subprotocol == "ige.v1.msgpack",
                          asyncio.Queue(self.settings.queue_size),
                          max_bytes=self.settings.ws_queue_bytes,
                          send_timeout_s=self.settings.ws_send_timeout_s,
                          budget=CommandBudget(burst, per_s, opened) if burst else None,
                          write_now=(ws.scope.get("extensions") or {}).get(WRITE_NOW))
        conn.reader = asyncio.current_task()
        self.connections.add(conn)
        metrics.WEBSOCKETS_OPEN.inc()
        writer = asyncio.create_task(conn.write())
        try:
            while not conn.dropped:
                msg = await conn.receive()
                if msg is None:
                    break
                if conn.budget is not None and not conn.budget.take(time.monotonic()):
                    conn.flooded = True  # closed below with FLOOD_CLOSE; nothing more is read
                    metrics.REFUSED_CONNECTIONS.labels("commands").inc()
                    break
                await self._command(conn, msg)
        except WebSocketDisconnect:
            pass
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not conn.dropped or task is None:
                raise
            task.uncancel()  # dropped for falling behind (Connection.drop): end it here
        finally:
            self.release(principal)
            metrics.WEBSOCKETS_OPEN.dec()
            slow = conn.dropped  # dropped by the hub, not a hang-up: the client must resync
            self.remove(conn)
            conn.dropped = True
            conn.queue.put_nowait(None) if not conn.queue.full() else None
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
            code = conn.close_code  # the client's (or uvicorn's, for a frame it refused)
            if ws.application_state is WebSocketState.CONNECTED:
                if code is None:  # the server ends it
                    code = FLOOD_CLOSE if conn.flooded else SLOW_CLIENT_CLOSE if slow else 1000
                try:
                    if conn.flooded:
                        await asyncio.wait_for(ws.close(
                            code=FLOOD_CLOSE, reason="too many commands: slow down"),
                            CLOSE_TIMEOUT_S)
                    elif slow:
                        await asyncio.wait_for(ws.close(
                            code=SLOW_CLIENT_CLOSE, reason="slow consumer: resync with since_seq"),
                            conn.send_timeout_s or None)
                    else:
                        await asyncio.wait_for(ws.close(), CLOSE_TIMEOUT_S)
                except Exception:  # noqa: BLE001 - the socket may be gone already
                    pass
            elif slow:
                code = SLOW_CLIENT_CLOSE  # the writer closed it
            log.info("stream_closed", principal=principal.kind, principal_id=principal.id,
                        duration_s=round(time.monotonic() - opened, 3), frames_sent=conn.sent,
                        slow=conn.slow, flooded=conn.flooded, close_code=code)

    async def _command(self, conn: Connection, msg: dict[str, Any]) -> None:
        op = msg.get("op")
        topic = msg.get("topic")
        if op == "ping":
            conn.send_msg({"type": "pong", "topic": None,
                           "server_time": iso(ms_to_dt(self.clock()))})
        elif op == "subscribe" and isinstance(topic, str):
            since = msg.get("since_seq")
            if since is not None and (isinstance(since, bool) or not isinstance(since, int)
                                      or not 0 <= since <= SEQ_MAX):
                conn.error(topic, "validation_failed",
                           f"since_seq must be an integer 0..{SEQ_MAX}")
                return
            await self.subscribe(conn, topic, since)
        elif op == "unsubscribe" and isinstance(topic, str):
            self.unsubscribe(conn, topic)
        else:
            conn.error(topic if isinstance(topic, str) else None, "bad_command",
                       "expected {op: subscribe|unsubscribe|ping, topic, since_seq?}")


def new_ticket() -> str:
    return secrets.token_urlsafe(24)
