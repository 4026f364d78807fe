"""Database engine from ``DATABASE_URL``: plain ``sqlite:///path`` and ``postgresql://...`` URLs
are accepted and given their async driver (aiosqlite, asyncpg) here, in one place."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

MIGRATIONS = Path(__file__).with_name("migrations")
#: a new SQLite connection's set-up, retried this long at most while the database is locked:
#: a WAL database answers SQLITE_BUSY at once, without its busy timeout, to a connection that
#: opens it while another runs its recovery or the last one's clean-up
#: (sqlite.org/wal.html, "Sometimes Queries Return SQLITE_BUSY In WAL Mode"), e.g. two
#: processes' first connections at the same moment
OPEN_RETRY_S = 2.0


def async_url(url: str) -> str:
    u = make_url(url)
    if u.drivername in ("sqlite", "sqlite+pysqlite"):
        u = u.set(drivername="sqlite+aiosqlite")
    elif u.drivername in ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg"):
        u = u.set(drivername="postgresql+asyncpg")
    return u.render_as_string(hide_password=False)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, timeout_s: float = 10.0) -> AsyncEngine:
    """``timeout_s`` (PostgreSQL): connecting, one statement, and waiting for a pooled
    connection each give up after it, so a hung (not dead) server fails a request instead of
    holding it (SQLite's wait is its busy timeout)."""
    aurl = async_url(url)
    if is_sqlite(aurl):
        engine = create_async_engine(aurl, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            give_up = time.monotonic() + OPEN_RETRY_S
            while True:
                cur = dbapi_conn.cursor()
                try:
                    cur.execute("PRAGMA journal_mode=WAL")
                    cur.execute("PRAGMA synchronous=FULL")
                    cur.execute("PRAGMA busy_timeout=30000")
                    cur.execute("PRAGMA foreign_keys=ON")
                    return
                except sqlite3.OperationalError as e:
                    if "locked" not in str(e) or time.monotonic() > give_up:
                        raise
                finally:
                    cur.close()
                time.sleep(0.01)  # the event loop waits too (a synchronous hook): in that race only

        return engine
    engine = create_async_engine(aurl, pool_size=10, max_overflow=10, pool_pre_ping=True,
                                 pool_timeout=timeout_s,
                                 connect_args={"timeout": timeout_s, "command_timeout": timeout_s})
    _errors_are_sql(engine)
    return engine


def _errors_are_sql(engine: AsyncEngine) -> None:
    """asyncpg's own OSError while connecting (ConnectionRefusedError while the server is down,
    a TimeoutError) reaches the caller as the driver's ``OperationalError``, which SQLAlchemy
    wraps like every other database failure: the service is then named "sql" in
    ``backend_error`` lines and ``ige_backend_errors_total``, not "other"."""

    @event.listens_for(engine.sync_engine, "do_connect")
    def _connect(dialect: Any, _rec: Any, cargs: Any, cparams: Any) -> Any:
        try:
            return dialect.loaded_dbapi.connect(*cargs, **cparams)
        except OSError as e:
            raise dialect.loaded_dbapi.OperationalError(f"{type(e).__name__}: {e}") from e


def migrate(url: str) -> None:
    """Apply all Alembic migrations (blocking). Alembic's env runs its own event loop, so when
    called from inside a running loop the work moves to a helper thread."""
    import asyncio
    import threading

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _migrate(url)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            _migrate(url)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(e)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if errors:
        raise errors[0]


def _migrate(url: str) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", async_url(url).replace("%", "%%"))
    command.upgrade(cfg, "head")
