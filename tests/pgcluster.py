"""A private PostgreSQL cluster a test may kill -9 and restart: ``initdb`` into a fresh
directory, ``postgres`` on a free port of 127.0.0.1 (trust authentication, user postgres).

The binaries come from ``PATH`` or ``/usr/lib/postgresql/<newest>/bin``. PostgreSQL refuses to
run as root: a root test session runs the cluster as the ``postgres`` system user (its directory
handed over to it), any other user runs it as itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from gateway.redis_server import free_port, port_open


def pg_bin() -> Path | None:
    """The directory of initdb and postgres, or None when PostgreSQL is not installed."""
    found = shutil.which("initdb")
    if found and shutil.which("postgres"):
        return Path(found).parent
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                  key=lambda d: int(Path(d).parent.name) if Path(d).parent.name.isdigit() else 0)
    for d in reversed(dirs):
        if (Path(d) / "initdb").exists() and (Path(d) / "postgres").exists():
            return Path(d)
    return None


def _run_as() -> str | None:
    """The user to run PostgreSQL as (None: this process's own)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return None
    return "postgres"


@dataclass
class PgCluster:
    bindir: Path
    data_dir: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    user: str | None = None

    @classmethod
    def create(cls) -> PgCluster:
        bindir = pg_bin()
        if bindir is None:
            raise RuntimeError("no PostgreSQL binaries (initdb, postgres)")
        user = _run_as()
        # outside the test's tmp_path: pytest's directories are private to root
        root = Path(tempfile.mkdtemp(prefix="ige-pg-"))
        data = root / "data"
        if user is not None:
            pw = pwd.getpwnam(user)
            os.chown(root, pw.pw_uid, pw.pw_gid)
        out = subprocess.run([str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
                              "-A", "trust", "-E", "UTF8", "--no-sync"],
                             user=user, capture_output=True, cwd=root, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"initdb failed: {out.stderr.decode(errors='replace')[-2000:]}")
        return cls(bindir, data, free_port(), user=user)

    @property
    def base_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str, port: int | None = None) -> str:
        """The URL of a database of this cluster (``port``: a fault proxy's in front of it)."""
        return f"postgresql://postgres@127.0.0.1:{port or self.port}/{database}"

    def start(self, timeout: float = 30) -> PgCluster:
        log = open(self.data_dir.parent / "postgres.log", "ab")  # noqa: SIM115 - kept by the child
        self.proc = subprocess.Popen(
            [str(self.bindir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port),
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.data_dir}",
             "-c", "max_connections=100", "-c", "shared_buffers=32MB", "-c", "fsync=on"],
            user=self.user, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            cwd=self.data_dir.parent)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited: {self.log_text()[-2000:]}")
            if port_open("127.0.0.1", self.port) and self._answers():
                return self
            time.sleep(0.05)
        raise RuntimeError(f"postgres did not start: {self.log_text()[-2000:]}")

    def _answers(self) -> bool:
        import asyncpg

        async def ping() -> None:
            conn = await asyncpg.connect(self.base_url, timeout=2)
            await conn.close()

        try:
            asyncio.run(ping())
            return True
        except Exception:  # noqa: BLE001 - starting up, recovering
            return False

    def log_text(self) -> str:
        p = self.data_dir.parent / "postgres.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def kill(self) -> None:
        """kill -9 the postmaster and every backend (the process group): a crash."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        # backends die with the group; wait until the port is free for the restart
        deadline = time.monotonic() + 10
        while port_open("127.0.0.1", self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)

    def create_database(self, name: str) -> str:
        import asyncpg

        async def run() -> None:
            conn = await asyncpg.connect(self.base_url, timeout=10)
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            finally:
                await conn.close()

        asyncio.run(run())
        return self.url(name)
