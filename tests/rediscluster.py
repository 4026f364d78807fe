"""A real Redis Cluster on loopback for the tests: 3 masters and 3 replicas, each a
``redis-server --cluster-enabled yes`` of its own (AOF ``appendfsync always``, like the
project's private Redis), joined by ``redis-cli --cluster create --cluster-replicas 1``, with a
short node timeout (a killed master's replica takes over within about two seconds).

``redis_cluster`` is session-scoped: one cluster for every test that asks for it (starting it
takes about a second or two); tests keep apart by their round ids and channel prefix. It is
torn down at the end of the session, each server killed by its PID.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
import redis as redis_sync
from redis.crc import key_slot

from gateway.redis_server import AOF_REWRITE_ARGS

MASTERS = 3
REPLICAS_PER_MASTER = 1
NODE_TIMEOUT_MS = 2000
START_TIMEOUT_S = 30.0


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_ports(n: int) -> list[int]:
    """``n`` ports whose cluster bus ports (port + 10000) are free as well."""
    found: list[int] = []
    while len(found) < n:
        p = random.randrange(20_000, 30_000)
        if p not in found and _free(p) and _free(p + 10_000):
            found.append(p)
    return found


@dataclass
class ClusterNode:
    port: int
    data_dir: Path
    proc: subprocess.Popen[bytes] | None = None

    def client(self) -> redis_sync.Redis:
        return redis_sync.Redis(port=self.port, socket_timeout=2)

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("no redis-server on PATH: the Redis Cluster tests need Redis 7 "
                        "(apt-get install redis-server redis-tools; .ci/run installs them)")
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.data_dir), "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                "--appendonly", "yes", "--appendfsync", "always",
                "--appendfilename", "ige.aof", "--save", "", "--daemonize", "no",
                *AOF_REWRITE_ARGS, "--logfile", str(self.data_dir / "redis.log")]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """kill -9 (a crash), by PID."""
        if self.alive():
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@dataclass
class LoopbackCluster:
    root: Path
    nodes: list[ClusterNode] = field(default_factory=list)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes[:3])

    def start(self) -> LoopbackCluster:
        ports = cluster_ports(MASTERS * (1 + REPLICAS_PER_MASTER))
        self.nodes = [ClusterNode(p, self.root / str(p)) for p in ports]
        for n in self.nodes:
            n.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        for n in self.nodes:
            self._wait(deadline, n.client().ping)
        cli = shutil.which("redis-cli")
        if cli is None:
            pytest.fail("no redis-cli on PATH: the Redis Cluster tests need it "
                        "(apt-get install redis-tools; .ci/run installs it)")
        subprocess.run([cli, "--cluster", "create",
                        *[f"127.0.0.1:{n.port}" for n in self.nodes],
                        "--cluster-replicas", str(REPLICAS_PER_MASTER), "--cluster-yes"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       timeout=START_TIMEOUT_S)
        self.wait_ok(deadline)
        return self

    @staticmethod
    def _wait(deadline: float, probe: object) -> None:
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                if probe():  # type: ignore[operator]
                    return
            except (redis_sync.RedisError, OSError) as e:
                last = e
            time.sleep(0.05)
        raise RuntimeError(f"Redis Cluster not ready in time ({last})")

    def wait_ok(self, deadline: float | None = None) -> None:
        """Until every live node reports ``cluster_state:ok`` and agrees on 3 masters with
        their replicas attached."""
        deadline = deadline or time.monotonic() + START_TIMEOUT_S

        def ok() -> bool:
            for n in self.nodes:
                if not n.alive():
                    continue
                c = n.client()
                if c.cluster("info")["cluster_state"] != "ok":
                    return False
                if n.port in self.master_ports() and not c.info("replication").get(
                        "connected_slaves"):
                    return False
                if c.info("replication").get("master_link_status") == "down":
                    return False  # a replica still syncing
            return True

        self._wait(deadline, ok)

    def _any(self) -> redis_sync.Redis:
        for n in self.nodes:
            if n.alive():
                return n.client()
        raise RuntimeError("no node of the cluster is alive")

    def slot_owners(self) -> dict[int, int]:
        """Slot -> port of the master that serves it."""
        owners: dict[int, int] = {}
        for start, end, master, *_ in self._slots():
            for s in range(int(start), int(end) + 1):
                owners[s] = int(master[1])
        return owners

    def master_ports(self) -> set[int]:
        return {int(m[1]) for *_, m in (s[:3] for s in self._slots())}

    def _slots(self) -> list[Any]:
        """``CLUSTER SLOTS``: [start, end, [host, port, id], replicas...] per range."""
        slots = self._any().execute_command("CLUSTER SLOTS")  # type: ignore[no-untyped-call]
        return cast(list[Any], slots)

    def master_of(self, key: str) -> int:
        """The port of the master serving ``key`` (or a channel name: same slot rule)."""
        return self.slot_owners()[key_slot(key.encode())]

    def node(self, port: int) -> ClusterNode:
        return next(n for n in self.nodes if n.port == port)

    def fail_over(self, port: int) -> int:
        """kill -9 the master on ``port``; once its replica has taken its slots over, start
        the killed node again (it rejoins as the new master's replica) and wait until the
        cluster is whole. Returns the new master's port."""
        node = self.node(port)
        slots = [s for s, p in self.slot_owners().items() if p == port]
        node.kill()
        deadline = time.monotonic() + START_TIMEOUT_S
        self._wait(deadline, lambda: self.slot_owners()[slots[0]] != port)
        new = self.slot_owners()[slots[0]]
        node.start()
        self._wait(deadline, lambda: node.client().ping())
        self.wait_ok(deadline)
        return new

    def replica_of(self, port: int) -> int:
        """The port of the (first) replica of the master on ``port``."""
        info = self.node(port).client().info("replication")
        return int(info["slave0"]["port"])

    def freeze(self, port: int) -> None:
        """SIGSTOP the node on ``port`` (connected, but it reads and answers nothing)."""
        proc = self.node(port).proc
        assert proc is not None
        os.kill(proc.pid, signal.SIGSTOP)

    def thaw(self, port: int) -> None:
        proc = self.node(port).proc
        assert proc is not None
        os.kill(proc.pid, signal.SIGCONT)

    def node_id(self, port: int) -> str:
        return str(self.node(port).client().execute_command("CLUSTER MYID").decode())

    def move_slot(self, slot: int, target: int, before_last: Any = None) -> None:
        """Move ``slot`` and its keys to the master on ``target`` as ``redis-cli --cluster
        reshard`` does: IMPORTING on the target, MIGRATING on the source, MIGRATE the keys in
        batches, then SETSLOT NODE on every master. ``before_last``: called once some keys have
        moved and before the slot is handed over (the slot is half-migrated meanwhile)."""
        source = self.slot_owners()[slot]
        if source == target:
            return
        self.start_migration(slot, target)
        first = True
        while self.migrate_keys(slot, source, target, 10 if first else 100):
            if first and before_last is not None:
                before_last()
            first = False
        if first and before_last is not None:
            before_last()
        self.hand_over(slot, source, target)

    def start_migration(self, slot: int, target: int) -> int:
        """IMPORTING on the target, MIGRATING on the source; returns the source's port."""
        source = self.slot_owners()[slot]
        self.node(target).client().execute_command(
            "CLUSTER SETSLOT", slot, "IMPORTING", self.node_id(source))
        self.node(source).client().execute_command(
            "CLUSTER SETSLOT", slot, "MIGRATING", self.node_id(target))
        return source

    def migrate_keys(self, slot: int, source: int, target: int, count: int) -> int:
        """MIGRATE up to ``count`` keys of the slot; returns how many there were."""
        src = self.node(source).client()
        batch = src.execute_command("CLUSTER GETKEYSINSLOT", slot, count)
        if batch:
            src.execute_command("MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", *batch)
        return len(batch)

    def hand_over(self, slot: int, source: int, target: int) -> None:
        """SETSLOT NODE on every master, the target first (as redis-cli does)."""
        dst_id = self.node_id(target)
        for port in (target, source, *sorted(self.master_ports() - {source, target})):
            self.node(port).client().execute_command("CLUSTER SETSLOT", slot, "NODE", dst_id)
        self.wait_ok()

    def flushall(self) -> None:
        for port in self.master_ports():
            self.node(port).client().flushall()

    def stop(self) -> None:
        for n in self.nodes:
            n.kill()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackCluster]:
    """A running 3-master, 3-replica Redis Cluster on loopback for the whole session."""
    cluster = LoopbackCluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def cluster_url(redis_cluster: LoopbackCluster) -> str:
    """``REDIS_URL`` of the session's cluster: ``redis+cluster://127.0.0.1:p1,...``."""
    return redis_cluster.url


@pytest.fixture
async def cluster_redis(redis_cluster: LoopbackCluster) -> AsyncIterator[Any]:
    """A client of the session's Redis Cluster (as the server builds it), every master
    flushed first."""
    from gateway.bootstrap import cluster_client
    from gateway.settings import parse_redis_url

    redis_cluster.flushall()
    r = cluster_client(parse_redis_url(redis_cluster.url), 5.0)
    await r.initialize()
    yield r
    await r.aclose()
