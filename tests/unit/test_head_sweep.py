"""The one timer that closes connections whose request head is late (gateway/serving.py): oldest
first, never before their deadline, and at most ``TURN_BUDGET`` per turn of the event loop,
so a flood's connections that run out together do not stall every other client at once.

The connections here are stand-ins with the three things the sweep uses (their loop, their
deadline and how they close); the real protocol's timeouts are tested end to end in
tests/e2e/test_hardening.py."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from gateway import serving


class Late:
    def __init__(self, loop: asyncio.AbstractEventLoop, due: float, closed: list[tuple[int, int]],
                 turn: list[int], n: int) -> None:
        self.loop, self._head_due, self.closed, self.turn, self.n = loop, due, closed, turn, n

    def _head_late(self) -> None:
        self._head_due = None
        serving._pending.pop(id(self), None)
        self.closed.append((self.n, self.turn[0]))


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(serving, "_settings", lambda: SimpleNamespace(max_conns_per_address=200))
    def reset() -> None:
        serving._pending.clear()
        serving._counted.clear()
        serving._open.clear()
        serving._sweep.handle = serving._sweep.loop = None
    reset()
    yield
    reset()


async def _turns(turn: list[int], until: asyncio.Event) -> None:
    while not until.is_set():
        turn[0] += 1
        await asyncio.sleep(0)


async def test_late_heads_close_oldest_first_a_budget_per_turn_and_none_before_its_time():
    loop = asyncio.get_running_loop()
    closed: list[tuple[int, int]] = []
    turn = [0]
    now = loop.time()
    budget = serving.TURN_BUDGET
    late = [Late(loop, now - 1, closed, turn, i) for i in range(budget * 3 + 7)]
    later = Late(loop, now + 1.0, closed, turn, 10_000)  # margins for a loaded machine
    for c in [*late, later]:
        serving._pending[id(c)] = c  # type: ignore[assignment]
    done = asyncio.Event()
    counter = asyncio.ensure_future(_turns(turn, done))
    serving._sweep.soon(loop, now - 1)
    for _ in range(500):  # a few turns, however slow the machine
        if len(closed) >= len(late):
            break
        await asyncio.sleep(0.01)
    assert [n for n, _ in closed] == list(range(len(late)))  # every late one, oldest first
    per_turn: dict[int, int] = {}
    for _, t in closed:
        per_turn[t] = per_turn.get(t, 0) + 1
    assert max(per_turn.values()) == budget and len(per_turn) == 4  # 100, 100, 100, 7
    assert id(later) in serving._pending  # not due yet: still open
    await asyncio.sleep(1.2)
    assert closed[-1][0] == 10_000 and not serving._pending
    done.set()
    await counter


async def test_a_head_completed_in_time_is_not_closed_and_the_sweep_waits_for_the_next():
    loop = asyncio.get_running_loop()
    closed: list[tuple[int, int]] = []
    turn = [0]
    now = loop.time()
    first, second = Late(loop, now + 0.05, closed, turn, 1), Late(loop, now + 0.8, closed, turn, 2)
    for c in (first, second):
        serving._pending[id(c)] = c  # type: ignore[assignment]
    serving._sweep.soon(loop, first._head_due)  # type: ignore[arg-type]
    serving._pending.pop(id(first))  # its head arrived: it leaves the pending ones
    await asyncio.sleep(0.2)
    assert closed == []  # the sweep woke for the first one's deadline and found the second early
    await asyncio.sleep(1.0)
    assert [n for n, _ in closed] == [2]


async def test_connections_left_by_an_ended_loop_are_dropped_not_closed_on_another():
    other = asyncio.new_event_loop()
    other.close()
    loop = asyncio.get_running_loop()
    closed: list[tuple[int, int]] = []
    turn = [0]
    stale = Late(other, loop.time() - 1, closed, turn, 1)
    mine = Late(loop, loop.time() - 1, closed, turn, 2)
    for c in (stale, mine):
        serving._pending[id(c)] = c  # type: ignore[assignment]
    # a sweep armed on the ended loop, which will never run it
    serving._sweep.handle, serving._sweep.loop = asyncio.Handle(lambda: None, (), other), other
    serving._sweep.soon(loop, loop.time())
    await asyncio.sleep(0.05)
    assert [n for n, _ in closed] == [2] and not serving._pending

