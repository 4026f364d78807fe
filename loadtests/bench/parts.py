"""The benchmark's parts. Each takes the running ``Bench`` and returns its results as plain
JSON-able data; ``report.py`` turns them into BENCHMARKS.md."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import msgpack
import redis as redis_sync
import websockets
from websockets.typing import Subprotocol

from auction.redis.keys import round_keys
from loadtests.bench.tools import (
    COMPANY,
    SLOW_MS,
    Samples,
    Setup,
    WsClients,
    busy,
    busy_groups,
    by_label,
    cpu_line,
    cpu_seconds,
    diff,
    log,
    median,
    push_summary,
    quantile,
    quiesce,
    rate_gen,
    redis_during,
    rss,
    scrape,
    slow_fsyncs,
    start_baseline,
    total,
    wait_up,
    wrk,
)
from loadtests.local_server import LocalStack, Server, pin

#: the machine has two cores: the roles' processes get the first, Redis, the load generators
#: and this script share the second. The worker shares the api's core at a lower CPU weight
#: (WORKER_NICE) rather than Redis's: on this machine kind an fsync waits for the next 4 ms
#: timer tick whenever another process is running on the fsyncing CPU (fdatasync p50 0.16 ms
#: alone, 3.99 ms beside a busy loop, SCHED_IDLE or not), so the persister's passes (~100 ms
#: of CPU every 0.5 s at 2,000 offers/s) beside Redis made every `appendfsync always` fsync,
#: and every acknowledgement waiting on one, up to 4 ms slower while they ran
SERVER_CPU = {0}
#: the worker's niceness (its session's too): it takes the api's core only when the api leaves
#: it, and still gets ~10 % of it when the api wants all of it (closes do not starve)
WORKER_NICE = 10
#: where the worker runs: "api" (its core, at WORKER_NICE; Redis's rewrite child there too) or
#: "redis" (the layout before 2026-12-01: beside Redis at the default weight), ``--worker-at``
LAYOUT = {"worker": "api"}

#: wrk's connections in part 1: enough for each server to reach its capacity (at 16 the real
#: path, whose answers take longer, stayed below it: its api process at 64-72 % of its core)
WRK_CONNS = 64
REST_CPU = {1}
#: the push part's WebSocket clients (the measuring instrument, 2,000 sockets in two processes,
#: ~40 % of a core): on whichever core is free at the moment. Pinned to CPU 1 beside Redis, the
#: worker and the rate generator (that core 85 % busy), their own waits for the CPU (loop
#: stalls up to 100 ms) were most of the push p99 they reported (24-43 ms, the stream's own
#: accepted -> written p99 9 ms); in production they are the banks' machines
CLIENT_CPUS = set(range(os.cpu_count() or 2))


def redis_args() -> tuple[str, ...]:
    """The stack's Redis options for the layout: its latency monitor on (``SLOW_MS``: each run
    then shows the seconds that had an fsync or a command that slow), and, beside the api,
    Redis's AOF rewrite child (a fork writing the whole data set, ~1 s every minute or so under
    load) goes there too, for the same reason as the worker."""
    monitor = ("--latency-monitor-threshold", str(SLOW_MS))
    if LAYOUT["worker"] != "api":
        return monitor
    return (*monitor, "--aof_rewrite_cpulist", ",".join(map(str, sorted(SERVER_CPU))))


def apart(api: int = 1, stream: int = 1, worker: int = 1, api_cpus: set[int] | None = None,
          stream_cpus: set[int] | None = None, worker_cpus: set[int] | None = None
          ) -> list[Server]:
    """The roles apart, as production runs them."""
    beside_api = LAYOUT["worker"] == "api"
    return [Server("api", api, api_cpus or SERVER_CPU),
            Server("stream", stream, stream_cpus or SERVER_CPU),
            Server("worker", worker, worker_cpus or (SERVER_CPU if beside_api else REST_CPU),
                   nice=WORKER_NICE if beside_api else 0)]


@dataclass
class Bench:
    stack: LocalStack
    setup: Setup
    work: Path
    load: set[int] | None = field(default_factory=lambda: set(REST_CPU))
    seconds: int = 8
    runs: int = 5

    @property
    def api(self) -> str:
        return self.stack.base_url

    def url_of(self, role: str) -> str:
        return next(s.url for s in self.stack.servers if s.has(role))

    def metrics(self, role: str) -> Samples:
        return scrape(self.url_of(role))

    async def fresh_offers(self, rounds: int, name: str) -> tuple[Path, Path, list[str]]:
        rids = await self.setup.rounds(rounds)
        offers = await self.setup.offers([(b, r) for r in rids
                                          for b in range(len(self.setup.tokens))])
        js, txt = self.setup.write(offers, self.work / name)
        return js, txt, rids


def metrics_view(m: Samples) -> dict[str, Any]:
    """The numbers of a run as the servers' own /metrics saw them."""
    out: dict[str, Any] = {}
    if not m:
        return out
    out["offers"] = by_label(m, "ige_offers_total", "outcome")
    for name, key in (("ige_offer_ack_seconds", "ack"), ("ige_push_seconds", "push"),
                      ("ige_close_lag_seconds", "close_lag")):
        p50, p99 = quantile(m, name, 0.5), quantile(m, name, 0.99)
        count = total(m, f"{name}_count")
        if count:
            out[key] = {"count": count, "p50_ms": None if p50 is None else p50 * 1000,
                        "p99_ms": None if p99 is None else p99 * 1000}
    for gauge in ("ige_websockets_open", "ige_persister_lag_events", "ige_persister_lag_seconds",
                  "ige_slow_clients_dropped_total", "ige_backend_errors_total",
                  "ige_pubsub_reconnects_total"):
        if gauge in m:
            out[gauge] = total(m, gauge)
    return out


# ----------------------------------------------------------------------------- 1. bid path
async def bid_path(b: Bench) -> dict[str, Any]:
    """The api role alone in its process against the bare baseline, side by side, then the
    acknowledgement latency at a fixed rate."""
    log("bid path: set-up (200 rounds, one offer per bank and round)")
    js, txt, rids = await b.fresh_offers(200, "bidpath")
    res: dict[str, Any] = {"rounds": len(rids), "seconds": b.seconds, "connections": WRK_CONNS}
    assert b.stack.redis is not None
    from gateway.redis_server import free_port

    port = free_port()
    base = start_baseline(port, 1, b.stack.redis.url, SERVER_CPU, b.work / "baseline.log")
    base_url = f"http://127.0.0.1:{port}"
    pids = b.stack.pids()
    try:
        wait_up(base_url + "/")
        wrk(base_url, txt, 2, WRK_CONNS, b.load)  # warm-up, both
        wrk(b.api, txt, 2, WRK_CONNS, b.load)
        pairs = []
        # who is busy during each run (shares of one core): the server under test, the
        # worker (it persists the real path's offers; the baseline writes nothing to persist),
        # Redis, and each CPU as a whole
        groups = {"server": [base.pid], "worker": b.stack.pids("worker"),
                  "redis": [b.stack.redis.proc.pid] if b.stack.redis.proc else []}
        real_groups = {**groups, "server": b.stack.pids("api")}
        for i in range(3):
            quiesce(pids)
            bw, bw["cpu"] = busy_groups(groups, partial(wrk, base_url, txt, b.seconds,
                                                        WRK_CONNS, b.load))
            quiesce(pids)
            rw, rw["cpu"] = busy_groups(real_groups, partial(wrk, b.api, txt, b.seconds,
                                                             WRK_CONNS, b.load))
            pairs.append({"baseline": bw, "real": rw, "ratio": rw["rate"] / bw["rate"]})
            log(f"  pair {i + 1}: baseline {bw['rate']:.0f}/s, real {rw['rate']:.0f}/s "
                f"({rw['rate'] / bw['rate'] * 100:.0f} %), real errors {rw['errors']}; CPU "
                f"baseline {cpu_line(bw['cpu'])}; real {cpu_line(rw['cpu'])}")
        res["pairs"] = pairs
        res["ratio"] = median([p["ratio"] for p in pairs])
        quiesce(pids)
        api_pids = b.stack.pids("api")
        with redis_during(b.stack.redis.url) as seen:
            r, r["api_cpu"] = busy(api_pids, partial(rate_gen, b.api, js, 1000, 10, b.load))
        r.update(seen)
        res["rate_1000"] = r
        before = b.metrics("api")
        runs, floor = [], []
        # each run of the real path follows one of the baseline at the same rate, on the same
        # Redis and CPUs: the baseline's p99 is the machine's floor for that moment (its
        # Redis fsyncs, the scheduler), so a tail both share is not the bid path's
        for i in range(b.runs):
            quiesce(pids)
            with redis_during(b.stack.redis.url) as seen:
                f, f["server_cpu"] = busy([base.pid], partial(rate_gen, base_url, js, 2000,
                                                              b.seconds + 2, b.load))
            f.update(seen)
            floor.append(f)
            quiesce(pids)
            with redis_during(b.stack.redis.url) as seen:
                r, r["api_cpu"] = busy(api_pids, partial(rate_gen, b.api, js, 2000,
                                                         b.seconds + 2, b.load))
            r.update(seen)
            runs.append(r)
            log(f"  @2000/s run {i + 1}: achieved {r['achieved_rate']:.0f}/s p50 "
                f"{r['p50_ms']:.2f} p99 {r['p99_ms']:.2f} ms, statuses {r['statuses']}, api CPU "
                f"{r['api_cpu'] * 100:.0f} %, Redis forks {r['redis_forks']} "
                f"(rewriting {r['rewrite_s']:.2f} s; {r['redis_mb']:.0f} MB), slow fsyncs "
                f"{slow_fsyncs(r)}; the baseline just before: p99 {f['p99_ms']:.2f} ms, CPU "
                f"{f['server_cpu'] * 100:.0f} %, Redis forks {f['redis_forks']}, slow fsyncs "
                f"{slow_fsyncs(f)}")
        res["rate_2000"] = runs
        res["baseline_2000"] = floor
        res["metrics"] = metrics_view(diff(b.metrics("api"), before))
    finally:
        os.killpg(base.pid, 15)
        base.wait(15)
    quiesce(pids)
    return res


# ----------------------------------------------------------------------------- 2. big round
async def big_round(b: Bench) -> dict[str, Any]:
    """Offers into a round already holding 1,000 offers against an almost empty one, and the
    size of a quote there."""
    n_banks = len(b.setup.tokens)
    small, big = await b.setup.rounds(2)
    log("big round: set-up (one round with 10 offers, one with 1,000)")
    s_offers = await b.setup.offers([(i, small) for i in range(n_banks)])
    g_offers = await b.setup.offers([(i % n_banks, big) for i in range(1000)], parallel=16)
    _, s_txt = b.setup.write(s_offers, b.work / "small")
    _, g_txt = b.setup.write(g_offers, b.work / "big")
    pids = b.stack.pids()
    assert b.stack.redis is not None and b.stack.redis.proc is not None
    watched = {"api": b.stack.pids("api"), "worker": b.stack.pids("worker"),
               "redis": [b.stack.redis.proc.pid]}
    res: dict[str, Any] = {"small": [], "big": [], "seconds": b.seconds}
    # small, big, big, small: each round gets an early and a late run (every run adds ~13,000
    # versions to SQL and to the round's event stream, so later runs may differ)
    order = (("small", s_txt), ("big", g_txt), ("big", g_txt), ("small", s_txt))
    for name, txt in order:
        quiesce(pids)
        c0 = {k: cpu_seconds(v) for k, v in watched.items()}
        w = wrk(b.api, txt, b.seconds, 16, b.load, put=1.0)  # revisions: sizes stay
        n = w["requests"]
        w["cpu_us"] = {k: (cpu_seconds(v) - c0[k]) / n * 1e6 for k, v in watched.items()}
        res[name].append(w)
        log(f"  revisions into the {name} round: {w['rate']:.0f}/s, errors {w['errors']}, "
            f"CPU per offer " + ", ".join(f"{k} {v:.0f} µs" for k, v in w["cpu_us"].items()))
    res["ratio"] = median([w["rate"] for w in res["big"]]) / median(
        [w["rate"] for w in res["small"]])
    res["sizes"] = await quote_sizes(b, small, big, s_offers, g_offers)
    # new offers: into an empty round and into the big one, a short run each (both grow)
    empty = (await b.setup.rounds(1))[0]
    e_offers = [[i, empty, "none"] for i in range(n_banks)]
    _, e_txt = b.setup.write(e_offers, b.work / "empty")
    res["new_empty"] = wrk(b.api, e_txt, 4, 16, b.load, put=0.0)
    quiesce(pids)
    res["new_big"] = wrk(b.api, g_txt, 4, 16, b.load, put=0.0)
    log(f"  new offers: empty round {res['new_empty']['rate']:.0f}/s, big round "
        f"{res['new_big']['rate']:.0f}/s")
    quiesce(pids)
    return res


async def quote_sizes(b: Bench, small: str, big: str, s_offers: list[list[Any]],
                      g_offers: list[list[Any]]) -> dict[str, Any]:
    """Frames a bank's client receives in the big round (and the small one), JSON and
    MessagePack: the quote, and the snapshot for comparison."""
    import httpx

    out: dict[str, Any] = {}
    stream = b.url_of("stream").replace("http", "ws", 1) + "/v1/stream"
    async with httpx.AsyncClient(base_url=b.api, timeout=30) as http:
        for name, rid, offers in (("small", small, s_offers), ("big", big, g_offers)):
            for proto in ("ige.v1.json", "ige.v1.msgpack"):
                t = await http.post("/v1/stream/tickets",
                                    headers={"Authorization": b.setup.tokens[0]})
                async with websockets.connect(f"{stream}?ticket={t.json()['ticket']}",
                                              subprotocols=[Subprotocol(proto)],
                                              max_size=2**24) as ws:
                    await ws.send(json.dumps({"op": "subscribe", "topic": f"round:{rid}"})
                                  if proto.endswith("json") else
                                  msgpack.packb({"op": "subscribe", "topic": f"round:{rid}"}))
                    snap = await _next(ws, "snapshot")
                    tok, _, oid = next(o for o in offers if o[0] == 1)
                    r = await http.put(f"/v1/bank/rounds/{rid}/offers/{oid}",
                                       json={"annual_rate": "33.33", "amount": "5000000.00",
                                             "tenor_months": 24, "grace_months": 6,
                                             "repayment_every_months": 3,
                                             "upfront_fee": "0.00",
                                             "assumes_export_commitment": True},
                                       headers={"Authorization": b.setup.tokens[tok]})
                    r.raise_for_status()
                    quote = await _next(ws, "quote")
                    out[f"{name}_{proto[7:]}"] = {"quote": len(quote[0]),
                                                  "snapshot": len(snap[0]),
                                                  "book_size": quote[1]["book_size"]}
    return out


async def _next(ws: Any, kind: str) -> tuple[bytes, dict[str, Any]]:
    while True:
        raw = await asyncio.wait_for(ws.recv(), 30)
        msg = msgpack.unpackb(raw) if isinstance(raw, bytes) else json.loads(raw)
        if msg["type"] == kind:
            return (raw if isinstance(raw, bytes) else raw.encode()), msg


# ----------------------------------------------------------------------------- 3. push
async def push(b: Bench, seconds: int = 15, runs: int | None = None, rate: int = 1000
               ) -> dict[str, Any]:
    """``rate`` (1,000) offers/s to 2,000 WebSockets on the stream role, several runs."""
    log("push: set-up (200 fresh rounds, 10 banks each)")
    js, _, rids = await b.fresh_offers(200, "push")
    stream_pids = b.stack.pids("stream")
    pids = b.stack.pids()
    quiesce(pids)
    rss0 = rss(stream_pids)
    conns = [{"token": b.setup.tokens[i], "rounds": [r]} for r in rids
             for i in range(len(b.setup.tokens))]
    log(f"push: opening {len(conns)} WebSockets in 2 processes")
    t0 = time.monotonic()
    ws = WsClients(b.api, b.stack.stream_urls, [conns[0::2], conns[1::2]], CLIENT_CPUS, b.work)
    out: dict[str, Any] = {"connections": len(conns), "runs": []}
    try:
        ws.ready()
        out["open_s"] = time.monotonic() - t0
        await asyncio.sleep(1)
        quiesce(pids)
        out["rss_before"], out["rss_after"] = rss0, rss(stream_pids)
        out["rss_per_conn"] = (out["rss_after"] - rss0) / len(conns)
        ws.report()  # the set-up's snapshots are not a run
        before = b.metrics("stream")
        for i in range(runs or b.runs):
            quiesce(pids)
            gen, cpu = busy(stream_pids, lambda: rate_gen(b.api, js, rate, seconds, b.load))
            await asyncio.sleep(1)
            run = {"gen": gen, "stream_cpu": cpu, **push_summary(ws.report())}
            out["runs"].append(run)
            log(f"  run {i + 1}: push p50 {run['p50_ms']:.2f} p99 {run['p99_ms']:.2f} ms over "
                f"{run['quotes']} quotes (gaps {run['gaps']}, dropped {run['dropped']}, out of "
                f"step {run['out_of_step']}); ack p99 {gen['p99_ms']:.2f} ms; stream CPU "
                f"{cpu * 100:.0f} %; clients' loop lag p99 {run['client_lag_p99_ms']:.1f} max "
                f"{run['client_lag_max_ms']:.1f} ms, {run['client_gc_full']} full "
                f"collections (max {run['client_gc_full_max_ms']:.1f} ms)")
        out["metrics"] = metrics_view(diff(b.metrics("stream"), before))
    finally:
        final = ws.stop()
    out["books_verified"] = sum(r["books_verified"] for r in final)
    out["books_differing"] = sum(r["books_differing"] for r in final)
    quiesce(pids)
    return out


# ----------------------------------------------------------------------------- 4. mass close
async def mass_close(b: Bench, n_rounds: int = 1000, lead_s: float = 30) -> dict[str, Any]:
    """``n_rounds`` rounds sharing one deadline, opened through the same use case as the admin
    API (``usecases.opening``) with an opening time chosen so that they all close at it."""
    from gateway import bootstrap
    from gateway.settings import Settings
    from usecases.opening import RoundRequest

    assert b.stack.redis is not None
    r = redis_sync.Redis.from_url(b.stack.redis.url)
    settings = Settings.from_env({**b.stack.server_env(), "IGE_ROUND_DURATION": "PT1H"})
    rt = bootstrap.build(settings)
    request = RoundRequest("working_capital", "TRY", 500_000_000, 400_000_000, 24, 6, True,
                           COMPANY)
    # the set-up must end before the deadline, however fast this machine is today: a probe
    # of 20 rounds (closing in an hour, not part of the measure) times it
    t0 = time.time()
    probe = [(await rt.portal.opening.open_round(request, "bench")).round_id
             for _ in range(20)]
    await b.setup.offers([(i, rid) for rid in probe for i in range(len(b.setup.tokens))],
                         parallel=32)
    lead_s = max(lead_s, (time.time() - t0) / len(probe) * n_rounds * 1.5 + 10)
    deadline = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=lead_s)
    opened = deadline - timedelta(hours=1)
    log(f"mass close: opening {n_rounds} rounds closing at {deadline.isoformat()}")
    mem0 = r.info("memory")["used_memory"]
    rounds: list[str] = []
    try:
        for _ in range(n_rounds):
            t = await rt.portal.opening.open_round(request, "bench", opened)
            rounds.append(t.round_id)
    finally:
        await rt.aclose()
    mem1 = r.info("memory")["used_memory"]
    offers = await b.setup.offers([(i, rid) for rid in rounds
                                   for i in range(len(b.setup.tokens))], parallel=32)
    mem2 = r.info("memory")["used_memory"]
    key_bytes = {k: r.memory_usage(key) or 0
                 for k, key in zip("mbolpe", round_keys(rounds[0]), strict=True)}
    conns = [{"token": t, "rounds": rounds} for t in b.setup.tokens]
    ws = WsClients(b.api, b.stack.stream_urls, [conns], b.load, b.work)
    ws.ready()
    ready_at = datetime.now(UTC)
    before = b.metrics("worker")
    dl_ms = int(deadline.timestamp() * 1000)
    db = b.stack.database_url.removeprefix("sqlite:///")
    sql = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    q = ("SELECT count(*) FROM round_closings c JOIN rounds r ON r.id = c.round_id "
         "WHERE r.closes_at = ?")
    t_sql = None
    end = time.time() + lead_s + 120
    while time.time() < end:
        if sql.execute(q, (dl_ms,)).fetchone()[0] >= n_rounds:
            t_sql = time.time() * 1000 - dl_ms
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(1.0)
    res_ws = ws.stop()[0]
    sql.close()
    closed = sorted(res_ws["closed"])
    res: dict[str, Any] = {
        "rounds": n_rounds, "offers": len(offers), "subscribers": len(conns),
        "subscriptions": len(conns) * n_rounds, "lead_s": lead_s,
        "setup_late": ready_at >= deadline,
        "sql_s": None if t_sql is None else t_sql / 1000, "closed_msgs": len(closed),
        "ws_first_s": (closed[0] - dl_ms) / 1000 if closed else None,
        "ws_last_s": (closed[-1] - dl_ms) / 1000 if closed else None,
        "mem_rounds": mem1 - mem0, "mem_offers": mem2 - mem1,
        "per_round": (mem1 - mem0) / n_rounds, "per_offer": (mem2 - mem1) / len(offers),
        "key_bytes": key_bytes, "metrics": metrics_view(diff(b.metrics("worker"), before)),
    }
    done = [x for x in (res["sql_s"], res["ws_last_s"]) if x is not None]
    res["total_s"] = max(done) if len(done) == 2 and len(closed) >= res["subscriptions"] else None
    log(f"  SQL complete {res['sql_s']}s, last round_closed {res['ws_last_s']}s "
        f"({len(closed)}/{res['subscriptions']}); Redis {res['per_offer']:.0f} B/offer")
    quiesce(b.stack.pids())
    return res


# ----------------------------------------------------------------------------- 5. scaling
async def scaling(b: Bench) -> dict[str, Any]:
    """1 vs 2 processes of each role, on this 2-core machine."""
    out: dict[str, Any] = {"api": [], "stream": [], "worker": []}
    _, txt, _ = await b.fresh_offers(100, "scaling")
    for n, cpus in ((1, SERVER_CPU), (2, SERVER_CPU), (2, {0, 1})):
        b.stack.relayout(apart(api=n, api_cpus=cpus))
        wrk(b.api, txt, 2, 16, b.load)
        quiesce(b.stack.pids())
        rates = [wrk(b.api, txt, b.seconds, 16, b.load)["rate"] for _ in range(2)]
        out["api"].append({"processes": n, "cpus": sorted(cpus), "rates": rates})
        log(f"  api x{n} on CPUs {sorted(cpus)}: {rates[0]:.0f}, {rates[1]:.0f} offers/s")
    for n in (1, 2):
        b.stack.relayout(apart(stream=n))
        res = await push(b, seconds=10, runs=2)
        out["stream"].append({"processes": n, "p99_ms": [r["p99_ms"] for r in res["runs"]],
                              "cpu": [r["stream_cpu"] for r in res["runs"]]})
        log(f"  stream x{n}: push p99 {[round(r['p99_ms'], 2) for r in res['runs']]} ms")
    for n, cpus in ((1, SERVER_CPU), (2, SERVER_CPU), (2, {0, 1})):
        b.stack.relayout(apart(worker=n, worker_cpus=cpus))
        await asyncio.sleep(6)  # the workers share the buckets out (a lease period or so)
        res = await mass_close(b, n_rounds=500, lead_s=25)
        out["worker"].append({"processes": n, "cpus": sorted(cpus), "total_s": res["total_s"],
                              "sql_s": res["sql_s"]})
        log(f"  worker x{n} on CPUs {sorted(cpus)}: 500 rounds closed in {res['total_s']} s")
    b.stack.relayout(apart())
    return out


# ----------------------------------------------------------------------------- 6. cluster
CLUSTER_PUSH_RATE = 500


async def cluster(b: Bench) -> dict[str, Any]:
    """One Redis against a Redis Cluster of 3 masters and 3 replicas on loopback (the shape
    SCALING.md deploys; its six servers on the second CPU with the stack's own Redis), with 1
    and 2 processes of each role: offers/s under wrk (revisions and new offers, 16 connections)
    and push p99 at 500 offers/s to 2,000 WebSockets."""
    from tests.rediscluster import LoopbackCluster

    out: dict[str, Any] = {"layouts": [], "push_rate": CLUSTER_PUSH_RATE}
    cl = LoopbackCluster(b.work / "cluster").start()
    try:
        for node in cl.nodes:
            assert node.proc is not None
            pin(node.proc.pid, REST_CPU)
        for label, url, n in (("1 Redis", None, 1), ("cluster 3+3", cl.url, 1),
                              ("cluster 3+3", cl.url, 2)):
            b.stack.relayout(apart(api=n, stream=n, worker=n), redis_url=url)
            _, txt, _ = await b.fresh_offers(100, f"cluster-{len(out['layouts'])}")
            wrk(b.api, txt, 2, 16, b.load)  # warm-up
            quiesce(b.stack.pids())
            redis_pids = ([nd.proc.pid for nd in cl.nodes if nd.proc is not None] if url
                          else [b.stack.redis.proc.pid] if b.stack.redis and b.stack.redis.proc
                          else [])
            runs, cpus = [], []
            for _ in range(2):
                res, cpu = busy(redis_pids, functools.partial(wrk, b.api, txt, b.seconds, 16,
                                                              b.load))
                runs.append(res["rate"])
                cpus.append(cpu)
            pushed = await push(b, seconds=10, runs=2, rate=CLUSTER_PUSH_RATE)
            row = {"redis": label, "processes": n, "rates": runs, "redis_cpu": cpus,
                   "push_p99_ms": [r["p99_ms"] for r in pushed["runs"]],
                   "ack_p99_ms": [r["gen"]["p99_ms"] for r in pushed["runs"]],
                   "stream_cpu": [r["stream_cpu"] for r in pushed["runs"]],
                   "books_differing": pushed["books_differing"]}
            out["layouts"].append(row)
            log(f"  {label}, {n} per role: {runs[0]:.0f}, {runs[1]:.0f} offers/s (Redis CPU "
                f"{cpus[0] * 100:.0f}, {cpus[1] * 100:.0f} %); push p99 "
                f"{[round(x, 2) for x in row['push_p99_ms']]} ms")
    finally:
        b.stack.relayout(apart())
        cl.stop()
    return out
