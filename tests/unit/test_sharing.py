"""Unit tests for usecases.sharing: workers share the buckets fairly, never hold one bucket
twice, and take a dead worker's buckets over within a lease. On the reference guards
(``MemoryGuards``) with a clock the test moves; the Redis guards pass the same guards contract
(tests/contract/test_guards_contract.py)."""

from __future__ import annotations

import pytest

from auction.buckets import BUCKETS
from usecases.sharing import LEASE_MS, Share, fair_share, ring
from usecases.testing import MemoryGuards


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def guards(clock: Clock) -> MemoryGuards:
    return MemoryGuards(clock)


async def settle(shares: list[Share], clock: Clock, rounds: int = 4) -> None:
    """A few renewal periods (three per lease, as the workers renew)."""
    for _ in range(rounds):
        for s in shares:
            await s.renew()
        clock.now += LEASE_MS // 3


def check_partition(shares: list[Share]) -> None:
    held = [set(s.held) for s in shares]
    assert sum(len(h) for h in held) == len(set().union(*held)), "a bucket held twice"
    assert set().union(*held) == set(range(BUCKETS)), "a bucket nobody holds"


def test_fair_share_and_ring() -> None:
    assert [fair_share(n) for n in (0, 1, 2, 3, 64, 100)] == [64, 64, 32, 22, 1, 1]
    r = ring("worker-a")
    assert sorted(r) == list(range(BUCKETS))
    assert ring("worker-a") == r  # stable: a worker reaches for the same buckets each time


async def test_a_lone_worker_holds_every_bucket(guards: MemoryGuards, clock: Clock) -> None:
    a = Share(guards, "a")
    assert await a.renew() == list(range(BUCKETS))


async def test_two_workers_split_the_buckets_evenly(guards: MemoryGuards, clock: Clock) -> None:
    a, b = Share(guards, "a"), Share(guards, "b")
    await a.renew()
    await settle([a, b], clock)
    check_partition([a, b])
    assert len(a.held) == len(b.held) == BUCKETS // 2


async def test_three_workers_cover_every_bucket_each_at_most_its_share(
        guards: MemoryGuards, clock: Clock) -> None:
    shares = [Share(guards, t) for t in ("a", "b", "c")]
    await settle(shares, clock)
    check_partition(shares)
    assert all(len(s.held) <= fair_share(3) for s in shares)


async def test_a_worker_that_leaves_hands_its_buckets_over_at_once(
        guards: MemoryGuards, clock: Clock) -> None:
    a, b = Share(guards, "a"), Share(guards, "b")
    await settle([a, b], clock)
    await b.leave()
    assert b.held == []
    assert await a.renew() == list(range(BUCKETS))


async def test_a_dead_workers_buckets_are_taken_over_within_a_lease(
        guards: MemoryGuards, clock: Clock) -> None:
    a, b = Share(guards, "a"), Share(guards, "b")
    await settle([a, b], clock)
    lost = set(b.held)
    # b dies: it renews no more. Until its leases lapse its buckets stay its own...
    clock.now += LEASE_MS // 2
    await a.renew()
    assert not set(a.held) & lost
    # ...and within one lease they are a's
    clock.now += LEASE_MS // 2 + 1
    assert await a.renew() == list(range(BUCKETS))


async def test_a_new_worker_gets_its_share_as_the_others_give_some_up(
        guards: MemoryGuards, clock: Clock) -> None:
    a = Share(guards, "a")
    await a.renew()
    b = Share(guards, "b")
    assert await b.renew() == []  # every bucket is a's for now
    await settle([a, b], clock, rounds=2)
    check_partition([a, b])
    assert len(b.held) == BUCKETS // 2
