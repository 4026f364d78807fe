"""Work every gateway process runs without a request: closing due rounds, lapsing binding
windows, and (in the one process holding the persister lease) copying events into SQL and
rebuilding Redis from SQL when Redis lost its data set."""

from __future__ import annotations

import asyncio
import gc
import logging
import secrets
from typing import TYPE_CHECKING, Awaitable, Callable

from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from auction.redis_book import keys
from gateway.clock import now_ms
from gateway.services import PERSISTER_LOCK

if TYPE_CHECKING:
    from gateway.services import Core
    from gateway.stream import Hub

log = logging.getLogger("ige.bg")

LEASE_MS = 5000
SWEEP_S = 2.0
SWEEP_SLICE = 200
CLOSE_BATCH = 200  # due rounds taken per look at the deadline index
PERSIST_BATCH_S = 0.5  # how long the persister lets events gather before a pass

# renew the lease only if we still hold it
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0
"""


class Background:
    def __init__(self, core: Core, hub: Hub) -> None:
        self.core = core
        self.hub = hub
        self.dirty: set[str] = set()
        # seq each round is known to have reached in SQL (from this process's own writes): a
        # batch then needs no read of the round's row first; a stale value is harmless, the
        # conditional write refuses it and persist_round re-reads
        self.persisted: dict[str, int] = {}
        self.wake = asyncio.Event()
        self.token = secrets.token_hex(8)
        self.is_leader = False
        self._renew = core.redis.register_script(RENEW)
        self._tasks: list[asyncio.Task[None]] = []
        hub.on_event.append(self._mark)

    def _mark(self, round_id: str) -> None:
        self.dirty.add(round_id)
        self.wake.set()

    async def start(self) -> None:
        # Start-up is over: move everything allocated so far (modules, the app, the caches
        # being warmed) out of the collector's reach. A full collection otherwise walks those
        # ~90,000 objects every second or two under load, stalling every request for ~50 ms
        # (the acknowledgement p99 of BENCHMARKS.md was that pause).
        gc.freeze()
        # Young collections every 10,000 allocations rather than 700: each one promotes what is
        # in flight at that instant, and under load (thousands of bids and stream frames a
        # second) those promotions triggered a full collection every few seconds, 100-200 ms
        # long with 2,000 WebSockets open. Measured in BENCHMARKS.md (part 2).
        gc.set_threshold(10_000, 50, 10)
        self._tasks = [
            asyncio.create_task(self._loop("closer", self._close_tick,
                                           self.core.settings.scheduler_interval_s)),
            asyncio.create_task(self._loop("lapser", self._lapse_tick, SWEEP_S)),
            asyncio.create_task(self._persister()),
        ]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.is_leader:
            try:
                if (await self.core.redis.get(PERSISTER_LOCK) or b"").decode() == self.token:
                    await self.core.redis.delete(PERSISTER_LOCK)
            except (RedisError, OSError):
                pass

    @staticmethod
    async def _loop(name: str, tick: Callable[[], Awaitable[object]], every: float) -> None:
        while True:
            try:
                await tick()
            except asyncio.CancelledError:
                raise
            except (RedisError, SQLAlchemyError, OSError) as e:
                log.warning("%s: %s", name, e)
            except Exception:
                log.exception("%s failed", name)
            await asyncio.sleep(every)

    async def _close_tick(self) -> None:
        # a full batch closed: more rounds may share that deadline, so go on without the pause
        while await self.core.close_due(CLOSE_BATCH) >= CLOSE_BATCH:
            pass

    async def _lapse_tick(self) -> None:
        for rid in await self.core.store.lapse_due(now_ms()):
            log.info("round %s lapsed", rid)

    async def _persister(self) -> None:
        last_sweep = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                self.is_leader = bool(int(await self._renew(
                    keys=[PERSISTER_LOCK], args=[self.token, LEASE_MS])))
                if self.is_leader:
                    await self.core.ensure_redis_state()
                    if loop.time() - last_sweep > SWEEP_S:
                        last_sweep = loop.time()
                        await self._sweep()
                    # let a busy round's events gather: one transaction per round and pass
                    # costs about a millisecond of this process's CPU, whatever its size
                    await asyncio.sleep(PERSIST_BATCH_S)
                    dirty, self.dirty = self.dirty, set()
                    for rid in dirty:
                        self.persisted[rid] = await self.core.persist_round(
                            rid, self.persisted.get(rid))
            except asyncio.CancelledError:
                raise
            except (RedisError, SQLAlchemyError, OSError) as e:
                log.warning("persister: %s", e)
                await asyncio.sleep(0.5)
            except Exception:
                log.exception("persister failed")
                await asyncio.sleep(0.5)
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), 0.25 if self.is_leader else 1.0)
            except asyncio.TimeoutError:
                pass

    async def _sweep(self) -> None:
        """Catch anything the pub/sub wake-ups missed: compare SQL and Redis seqs; and put
        overdue open rounds Redis does not index back on the deadline index."""
        if n := await self.core.requeue_overdue():
            log.warning("%d overdue round(s) were missing from the deadline index", n)
        live = await self.core.store.live_round_ids()
        self.persisted = {rid: n for rid, n in live if rid in self.persisted}  # forget finished
        # in slices: one pipeline over thousands of live rounds would hold the event loop (and
        # every request waiting on it) for milliseconds while its replies are parsed
        for i in range(0, len(live), SWEEP_SLICE):
            part = live[i:i + SWEEP_SLICE]
            pipe = self.core.redis.pipeline(transaction=False)
            for rid, _ in part:
                pipe.hget(keys(rid)["m"], "seq")
            seqs = await pipe.execute()
            for (rid, persisted), seq in zip(part, seqs):
                if seq is None:
                    continue
                if int(seq) > persisted:
                    self.persisted[rid] = await self.core.persist_round(rid, persisted)
