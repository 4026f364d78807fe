"""Open-loop offer generator: a fixed schedule of ``--rate`` offers per second, latency measured
from each request's *intended* send time (so a stalled server cannot hide its stall by slowing
the generator down: no coordinated omission), recorded in an HdrHistogram.

    python -m loadtests.rate_gen --base-url URL --setup FILE --rate 2000 --seconds 15

FILE is JSON {"tokens": [...], "offers": [[token_index, round_id, offer_id], ...]}; a fraction
``--put`` of the requests revises a random offer of the file (PUT, by its owner's token), the
rest send a new offer (POST) into a random round of the file. Prints one JSON line of results;
a connection that fails is status 599, a request unanswered after ``--timeout`` 598.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from typing import Any

from hdrh.histogram import HdrHistogram

from loadtests.rawhttp import Conn, build, host_port

BODY = {"amount": "5000000.00", "tenor_months": 24, "grace_months": 6,
        "repayment_every_months": 3, "upfront_fee": "0.00", "assumes_export_commitment": True}


def offer_request(rng: random.Random, host: str, tokens: list[str],
                  offers: list[list[Any]], put_fraction: float) -> bytes:
    tok, rid, oid = offers[rng.randrange(len(offers))]
    body = {"annual_rate": f"{rng.uniform(30, 45):.2f}", **BODY}
    if rng.random() < put_fraction:
        return build("PUT", f"/v1/bank/rounds/{rid}/offers/{oid}", host,
                     {"Authorization": tokens[tok]}, body)
    return build("POST", f"/v1/bank/rounds/{rid}/offers", host,
                 {"Authorization": tokens[rng.randrange(len(tokens))]}, body)


async def run(base_url: str, setup: dict[str, Any], rate: float, seconds: float, conns: int,
              put_fraction: float, seed: int, timeout_s: float = 60.0) -> dict[str, Any]:
    host, port = host_port(base_url)
    hosthdr = f"{host}:{port}"
    rng = random.Random(seed)
    tokens, offers = setup["tokens"], setup["offers"]
    pool: asyncio.Queue[Conn] = asyncio.Queue()
    connect_errors = 0
    for _ in range(conns):
        c = Conn(host, port)
        try:
            await c.open()
        except OSError:  # counted; its first request tries again (and fails as a 599)
            connect_errors += 1
        pool.put_nowait(c)
    hist = HdrHistogram(1, 60_000_000, 3)  # microseconds
    service = HdrHistogram(1, 60_000_000, 3)
    statuses: dict[int, int] = {}
    n = int(rate * seconds)
    tasks: set[asyncio.Task[None]] = set()

    clock = time.perf_counter  # uvloop's loop.time() moves in whole milliseconds

    async def one(conn: Conn, raw: bytes, intended: float) -> None:
        sent = clock()
        try:
            async with asyncio.timeout(timeout_s):  # a server that never answers: a 598
                status, _ = await conn.request(raw)
        except TimeoutError:
            status = 598
            conn.close()
        except (ConnectionError, OSError):
            status = 599
            conn.close()
        done = clock()
        statuses[status] = statuses.get(status, 0) + 1
        if 200 <= status < 300:
            hist.record_value(max(1, int((done - intended) * 1e6)))
            service.record_value(max(1, int((done - sent) * 1e6)))
        pool.put_nowait(conn)

    t0 = clock() + 0.1
    for i in range(n):
        intended = t0 + i / rate
        delay = intended - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        conn = await pool.get()  # none idle: this request is late, and its latency says so
        raw = offer_request(rng, hosthdr, tokens, offers, put_fraction)
        t = asyncio.ensure_future(one(conn, raw, intended))
        tasks.add(t)
        t.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    elapsed = clock() - t0
    ok = sum(v for k, v in statuses.items() if 200 <= k < 300)

    def pct(h: HdrHistogram, p: float) -> float:
        value: int = h.get_value_at_percentile(p)
        return value / 1000.0

    return {
        "target_rate": rate, "seconds": seconds, "sent": n, "ok": ok,
        "achieved_rate": ok / elapsed if elapsed > 0 else 0.0, "elapsed": elapsed,
        "statuses": {str(k): v for k, v in sorted(statuses.items())}, "connections": conns,
        "connect_errors": connect_errors,
        "p50_ms": pct(hist, 50), "p90_ms": pct(hist, 90), "p99_ms": pct(hist, 99),
        "p999_ms": pct(hist, 99.9), "max_ms": hist.get_max_value() / 1000.0,
        "service_p50_ms": pct(service, 50), "service_p99_ms": pct(service, 99),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--setup", required=True)
    ap.add_argument("--rate", type=float, default=2000)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--put", type=float, default=0.8, help="fraction of revisions (PUT)")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--timeout", type=float, default=60.0,
                    help="seconds a request may take before it counts as failed (598)")
    a = ap.parse_args()
    import uvloop

    with open(a.setup) as fh:
        setup = json.load(fh)
    res = uvloop.run(run(a.base_url, setup, a.rate, a.seconds, a.connections, a.put, a.seed,
                           a.timeout))
    json.dump(res, sys.stdout)
    print()


if __name__ == "__main__":
    main()
