"""A private stack for load runs: a durable Redis (AOF, appendfsync always), a fresh SQLite file
and one or more ``ige serve`` processes on free ports, each with its roles (``--role``), its
number of processes (``--workers``) and its CPUs; everything stops on exit.

The default is one process with every role (what ``make run`` starts). A production-like
layout runs the roles apart, e.g. ``[Server("api"), Server("stream"), Server("worker")]``;
``relayout`` swaps the server processes while Redis and the database stay.
"""

from __future__ import annotations

import contextlib
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
ALL_ROLES = "api,stream,worker"


def pin(pid: int, cpus: set[int] | None) -> None:
    """taskset -p for a running process (its threads created later inherit it)."""
    if cpus:
        os.sched_setaffinity(pid, cpus)


def cpu_text(cpus: set[int] | None) -> str:
    return ",".join(str(c) for c in sorted(cpus)) if cpus else "any"


def pinned_popen(cmd: list[str], cpus: set[int] | None, nice: int = 0,
                 **kw: Any) -> subprocess.Popen[bytes]:
    """Start ``cmd`` already pinned (children, e.g. uvicorn workers, inherit the affinity) in a
    session of its own, ``nice`` the lower CPU weight it gets (see ``lower_weight``)."""
    def pre() -> None:
        if cpus:
            os.sched_setaffinity(0, cpus)
        if nice:
            lower_weight(nice)
    return subprocess.Popen(cmd, preexec_fn=pre, start_new_session=True, **kw)


def lower_weight(nice: int) -> None:
    """This process's niceness, and its session's: where the kernel groups the CPU by session
    (autogroup, on by default), a niceness counts only against the group's own processes, and
    the group's weight against the others' is set in /proc/self/autogroup."""
    os.nice(nice)
    with contextlib.suppress(OSError):
        Path("/proc/self/autogroup").write_text(str(nice))


@dataclass
class Server:
    """One ``ige serve`` invocation."""

    roles: str = ALL_ROLES
    workers: int = 1
    cpus: set[int] | None = None
    #: a lower CPU weight (niceness): background work that must yield to order entry
    nice: int = 0
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def has(self, role: str) -> bool:
        return role in self.roles.split(",")

    def pids(self) -> list[int]:
        """The processes serving: the uvicorn process, or its worker processes."""
        import psutil

        assert self.proc is not None
        p = psutil.Process(self.proc.pid)
        kids = [c for c in p.children(recursive=True)
                if "resource_tracker" not in " ".join(c.cmdline())]
        return [c.pid for c in kids] if self.workers > 1 and kids else [self.proc.pid]

    def describe(self) -> str:
        n = f"{self.workers} process{'es' if self.workers > 1 else ''}"
        return f"`ige serve --role {self.roles}` ({n})"


#: settings of the caller's environment the servers get (gateway/stalls.py)
PASSED_ON = ("IGE_STALL_TRACE_MS",)


@dataclass
class LocalStack:
    servers: list[Server] = field(default_factory=lambda: [Server()])
    redis_cpus: set[int] | None = None
    env: dict[str, str] = field(default_factory=dict)
    data_dir: Path | None = None
    admin_token: str = field(default_factory=lambda: "load-admin-" + secrets.token_hex(12))
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(36))
    database_url: str = ""
    #: more redis-server options for the stack's Redis
    redis_args: tuple[str, ...] = ()
    redis: RedisServer | None = None
    #: another Redis for the servers (a cluster's ``redis+cluster://`` URL), else the stack's own
    redis_url: str | None = None
    _tmp: tempfile.TemporaryDirectory[str] | None = None

    def _first(self, role: str) -> Server:
        return next(s for s in self.servers if s.has(role))

    @property
    def base_url(self) -> str:
        """The HTTP API (the first server with the api role)."""
        return self._first("api").url

    @property
    def stream_urls(self) -> list[str]:
        """Every server with the stream role (clients are spread over them)."""
        return [s.url for s in self.servers if s.has("stream")]

    def pids(self, role: str | None = None) -> list[int]:
        return [p for s in self.servers if role is None or s.has(role) for p in s.pids()]

    def server_pids(self) -> list[int]:
        return self.pids()

    def server_env(self) -> dict[str, str]:
        assert self.redis is not None
        # the caller's IGE_* settings are not the stack's, but for a diagnosis of its servers
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("IGE_") or k in PASSED_ON}
        env.update(REDIS_URL=self.redis_url or self.redis.url, DATABASE_URL=self.database_url,
                   IGE_ADMIN_TOKEN=self.admin_token, IGE_SECRET_KEY=self.secret_key,
                   IGE_LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1")
        env.update(self.env)
        return env

    def start(self) -> LocalStack:
        if self.data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="ige-load-")
            self.data_dir = Path(self._tmp.name)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.redis = RedisServer(self.data_dir / "redis", extra_args=self.redis_args).start()
        assert self.redis.proc is not None
        pin(self.redis.proc.pid, self.redis_cpus)
        from persistence.db import migrate

        self.database_url = self.database_url or f"sqlite:///{self.data_dir / 'ige.db'}"
        migrate(self.database_url)
        self.start_servers()
        return self

    def start_servers(self) -> None:
        assert self.data_dir is not None, "start() sets the data directory"
        for i, s in enumerate(self.servers):
            s.port = s.port or free_port()
            # the child keeps its own copy of the log's descriptor
            with open(self.data_dir / f"server-{i}-{s.roles.replace(',', '+')}.log", "ab") as log:
                s.proc = pinned_popen(
                    [sys.executable, "-m", "gateway.cli", "serve", "--host", "127.0.0.1",
                     "--port", str(s.port), "--workers", str(s.workers), "--role", s.roles],
                    s.cpus, s.nice, env=self.server_env(), cwd=ROOT, stdout=log,
                    stderr=subprocess.STDOUT)
        for s in self.servers:
            self._wait_ready(s)

    def _wait_ready(self, s: Server) -> None:
        deadline = time.monotonic() + 60
        last = "no answer"
        while time.monotonic() < deadline:
            assert s.proc is not None
            if s.proc.poll() is not None:
                raise RuntimeError(f"server {s.roles} exited; see its log in {self.data_dir}")
            try:
                r = httpx.get(s.url + "/readyz", timeout=1)
                if r.status_code == 200:
                    return
                last = f"{r.status_code} {r.text[:300]}"
            except httpx.HTTPError as e:
                last = repr(e)
            time.sleep(0.1)
        raise RuntimeError(f"server {s.roles} did not become ready: /readyz {last}")

    def relayout(self, servers: list[Server], redis_url: str | None = None) -> None:
        """Replace the server processes (the database stays; so does Redis, unless
        ``redis_url`` names another: None, the stack's own)."""
        self.stop_servers()
        self.servers = servers
        self.redis_url = redis_url
        self.start_servers()

    def stop_servers(self) -> None:
        for s in self.servers:
            if s.proc is not None and s.proc.poll() is None:
                os.killpg(s.proc.pid, signal.SIGTERM)
        for s in self.servers:
            if s.proc is None:
                continue
            try:
                s.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(s.proc.pid, signal.SIGKILL)
                s.proc.wait()
            s.proc = None

    def stop(self) -> None:
        self.stop_servers()
        if self.redis is not None:
            self.redis.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
