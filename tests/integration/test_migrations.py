"""The Alembic migrations build exactly the schema of persistence.tables, on SQLite and on
PostgreSQL, and running them again changes nothing."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, insert, inspect, text

from persistence import tables
from persistence.db import MIGRATIONS, async_url, create_engine, migrate
from persistence.records import BankRecord
from persistence.store import Store
from persistence.tables import metadata
from tests.support import create_pg_database, drop_pg_database, sqlite_url


def schema(conn: Connection) -> dict[str, Any]:
    """Everything the database says about its tables, in a comparable form."""
    insp = inspect(conn)
    out: dict[str, Any] = {}
    for table in sorted(insp.get_table_names()):
        out[table] = {
            "columns": [(c["name"], str(c["type"]), c["nullable"])
                        for c in insp.get_columns(table)],
            "pk": insp.get_pk_constraint(table)["constrained_columns"],
            "indexes": sorted((i["name"] or "", tuple(i["column_names"]), bool(i["unique"]))
                              for i in insp.get_indexes(table)),
            "unique": sorted(tuple(u["column_names"]) for u in insp.get_unique_constraints(table)),
        }
    return out


def head_revision() -> str:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


async def read(url: str) -> tuple[dict[str, Any], list[str]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            shape = await conn.run_sync(schema)
            versions = [r[0] for r in await conn.execute(
                text("SELECT version_num FROM alembic_version"))]
    finally:
        await engine.dispose()
    return shape, versions


async def test_migrating_twice_is_a_no_op_and_keeps_the_data(database_url: str):
    engine = create_engine(database_url)
    async with Store(engine).unit() as tx:
        await tx.banks.add(BankRecord("bnk_1", "ZIRAAT", "Ziraat", "cid-1", "hash", True, 1))
        await tx.commit()
    await engine.dispose()
    before = await read(database_url)
    assert before[1] == [head_revision()]

    migrate(database_url)  # called inside a running loop: alembic runs on a helper thread
    await asyncio.to_thread(migrate, database_url)  # and from a plain thread

    assert await read(database_url) == before
    engine = create_engine(database_url)
    try:
        async with Store(engine).read() as q:
            assert [b.code for b in await q.banks.all()] == ["ZIRAAT"]
    finally:
        await engine.dispose()


async def test_the_migrated_schema_matches_the_table_definitions(database_url: str):
    engine = create_engine(database_url)

    def diff(conn: Connection) -> list[Any]:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True,
                                                     "compare_server_default": True})
        return list(compare_metadata(ctx, metadata))

    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(diff) == []
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()
    assert tables == set(metadata.tables) | {"alembic_version"}


def _alembic(url: str, verb: str, revision: str) -> None:
    from alembic import command

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", async_url(url).replace("%", "%%"))
    getattr(command, verb)(cfg, revision)


@pytest.fixture(params=["sqlite", "postgresql"])
def bare_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new, empty database (no migration applied)."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
        return
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        pytest.skip("TEST_DATABASE_URL is not set")
    url, name = create_pg_database(base)
    try:
        yield url
    finally:
        drop_pg_database(base, name)


def test_rounds_taken_in_before_0003_get_their_application_record(
        bare_database_url: str) -> None:
    """An operator's intake with an exporter, written before intakes were applications: the
    migration gives it the record an intake writes now; a scored application is untouched."""
    url = bare_database_url
    _alembic(url, "upgrade", "0002")
    opened = 1_776_700_000_000
    company = {"name": "Anadolu Tekstil A.Ş.", "tax_id": "1234567890", "is_sme": True,
               "sector": "textiles", "contact": {}}

    async def old_rows() -> None:
        engine = create_engine(url)
        try:
            async with engine.begin() as conn:
                for rid, app_id, user in (("rnd_old", "app_old", "usr_1"),
                                          ("rnd_bare", None, None)):
                    await conn.execute(insert(tables.rounds).values(
                        id=rid, state="open", opened_at=opened, closes_at=opened + 60_000,
                        currency="USD", loan_type="working_capital", loan_amount=100_000,
                        guarantee_amount=80_000, tenor_months=12, grace_months=0,
                        export_commitment=False, company=company,
                        assessment={"score": 70, "band": "B"}, exporter_user_id=user,
                        application_id=app_id, label_pool=["Banka A"], persisted_seq=0,
                        created_at=opened))
        finally:
            await engine.dispose()

    asyncio.run(old_rows())
    _alembic(url, "upgrade", "head")

    async def after() -> list[Any]:
        engine = create_engine(url)
        try:
            async with Store(engine).read() as q:
                return [await q.applications.get("app_old"),
                        await q.applications.of_round("rnd_bare")]
        finally:
            await engine.dispose()

    app, bare = asyncio.run(after())
    assert bare is None  # no application id: an intake without an exporter, left as it was
    assert app is not None
    assert (app.round_id, app.user_id, app.status, app.tax_id, app.company_id) == (
        "rnd_old", "usr_1", "approved", "1234567890", None)
    assert (app.score, app.band, app.created_at) == (70, "B", opened)
    assert app.decision["decided_by"] == "operator"
    assert [r["code"] for r in app.decision["reasons"]] == ["operator_intake"]
    assert app.guarantee_tl == 80_000 * 40  # USD at the package's 40 TL
    assert app.request["loan_amount"] == 100_000
    _alembic(url, "downgrade", "0002")  # and back: the intakes' records go
    _alembic(url, "upgrade", "head")
