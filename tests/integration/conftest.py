"""Fixtures of the integration suite: real Redis, real SQLite / PostgreSQL, real processes'
worth of adapters and use cases (``Proc``: what the composition root builds for a process).

Every ``Proc`` made here has its own Redis clients and its own SQL engine, exactly like a
separate gateway process; the ``redis`` fixture (tests/conftest.py) empties the Redis
database before each test.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select

from auction.book import Event
from auction.calendar import CalendarRules
from auction.model import CloseResult, OfferTerms, OfferVersion, RoundTerms
from gateway import bootstrap
from gateway.settings import Settings
from persistence.db import create_engine
from persistence.records import ClosingRecord, RoundRecord
from persistence.store import Store
from tests.support import ADMIN_TOKEN, SECRET_KEY
from usecases.applying import Applying
from usecases.bidding import Accepted, OfferDraft, Terms
from usecases.closing import Closing
from usecases.durability import Durability
from usecases.opening import Opening, RoundRequest
from usecases.outcomes import Refusal
from usecases.results import Results
from usecases.testing import memory_deps

LONG = timedelta(minutes=10)  # a round that will not close during a test

COMPANY: dict[str, Any] = {
    "name": "Anadolu Tekstil A.Ş.", "tax_id": "1234567890", "is_sme": True,
    "sector": "textiles",
    "contact": {"name": "Ayşe Yılmaz", "email": "ayse@example.com", "phone": "+905321234567"},
}

def draft(terms: OfferTerms) -> OfferDraft:
    """Terms as a request that parsed without an error would give them."""
    return OfferDraft({"annual_rate": terms.annual_rate_e4, "amount": terms.amount,
                       "tenor_months": terms.tenor_months, "grace_months": terms.grace_months,
                       "repayment_every_months": terms.repayment_every_months,
                       "upfront_fee": terms.upfront_fee,
                       "assumes_export_commitment": terms.assumes_export_commitment,
                       "conditions": terms.conditions})


class Proc:
    """One process's runtime, driven the way its routes and workers drive it."""

    def __init__(self, rt: bootstrap.Runtime) -> None:
        self.rt = rt
        self.portal = rt.portal
        self.book = rt.deps.book
        self.store = rt.store
        self.settings = rt.settings

    async def submit(self, rnd: RoundTerms, bank: str, terms: OfferTerms,
                     idem: tuple[str, str] | None) -> Accepted | Refusal:
        return await self.portal.bidding.submit(bank, rnd.round_id, draft(terms), idem)

    async def revise(self, rnd: RoundTerms, bank: str, offer_id: str, terms: OfferTerms,
                     idem: tuple[str, str] | None) -> Accepted | Refusal:
        return await self.portal.bidding.revise(bank, rnd.round_id, offer_id, draft(terms),
                                                idem)

    async def persist_round(self, round_id: str, seq: int | None = None) -> int:
        return await self.portal.durability.persist_round(round_id, seq)

    async def restore_round(self, round_id: str) -> bool:
        return await self.portal.durability.restore_round(round_id)

    async def ensure_book(self) -> int:
        return await self.portal.durability.ensure_book()

    async def finalize_close(self, round_id: str) -> CloseResult | None:
        return await self.portal.closing.finalize(round_id)

    async def close_due(self, limit: int = 200) -> int:
        return await self.portal.closing.close_due(limit)

    # -- reading SQL
    async def round(self, round_id: str) -> RoundRecord:
        async with self.store.read() as q:
            row = await q.rounds.get(round_id)
        assert row is not None
        return row

    async def closing(self, round_id: str) -> ClosingRecord | None:
        async with self.store.read() as q:
            return await q.rounds.closing(round_id)

    async def binding(self, round_id: str) -> list[tuple[int, OfferVersion]]:
        async with self.store.read() as q:
            return await q.rounds.binding(round_id)

    async def versions(self, round_id: str, bank_id: str | None = None) -> list[OfferVersion]:
        async with self.store.read() as q:
            return await q.offers.of_round(round_id, bank_id)

    async def audit(self, round_id: str) -> list[str]:
        async with self.store.read() as q:
            return [a.action for a in await q.audit.page(round_id, 10_000)]

    async def count(self, table: Any, round_id: str | None = None, **where: str) -> int:
        q = select(func.count()).select_from(table)
        if round_id is not None:
            q = q.where(table.c.round_id == round_id)
        for col, value in where.items():
            q = q.where(table.c[col] == value)
        async with self.store.engine.connect() as conn:
            return int((await conn.execute(q)).scalar_one())


CoreFactory = Callable[..., Awaitable[Proc]]

#: 2026-04-20T15:46:40Z: a fixed clock for the SQL steps of the use cases
T0 = 1_776_700_000_000


class Clock:
    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


class Sql:
    """The SQL steps of the use cases on one store (one process), with a clock of its own."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.clock = Clock()
        deps = memory_deps(store, self.clock)
        self.durability = Durability(deps)
        self.closing = Closing(deps, self.durability)
        self.results = Results(deps)
        self.applying = Applying(deps, Opening(deps, Terms(deps)))

    async def persist(self, round_id: str, from_seq: int, events: list[Event]) -> bool:
        return await self.durability.write(round_id, from_seq, events)

    async def close(self, round_id: str, closed_at: int, binding_until: int, final_seq: int,
                    ranked: list[OfferVersion], year: int) -> bool:
        return await self.closing.record(round_id, closed_at, binding_until, final_seq, ranked,
                                         year) is not None

    async def accept(self, round_id: str, offer_id: str, user: str, now: int) -> str | None:
        self.clock.now = now
        return await self.results.accept_in(round_id, offer_id, user)

    async def lapse_due(self, now: int) -> list[str]:
        self.clock.now = now
        return await self.closing.lapse_due()

    async def round(self, round_id: str) -> RoundRecord | None:
        async with self.store.read() as q:
            return await q.rounds.get(round_id)

    async def versions(self, round_id: str, bank_id: str | None = None) -> list[OfferVersion]:
        async with self.store.read() as q:
            return await q.offers.of_round(round_id, bank_id)

    async def audit(self, round_id: str) -> list[Any]:
        async with self.store.read() as q:
            return await q.audit.page(round_id, 10_000)


@pytest.fixture
def sql(store: Store) -> Sql:
    return Sql(store)


@pytest.fixture
def sql2(second_store: Store) -> Sql:
    """The SQL steps of a second process on the same database."""
    return Sql(second_store)




def offer_terms(rate_e4: int = 385_000, **changes: Any) -> OfferTerms:
    """Valid terms for a round opened by ``open_round`` (5 000 000.00 TRY, 24 months)."""
    base: dict[str, Any] = dict(
        annual_rate_e4=rate_e4, amount=500_000_000, tenor_months=24, grace_months=6,
        repayment_every_months=3, upfront_fee=0, assumes_export_commitment=True,
        conditions="standart koşullar: teminat mektubu, şube onayı")
    base.update(changes)
    return OfferTerms(**base)


async def open_round(core: Proc, opened_at: datetime | None = None, **changes: Any
                     ) -> RoundTerms:
    args: dict[str, Any] = dict(
        loan_type="working_capital", currency="TRY", loan_amount=500_000_000,
        guarantee_amount=400_000_000, tenor_months=24, grace_months=6, export_commitment=True,
        company=COMPANY, assessment={"score": 712, "band": "B"}, exporter_user_id="usr_test",
        application_id=None)
    args.update(changes)
    return await core.portal.opening.open_round(RoundRequest(**args), "operator", opened_at)


def bank_id() -> str:
    return "bnk_" + secrets.token_hex(6)


@pytest.fixture
async def core_factory(redis: Redis, redis_url: str, database_url: str, channel: str
                       ) -> AsyncIterator[CoreFactory]:
    """factory(round_s=600, binding_s=600) -> a new Proc on the shared Redis and database."""
    made: list[Proc] = []

    async def factory(round_s: float = LONG.total_seconds(),
                      binding_s: float = LONG.total_seconds()) -> Proc:
        cal = CalendarRules(round_duration=timedelta(seconds=round_s),
                            binding_duration=timedelta(seconds=binding_s))
        proc = Proc(bootstrap.build(Settings(
            redis_url=redis_url, database_url=database_url, admin_token=ADMIN_TOKEN,
            secret_key=SECRET_KEY, channel=channel, calendar=cal)))
        made.append(proc)
        return proc

    yield factory
    for p in made:
        await p.rt.aclose()


@pytest.fixture
async def core(core_factory: CoreFactory) -> Proc:
    return await core_factory()


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    engine = create_engine(database_url)
    yield Store(engine)
    await engine.dispose()


@pytest.fixture
async def second_store(database_url: str) -> AsyncIterator[Store]:
    """Another Store with its own engine: a second process on the same database."""
    engine = create_engine(database_url)
    yield Store(engine)
    await engine.dispose()
