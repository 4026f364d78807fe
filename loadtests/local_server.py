"""A private stack for load runs: a durable Redis (AOF, appendfsync always), a fresh SQLite file
and ``ige serve`` on free ports, optionally pinned to CPUs; everything stops on exit."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from gateway.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent


def pin(pid: int, cpus: set[int] | None) -> None:
    """taskset -p for a running process (its threads created later inherit it)."""
    if cpus:
        os.sched_setaffinity(pid, cpus)


def cpu_text(cpus: set[int] | None) -> str:
    return ",".join(str(c) for c in sorted(cpus)) if cpus else "any"


def pinned_popen(cmd: list[str], cpus: set[int] | None, **kw: Any) -> subprocess.Popen[bytes]:
    """Start ``cmd`` already pinned (children, e.g. uvicorn workers, inherit the affinity)."""
    def pre() -> None:
        if cpus:
            os.sched_setaffinity(0, cpus)
    return subprocess.Popen(cmd, preexec_fn=pre, start_new_session=True, **kw)


@dataclass
class LocalStack:
    workers: int = 1
    server_cpus: set[int] | None = None
    redis_cpus: set[int] | None = None
    env: dict[str, str] = field(default_factory=dict)
    data_dir: Path | None = None
    admin_token: str = field(default_factory=lambda: "load-admin-" + secrets.token_hex(12))
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(36))
    database_url: str = ""
    redis: RedisServer | None = None
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    _tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def server_env(self) -> dict[str, str]:
        assert self.redis is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("IGE_")}
        env.update(REDIS_URL=self.redis.url, DATABASE_URL=self.database_url,
                   IGE_ADMIN_TOKEN=self.admin_token, IGE_SECRET_KEY=self.secret_key,
                   IGE_LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1")
        env.update(self.env)
        return env

    def start(self) -> LocalStack:
        if self.data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="ige-load-")
            self.data_dir = Path(self._tmp.name)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.redis = RedisServer(self.data_dir / "redis").start()
        assert self.redis.proc is not None
        pin(self.redis.proc.pid, self.redis_cpus)
        from persistence.db import migrate

        self.database_url = self.database_url or f"sqlite:///{self.data_dir / 'ige.db'}"
        migrate(self.database_url)
        self.start_server()
        return self

    def start_server(self) -> None:
        assert self.data_dir is not None, "start() sets the data directory"
        self.port = self.port or free_port()
        server_log = self.data_dir / "server.log"
        # the child keeps its own copy of the log's descriptor
        with open(server_log, "ab") as log:
            self.proc = pinned_popen(
                [sys.executable, "-m", "gateway.cli", "serve", "--host", "127.0.0.1",
                 "--port", str(self.port), "--workers", str(self.workers)],
                self.server_cpus, env=self.server_env(), cwd=ROOT, stdout=log,
                stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited; see {server_log}")
            try:
                if httpx.get(self.base_url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not become ready")

    def server_pids(self) -> list[int]:
        """The process(es) serving requests: the uvicorn process, or its workers."""
        import psutil

        assert self.proc is not None
        p = psutil.Process(self.proc.pid)
        kids = [c.pid for c in p.children(recursive=True)
                if "multiprocessing" not in " ".join(c.cmdline())
                or "spawn_main" in " ".join(c.cmdline())]
        workers = [k for k in kids
                   if "resource_tracker" not in " ".join(psutil.Process(k).cmdline())]
        return workers if self.workers > 1 and workers else [self.proc.pid]

    def stop_server(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        self.stop_server()
        if self.redis is not None:
            self.redis.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
