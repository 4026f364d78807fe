"""The ``worker`` role: the work a process does without a request, over the buckets of rounds
it holds (``usecases.sharing``): closing due rounds, lapsing binding windows, copying the
book's events into SQL (learned from the book's dirty sets, not from pub/sub), putting overdue
rounds back on the deadline index, and (the holder of bucket 0) rebuilding the book from SQL
when it lost its data set. Loops only: the work is the use cases' (``usecases.closing``,
``usecases.durability``)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from gateway import metrics
from gateway.bootstrap import INFRASTRUCTURE_ERRORS, service_of
from gateway.logs import get_logger
from gateway.tasks import stop_all
from usecases.durability import Persisted
from usecases.sharing import LEASE_MS, Share

if TYPE_CHECKING:
    from gateway.bootstrap import Runtime

log = get_logger("ige.worker")

RENEW_S = LEASE_MS / 1000 / 3  # the bucket leases are renewed three times per lease
SWEEP_S = 2.0  # lapses, and overdue rounds back on the deadline index
CATCH_UP_S = 10.0  # the persister's safety net: every live round's seq against SQL
CLOSE_BATCH = 500  # due rounds taken per look at the deadline indexes
PERSIST_EVERY_S = 0.25  # how long the persister lets a busy round's events gather


class Workers:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.portal = runtime.portal
        self.token = secrets.token_hex(8)
        self.share = Share(runtime.deps.guards, self.token)
        # seq each round is known to have reached in SQL (from this process's own writes): a
        # batch then needs no read of the round's row first; a stale value is harmless, the
        # conditional write refuses it and persist_round reads again
        self.persisted: dict[str, int] = {}
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def held(self) -> list[int]:
        return self.share.held

    async def start(self) -> None:
        interval = self.rt.settings.scheduler_interval_s
        self._tasks = [
            asyncio.create_task(self._loop("share", self._share_tick, RENEW_S)),
            asyncio.create_task(self._loop("closer", self._close_tick, interval)),
            asyncio.create_task(self._loop("lapser", self._lapse_tick, SWEEP_S)),
            asyncio.create_task(self._loop("persister", self._persist_tick, PERSIST_EVERY_S)),
            asyncio.create_task(self._loop("requeue", self._requeue_tick, SWEEP_S)),
            asyncio.create_task(self._loop("catch-up", self._catch_up_tick, CATCH_UP_S)),
        ]

    async def stop(self) -> None:
        await stop_all(self._tasks)  # also a loop that lost its cancellation (gateway/tasks)
        with contextlib.suppress(Exception):  # best effort: the leases lapse anyway
            await self.share.leave()

    @staticmethod
    async def _loop(name: str, tick: Callable[[], Awaitable[object]], every: float) -> None:
        while True:
            try:
                await tick()
            except asyncio.CancelledError:
                raise
            except INFRASTRUCTURE_ERRORS as e:
                service = service_of(e)
                metrics.BACKEND_ERRORS.labels(service).inc()
                # the class only: a database error's text may quote the statement's values
                log.warning("backend_error", loop=name, service=service,
                            error=type(e).__name__)
            except Exception:
                log.exception("loop_failed", loop=name)
            await asyncio.sleep(every)

    async def _share_tick(self) -> None:
        before = list(self.held)
        held = await self.share.renew()
        if held != before:
            log.info("bucket_share", worker=self.token, buckets=len(held), was=len(before),
                     workers=self.share.workers)
        if 0 in held and (n := await self.portal.durability.ensure_book()):
            log.warning("book_rebuilt", rounds=n)  # the book had lost its data set

    async def _close_tick(self) -> None:
        # a full batch closed: more rounds may share that deadline, so go on without the pause
        while self.held:
            closed = await self.portal.closing.close_batch(CLOSE_BATCH, self.held)
            for c in closed:
                if c.lag_ms is not None:
                    metrics.CLOSE_LAG.observe(max(0, c.lag_ms) / 1000)
                    log.info("round_closed", round_id=c.round_id,
                             reference_number=c.reference_number, close_lag_ms=c.lag_ms)
            if len(closed) < CLOSE_BATCH:
                return

    async def _lapse_tick(self) -> None:
        if self.held:
            for rid in await self.portal.closing.lapse_due(self.held):
                log.info("round_lapsed", round_id=rid)

    async def _persist_tick(self) -> None:
        if self.held:
            self._persisted("dirty", await self.portal.durability.persist_dirty(
                self.held, self.persisted))

    async def _requeue_tick(self) -> None:
        if self.held and (n := await self.portal.durability.requeue_overdue(
                buckets=self.held)):
            log.warning("rounds_requeued", rounds=n)  # were missing from the deadline index

    async def _catch_up_tick(self) -> None:
        if not self.held:
            metrics.PERSISTER_LAG_EVENTS.set(0)
            metrics.PERSISTER_LAG_SECONDS.set(0)
            return
        got = await self.portal.durability.catch_up(self.persisted, self.held)
        self.persisted = got.known
        metrics.PERSISTER_LAG_EVENTS.set(got.lag_events)
        metrics.PERSISTER_LAG_SECONDS.set(got.lag_ms / 1000)
        self._persisted("catch_up", got.written)

    @staticmethod
    def _persisted(source: str, written: Persisted) -> None:
        if written.events:
            log.info("persisted", source=source, rounds=written.rounds,
                     events=written.events)
