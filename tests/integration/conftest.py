"""Fixtures of the integration suite: real Redis, real SQLite / PostgreSQL, real ``Core``s.

Every ``Core`` made here has its own Redis client and its own SQL engine, exactly like a
separate gateway process; the ``redis`` fixture (tests/conftest.py) empties the Redis
database before each test.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any, AsyncIterator, Awaitable, Callable

import pytest
from redis.asyncio import Redis

from auction.calendar import CalendarRules
from auction.model import OfferTerms, RoundTerms
from gateway.services import Core
from gateway.settings import Settings
from persistence.db import create_engine
from persistence.store import Store
from tests.support import ADMIN_TOKEN, SECRET_KEY

LONG = timedelta(minutes=10)  # a round that will not close during a test

COMPANY: dict[str, Any] = {
    "name": "Anadolu Tekstil A.Ş.", "tax_id": "1234567890", "is_sme": True,
    "sector": "textiles",
    "contact": {"name": "Ayşe Yılmaz", "email": "ayse@example.com", "phone": "+905321234567"},
}

CoreFactory = Callable[..., Awaitable[Core]]


def offer_terms(rate_e4: int = 385_000, **changes: Any) -> OfferTerms:
    """Valid terms for a round opened by ``open_round`` (5 000 000.00 TRY, 24 months)."""
    base: dict[str, Any] = dict(
        annual_rate_e4=rate_e4, amount=500_000_000, tenor_months=24, grace_months=6,
        repayment_every_months=3, upfront_fee=0, assumes_export_commitment=True,
        conditions="standart koşullar: teminat mektubu, şube onayı")
    base.update(changes)
    return OfferTerms(**base)


async def open_round(core: Core, **changes: Any) -> RoundTerms:
    args: dict[str, Any] = dict(
        loan_type="working_capital", currency="TRY", loan_amount=500_000_000,
        guarantee_amount=400_000_000, tenor_months=24, grace_months=6, export_commitment=True,
        company=COMPANY, assessment={"score": 712, "band": "B"}, exporter_user_id="usr_test",
        application_id=None, actor="operator")
    args.update(changes)
    return await core.open_round(**args)


def bank_id() -> str:
    return "bnk_" + secrets.token_hex(6)


@pytest.fixture
async def core_factory(redis: Redis, redis_url: str, database_url: str, channel: str
                       ) -> AsyncIterator[CoreFactory]:
    """factory(round_s=600, binding_s=600) -> a new Core on the shared Redis and database."""
    made: list[Core] = []

    async def factory(round_s: float = LONG.total_seconds(),
                      binding_s: float = LONG.total_seconds()) -> Core:
        cal = CalendarRules(round_duration=timedelta(seconds=round_s),
                            binding_duration=timedelta(seconds=binding_s))
        core = Core(Settings(redis_url=redis_url, database_url=database_url,
                             admin_token=ADMIN_TOKEN, secret_key=SECRET_KEY, channel=channel,
                             calendar=cal))
        made.append(core)
        return core

    yield factory
    for c in made:
        await c.aclose()


@pytest.fixture
async def core(core_factory: CoreFactory) -> Core:
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
