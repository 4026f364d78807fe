"""Real parts for tests: Redis (the machine's, else a private server), SQL databases (a fresh
SQLite file; a fresh PostgreSQL database when TEST_DATABASE_URL is set) and real gateway
server processes started with ``ige serve``."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import redis as redis_sync

from gateway.redis_server import free_port, port_open
from tests import conformance

ROOT = Path(__file__).resolve().parent.parent
ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
SECRET_KEY = "test-secret-key-0123456789abcdef0123456789"


# ----------------------------------------------------------------------------- Redis
def claim_redis_db(url: str) -> str | None:
    """Use the machine's Redis if it answers, on a database number no other concurrent test
    session holds (claimed with SET NX on db 0)."""
    u = urlparse(url)
    if not port_open(u.hostname or "127.0.0.1", u.port or 6379):
        return None
    r = redis_sync.Redis(host=u.hostname, port=u.port or 6379, db=0)
    for db in range(1, 16):
        if r.set(f"ige-test-claim:{db}", str(os.getpid()), nx=True, ex=3600):
            return f"redis://{u.hostname}:{u.port or 6379}/{db}"
    return None


def release_redis_db(url: str) -> None:
    u = urlparse(url)
    db = int((u.path or "/0").strip("/") or 0)
    redis_sync.Redis(host=u.hostname, port=u.port or 6379, db=0).delete(f"ige-test-claim:{db}")


# ----------------------------------------------------------------------------- SQL
def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / ('ige-' + uuid.uuid4().hex[:8] + '.db')}"


def _pg_admin(base_url: str, sql: str) -> None:
    """Run one statement on the maintenance database of base_url's server."""
    import asyncio

    import asyncpg

    u = urlparse(base_url)

    async def run() -> None:
        conn = await asyncpg.connect(host=u.hostname, port=u.port or 5432,
                                     user=u.username or "postgres", password=u.password,
                                     database=(u.path or "/postgres").strip("/") or "postgres")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def create_pg_database(base_url: str) -> tuple[str, str]:
    """A fresh database on the PostgreSQL server of base_url; returns (url, name)."""
    u = urlparse(base_url)
    name = "ige_t_" + uuid.uuid4().hex[:10]
    _pg_admin(base_url, f'CREATE DATABASE "{name}"')
    auth = u.username or "postgres"
    if u.password:
        auth += ":" + u.password
    return f"postgresql://{auth}@{u.hostname}:{u.port or 5432}/{name}", name


def drop_pg_database(base_url: str, name: str) -> None:
    _pg_admin(base_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ----------------------------------------------------------------------------- servers
@dataclass
class ServerProcess:
    """A real ``ige serve`` process."""

    redis_url: str
    database_url: str
    env_extra: dict[str, str] = field(default_factory=dict)
    port: int = 0
    workers: int = 1
    role: str | None = None  # ige serve --role (None: every role)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/stream"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("IGE_")}
        env.update(REDIS_URL=self.redis_url, DATABASE_URL=self.database_url,
                   IGE_ADMIN_TOKEN=ADMIN_TOKEN, IGE_SECRET_KEY=SECRET_KEY,
                   IGE_LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1",
                   # the suite's many logins come from one address: the rate-limit tests set
                   # their own numbers
                   IGE_RATE_PER_ADDRESS="100000/minute", IGE_RATE_PER_ACCOUNT="100000/minute",
                   IGE_RATE_FAILURES="100000/minute")
        env.update(self.env_extra)
        return env

    def start(self, timeout: float = 30) -> ServerProcess:
        self.port = self.port or free_port()
        self.log_path = self.log_path or (Path(os.environ.get("TMPDIR", "/tmp"))
                                          / f"ige-server-{self.port}.log")
        with open(self.log_path, "ab") as log:  # the server keeps its own copy of the file
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "serve", "--host", "127.0.0.1",
                 "--port", str(self.port), "--workers", str(self.workers),
                 *(["--role", self.role] if self.role else [])],
                env=self.env(), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_text()[-3000:]}")
            try:
                if httpx.get(self.base_url + "/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not become ready: {self.log_text()[-3000:]}")

    def log_text(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """kill -9 the whole process group (uvicorn's workers included)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


# ----------------------------------------------------------------------------- API helpers
ROUND_BODY: dict[str, Any] = {
    "company": {"name": "Anadolu Tekstil A.Ş.", "tax_id": "1234567890", "is_sme": True,
                "sector": "textiles",
                "contact": {"name": "Ayşe Yılmaz", "email": "ayse@example.com",
                            "phone": "+905321234567"}},
    "loan_type": "working_capital", "currency": "TRY", "loan_amount": "5000000.00",
    "guarantee_amount": "4000000.00", "tenor_months": 24, "grace_months": 6,
    "export_commitment": True,
}

OFFER_BODY: dict[str, Any] = {
    "annual_rate": "38.50", "amount": "5000000.00", "tenor_months": 24, "grace_months": 6,
    "repayment_every_months": 3, "upfront_fee": "0.00", "assumes_export_commitment": True,
    "conditions": "standard",
}


def checked_client(**kwargs: Any) -> httpx.Client:
    """An httpx client whose every response is checked against the OpenAPI document
    (tests/conformance.py)."""
    return httpx.Client(event_hooks={"response": [conformance.hook]}, **kwargs)


#: for one-off calls outside an ``Api`` (``HTTP.get(url, ...)`` instead of ``httpx.get``)
HTTP = checked_client(timeout=15)


class Api:
    """Thin synchronous client for tests: admin, banks, exporters. Every response is checked
    against the OpenAPI document."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url
        self.http = checked_client(base_url=base_url, timeout=30)
        self.admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    def create_bank(self, code: str | None = None, name: str | None = None) -> dict[str, Any]:
        code = code or "B" + secrets.token_hex(3).upper()
        r = self.http.post("/v1/admin/banks",
                           json={"bank_code": code, "name": name or f"Bank {code}"},
                           headers=self.admin)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def bank_token(self, creds: dict[str, Any]) -> dict[str, str]:
        r = self.http.post("/v1/oauth/token", data={
            "grant_type": "client_credentials", "client_id": creds["client_id"],
            "client_secret": creds["client_secret"]})
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['access_token']}"}

    def open_round(self, **overrides: Any) -> dict[str, Any]:
        r = self.http.post("/v1/admin/rounds", json={**ROUND_BODY, **overrides}, headers=self.admin)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def offer(self, headers: dict[str, str], round_id: str, **overrides: Any) -> httpx.Response:
        return self.http.post(f"/v1/bank/rounds/{round_id}/offers",
                              json={**OFFER_BODY, **overrides}, headers=headers)

    def ticket(self, headers: dict[str, str]) -> str:
        r = self.http.post("/v1/stream/tickets", headers=headers)
        assert r.status_code == 201, r.text
        return str(r.json()["ticket"])
