"""How many bytes of book reads (snapshots, catch-ups) a principal's WebSockets may be sent per
second in one process (``IGE_WS_SNAPSHOT_BYTES_PER_S``, ``IGE_WS_SNAPSHOT_BURST``): the hub
(gateway/stream.py) takes a principal's reads in turns and makes each wait while the
principal is in debt."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class _NoTurn(asyncio.Lock):
    """No budget, no turns: every read goes at once."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


_NO_TURN = _NoTurn()


class ReadBudget:
    """Bytes of book reads (snapshots, catch-ups) one principal's connections may be sent per
    second in this process: a token bucket per principal, filled at ``rate`` up to ``burst``,
    charged with what each read put on the connection (after the read: its size is known only
    then). While a principal is in debt its next read waits, so asking for snapshots again and
    again, from any number of its connections, costs the process at most ``rate`` bytes of
    snapshots per second. 0: no limit."""

    def __init__(self, rate: float, burst: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self._level: dict[str, tuple[float, float]] = {}  # principal -> (bytes, when)
        self._turns: dict[str, asyncio.Lock] = {}

    def turn(self, key: str) -> asyncio.Lock:
        """The principal's reads take turns (held from the budget's check to its charge)."""
        if not self.rate:
            return _NO_TURN
        lock = self._turns.get(key)
        if lock is None:
            if len(self._turns) > 10_000:
                self._turns = {k: v for k, v in self._turns.items() if v.locked()}
            lock = self._turns[key] = asyncio.Lock()
        return lock

    def _now(self, key: str) -> float:
        t = self.clock()
        level, at = self._level.get(key, (self.burst, t))
        return min(self.burst, level + (t - at) * self.rate)

    def wait_s(self, key: str) -> float:
        """How long the principal's next read must wait (0: none)."""
        if not self.rate:
            return 0.0
        level = self._now(key)
        return 0.0 if level >= 0 else -level / self.rate

    def charge(self, key: str, n: int) -> None:
        if not self.rate or n <= 0:
            return
        if len(self._level) > 10_000:  # forget the principals whose bucket is full again
            self._level = {k: v for k, v in self._level.items() if self._now(k) < self.burst}
        self._level[key] = (self._now(key) - n, self.clock())
