"""Fixtures for the end-to-end modules: one real ``ige serve`` process per module, and real
exporter accounts (registration, two-factor activation, login).

Starting a server (and hashing bank secrets with Argon2) costs about a second, so modules that
do not need a fresh process per test share one. Everything stays real: Redis, SQLite, the
server process, HTTP and WebSocket clients.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest
import redis as redis_sync

from tests.support import Api, ServerProcess, sqlite_url

VALID_TCKN = "10000000146"
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def module_server_factory(redis_url: str, channel: str,
                          tmp_path_factory: pytest.TempPathFactory
                          ) -> Iterator[Callable[..., ServerProcess]]:
    """factory(**IGE_env) -> a started server shared by the tests of one module.

    The session's Redis database is emptied before the module's first server starts (a
    previous module's rounds, deadlines and persister lease would otherwise be picked up by
    this server) and again after the module's servers stopped. Servers of one module share one
    SQLite file, so two of them are one deployment, never two competing ones.
    """
    from persistence.db import migrate

    tmp: Path = tmp_path_factory.mktemp("e2e-server")
    db = sqlite_url(tmp)
    migrate(db)
    started: list[ServerProcess] = []
    redis_sync.Redis.from_url(redis_url).flushdb()

    def factory(**env: str) -> ServerProcess:
        srv = ServerProcess(redis_url, db, {"IGE_REDIS_CHANNEL": channel, **env},
                            log_path=tmp / f"server-{len(started)}.log")
        started.append(srv)
        return srv.start()

    yield factory
    for s in started:
        s.stop()
    redis_sync.Redis.from_url(redis_url).flushdb()


def register_exporter(api: Api, *, activate: bool = True, login: bool = True) -> dict[str, Any]:
    """A real exporter account: register, activate with a first TOTP code, log in with the
    next one (a code is accepted once, so activation and login use different time steps)."""
    email = f"exporter-{secrets.token_hex(4)}@example.com"
    reg = api.http.post("/v1/exporter/register", json={
        "full_name": "Ayşe Yılmaz", "national_id": VALID_TCKN, "email": email,
        "mobile": "+905321234567", "password": PASSWORD})
    assert reg.status_code == 201, reg.text
    totp = pyotp.TOTP(pyotp.parse_uri(reg.json()["totp_uri"]).secret)
    out: dict[str, Any] = {"user_id": reg.json()["user_id"], "email": email, "totp": totp,
                           "password": PASSWORD, "headers": None}
    if activate:
        r = api.http.post("/v1/exporter/activate", json={"email": email, "code": totp.now()})
        assert r.status_code == 200, r.text
        if login:
            r = api.http.post("/v1/exporter/login", json={
                "email": email, "password": PASSWORD, "code": totp.at(time.time() + 30)})
            assert r.status_code == 200, r.text
            out["headers"] = {"Authorization": f"Bearer {r.json()['access_token']}"}
    return out


@pytest.fixture(scope="session")
def new_exporter() -> Callable[..., dict[str, Any]]:
    """new_exporter(api, activate=True, login=True) -> {user_id, email, totp, password, headers}."""
    return register_exporter
