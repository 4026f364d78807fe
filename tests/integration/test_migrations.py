"""The Alembic migrations build exactly the schema of persistence.tables, on SQLite and on
PostgreSQL, and running them again changes nothing."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text

from persistence.db import MIGRATIONS, create_engine, migrate
from persistence.records import BankRecord
from persistence.store import Store
from persistence.tables import metadata


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
