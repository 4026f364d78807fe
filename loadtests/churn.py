"""What a connection that never sends its request costs the server:

    python -m loadtests.churn [--cap 2000] [--churn 20000] [--rate 4000] [--runs 3]
        [--kinds silent,slow]

Against a private one-process stack (loadtests/local_server.py), with the server's connection
cap at ``--cap`` (``IGE_MAX_CONNECTIONS``): ``--churn`` connections from 8 loopback addresses,
opened at ``--rate`` a second and never finished, so that each new one evicts the oldest (the
steady state of a flood larger than the cap). ``silent`` ones send nothing, ``slow`` ones a
request line (a slow-header client). Measured: the server's CPU time per connection (user +
system, its idle rate subtracted).

CPU time, not wall time: the number depends little on what else the machine runs, mostly on
the work the server does per connection (accept, set-up, eviction, close). Prints a table for
RELIABILITY.md §4; nothing is asserted.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import time
from collections import deque
from typing import Any

import psutil

from loadtests.bench.tools import cpu_seconds, scrape, total
from loadtests.local_server import LocalStack, Server

ADDRESSES = [f"127.0.0.{i}" for i in range(2, 10)]
REQUEST_LINE = b"GET /healthz HTTP/1.1\r\n"


def connect(port: int, i: int, kind: str) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((ADDRESSES[i % len(ADDRESSES)], 0))
    s.connect(("127.0.0.1", port))
    if kind == "slow":
        s.send(REQUEST_LINE)
    return s


def wait_fds(p: psutil.Process, at_least: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while p.num_fds() < at_least and time.monotonic() < deadline:
        time.sleep(0.05)


def evicted(url: str) -> float:
    return total(scrape(url), "ige_refused_connections_total", reason="evicted")


def churn(url: str, port: int, p: psutil.Process, n: int, cap: int, rate: float,
          kind: str) -> dict[str, float]:
    keep: deque[socket.socket] = deque()
    for i in range(cap):  # the server at its cap
        keep.append(connect(port, i, kind))
    wait_fds(p, cap)
    time.sleep(1.0)
    c0, t0 = cpu_seconds([p.pid]), time.monotonic()
    time.sleep(2.0)
    idle = (cpu_seconds([p.pid]) - c0) / (time.monotonic() - t0)  # the server's own background work
    e0 = evicted(url)
    c0, t0 = cpu_seconds([p.pid]), time.monotonic()
    for i in range(n):
        due = t0 + i / rate
        late = due - time.monotonic()
        if late > 0:
            time.sleep(late)
        keep.append(connect(port, cap + i, kind))
        if len(keep) > 2 * cap:  # evicted long since: the server reset it
            keep.popleft().close()
    time.sleep(1.0)  # the last evictions' ends
    wall = time.monotonic() - t0
    used = cpu_seconds([p.pid]) - c0
    for s in keep:
        s.close()
    return {"achieved_per_s": n / (wall - 1.0), "cpu_us_per_conn": (used - idle * wall) / n * 1e6,
            "server_cpu": used / wall, "idle_cpu": idle, "evicted": evicted(url) - e0}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--churn", type=int, default=20000)
    ap.add_argument("--cap", type=int, default=2000)
    ap.add_argument("--rate", type=float, default=4000.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--kinds", default="silent,slow")
    a = ap.parse_args(argv)
    env = {"IGE_MAX_CONNECTIONS": str(a.cap), "IGE_MAX_CONNS_PER_ADDRESS": "0",
           "IGE_HEADER_TIMEOUT": "600"}  # evictions only: no header timeout during a run
    rows: list[dict[str, Any]] = []
    with LocalStack(servers=[Server()], env=env) as stack:
        port = stack.servers[0].port
        p = psutil.Process(stack.server_pids()[0])
        for kind in a.kinds.split(","):
            for run in range(a.runs):
                c = churn(stack.base_url, port, p, a.churn, a.cap, a.rate, kind)
                rows.append({"kind": kind, "run": run + 1, **c})
                print(f"{kind} run {run + 1}: {c['achieved_per_s']:.0f} connections/s, "
                      f"{c['evicted']:.0f} evicted, "
                      f"{c['cpu_us_per_conn']:.1f} µs of server CPU per connection "
                      f"(server {c['server_cpu']:.0%} of a core, idle {c['idle_cpu']:.0%})",
                      flush=True)
    print("\n| kind | server CPU per evicted connection (µs), runs | median |")
    print("| --- | --- | --- |")
    for kind in a.kinds.split(","):
        us = [r["cpu_us_per_conn"] for r in rows if r["kind"] == kind]
        print(f"| {kind} | {', '.join(f'{u:.1f}' for u in us)} | {statistics.median(us):.1f} |")


if __name__ == "__main__":
    main()
