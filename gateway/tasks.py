"""Background tasks that stop when asked, even if one swallows its cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

#: how long a task gets to finish after a cancellation before it is cancelled again
GRACE_S = 0.5


async def stop_all(tasks: Sequence[asyncio.Task[None]]) -> None:
    """Cancel every task and wait for it, cancelling again those that swallowed it.

    A cancellation can be lost inside a task: ``asyncio.wait_for`` before Python 3.12 returns
    the result of an awaitable that completed as it was cancelled and drops the cancellation,
    so a worker's loop carried on to its next sleep and waited forever for a task that was no
    more cancelled. Stopping then hung the server in "Waiting for application shutdown"
    (``make run`` stopped by Ctrl-C right after it started, or failing on a taken port)."""
    pending = [t for t in tasks if not t.done()]
    while pending:
        for t in pending:
            t.cancel()
        done, still = await asyncio.wait(pending, timeout=GRACE_S)
        for t in done:
            if not t.cancelled():
                t.exception()  # retrieved: a task that failed as it stopped is not reported
        pending = list(still)
