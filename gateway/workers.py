"""Work a process does without a request: closing due rounds, lapsing binding windows, and
(in the one process holding the persister's lease) copying the book's events into SQL and
rebuilding the book from SQL when it lost its data set. Loops only: the work is the use
cases' (``usecases.closing``, ``usecases.durability``)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from gateway.bootstrap import INFRASTRUCTURE_ERRORS

if TYPE_CHECKING:
    from gateway.bootstrap import Runtime
    from gateway.stream import Hub

log = logging.getLogger("ige.bg")

LEASE_MS = 5000
SWEEP_S = 2.0
CLOSE_BATCH = 200  # due rounds taken per look at the deadline index
PERSIST_BATCH_S = 0.5  # how long the persister lets events gather before a pass


class Workers:
    def __init__(self, runtime: Runtime, hub: Hub) -> None:
        self.rt = runtime
        self.portal = runtime.portal
        self.dirty: set[str] = set()
        # seq each round is known to have reached in SQL (from this process's own writes): a
        # batch then needs no read of the round's row first; a stale value is harmless, the
        # conditional write refuses it and persist_round reads again
        self.persisted: dict[str, int] = {}
        self.wake = asyncio.Event()
        self.token = secrets.token_hex(8)
        self.is_leader = False
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
                                           self.rt.settings.scheduler_interval_s)),
            asyncio.create_task(self._loop("lapser", self._lapse_tick, SWEEP_S)),
            asyncio.create_task(self._persister()),
        ]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.is_leader:
            with contextlib.suppress(Exception):  # best effort: the lease expires anyway
                await self.rt.deps.guards.release("lease", "persister", self.token)

    @staticmethod
    async def _loop(name: str, tick: Callable[[], Awaitable[object]], every: float) -> None:
        while True:
            try:
                await tick()
            except asyncio.CancelledError:
                raise
            except INFRASTRUCTURE_ERRORS as e:
                log.warning("%s: %s", name, e)
            except Exception:
                log.exception("%s failed", name)
            await asyncio.sleep(every)

    async def _close_tick(self) -> None:
        # a full batch closed: more rounds may share that deadline, so go on without the pause
        while await self.portal.closing.close_due(CLOSE_BATCH) >= CLOSE_BATCH:
            pass

    async def _lapse_tick(self) -> None:
        for rid in await self.portal.closing.lapse_due():
            log.info("round %s lapsed", rid)

    async def _persister(self) -> None:
        last_sweep = 0.0
        loop = asyncio.get_running_loop()
        durability = self.portal.durability
        while True:
            try:
                self.is_leader = await self.rt.deps.guards.hold("lease", "persister",
                                                                self.token, LEASE_MS)
                if self.is_leader:
                    await durability.ensure_book()
                    if loop.time() - last_sweep > SWEEP_S:
                        last_sweep = loop.time()
                        await self._sweep()
                    # let a busy round's events gather: one transaction per round and pass
                    # costs about a millisecond of this process's CPU, whatever its size
                    await asyncio.sleep(PERSIST_BATCH_S)
                    dirty, self.dirty = self.dirty, set()
                    for rid in dirty:
                        self.persisted[rid] = await durability.persist_round(
                            rid, self.persisted.get(rid))
            except asyncio.CancelledError:
                raise
            except INFRASTRUCTURE_ERRORS as e:
                log.warning("persister: %s", e)
                await asyncio.sleep(0.5)
            except Exception:
                log.exception("persister failed")
                await asyncio.sleep(0.5)
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), 0.25 if self.is_leader else 1.0)

    async def _sweep(self) -> None:
        """Catch anything the pub/sub wake-ups missed, and overdue rounds off the index."""
        durability = self.portal.durability
        if n := await durability.requeue_overdue():
            log.warning("%d overdue round(s) were missing from the deadline index", n)
        self.persisted = await durability.catch_up(self.persisted)
