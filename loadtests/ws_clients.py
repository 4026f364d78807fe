"""Many WebSocket stream clients in one process (asyncio + uvloop + ``websockets``), for the
benchmark's push-latency and mass-close parts.

    python -m loadtests.ws_clients SPEC.json

SPEC: {"base_url", "stream_urls"?, "conns": [{"token": "Bearer ...", "rounds": [round ids]},
...]}. Every connection takes a ticket (from ``base_url``, the api), connects (to the stream
servers of ``stream_urls`` in turn; default ``base_url``), subscribes to its rounds and waits for
their snapshots; then the process prints ``READY <connections>`` and records, until a ``stop``
line arrives on stdin (a ``report`` line prints what was recorded so far as one JSON line and
starts afresh: one measurement run): push latency of each quote of *another* bank (server
``updated_at`` = the offer's ``accepted_at`` → arrival here, same machine clock) in an
HdrHistogram, seq gaps, drops, and
the arrival time of each ``round_closed``. Every connection keeps each round's book from the
snapshot and the quotes (``auction.livebook``: each quote's rank and ``book_size`` checked);
on ``stop`` it subscribes to each round again and compares its book with the fresh snapshot.
Then it prints one JSON line and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import resource
import sys
import time
from typing import Any

from hdrh.histogram import HdrHistogram
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from auction.livebook import LiveBook, OutOfStep
from gateway.stalls import GcTimer, StallTracer, tune_gc
from loadtests.rawhttp import Conn, build, host_port
from loadtests.scenario import iso_ms


class Stats:
    def __init__(self) -> None:
        self.push = HdrHistogram(1, 60_000_000, 3)  # microseconds
        self.lag = HdrHistogram(1, 60_000_000, 3)  # this process's own event-loop lateness
        self.quotes = 0
        self.own = 0
        self.gaps = 0
        self.errors: dict[str, int] = {}
        self.dropped = 0
        self.closed: list[float] = []  # arrival times (epoch ms) of round_closed
        self.recording = False
        self.out_of_step = 0  # quotes whose rank or book_size the kept book disagreed with
        self.verified = 0  # books found equal to a fresh snapshot at the end
        self.differing = 0  # books found different from it
        self.gc_ms: list[float] = []  # this process's full collections (they hold every read)

    def gc_paused(self, generation: int, seconds: float) -> None:
        if generation == 2:
            self.gc_ms.append(seconds * 1000)


class Client:
    """One connection: the books it keeps, and the rounds whose fresh snapshot it awaits."""

    def __init__(self, rounds: list[str]) -> None:
        self.rounds = rounds
        self.books: dict[str, LiveBook] = {}
        self.verifying: set[str] = set()
        self.ws: ClientConnection | None = None
        self.done = asyncio.Event()


async def tickets(base_url: str, tokens: list[str], parallel: int = 8) -> list[str]:
    host, port = host_port(base_url)
    out: list[str] = [""] * len(tokens)
    nxt = 0

    async def worker() -> None:
        nonlocal nxt
        c = await Conn(host, port).open()
        while nxt < len(tokens):
            i = nxt
            nxt += 1
            status, body = await c.request(build("POST", "/v1/stream/tickets", f"{host}:{port}",
                                                 {"Authorization": tokens[i]}))
            if status != 201:
                raise RuntimeError(f"ticket: {status} {body[:200]!r}")
            out[i] = json.loads(body)["ticket"]
        c.close()

    await asyncio.gather(*(worker() for _ in range(parallel)))
    return out


async def client(url: str, c: Client, st: Stats, ready: asyncio.Event,
                 synced: list[int]) -> None:
    last: dict[str, int] = {}
    pending = set(c.rounds)
    async with connect(url, subprotocols=[Subprotocol("ige.v1.json")], compression=None,
                       max_queue=None, ping_interval=None, open_timeout=60) as ws:
        c.ws = ws
        for rid in c.rounds:
            await ws.send(json.dumps({"op": "subscribe", "topic": f"round:{rid}"}))
        await _read(ws, c, last, pending, st, ready, synced)


def _keep(c: Client, rid: str, msg: dict[str, Any], st: Stats) -> None:
    """Apply a message to the round's kept book; a disagreement is counted, then the book
    waits for the next snapshot."""
    book = c.books.get(rid)
    if book is None:
        return
    try:
        book.apply(msg)
    except OutOfStep:
        st.out_of_step += 1
        del c.books[rid]


async def _read(ws: ClientConnection, c: Client, last: dict[str, int], pending: set[str],
                st: Stats, ready: asyncio.Event, synced: list[int]) -> None:
    loads = json.loads
    try:
        async for raw in ws:
            now = time.time() * 1000.0
            msg = loads(raw)
            kind = msg["type"]
            if kind == "quote":
                rid = msg["topic"][6:]
                seq = msg["seq"]
                if last.get(rid, seq - 1) != seq - 1:
                    st.gaps += 1
                last[rid] = seq
                _keep(c, rid, msg, st)
                if st.recording:
                    if msg["offer"]["mine"]:
                        st.own += 1
                    else:
                        st.quotes += 1
                        updated = iso_ms(msg["offer"]["updated_at"])
                        st.push.record_value(max(1, int((now - updated) * 1000)))
            elif kind == "round_closed":
                st.closed.append(now)
                if msg["topic"].startswith("round:"):
                    _keep(c, msg["topic"][6:], msg, st)
            elif kind == "snapshot":
                rid = msg["topic"][6:]
                last[rid] = msg["seq"]
                if rid in c.verifying:  # the fresh snapshot asked for at the end
                    c.verifying.discard(rid)
                    kept = c.books.get(rid)
                    if kept is not None and not kept.differences(msg):
                        st.verified += 1
                    else:
                        st.differing += 1
                    if not c.verifying:
                        c.done.set()
                    continue
                book = c.books[rid] = LiveBook()
                book.load(msg)
                if rid in pending:
                    pending.discard(rid)
                    if not pending:
                        synced[0] += 1
                        if synced[0] == synced[1]:
                            ready.set()
            elif kind == "error":
                st.errors[msg.get("code", "?")] = st.errors.get(msg.get("code", "?"), 0) + 1
    except Exception:  # noqa: BLE001 - a drop is counted, not raised
        st.dropped += 1
    else:
        if ws.close_code not in (None, 1000, 1001):
            st.dropped += 1


async def main_async(spec: dict[str, Any]) -> dict[str, Any]:
    base = spec["base_url"]
    conns = spec["conns"]
    st = Stats()
    t0 = time.perf_counter()
    ts = await tickets(base, [c["token"] for c in conns])
    ws_bases = [u.replace("http", "ws", 1) + "/v1/stream?ticket="
                for u in spec.get("stream_urls") or [base]]
    ready = asyncio.Event()
    synced = [0, len(conns)]
    sem = asyncio.Semaphore(64)
    tasks: list[asyncio.Task[None]] = []
    clients = [Client(c["rounds"]) for c in conns]

    async def start(i: int, c: Client, ticket: str) -> None:
        async with sem:
            url = ws_bases[i % len(ws_bases)] + ticket
            tasks.append(asyncio.ensure_future(client(url, c, st, ready, synced)))
            await asyncio.sleep(0.002)

    await asyncio.gather(*(start(i, c, t) for i, (c, t) in enumerate(
        zip(clients, ts, strict=True))))
    # a client dropped before every one is synced (a refused connection: a cap of the server)
    # ends the set-up at once, loudly, rather than after the wait
    deadline = time.perf_counter() + 300
    while not ready.is_set():
        if st.dropped:
            raise RuntimeError(f"{st.dropped} WebSocket(s) dropped during the set-up "
                               f"(refused by the server? its caps: IGE_MAX_CONNS_PER_ADDRESS, "
                               f"IGE_WS_PER_PRINCIPAL); {synced[0]} of {synced[1]} synced")
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{synced[0]} of {synced[1]} WebSockets synced in 300 s")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ready.wait(), 0.5)
    setup_s = time.perf_counter() - t0
    # as the server does: the set-up's objects (a thousand connections, their books) out of
    # the collector's reach, so this process's own pauses do not pass for push latency
    gc.collect()
    tune_gc()
    GcTimer(None, st.gc_paused).install()
    st.recording = True
    print(f"READY {len(conns)}", flush=True)
    loop = asyncio.get_running_loop()

    async def lag() -> None:
        # how late this process itself runs: a message's arrival is stamped when the loop gets
        # to it, so the client's own lateness is part of every latency it reports
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.005)
            st.lag.record_value(max(1, int((time.perf_counter() - t - 0.005) * 1e6)))

    lag_task = asyncio.ensure_future(lag())
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line or line.strip() == "stop":
            break
        if line.strip() == "reset":
            st.push.reset()
            st.quotes = st.own = 0
            print("OK", flush=True)
        if line.strip() == "report":
            print(json.dumps(recorded(st)), flush=True)
            st.push.reset()
            st.lag.reset()
            st.quotes = st.own = 0
            st.gc_ms = []
    st.recording = False
    lag_task.cancel()
    await verify(clients)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"connections": len(conns), "setup_s": setup_s, **recorded(st),
            "books_verified": st.verified, "books_differing": st.differing,
            "closed": st.closed}


def recorded(st: Stats) -> dict[str, Any]:
    """What was recorded since the last report."""
    return {
        "quotes": st.quotes, "own": st.own, "gaps": st.gaps, "dropped": st.dropped,
        "errors": st.errors, "out_of_step": st.out_of_step,
        "hist": st.push.encode().decode() if st.quotes else "",
        "lag_p50_ms": st.lag.get_value_at_percentile(50) / 1000,
        "lag_p99_ms": st.lag.get_value_at_percentile(99) / 1000,
        "lag_max_ms": st.lag.get_max_value() / 1000,
        "gc_full": len(st.gc_ms), "gc_full_max_ms": max(st.gc_ms, default=0.0),
    }


async def verify(clients: list[Client], timeout: float = 60) -> None:
    """Ask every connection for a fresh snapshot of each of its rounds and compare it with the
    book it kept from the stream (the load has stopped: both are of the same seq, unless a
    round closed meanwhile, which the close's own event brings into the kept book first)."""
    live = [c for c in clients if c.ws is not None and c.ws.close_code is None]
    for c in live:
        c.verifying = set(c.rounds)
        assert c.ws is not None
        for rid in c.rounds:
            await c.ws.send(json.dumps({"op": "subscribe", "topic": f"round:{rid}"}))
    with contextlib.suppress(TimeoutError):  # what did not answer counts as neither
        await asyncio.wait_for(asyncio.gather(*(c.done.wait() for c in live)), timeout)


async def traced(work: Any) -> Any:
    """``IGE_STALL_TRACE_MS`` (gateway/stalls.py) also traces this process's own stalls, on
    stderr (its log): a client's pause passes for the server's push latency."""
    ms = int(os.environ.get("IGE_STALL_TRACE_MS", "0") or 0)
    if not ms:
        return await work
    import structlog

    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    tracer = StallTracer(ms / 1000)
    tracer.start()
    try:
        return await work
    finally:
        tracer.stop()


def main() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with open(sys.argv[1]) as fh:
        spec = json.load(fh)
    import uvloop

    res = uvloop.run(traced(main_async(spec)))
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
