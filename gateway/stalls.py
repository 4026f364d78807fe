"""What holds a process's event loop: garbage collections, always, and on demand the Python code
that ran while the loop was late.

* ``tune_gc``: what start-up allocated is frozen out of the collector's reach, and young
  collections come less often (the server, and the bench's clients that measure it).
* Every collection is timed (``gc.callbacks``) into ``ige_gc_pause_seconds{generation}``; one
  longer than the trace threshold is also logged (``gc_pause``). A collection holds the
  interpreter: no request, frame or heartbeat moves while it runs.
* With ``IGE_STALL_TRACE_MS`` set (off by default: a diagnosis, not a production setting), a
  watchdog thread asks the loop to run a no-op every few milliseconds; when the loop has not run
  it within the threshold, the watchdog samples the loop thread's Python stack every millisecond
  until it does, and logs one ``loop_stall`` line: how long, how many samples, and the stacks
  seen most often (innermost frame first, this project's frames and the libraries' alike). A
  stall inside C code that keeps the interpreter lock (a collection, a big ``msgpack.packb``)
  shows as the Python frame that called it, or, for a collection, as ``gc_pause``.

Stack samples name code, never values: no line carries a request's data.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from types import FrameType
from typing import Any

import structlog

from gateway import metrics

log = structlog.get_logger("ige.stalls")

#: how often the watchdog checks the loop, at most (it also waits for each check's answer)
EVERY_S = 0.002
#: frames kept per sample, innermost first
DEPTH = 14
#: stacks named in one ``loop_stall`` line
TOP = 3


def tune_gc() -> None:
    """Start-up is over: move everything allocated so far (modules, the app, the caches being
    warmed) out of the collector's reach. A full collection otherwise walks those ~90,000
    objects every second or two under load, stalling every request for ~50 ms (the
    acknowledgement p99 of BENCHMARKS.md was that pause). Young collections every 10,000
    allocations rather than 700: each one promotes what is in flight at that instant, and under
    load (thousands of bids and stream frames a second) those promotions triggered a full
    collection every few seconds, 100-200 ms long with 2,000 WebSockets open."""
    gc.freeze()
    gc.set_threshold(10_000, 50, 10)


def _observe(generation: int, seconds: float) -> None:
    metrics.GC_PAUSE.labels(str(generation)).observe(seconds)


class GcTimer:
    """Times each collection into ``observe(generation, seconds)`` (by default
    ``ige_gc_pause_seconds``). ``install`` once per process; ``threshold_s`` logs the long
    ones."""

    def __init__(self, threshold_s: float | None,
                 observe: Callable[[int, float], None] = _observe) -> None:
        self.threshold_s = threshold_s
        self.observe = observe
        self._start = 0.0

    def install(self) -> None:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def remove(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
            return
        took = time.perf_counter() - self._start
        generation = info.get("generation", 0)
        self.observe(generation, took)
        if self.threshold_s is not None and took >= self.threshold_s:
            log.warning("gc_pause", generation=generation, ms=round(took * 1000, 2),
                        collected=info.get("collected", 0))


class StallTracer:
    """The watchdog thread of ``IGE_STALL_TRACE_MS``: ``start`` from the loop's own thread."""

    def __init__(self, threshold_s: float) -> None:
        self.threshold_s = threshold_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ident = 0
        self._answered = threading.Event()  # the question in flight

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._ident = threading.get_ident()
        self._thread = threading.Thread(target=self._watch, name="ige-stall-tracer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """From the loop's thread, which therefore cannot answer a question in flight until
        this returns: that question is answered here, or the watchdog would wait out the
        threshold and log the wait for its own thread as a stall."""
        self._stop.set()
        self._answered.set()
        if self._thread is not None:
            self._thread.join(timeout=1)

    def _watch(self) -> None:
        assert self._loop is not None
        while not self._stop.is_set():
            answered = self._answered = threading.Event()
            asked = time.perf_counter()
            try:
                self._loop.call_soon_threadsafe(answered.set)
            except RuntimeError:  # the loop closed
                return
            # stopped while this question was being asked: its wait was for ``stop`` itself
            if not answered.wait(self.threshold_s) and not self._stop.is_set():
                self._trace(asked, answered)
            self._stop.wait(EVERY_S)

    def _trace(self, asked: float, answered: threading.Event) -> None:
        stacks: Counter[tuple[str, ...]] = Counter()
        while not answered.wait(0.001) and not self._stop.is_set():
            frame = sys._current_frames().get(self._ident)
            if frame is not None:
                stacks[stack_of(frame)] += 1
        took = time.perf_counter() - asked
        log.warning("loop_stall", ms=round(took * 1000, 1), samples=sum(stacks.values()),
                    stacks=[{"n": n, "frames": list(s)} for s, n in stacks.most_common(TOP)])


def stack_of(frame: FrameType | None) -> tuple[str, ...]:
    """``module:function:line`` of each frame, innermost first, at most ``DEPTH``."""
    out: list[str] = []
    while frame is not None and len(out) < DEPTH:
        code = frame.f_code
        name = frame.f_globals.get("__name__", "?")
        out.append(f"{name}:{code.co_name}:{frame.f_lineno}")
        frame = frame.f_back
    return tuple(out)
