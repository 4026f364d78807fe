"""Refusals counted exactly and logged sparingly: at once while they are rare, as a count per
second while they are not.

A reason's first refusal after a quiet second is logged at once (``count`` 1); those that follow
within the second are logged together when it ends, one line per reason with their ``count``,
and so on each second while they go on. A flood of thousands of refusals a second costs a log
line per second and reason, not one each, and its metric stays exact. Used for the TCP bounds
(``connection_refused``, gateway/serving.py) and the rate limits (``rate_limited``,
gateway/ratelimit.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.logs import get_logger

log = get_logger("ige.tally")


class Tally:
    def __init__(self, event: str, counter: Any, label: str, interval_s: float = 1.0) -> None:
        """``counter``: a Prometheus counter family with one label, named ``label`` in the
        log line too."""
        self.event = event
        self.counter = counter
        self.label = label
        self.interval_s = interval_s
        self.counts: dict[str, int] = {}  # refusals not logged yet, by reason
        self.timer: asyncio.TimerHandle | None = None
        self.children: dict[str, Any] = {}  # the metric's child per reason

    def add(self, reason: str, **fields: object) -> None:
        """One refusal; ``fields`` go on the line when it is the one logged at once."""
        c = self.children.get(reason)
        if c is None:
            c = self.children[reason] = self.counter.labels(reason)
        c.inc()
        if reason in self.counts:
            self.counts[reason] += 1
            return
        self.counts[reason] = 0  # this one is logged now; the second's others when it ends
        log.info(self.event, **{self.label: reason}, count=1, **fields)
        if self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(self.interval_s, self.flush)

    def flush(self) -> None:
        self.timer = None
        waiting = {r: n for r, n in self.counts.items() if n}
        self.counts = {}
        for reason, n in waiting.items():
            log.info(self.event, **{self.label: reason}, count=n)
            self.counts[reason] = 0  # still refusing: the next second is counted too
        if self.counts:
            self.timer = asyncio.get_running_loop().call_later(self.interval_s, self.flush)
