"""Stopping background tasks: a loop that lost a cancellation stops all the same (it once
hung ``make run`` in "Waiting for application shutdown")."""

from __future__ import annotations

import asyncio

from gateway.tasks import stop_all


async def test_a_task_that_swallows_its_cancellation_is_stopped_all_the_same() -> None:
    swallowed = 0

    async def stubborn_loop() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(0.01)  # a tick whose cancellation gets lost...
            except asyncio.CancelledError:
                swallowed += 1
                if swallowed > 2:
                    raise
            await asyncio.sleep(10)  # ...and the loop goes on to its next sleep

    async def failing() -> None:
        await asyncio.sleep(0)
        raise RuntimeError("failed while stopping: not reported")

    tasks = [asyncio.ensure_future(stubborn_loop()), asyncio.ensure_future(failing())]
    await asyncio.sleep(0.005)
    await asyncio.wait_for(stop_all(tasks), 5)
    assert all(t.done() for t in tasks) and swallowed >= 1


async def test_stopping_nothing_and_finished_tasks_returns_at_once() -> None:
    done = asyncio.ensure_future(asyncio.sleep(0))
    await done
    await asyncio.wait_for(stop_all([done]), 1)
    await asyncio.wait_for(stop_all([]), 1)
