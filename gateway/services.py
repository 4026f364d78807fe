"""The composition root and use cases: carries data between HTTP/WebSocket, the pure core
(auction/), the Redis book and the SQL store. Business decisions stay in auction/."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

from auction import calendar
from auction.apr import apr_e4
from auction.book import Event
from auction.model import (
    CloseResult,
    OfferTerms,
    Outcome,
    RoundState,
    RoundTerms,
    SubmitResult,
    dt_to_ms,
    ms_to_dt,
)
from auction.redis_book import DEADLINES, RedisBook
from auction.rules import KEY_WIDTH, label_pool, new_ref, validate_offer
from gateway.clock import now_ms
from gateway.problems import Problem, invalid
from gateway.security import TokenSigner, new_id
from gateway.settings import Settings
from persistence.db import create_engine, is_sqlite
from persistence.store import Store, round_terms

log = logging.getLogger("ige")

PERSISTER_LOCK = "ige:lock:persister"
ALIVE_KEY = "ige:alive"  # absent => Redis lost its data set: rebuild live rounds from SQL
REDIS_POOL_SIZE = 256  # Redis connections per gateway process
CLOSE_CONCURRENCY = 32  # due rounds one process closes at once


def raise_for(res: SubmitResult) -> None:
    """A book refusal -> its problem, in one place."""
    if res.outcome in (Outcome.OK, Outcome.IDEMPOTENCY_REPLAY):
        return
    if res.outcome is Outcome.ROUND_CLOSED:
        raise Problem(409, "round_closed", "the round's deadline has passed")
    if res.outcome is Outcome.IDEMPOTENCY_MISMATCH:
        raise Problem(422, "idempotency_mismatch",
                      "this Idempotency-Key was used with a different request")
    raise Problem(404, "not_found", "no such offer in this round")


class Core:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # commands time out so a hung (not dead) Redis cannot hold SQL locks or requests for
        # long; the pub/sub subscriber blocks on reads by design, so it has its own client
        # A blocking pool: past REDIS_POOL_SIZE commands in flight a request waits for a free
        # connection (up to the same 5 s) instead of failing with "Too many connections" (503),
        # which redis-py's default pool of 100 did to bursts of bids and stream subscriptions.
        self.redis = Redis.from_pool(BlockingConnectionPool.from_url(
            settings.redis_url, max_connections=REDIS_POOL_SIZE, timeout=5,
            health_check_interval=5, socket_keepalive=True, socket_timeout=5,
            socket_connect_timeout=5))
        self.pubsub_redis = Redis.from_url(settings.redis_url, health_check_interval=5,
                                           socket_keepalive=True, socket_connect_timeout=5)
        self.book = RedisBook(self.redis, settings.channel)
        self.engine = create_engine(settings.database_url)
        self.store = Store(self.engine)
        self.tokens = TokenSigner(settings.secret_key)
        self._terms: OrderedDict[str, RoundTerms] = OrderedDict()
        # SQLite has one writer at a time and makes the others sleep and retry: the persister
        # and closes running side by side take turns here instead (their Redis work overlaps)
        self._sql_writes: contextlib.AbstractAsyncContextManager[Any] = (
            asyncio.Lock() if is_sqlite(settings.database_url) else contextlib.nullcontext())
        self._banks: dict[str, Any] = {}
        self._banks_loaded = 0.0

    async def aclose(self) -> None:
        await self.redis.aclose()
        await self.pubsub_redis.aclose()
        await self.engine.dispose()

    # -- reference data ---------------------------------------------------------------
    async def bank(self, bank_id: str) -> Any:
        if bank_id not in self._banks or time.monotonic() - self._banks_loaded > 30:
            self._banks = {b.id: b for b in await self.store.all_banks()}
            self._banks_loaded = time.monotonic()
        return self._banks.get(bank_id)

    async def terms(self, round_id: str) -> RoundTerms | None:
        """Round terms never change once opened, so they are cached per process."""
        t = self._terms.get(round_id)
        if t is None:
            row = await self.store.get_round(round_id)
            if row is None:
                return None
            t = round_terms(row)
            self._terms[round_id] = t
            if len(self._terms) > 20_000:
                self._terms.popitem(last=False)
        return t

    # -- opening ----------------------------------------------------------------------
    async def open_round(self, *, loan_type: str, currency: str, loan_amount: int,
                         guarantee_amount: int, tenor_months: int, grace_months: int,
                         export_commitment: bool, company: dict[str, Any],
                         assessment: dict[str, Any] | None, exporter_user_id: str | None,
                         application_id: str | None, actor: str,
                         opened_at: datetime | None = None) -> RoundTerms:
        opened = opened_at or datetime.now(timezone.utc)
        closes = calendar.round_closes_at(opened, self.settings.calendar)
        t = RoundTerms(new_id("rnd"), currency, loan_type, loan_amount, guarantee_amount,
                       tenor_months, grace_months, export_commitment,
                       dt_to_ms(opened), dt_to_ms(closes))
        # enough names for every partner bank, so no bidder ever gets a numbered fallback label
        labels = label_pool(max(26, len(await self.store.all_banks())))
        # SQL first: a round exists once it is in SQL; Redis is rebuilt from SQL if needed.
        await self.store.insert_round(t, company, assessment, exporter_user_id, application_id,
                                      labels, actor)
        await self.book.open_round(t, labels)
        await self.redis.publish(self.book.channel, '{"k":"o","r":"%s"}' % t.round_id)
        self._terms[t.round_id] = t
        return t

    # -- bidding ----------------------------------------------------------------------
    def price(self, terms: OfferTerms, rnd: RoundTerms) -> int:
        errors = validate_offer(terms, rnd)
        if errors:
            raise invalid([{"field": e.field, "code": e.code, "message": e.message}
                           for e in errors])
        try:
            apr = apr_e4(amount_kurus=terms.amount, annual_rate_e4=terms.annual_rate_e4,
                         tenor_months=terms.tenor_months, grace_months=terms.grace_months,
                         repayment_every_months=terms.repayment_every_months,
                         upfront_fee_kurus=terms.upfront_fee,
                         guarantee_rate_e4=rnd.guarantee_rate_e4)
            # the book's rank key holds apr in KEY_WIDTH digits: a wider one would rank wrongly
            # and vanish from the book view (and from the binding offers at close)
            if not 0 <= apr < 10 ** KEY_WIDTH:
                raise ValueError(f"{apr / 10_000:.0f} % a year is beyond any sane offer")
            return apr
        except (ValueError, ArithmeticError) as e:  # decimal.InvalidOperation on huge values
            raise invalid([{"field": "annual_rate", "code": "no_apr",
                            "message": f"the offer has no meaningful APR: {e}"}]) from None

    @staticmethod
    def idem(bank_id: str, key: str | None, method: str, path: str, raw: bytes
             ) -> tuple[str, str] | None:
        if not key:
            return None
        if len(key) > 200:
            raise invalid([{"field": "Idempotency-Key", "code": "too_long",
                            "message": "at most 200 characters"}])
        scoped = hashlib.sha256(f"{bank_id}\0{key}".encode()).hexdigest()[:32]
        body = hashlib.sha256(method.encode() + b"\0" + path.encode() + b"\0" + raw).hexdigest()[:32]
        return scoped, body

    async def submit(self, rnd: RoundTerms, bank_id: str, terms: OfferTerms,
                     idem: tuple[str, str] | None) -> SubmitResult:
        apr = self.price(terms, rnd)
        res = await self.book.submit(rnd.round_id, bank_id, new_id("off"), new_ref(), terms, apr, idem)
        if res.outcome is Outcome.ROUND_UNKNOWN and await self.restore_round(rnd.round_id):
            res = await self.book.submit(rnd.round_id, bank_id, new_id("off"), new_ref(), terms,
                                         apr, idem)
        raise_for(res)
        return res

    async def revise(self, rnd: RoundTerms, bank_id: str, offer_id: str, terms: OfferTerms,
                     idem: tuple[str, str] | None) -> SubmitResult:
        apr = self.price(terms, rnd)
        res = await self.book.revise(rnd.round_id, bank_id, offer_id, terms, apr, idem)
        if res.outcome is Outcome.ROUND_UNKNOWN and await self.restore_round(rnd.round_id):
            res = await self.book.revise(rnd.round_id, bank_id, offer_id, terms, apr, idem)
        raise_for(res)
        return res

    # -- persistence and recovery --------------------------------------------------------
    async def persist_round(self, round_id: str, persisted_seq: int | None = None) -> int:
        """Copy a round's new events from its Redis stream into SQL; returns the seq reached."""
        if persisted_seq is None:
            row = await self.store.get_round(round_id)
            if row is None:
                return 0
            persisted_seq = int(row.persisted_seq)
        events = await self.book.events(round_id, persisted_seq)
        if not events:
            return persisted_seq

        async def still_current() -> bool:
            # If Redis lost the round and restore_round rebuilt it from SQL after these events
            # were read, they are gone from the live book (or their seqs reused): do not write.
            return await self.book.event(round_id, events[-1].seq) == events[-1]

        async with self._sql_writes:
            written = await self.store.persist_events(round_id, persisted_seq, events, still_current)
        if written:
            return events[-1].seq
        row = await self.store.get_round(round_id)  # someone else persisted: re-read
        return int(row.persisted_seq) if row else 0

    async def restore_round(self, round_id: str) -> bool:
        """Rebuild a round's live state from SQL into a Redis that lost it. SQL is read and Redis
        written under the round's row lock, so a persister batch read from the lost Redis either
        lands first (and is rebuilt) or is refused afterwards (persist_round's still_current)."""
        async with self.store.round_snapshot(round_id) as (row, versions, closing):
            if row is None or row.state not in (RoundState.OPEN.value, RoundState.CLOSED.value):
                return False
            latest: dict[str, Any] = {}
            labels: dict[str, str] = {}
            for v in versions:
                latest[v.offer_id] = v
                labels[v.bank_id] = v.label
            events = [Event(round_id, v.seq, "quote", v) for v in versions]
            closed_at = int(row.closed_at or 0)
            if closing is not None:
                events.append(Event(round_id, int(closing.final_seq), "round_closed",
                                    at_ms=int(closing.closed_at)))
            pool = [lb for lb in row.label_pool if lb not in set(labels.values())]
            created = await self.book.restore(
                round_id, RoundState(row.state), int(row.closes_at), int(row.opened_at),
                closed_at, labels, pool, list(latest.values()), events)
        if created:
            log.warning("restored round %s from SQL (%d versions)", round_id, len(versions))
        return True

    async def ensure_redis_state(self) -> int:
        """If Redis lost its data set, rebuild every live round from SQL. Returns rounds rebuilt."""
        if await self.redis.exists(ALIVE_KEY):
            return 0
        n = 0
        for rid, _ in await self.store.live_round_ids():
            if not await self.book.exists(rid):
                await self.restore_round(rid)
                n += 1
        await self.redis.set(ALIVE_KEY, str(now_ms()))
        return n

    # -- closing ----------------------------------------------------------------------
    async def finalize_close(self, round_id: str) -> CloseResult | None:
        """Close a due round exactly once: Lua flips the live state once, then one SQL
        transaction writes the closing record; any process can finish a close another began."""
        cr = await self.book.close(round_id)
        if cr.outcome is Outcome.ROUND_UNKNOWN:
            if not await self.restore_round(round_id):
                await self.redis.zrem(DEADLINES, round_id)
                return None
            cr = await self.book.close(round_id)
        if cr.outcome is Outcome.NOT_DUE:
            return cr
        row = await self.store.get_round(round_id)
        if row is None:
            return None
        if row.state == RoundState.OPEN.value:
            closes_at = ms_to_dt(int(row.closes_at))
            binding = calendar.binding_until(closes_at, self.settings.calendar)
            # every acknowledged offer must be in SQL before the closing record
            seq = int(row.persisted_seq)
            while (seq := await self.persist_round(round_id, seq)) < cr.seq:
                await asyncio.sleep(0.01)
            async with self._sql_writes:
                written = await self.store.record_close(
                    round_id, cr.closed_at_ms, dt_to_ms(binding), cr.seq, cr.offers,
                    closes_at.astimezone(calendar.ISTANBUL).year)
            if written:
                await self.book.expire_round(round_id, self.settings.live_key_ttl_s)
                await self.redis.publish(self.book.channel, '{"k":"f","r":"%s"}' % round_id)
        await self.redis.zrem(DEADLINES, round_id)
        return cr

    async def close_due(self, limit: int = 200) -> int:
        due = await self.redis.zrangebyscore(DEADLINES, "-inf", now_ms(), start=0, num=limit)
        gate = asyncio.Semaphore(CLOSE_CONCURRENCY)

        async def close_one(rid: str) -> bool:
            # a short claim so processes do not all close the same round; if the claimer dies
            # the claim expires and another process completes the close
            async with gate:
                if not await self.redis.set(f"ige:{{{rid}}}:closing", "1", nx=True, px=10_000):
                    return False
                try:
                    cr = await self.finalize_close(rid)
                    return cr is not None and cr.outcome is not Outcome.NOT_DUE
                except (RedisError, OSError) as e:
                    log.warning("close of %s interrupted: %s", rid, e)
                    return False
                finally:
                    await self.redis.delete(f"ige:{{{rid}}}:closing")

        # rounds sharing a deadline close side by side: each close is a few Redis round trips
        # and two short SQL transactions, mostly waiting, so one at a time left the CPU idle
        return sum(await asyncio.gather(*(close_one(raw.decode()) for raw in due)))

    async def requeue_overdue(self, limit: int = 200) -> int:
        """Put open rounds past their deadline back on the deadline index (a no-op normally).
        Catches rounds nothing else would ever close: an opening cut short between the SQL
        insert and Redis (the operator got a 5xx, yet the round is in the pool), or between
        open.lua and the ZADD, or an index entry Redis lost on its own."""
        now = now_ms()
        due = {r.id: int(r.closes_at) for r in await self.store.list_rounds(
            [RoundState.OPEN.value], limit, None) if int(r.closes_at) <= now}
        return int(await self.redis.zadd(DEADLINES, due, nx=True)) if due else 0
