"""Is this host fit for `appendfsync always`? How long an fsync takes here, alone and beside
other work.

    python -m loadtests.fsync_probe [--dir var] [--seconds 5] [--rate 1000] [--cpu 1]

Every acknowledged offer waits for one of Redis's fsyncs (``appendfsync always``), so an
fsync's tail is a floor under the acknowledgement's. The probe appends ``--bytes`` and calls
``fdatasync`` ``--rate`` times a second from one process pinned to ``--cpu`` (as Redis is in
the bench), in turn:

- ``alone``: nothing else on that CPU;
- ``beside a commit``: another process on another CPU appends 100 KB and fsyncs it every
  50 ms on the same file system (the persister's SQLite commits);
- ``beside CPU work``: another process on the SAME CPU busy 3 ms out of every 8 (~37 %: the
  load generator beside Redis);
- ``beside CPU work, SCHED_RR``: the same, the writer at a real-time priority (needs root;
  skipped with a note otherwise).

On the VMs this project is measured on, an fsync waits for the next 4 ms timer tick whenever
another process is running on its CPU (BENCHMARKS.md, "Where the rest of the tail is").
Prints p50, p90, p99 and the worst of each, in ms.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
from collections.abc import Callable
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from loadtests.local_server import ROOT
from loadtests.quick_bench import pct


def fsyncs(path: Path, size: int, rate: float, seconds: float) -> list[float]:
    """Append ``size`` bytes and fdatasync, ``rate`` times a second for ``seconds``: the
    fdatasync's durations (s), the write included."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC, 0o644)
    buf, took = b"x" * size, []
    try:
        t0 = time.perf_counter()
        i = 0
        while time.perf_counter() - t0 < seconds:
            wait = t0 + i / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            a = time.perf_counter()
            os.write(fd, buf)
            os.fdatasync(fd)
            took.append(time.perf_counter() - a)
            i += 1
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return took


def summary(took: list[float]) -> dict[str, float]:
    ms = sorted(t * 1e3 for t in took)
    return {"n": len(ms), "p50": pct(ms, 50), "p90": pct(ms, 90), "p99": pct(ms, 99),
            "max": ms[-1]}


def commits(stop: Event, path: str, cpu: int) -> None:
    """Another process: 100 KB appended and fsynced every 50 ms (a database's commits)."""
    os.sched_setaffinity(0, {cpu})
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC, 0o644)
    try:
        while not stop.is_set():
            os.write(fd, b"y" * 100_000)
            os.fdatasync(fd)
            time.sleep(0.05)
    finally:
        os.close(fd)
        os.unlink(path)


def cpu_work(stop: Event, cpu: int) -> None:
    """Another process on the writer's CPU: busy 3 ms out of every 8."""
    os.sched_setaffinity(0, {cpu})
    while not stop.is_set():
        t = time.perf_counter()
        while time.perf_counter() - t < 0.003:
            pass
        time.sleep(0.005)


def other_cpu(cpu: int, cpus: set[int]) -> int:
    """A CPU of ``cpus`` other than ``cpu`` (``cpu`` itself on a one-CPU machine)."""
    return min(cpus - {cpu}, default=cpu)


def probe(where: Path, size: int, rate: float, seconds: float, cpu: int
          ) -> list[tuple[str, dict[str, float] | str]]:
    """Each case's summary (or why it was skipped), in the order of the module's doc. The
    caller runs pinned to ``cpu`` meanwhile, as it was before afterwards."""
    ctx = mp.get_context("fork")
    out: list[tuple[str, dict[str, float] | str]] = []
    target = where / f"fsync-probe-{os.getpid()}.bin"
    before = os.sched_getaffinity(0)
    Case = tuple[str, Callable[..., None] | None, tuple[Any, ...], bool]
    cases: list[Case] = [
        ("alone", None, (), False),
        ("beside a commit", commits,
         (str(where / f"fsync-probe-{os.getpid()}.other"), other_cpu(cpu, before)), False),
        ("beside CPU work", cpu_work, (cpu,), False),
        ("beside CPU work, SCHED_RR", cpu_work, (cpu,), True),
    ]
    os.sched_setaffinity(0, {cpu})
    try:
        for name, fn, args, rr in cases:
            out.append((name, _case(ctx, fn, args, rr, target, size, rate, seconds)))
    finally:
        os.sched_setaffinity(0, before)
    return out


def _case(ctx: Any, fn: Callable[..., None] | None, args: tuple[Any, ...], rr: bool,
          target: Path, size: int, rate: float, seconds: float) -> dict[str, float] | str:
    """One case: its helper process (if any) started, the fsyncs timed, the helper stopped."""
    stop = ctx.Event()
    helper = ctx.Process(target=fn, args=(stop, *args)) if fn else None
    if helper:
        helper.start()
        time.sleep(0.1)
    try:
        if rr:
            try:
                os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(1))
            except PermissionError:
                return "skipped: SCHED_RR needs root"
        return summary(fsyncs(target, size, rate, seconds))
    finally:
        if rr and os.sched_getscheduler(0) == os.SCHED_RR:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        stop.set()
        if helper:
            helper.join(10)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default=str(ROOT / "var"),
                    help="where to write (the file system Redis's AOF would be on)")
    ap.add_argument("--seconds", type=float, default=5.0, help="per case")
    ap.add_argument("--rate", type=float, default=1000.0, help="fsyncs per second")
    ap.add_argument("--bytes", type=int, default=1024, help="appended before each fsync")
    ap.add_argument("--cpu", type=int, default=max(os.sched_getaffinity(0)),
                    help="the writer's CPU")
    a = ap.parse_args()
    where = Path(a.dir)
    where.mkdir(parents=True, exist_ok=True)
    print(f"fdatasync of {a.bytes} B appended, {a.rate:.0f}/s for {a.seconds:g} s per case, "
          f"on CPU {a.cpu}, in {where}")
    for name, res in probe(where, a.bytes, a.rate, a.seconds, a.cpu):
        if isinstance(res, str):
            print(f"{name:28s} {res}")
        else:
            print(f"{name:28s} p50 {res['p50']:.2f}  p90 {res['p90']:.2f}  p99 {res['p99']:.2f}"
                  f"  max {res['max']:.1f} ms  ({res['n']:.0f} fsyncs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
