"""gateway/stalls.py on a real event loop, a real thread and the real collector: a loop held
by blocking code is reported with the stack that held it; collections are timed."""

from __future__ import annotations

import asyncio
import gc
import time

from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from gateway.stalls import GcTimer, StallTracer, stack_of


def _hold_the_loop(seconds: float) -> None:
    time.sleep(seconds)  # blocking on purpose: the loop can run nothing else


def test_a_held_loop_is_logged_with_the_stack_that_held_it() -> None:
    async def main() -> None:
        tracer = StallTracer(0.02)
        tracer.start()
        try:
            await asyncio.sleep(0.05)  # the watchdog is answered: no stall
            _hold_the_loop(0.15)
            await asyncio.sleep(0.05)  # the loop answers again: the stall's line is written
        finally:
            tracer.stop()

    with capture_logs() as logs:
        asyncio.run(main())
    stalls = [x for x in logs if x["event"] == "loop_stall"]
    assert len(stalls) == 1, stalls
    stall = stalls[0]
    assert 120 <= stall["ms"] < 1000, stall
    assert stall["samples"] >= 10
    top = stall["stacks"][0]["frames"]
    assert top[0].startswith(f"{__name__}:_hold_the_loop:"), top
    assert any(":main:" in f for f in top), top


def test_a_loop_that_keeps_up_logs_nothing() -> None:
    async def main() -> None:
        tracer = StallTracer(0.05)
        tracer.start()
        try:
            for _ in range(20):
                await asyncio.sleep(0.005)
        finally:
            tracer.stop()

    with capture_logs() as logs:
        asyncio.run(main())
    assert [x for x in logs if x["event"] == "loop_stall"] == []


def test_collections_are_timed_and_long_ones_logged() -> None:
    def count() -> float:
        return REGISTRY.get_sample_value("ige_gc_pause_seconds_count", {"generation": "2"}) or 0

    timer = GcTimer(threshold_s=0.0)  # every collection is "long"
    before = count()
    timer.install()
    try:
        with capture_logs() as logs:
            gc.collect()
    finally:
        timer.remove()
    assert count() == before + 1
    assert [x["generation"] for x in logs if x["event"] == "gc_pause"] == [2]
    gc.collect()  # removed: no longer counted
    assert count() == before + 1


def test_stack_names_code_innermost_first() -> None:
    import sys

    frames = stack_of(sys._getframe())
    assert frames[0].startswith(f"{__name__}:test_stack_names_code_innermost_first:")
    assert len(frames) <= 14
