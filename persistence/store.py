"""The SQL side as one unit of work per use case.

``async with store.unit() as tx:`` opens one transaction; the repositories on ``tx`` (rounds,
offers, banks, exporters, audit, companies, applications, ledger) all work inside it, and it
is rolled back unless the use case calls ``await tx.commit()``. ``store.read()`` gives the same
repositories on a connection without a write transaction, for reads.

Writes that may race across processes are made idempotent by unique constraints and
conditional updates, never by in-process locks: a unique constraint that refuses a write
surfaces as ``Conflict`` (the unit is rolled back).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from persistence.accounts import Audit, Banks, DeskUsers, Exporters
from persistence.applications import Applications, Companies, Ledger
from persistence.db import create_engine, is_sqlite
from persistence.operators import Console, Operators
from persistence.rounds import Offers, Rounds


class StoreError(Exception):
    """Infrastructure failure or broken invariant in the SQL store."""


class Conflict(StoreError):
    """A unique constraint refused a write: another writer got there first."""


class Tx:
    """The repositories of one unit of work, sharing one connection (and transaction)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.rounds = Rounds(conn)
        self.offers = Offers(conn)
        self.banks = Banks(conn)
        self.exporters = Exporters(conn)
        self.desk_users = DeskUsers(conn)
        self.audit = Audit(conn)
        self.companies = Companies(conn)
        self.applications = Applications(conn)
        self.ledger = Ledger(conn)
        self.operators = Operators(conn)
        self.console = Console(conn)
        self.committed = False

    async def commit(self) -> None:
        await self.conn.commit()
        self.committed = True


class Store:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # SQLite has one writer at a time and makes the others sleep and retry: units that ask
        # to be serialised (the persister's batches and the closes) take turns in-process
        # instead; their Redis work overlaps
        self._turns: contextlib.AbstractAsyncContextManager[Any] = (
            asyncio.Lock() if engine.dialect.name == "sqlite" else contextlib.nullcontext())

    @classmethod
    def from_url(cls, url: str, timeout_s: float = 10.0) -> Store:
        return cls(create_engine(url, timeout_s))

    @property
    def is_sqlite(self) -> bool:
        return is_sqlite(str(self.engine.url))

    async def aclose(self) -> None:
        await self.engine.dispose()

    @contextlib.asynccontextmanager
    async def unit(self, serialized: bool = False) -> AsyncIterator[Tx]:
        """One transaction: rolled back unless ``commit`` is called. ``serialized``: take this
        process's turn first (SQLite only; a no-op elsewhere)."""
        async with contextlib.AsyncExitStack() as stack:
            if serialized:
                await stack.enter_async_context(self._turns)
            try:
                async with self.engine.connect() as conn:
                    await conn.begin()
                    tx = Tx(conn)
                    try:
                        yield tx
                    finally:
                        if not tx.committed and conn.in_transaction():
                            await conn.rollback()
            except IntegrityError as e:
                raise Conflict(str(e.orig)) from e

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[Tx]:
        """The repositories on a plain connection, for reads (nothing is committed)."""
        async with self.engine.connect() as conn:
            yield Tx(conn)
