"""The bench's layout (loadtests/bench/parts.py): the worker beside the api at a lower CPU
weight, Redis's core left to Redis and the load generators; and the weight really taken."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from loadtests.bench import parts
from loadtests.bench.tools import SLOW_MS
from loadtests.local_server import pinned_popen

PROBE = """
import os
from pathlib import Path
print(os.getpriority(os.PRIO_PROCESS, 0))
ag = Path("/proc/self/autogroup")
print(ag.read_text().strip() if ag.exists() else "none")
print(",".join(map(str, sorted(os.sched_getaffinity(0)))))
"""


def test_a_process_started_at_a_lower_weight_has_it_in_its_session_too() -> None:
    p = pinned_popen([sys.executable, "-c", PROBE], {0}, nice=10, stdout=subprocess.PIPE)
    niceness, autogroup, cpus = p.communicate(timeout=60)[0].decode().split("\n")[:3]
    assert p.returncode == 0
    assert niceness == "10"
    assert cpus == "0"
    if Path("/proc/self/autogroup").exists():
        # a session of its own, and that group's weight lowered as well (a niceness alone
        # counts only against the group's own processes)
        assert autogroup.endswith("nice 10")
        # the test's own group: a process still in the kernel's default group (a service
        # started without a session of its own, as under CI) reads an empty file
        ours = Path("/proc/self/autogroup").read_text().split()
        assert autogroup.split()[0] != (ours[0] if ours else "(default)")


def test_a_process_started_without_a_weight_keeps_the_default() -> None:
    p = pinned_popen([sys.executable, "-c", PROBE], None, stdout=subprocess.PIPE)
    niceness = p.communicate(timeout=60)[0].decode().split("\n")[0]
    assert niceness == str(os.getpriority(os.PRIO_PROCESS, 0))


@pytest.mark.parametrize(("at", "cpus", "nice"), [("api", parts.SERVER_CPU, parts.WORKER_NICE),
                                                  ("redis", parts.REST_CPU, 0)])
def test_the_worker_goes_beside_the_api_at_a_lower_weight_or_beside_redis(
        monkeypatch: pytest.MonkeyPatch, at: str, cpus: set[int], nice: int) -> None:
    monkeypatch.setitem(parts.LAYOUT, "worker", at)
    api, stream, worker = parts.apart()
    assert (api.cpus, api.nice, stream.cpus, stream.nice) == (parts.SERVER_CPU, 0,
                                                              parts.SERVER_CPU, 0)
    assert (worker.roles, worker.cpus, worker.nice) == ("worker", cpus, nice)
    assert not parts.REST_CPU & parts.SERVER_CPU  # Redis's core is not the roles'
    # Redis's rewrite child goes where the worker goes: beside the api, or left beside Redis
    # and its latency monitor is on in either layout (each run counts its slow fsyncs)
    monitor = ("--latency-monitor-threshold", str(SLOW_MS))
    assert parts.redis_args() == ((*monitor, "--aof_rewrite_cpulist", "0") if at == "api"
                                  else monitor)
