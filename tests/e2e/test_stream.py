"""The live stream (WebSocket) of the public contract, against one real server process.

The module's server sends a heartbeat every second and keeps a queue of 8 frames per
connection, so slow-client handling and heartbeats are observable in seconds. Rounds last 20 s:
long enough for a flood of offers; the one round that must close in this module is opened (and
watched) when the module starts, so its close overlaps the other tests.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import msgpack
import pytest
import redis as redis_sync
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from auction.livebook import LiveBook
from tests.conformance import check_message
from tests.support import OFFER_BODY, Api, ServerProcess

JSON, MSGPACK = "ige.v1.json", "ige.v1.msgpack"
QUEUE = 8
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$")
BOOK_KEYS = {"round_id", "seq", "server_time", "closes_at", "state", "offers"}
BOOK_ENTRY_KEYS = {"label", "rank", "mine", "annual_rate", "apr", "amount", "tenor_months",
                   "grace_months", "repayment_every_months", "upfront_fee",
                   "assumes_export_commitment", "version", "seq", "updated_at"}


# ----------------------------------------------------------------------------- helpers
def decode(frame: str | bytes) -> dict[str, Any]:
    if isinstance(frame, bytes):
        return dict(check_message(msgpack.unpackb(frame, raw=False)))
    return dict(check_message(json.loads(frame)))


async def recv(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    return decode(await asyncio.wait_for(ws.recv(), timeout))


async def frame_until(ws: ClientConnection, pred: Callable[[dict[str, Any]], bool],
                      timeout: float = 5.0) -> str | bytes:
    """The first frame whose message meets ``pred``, as it came (text or binary)."""
    deadline = time.monotonic() + timeout
    while True:
        frame = await asyncio.wait_for(ws.recv(), max(deadline - time.monotonic(), 0.01))
        if pred(decode(frame)):
            return frame


async def recv_until(ws: ClientConnection, pred: Callable[[dict[str, Any]], bool],
                     timeout: float = 5.0) -> dict[str, Any]:
    return decode(await frame_until(ws, pred, timeout))


async def next_event(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    """The next message that is not a heartbeat."""
    return await recv_until(ws, lambda m: m["type"] != "heartbeat", timeout)


async def quiet(ws: ClientConnection, seconds: float) -> list[dict[str, Any]]:
    """Everything but heartbeats that arrives within ``seconds``."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            msg = await recv(ws, left)
        except TimeoutError:
            break
        if msg["type"] != "heartbeat":
            got.append(msg)
    return got


async def sync(ws: ClientConnection) -> None:
    """Commands run in order per connection: after the pong, earlier subscribes are in place."""
    await ws.send(json.dumps({"op": "ping"}))
    await recv_until(ws, lambda m: m["type"] == "pong")


async def subscribe(ws: ClientConnection, topic: str, **extra: Any) -> None:
    await ws.send(json.dumps({"op": "subscribe", "topic": topic, **extra}))


def without(msg: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in msg.items() if k not in keys}


@dataclass
class World:
    srv: ServerProcess
    api: Api
    banks: dict[str, dict[str, Any]]
    h: dict[str, dict[str, str]]

    def connect(self, headers: dict[str, str], proto: str = JSON, **kw: Any) -> Any:
        return websockets.connect(f"{self.srv.ws_url}?ticket={self.api.ticket(headers)}",
                                  subprotocols=[proto], **kw)

    def offer(self, bank: str, rid: str, **terms: Any) -> dict[str, Any]:
        r = self.api.offer(self.h[bank], rid, **terms)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def revise(self, bank: str, rid: str, oid: str, **terms: Any) -> dict[str, Any]:
        r = self.api.http.put(f"/v1/bank/rounds/{rid}/offers/{oid}",
                              json={**OFFER_BODY, **terms}, headers=self.h[bank])
        assert r.status_code == 200, r.text
        return dict(r.json())

    def book(self, bank: str, rid: str) -> dict[str, Any]:
        r = self.api.http.get(f"/v1/bank/rounds/{rid}/book", headers=self.h[bank])
        assert r.status_code == 200, r.text
        return dict(r.json())


@pytest.fixture(scope="module")
def world(module_server_factory: Any) -> Any:
    srv = module_server_factory(IGE_ROUND_DURATION="PT20S", IGE_BINDING_DURATION="PT30S",
                                IGE_HEARTBEAT_SECONDS="1", IGE_WS_QUEUE=str(QUEUE),
                                # the slow client below pauses reading through a long flood:
                                # the queue drops it (4008), not the stall abort
                                IGE_WS_SEND_TIMEOUT="600")
    api = Api(srv.base_url)
    banks = {c: api.create_bank(c, f"{c} Yayın Bankası") for c in ("STA", "STB", "STC")}
    yield World(srv, api, banks, {c: api.bank_token(b) for c, b in banks.items()})
    api.http.close()


@pytest.fixture(scope="module", autouse=True)
async def closing(world: World, new_exporter: Any) -> AsyncIterator[dict[str, Any]]:
    """A round with an exporter's application, opened when the module starts, watched from then
    on by the exporter (application topic) and by a bidding bank (round topic). The watchers
    buffer without limit, so that they keep answering the server's pings while unread."""
    exp = new_exporter(world.api)
    rnd = world.api.open_round(exporter_user_id=exp["user_id"])
    rid, app = rnd["round_id"], rnd["application_id"]
    offer = world.offer("STA", rid, annual_rate="37.50")
    async with world.connect(exp["headers"], max_queue=None) as ews, \
            world.connect(world.h["STA"], max_queue=None) as bws:
        await subscribe(ews, f"application:{app}")
        await sync(ews)
        await subscribe(bws, f"round:{rid}")
        snap = await next_event(bws)
        yield {"exporter": exp, "round": rnd, "rid": rid, "app": app, "offer": offer,
               "ews": ews, "bws": bws, "snapshot": snap}


# ----------------------------------------------------------------------------- connecting
async def test_a_ticket_is_single_use(world: World) -> None:
    ticket = world.api.ticket(world.h["STA"])
    url = f"{world.srv.ws_url}?ticket={ticket}"
    async with websockets.connect(url, subprotocols=[JSON]) as ws:
        assert ws.subprotocol == JSON
        await sync(ws)
        with pytest.raises(InvalidStatus) as refused:
            await websockets.connect(url, subprotocols=[JSON])
        assert refused.value.response.status_code == 403
        await sync(ws)  # the first connection is unaffected


async def test_a_ticket_expires(world: World, redis_url: str) -> None:
    r = world.api.http.post("/v1/stream/tickets", headers=world.h["STA"])
    assert r.status_code == 201 and r.json()["expires_in"] == 30
    ticket = r.json()["ticket"]
    # Thirty seconds are too long to wait: let the server's own Redis expiry run out now.
    # (The ticket's TTL, set by the server, is what this test checks.)
    rds = redis_sync.Redis.from_url(redis_url)
    key = f"ige:ticket:{ticket}"
    assert 0 < rds.ttl(key) <= 30
    rds.pexpire(key, 1)
    await asyncio.sleep(0.05)
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(f"{world.srv.ws_url}?ticket={ticket}", subprotocols=[JSON])
    assert refused.value.response.status_code == 403
    with pytest.raises(InvalidStatus):
        await websockets.connect(f"{world.srv.ws_url}?ticket=made-up", subprotocols=[JSON])
    assert world.api.http.post("/v1/stream/tickets").status_code == 401


async def test_an_unknown_or_missing_subprotocol_is_refused(world: World) -> None:
    for protocols in (["ige.v2.json"], ["json"], None):
        ticket = world.api.ticket(world.h["STA"])
        with pytest.raises(InvalidStatus) as refused:
            await websockets.connect(f"{world.srv.ws_url}?ticket={ticket}",
                                     subprotocols=protocols)
        assert refused.value.response.status_code == 403
    # the refusal did not spend a good ticket's chance to pick a known subprotocol later
    async with world.connect(world.h["STA"], MSGPACK) as ws:
        assert ws.subprotocol == MSGPACK


async def test_a_browser_origin_from_another_site_is_refused(world: World) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(
            f"{world.srv.ws_url}?ticket={world.api.ticket(world.h['STA'])}",
            subprotocols=[JSON], origin="https://evil.example")
    assert refused.value.response.status_code == 403
    same_site = f"http://127.0.0.1:{world.srv.port}"
    async with websockets.connect(
            f"{world.srv.ws_url}?ticket={world.api.ticket(world.h['STA'])}",
            subprotocols=[JSON], origin=same_site) as ws:
        await sync(ws)


async def test_heartbeats_arrive_and_ping_gets_pong(world: World) -> None:
    async with world.connect(world.h["STC"]) as ws:
        hb = await recv_until(ws, lambda m: m["type"] == "heartbeat", timeout=5)
        assert TS.match(hb["server_time"]) and hb["topic"] is None
        await ws.send(json.dumps({"op": "ping"}))
        pong = await recv_until(ws, lambda m: m["type"] == "pong")
        assert TS.match(pong["server_time"])
        await ws.send("not json")
        err = await next_event(ws)
        assert err["type"] == "error" and err["code"] == "bad_command"


# ----------------------------------------------------------------------------- round topics
async def test_subscribing_before_bidding_gives_offer_required_then_the_snapshot(
        world: World) -> None:
    rid = world.api.open_round()["round_id"]
    world.offer("STA", rid, annual_rate="40.00")
    async with world.connect(world.h["STB"]) as ws:
        await subscribe(ws, f"round:{rid}")
        err = await next_event(ws)
        assert (err["type"], err["topic"], err["code"]) == ("error", f"round:{rid}",
                                                            "offer_required")
        world.offer("STA", rid, annual_rate="39.00")  # others' quotes are not sent before
        assert await quiet(ws, 0.5) == []
        mine = world.offer("STB", rid, annual_rate="38.00")
        snap = await next_event(ws)
        assert snap["type"] == "snapshot" and snap["topic"] == f"round:{rid}"
        assert snap.keys() >= BOOK_KEYS and snap["seq"] == 3 and snap["state"] == "open"
        assert [(o["mine"], o["annual_rate"]) for o in snap["offers"]] == [
            (True, "38.00"), (False, "39.00"), (False, "40.00")]
        assert snap["offers"][0]["offer_id"] == mine["offer_id"]
        for o in snap["offers"]:
            assert o.keys() >= BOOK_ENTRY_KEYS
        world.offer("STC", rid, annual_rate="37.00")
        q = await next_event(ws)
        assert q["type"] == "quote" and q["seq"] == 4


async def test_the_snapshot_is_the_book(world: World) -> None:
    rid = world.api.open_round()["round_id"]
    world.offer("STA", rid, annual_rate="40.00")
    world.offer("STB", rid, annual_rate="41.00")
    async with world.connect(world.h["STB"]) as ws:
        await subscribe(ws, f"round:{rid}")
        snap = await next_event(ws)
    book = world.book("STB", rid)
    assert without(snap, "type", "topic", "server_time") == without(book, "server_time")
    assert TS.match(snap["server_time"])


async def test_quotes_carry_seq_rising_by_one_the_new_rank_and_the_book_size(
        world: World) -> None:
    rid = world.api.open_round()["round_id"]
    a = world.offer("STA", rid, annual_rate="40.00")
    async with world.connect(world.h["STA"]) as ws:
        await subscribe(ws, f"round:{rid}")
        snap = await next_event(ws)
        assert snap["seq"] == 1
        b = world.offer("STB", rid, annual_rate="39.00")
        world.offer("STC", rid, annual_rate="41.00")
        world.revise("STA", rid, a["offer_id"], annual_rate="38.00")
        world.revise("STB", rid, b["offer_id"], annual_rate="42.00")
        quotes = [await next_event(ws) for _ in range(4)]
    assert [q["type"] for q in quotes] == ["quote"] * 4
    assert [q["seq"] for q in quotes] == [2, 3, 4, 5]
    assert all(q["topic"] == f"round:{rid}" for q in quotes)
    for q in quotes:
        assert set(q) == {"type", "topic", "seq", "offer", "book_size"}
        assert q["offer"].keys() >= BOOK_ENTRY_KEYS
    assert [q["book_size"] for q in quotes] == [2, 3, 3, 3]
    assert [(q["offer"]["mine"], q["offer"]["annual_rate"], q["offer"]["version"],
             q["offer"]["rank"]) for q in quotes] == [
        (False, "39.00", 1, 1), (False, "41.00", 1, 3), (True, "38.00", 2, 1),
        (False, "42.00", 2, 3)]
    assert "offer_id" not in quotes[0]["offer"] and quotes[2]["offer"]["offer_id"] == a["offer_id"]
    # the book kept from the snapshot and the quotes is the book a fresh read shows
    live = LiveBook()
    live.load(snap)
    for q in quotes:
        live.apply(q)
    fresh = world.book("STA", rid)
    assert live.differences(fresh) == []
    assert [o["seq"] for o in fresh["offers"]] == [4, 3, 5]  # the ranking key's last part


async def test_a_quote_does_not_grow_with_the_book_and_the_book_kept_from_quotes_is_the_book(
        server_factory: Any) -> None:
    """200 offers from 40 banks: the last quote's frame is as large as the first's (it names
    the changed offer alone), and the book a client keeps from quotes (auction.livebook,
    every rank and book_size checked on the way) equals a fresh snapshot. A server of its
    own: its round must stay open however slowly this machine posts 200 offers."""
    srv = server_factory(IGE_ROUND_DURATION="PT10M", IGE_HEARTBEAT_SECONDS="1")
    api = Api(srv.base_url)
    sta = api.create_bank("STA", "STA Yayın Bankası")
    world = World(srv, api, {"STA": sta}, {"STA": api.bank_token(sta)})
    rid = world.api.open_round()["round_id"]
    world.offer("STA", rid, annual_rate="45.00")
    banks = [world.api.bank_token(world.api.create_bank()) for _ in range(40)]
    async with world.connect(world.h["STA"]) as ws:
        await subscribe(ws, f"round:{rid}")
        live = LiveBook()
        live.apply(await next_event(ws))

        def post_all() -> None:
            for i in range(5):
                for j, h in enumerate(banks):
                    rate = f"{30 + (j * 7 + i * 13) % 150 / 10:.2f}"
                    r = world.api.offer(h, rid, annual_rate=rate)
                    assert r.status_code == 201, r.text

        poster = asyncio.create_task(asyncio.to_thread(post_all))
        sizes: dict[int, int] = {}
        # heartbeats come every second: the loop needs a deadline of its own. A client this
        # module's small queue (QUEUE) leaves behind gets a snapshot instead of the quotes
        # it missed, and goes on from it
        deadline = time.monotonic() + 120
        while live.seq is None or live.seq < 201:
            assert time.monotonic() < deadline, f"the stream stopped at seq {live.seq}"
            if poster.done():
                poster.result()  # a post that failed fails the test here
            raw = await asyncio.wait_for(ws.recv(), 20)
            msg = decode(raw)
            live.apply(msg)
            if msg["type"] == "quote":
                sizes[msg["book_size"]] = len(raw)
        await poster
        async with world.connect(world.h["STA"]) as fresh:
            await subscribe(fresh, f"round:{rid}")
            snap = await next_event(fresh)
    assert len(live) == 201 and live.differences(snap) == []
    small, big = min(sizes), max(sizes)
    assert small <= 20 and big >= 180, sizes  # quotes from a small book and a big one
    assert abs(sizes[big] - sizes[small]) < 40, sizes  # the same fields; only digits differ


async def test_json_and_msgpack_carry_the_same_objects(world: World) -> None:
    rid = world.api.open_round()["round_id"]
    world.offer("STA", rid, annual_rate="40.00")
    async with world.connect(world.h["STA"], JSON) as js, \
            world.connect(world.h["STA"], MSGPACK) as mp:
        await subscribe(js, f"round:{rid}")
        await mp.send(msgpack.packb({"op": "subscribe", "topic": f"round:{rid}"}))
        # a heartbeat may come at any moment, even between a subscribe and its snapshot
        raw_js, raw_mp = [await frame_until(ws, lambda m: m["type"] != "heartbeat")
                          for ws in (js, mp)]
        assert isinstance(raw_js, str) and isinstance(raw_mp, bytes)
        snap_js, snap_mp = decode(raw_js), decode(raw_mp)
        assert snap_js["type"] == snap_mp["type"] == "snapshot"
        assert without(snap_js, "server_time") == without(snap_mp, "server_time")
        world.offer("STB", rid, annual_rate="39.00")
        world.offer("STA", rid, annual_rate="38.00", conditions="çok özel şartlar")
        got_js = [await next_event(js) for _ in range(2)]
        got_mp = [await next_event(mp) for _ in range(2)]
        assert got_js == got_mp
        assert [q["seq"] for q in got_js] == [2, 3]
        assert got_js[1]["offer"]["conditions"] == "çok özel şartlar"
        hb = await recv_until(mp, lambda m: m["type"] == "heartbeat")
        assert TS.match(hb["server_time"])


async def test_reconnecting_with_since_seq_gets_exactly_the_missed_events(world: World) -> None:
    rid = world.api.open_round()["round_id"]
    b = world.offer("STB", rid, annual_rate="40.00")
    world.offer("STA", rid, annual_rate="41.00")
    async with world.connect(world.h["STB"]) as steady:
        await subscribe(steady, f"round:{rid}")
        assert (await next_event(steady))["seq"] == 2
        async with world.connect(world.h["STB"]) as ws:
            await subscribe(ws, f"round:{rid}")
            assert (await next_event(ws))["seq"] == 2
            world.offer("STC", rid, annual_rate="39.00")
            last = await next_event(ws)
            assert (last["type"], last["seq"]) == ("quote", 3)
        # disconnected: five events are missed (fewer than the connection's queue holds)
        world.offer("STA", rid, annual_rate="38.00")
        world.revise("STB", rid, b["offer_id"], annual_rate="37.00")
        world.offer("STC", rid, annual_rate="36.50")
        world.offer("STB", rid, annual_rate="45.00")
        world.revise("STB", rid, b["offer_id"], annual_rate="36.00")
        live = [await next_event(steady) for _ in range(6)]
        assert [m["seq"] for m in live] == [3, 4, 5, 6, 7, 8]
        async with world.connect(world.h["STB"]) as ws:
            await subscribe(ws, f"round:{rid}", since_seq=last["seq"])
            missed = [await next_event(ws) for _ in range(5)]
            assert [m["type"] for m in missed] == ["quote"] * 5
            assert [m["seq"] for m in missed] == [4, 5, 6, 7, 8]
            # the catch-up is what a connected client saw live, ranks included
            assert missed == live[1:]
            assert await quiet(ws, 0.7) == []  # no duplicates, nothing more
            world.offer("STA", rid, annual_rate="35.00")
            nxt = await next_event(ws)
            assert (nxt["type"], nxt["seq"]) == ("quote", 9)
            assert nxt == await next_event(steady)


async def test_since_seq_in_the_future_or_too_far_behind_gets_a_snapshot(world: World) -> None:
    rid = world.api.open_round()["round_id"]
    a = world.offer("STA", rid)
    # 1001 revisions: far more than the server replays
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: world.revise("STA", rid, a["offer_id"],
                                             annual_rate=f"{30 + i % 90 / 10:.2f}"), range(1001)))
    seq = world.book("STA", rid)["seq"]
    assert seq == 1002
    async with world.connect(world.h["STA"]) as ws:
        for since in (seq + 50, 0, 1):
            await subscribe(ws, f"round:{rid}", since_seq=since)
            snap = await next_event(ws)
            assert (snap["type"], snap["seq"]) == ("snapshot", seq), since
        await subscribe(ws, f"round:{rid}", since_seq=seq)  # up to date: nothing to send
        assert await quiet(ws, 0.5) == []
        world.revise("STA", rid, a["offer_id"], annual_rate="29.00")
        q = await next_event(ws)
        assert (q["type"], q["seq"]) == ("quote", seq + 1)


async def test_a_client_further_behind_than_its_queue_gets_a_snapshot_and_stays(
        world: World) -> None:
    rid = world.api.open_round()["round_id"]
    a = world.offer("STA", rid)
    for i in range(3 * QUEUE):
        world.revise("STA", rid, a["offer_id"], annual_rate=f"{35 + i / 10:.2f}")
    seq = world.book("STA", rid)["seq"]
    async with world.connect(world.h["STA"]) as ws:
        await subscribe(ws, f"round:{rid}", since_seq=1)
        first = await next_event(ws)
        assert first["type"] == "snapshot" and first["seq"] == seq
        world.revise("STA", rid, a["offer_id"], annual_rate="30.00")
        q = await next_event(ws)
        assert (q["type"], q["seq"]) == ("quote", seq + 1)


async def test_a_client_that_never_reads_is_dropped_while_others_get_every_quote(
        world: World) -> None:
    rid = world.api.open_round()["round_id"]
    world.offer("STA", rid)
    flooded = world.offer("STB", rid)
    # The slow client reads nothing after its snapshot: a small receive buffer, no compression
    # (so the bytes on the wire are the frames), and its transport stops reading altogether.
    # It is the flooding bank itself, so its quotes carry the offer's conditions (~4 KB each).
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", world.srv.port))
    slow = await websockets.connect(
        f"{world.srv.ws_url}?ticket={world.api.ticket(world.h['STB'])}", subprotocols=[JSON],
        sock=sock, compression=None, max_queue=1)
    fast = await world.connect(world.h["STA"])
    reader: asyncio.Task[None] | None = None
    try:
        await subscribe(slow, f"round:{rid}")
        await subscribe(fast, f"round:{rid}")
        assert (await next_event(slow))["type"] == "snapshot"
        assert (await next_event(fast))["seq"] == 2
        slow.transport.pause_reading()
        frames: list[str | bytes] = []

        async def read_fast() -> None:
            async for frame in fast:
                frames.append(frame)

        reader = asyncio.create_task(read_fast())
        url = f"/v1/bank/rounds/{rid}/offers/{flooded['offer_id']}"
        body = {**OFFER_BODY, "conditions": "ş" * 2000}

        def flood(n: int) -> None:
            for i in range(n):
                rate = f"{30 + i % 97 / 10:.2f}"
                r = world.api.http.put(url, json={**body, "annual_rate": rate},
                                       headers=world.h["STB"])
                assert r.status_code == 200, r.text

        posted, dropped = 0, None
        # A quote's size does not grow with the book: the owner's ~4 KB quotes fill the
        # kernel's buffers (a send buffer grows to 4 MB here) after about a thousand, then the
        # connection's queue of 8. Each batch must do it alone: the drain below empties them.
        for batch in (1500, 1500, 1500):
            await asyncio.to_thread(flood, batch)
            posted += batch
            # a command wakes the server's reader for this connection: if the hub dropped it,
            # the close code must still say "resync" (4008), not "normal closure"
            await slow.send(json.dumps({"op": "ping"}))
            slow.transport.resume_reading()
            try:
                while True:  # drain what the socket holds: either a close or every quote
                    m = await next_event(slow, timeout=10)
                    if m["type"] == "quote" and m["seq"] == 2 + posted:
                        break
            except ConnectionClosed as closed:
                dropped = closed
                break
            slow.transport.pause_reading()
        assert dropped is not None, f"never dropped after {posted} offers"
        assert dropped.rcvd is not None and dropped.rcvd.code == 4008
        # the normal client got every quote, in order, and is still connected
        quotes: list[dict[str, Any]] = []
        parsed, deadline = 0, time.monotonic() + 15
        while time.monotonic() < deadline:
            n = len(frames)
            quotes += [m for m in map(decode, frames[parsed:n]) if m["type"] == "quote"]
            parsed = n
            if quotes and quotes[-1]["seq"] == 2 + posted:
                break
            await asyncio.sleep(0.1)
        assert [q["seq"] for q in quotes] == list(range(3, 3 + posted))
        assert {q["book_size"] for q in quotes} == {2}
        assert not reader.done(), reader
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await sync(fast)
    finally:
        if reader is not None:
            reader.cancel()
        slow.transport.resume_reading()
        await fast.close()
        await slow.close()


# ----------------------------------------------------------------------------- other topics
async def test_the_pool_topic_announces_new_rounds(world: World) -> None:
    async with world.connect(world.h["STC"]) as ws:
        await subscribe(ws, "pool")
        await sync(ws)
        rnd = world.api.open_round(loan_amount="7500000.00")
        msg = await next_event(ws)
        assert (msg["type"], msg["topic"]) == ("round_opened", "pool")
        assert msg["round"]["round_id"] == rnd["round_id"]
        assert msg["round"]["loan_amount"] == "7500000.00" and msg["round"]["state"] == "open"
        assert msg["round"]["has_my_offer"] is False


async def test_a_since_seq_outside_the_documented_range_is_refused_and_the_socket_stays(
        world: World) -> None:
    """Once a negative one was read as 0, and one past 64 bits reached Redis as a stream id
    it refuses: the connection was dropped."""
    rid = world.api.open_round()["round_id"]
    world.offer("STA", rid)
    async with world.connect(world.h["STA"]) as ws:
        for since in (-1, 2**63, 10**30, "5", True):
            await subscribe(ws, f"round:{rid}", since_seq=since)
            err = await next_event(ws)
            assert (err["type"], err["code"]) == ("error", "validation_failed"), since
        await subscribe(ws, f"round:{rid}", since_seq=2**63 - 1)  # ahead: a snapshot
        snap = await next_event(ws)
        assert (snap["type"], snap["seq"]) == ("snapshot", 1)


async def test_topics_of_another_kind_of_caller_do_not_exist(
        world: World, new_exporter: Any, closing: dict[str, Any]) -> None:
    other = new_exporter(world.api)
    async with world.connect(world.h["STA"]) as bank, \
            world.connect(closing["exporter"]["headers"]) as owner, \
            world.connect(other["headers"]) as stranger:
        for ws, topic in [(bank, f"application:{closing['app']}"),
                          (owner, f"round:{closing['rid']}"), (owner, "pool"),
                          (stranger, f"application:{closing['app']}"),
                          (bank, "round:rnd_doesnotexist"), (bank, "nonsense"),
                          # no id of ours: never sent to a database (PostgreSQL refuses NUL)
                          (bank, "round:rnd_\u0000"), (owner, "application:app Ô")]:
            await subscribe(ws, topic)
            err = await next_event(ws)
            assert (err["type"], err["topic"], err["code"]) == ("error", topic, "not_found")


async def test_round_closed_reaches_the_round_and_the_exporters_application(
        world: World, closing: dict[str, Any]) -> None:
    wait = 30.0
    closed = await recv_until(closing["bws"], lambda m: m["type"] == "round_closed", wait)
    assert closed["topic"] == f"round:{closing['rid']}"
    assert closed["seq"] == closing["snapshot"]["seq"] + 1 and TS.match(closed["closed_at"])
    msg = await recv_until(closing["ews"], lambda m: m["type"] == "round_closed", wait)
    assert msg["topic"] == f"application:{closing['app']}"
    results = msg["results"]
    assert results["reference_number"].startswith("IGE-") and TS.match(results["binding_until"])
    assert [(o["offer_id"], o["bank_code"], o["rank"], o["annual_rate"])
            for o in results["offers"]] == [(closing["offer"]["offer_id"], "STA", 1, "37.50")]
    http = world.api.http.get(f"/v1/exporter/applications/{closing['app']}/results",
                              headers=closing["exporter"]["headers"])
    assert http.status_code == 200 and http.json()["offers"] == results["offers"]


async def test_a_finished_round_a_bank_did_not_bid_in_is_not_found(
        world: World, closing: dict[str, Any]) -> None:
    topic = f"round:{closing['rid']}"
    deadline = time.monotonic() + 30
    while world.book("STA", closing["rid"])["state"] == "open":
        assert time.monotonic() < deadline, "the round did not close"
        await asyncio.sleep(0.2)
    async with world.connect(world.h["STC"]) as ws:
        await subscribe(ws, topic)
        err = await next_event(ws)
        assert (err["type"], err["topic"], err["code"]) == ("error", topic, "not_found")
    async with world.connect(world.h["STA"]) as ws:  # the bidder gets the closed book
        await subscribe(ws, topic)
        snap = await next_event(ws)
        assert (snap["type"], snap["state"]) == ("snapshot", "closed")
