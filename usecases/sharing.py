"""How worker processes share the background work: the buckets of rounds, by leases.

Every worker is on a roll (a heartbeat with the lease time) and aims to hold its fair share of
the buckets, ``ceil(BUCKETS / workers present)``, each by a lease it renews. A worker holding
more than its share lets the extra go; one holding less takes free buckets, starting at a
place of its own in the ring so that workers do not all reach for the same ones. A worker that
dies stops renewing: within a lease time its buckets are free and the others (whose share
grew as it left the roll) take them over. Two workers never hold one bucket at once, and every
piece of work a holder does is safe to do twice (closes are claimed and written once, persisted
batches are conditional), so a lease that lapses mid-task costs nothing but repeated work.
"""

from __future__ import annotations

import math
import zlib

from auction.buckets import BUCKETS
from usecases.ports import Guards

#: how long a bucket lease and a heartbeat last; renewed three times per period
LEASE_MS = 5000
ROLL = "workers"


def fair_share(workers: int, buckets: int = BUCKETS) -> int:
    return math.ceil(buckets / max(1, workers))


def ring(token: str, buckets: int = BUCKETS) -> list[int]:
    """Every bucket, from a place of this worker's own."""
    start = zlib.crc32(token.encode()) % buckets
    return [(start + i) % buckets for i in range(buckets)]


class Share:
    """One worker's share of the buckets."""

    def __init__(self, guards: Guards, token: str, lease_ms: int = LEASE_MS,
                 buckets: int = BUCKETS) -> None:
        self.guards = guards
        self.token = token
        self.lease_ms = lease_ms
        self.buckets = buckets
        self.held: list[int] = []
        self.workers = 0

    async def renew(self) -> list[int]:
        """Be on the roll, keep what is still ours, give up or take buckets to reach the fair
        share. Returns the buckets held now, in order."""
        self.workers = await self.guards.heartbeat(ROLL, self.token, self.lease_ms)
        fair = fair_share(self.workers, self.buckets)
        kept = [b for b, ok in zip(self.held, await self._hold(self.held), strict=True) if ok]
        for b in kept[fair:]:
            await self.guards.release("bucket", str(b), self.token)
        kept = kept[:fair]
        candidates = [b for b in ring(self.token, self.buckets) if b not in kept]
        while len(kept) < fair and candidates:
            ask, candidates = candidates[:fair - len(kept)], candidates[fair - len(kept):]
            kept += [b for b, ok in zip(ask, await self._hold(ask), strict=True) if ok]
        self.held = sorted(kept)
        return self.held

    async def leave(self) -> None:
        """Let every bucket go at once (a clean shutdown: no waiting for the leases to lapse)."""
        for b in self.held:
            await self.guards.release("bucket", str(b), self.token)
        self.held = []
        await self.guards.leave(ROLL, self.token, self.lease_ms)

    async def _hold(self, buckets: list[int]) -> list[bool]:
        return await self.guards.hold_many("bucket", [str(b) for b in buckets], self.token,
                                           self.lease_ms)
