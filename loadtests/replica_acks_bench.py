"""What replica acks (``IGE_REDIS_REPLICA_ACKS``) cost the bid path: offers per second and
latency through ``RedisBook.submit`` in one process, against a master and a replica started on
loopback (tests/replicas.py: append-only, fsync always, like the suite's private Redis).

Modes, each with ``--concurrency`` offers in flight (and with one, sequential):

- ``off``: acks off, the multiplexed connection (today's bid path);
- ``on``: acks on, the multiplexed connection: group commit (one WAIT in flight per
  connection acknowledges every script written before it);
- ``on-per-script``: acks on, a WAIT written right behind every script on the multiplexed
  connection (what group commit avoids; measured here only, not a mode of the server);
- ``off-redis-py`` / ``on-redis-py``: the same over redis-py (a ``rediss://`` deployment's
  path), a WAIT after each script on its own pool connection.

Usage: ``python -m loadtests.replica_acks_bench [--seconds 3] [--concurrency 64]
[--repeat 2]``. Prints a
table; nothing is asserted (speed is not tested)."""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from auction.model import OfferTerms, Outcome, RoundTerms
from auction.redis.acks import ReplicaAcks
from auction.redis.book import RedisBook
from auction.redis.mux import MuxRedis, pack
from auction.redis.scripts import source
from auction.rules import new_ref
from tests.replicas import MasterReplica

ROUNDS = 50
TERMS = OfferTerms(annual_rate_e4=300_000, amount=100_000_000, tenor_months=24,
                   grace_months=6, repayment_every_months=3, upfront_fee=50_000,
                   assumes_export_commitment=True, conditions="")


class PerScriptWaitBook(RedisBook):
    """Acks by a WAIT written right behind each script on the multiplexed connection."""

    async def _bid_script(self, name: str, script: AsyncScript, keys: list[str],
                          args: list[str | int]) -> Any:
        assert self.fast is not None and self.acks is not None
        conn = await self.fast._conn()
        ran = conn.send(pack(["EVALSHA", script.sha, len(keys), *keys, *args]))
        waited = conn.send(pack(["WAIT", self.acks.replicas, self.acks.timeout_ms]))
        reply = self.fast._check(await ran)
        self.acks.check(int(await waited))
        return reply


async def run(url: str, mode: str, seconds: float, concurrency: int, acks: ReplicaAcks
              ) -> tuple[float, float, float]:
    redis = Redis.from_url(url)
    mux = MuxRedis(url) if "redis-py" not in mode else None
    cls = PerScriptWaitBook if mode == "on-per-script" else RedisBook
    book = cls(redis, fast=mux, acks=acks if mode.startswith("on") else None)
    rounds = []
    for _ in range(ROUNDS):
        now = int(time.time() * 1000)
        t = RoundTerms(f"rnd_{secrets.token_hex(6)}", "TRY", "working_capital",
                       100_000_000, 80_000_000, 24, 6, True, now, now + 3_600_000)
        await book.open_round(t)
        rounds.append(t.round_id)
    if mux is not None:  # the script cache warm, the connections open
        await book.submit(rounds[0], "warm", "off_warm", new_ref(), TERMS, 300_000)
    lat: list[float] = []
    stop = time.monotonic() + seconds
    n = 0

    async def client(c: int) -> None:
        nonlocal n
        i = 0
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            res = await book.submit(rounds[(c + i) % ROUNDS], f"bank-{c}", f"off_{c}_{i}",
                                    new_ref(), replace(TERMS, annual_rate_e4=300_000 + i),
                                    300_000 + i)
            lat.append(time.perf_counter() - t0)
            assert res.outcome is Outcome.OK, res
            i += 1
            n += 1

    t0 = time.monotonic()
    await asyncio.gather(*(client(c) for c in range(concurrency)))
    took = time.monotonic() - t0
    if mux is not None:
        await mux.aclose()
    await redis.aclose()
    q = statistics.quantiles(lat, n=100)
    return n / took, q[49] * 1000, q[98] * 1000


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--timeout-ms", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=2, help="runs of every mode, interleaved")
    a = ap.parse_args()
    acks = ReplicaAcks(1, a.timeout_ms)
    source("submit")
    with tempfile.TemporaryDirectory() as d:
        pair = MasterReplica(Path(d)).start()
        try:
            print(f"{'mode':<16} {'in flight':>9} {'offers/s':>9} {'p50 ms':>7} {'p99 ms':>7}")
            for conc in [c for c in (1, a.concurrency) for _ in range(a.repeat)]:
                for mode in ("off", "on", "on-per-script", "off-redis-py", "on-redis-py"):
                    rate, p50, p99 = await run(pair.url, mode, a.seconds, conc, acks)
                    print(f"{mode:<16} {conc:>9} {rate:>9.0f} {p50:>7.2f} {p99:>7.2f}",
                          flush=True)
        finally:
            pair.stop()


if __name__ == "__main__":
    asyncio.run(main())
