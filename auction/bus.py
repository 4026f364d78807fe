"""What the core announces to every process that serves the live stream, as typed values.

A book change is announced by the book itself, atomically with the change (the Lua scripts
publish it); the opening of a round and the completion of a close (its results are in SQL) are
announced by the use cases through a ``Bus``. The wire form of these values is
``auction/redis/envelope.py``, the only place that knows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from auction.book import Event


@dataclass(frozen=True)
class BookChanged:
    """A quote or the close of a round: one event of its sequence."""

    event: Event


@dataclass(frozen=True)
class RoundOpened:
    round_id: str


@dataclass(frozen=True)
class RoundFinalized:
    """The round's closing record (reference number, binding offers) is in SQL."""

    round_id: str


Announcement = BookChanged | RoundOpened | RoundFinalized


class Bus(Protocol):
    async def publish(self, news: RoundOpened | RoundFinalized) -> None: ...

    async def publish_many(self, news: Sequence[RoundOpened | RoundFinalized]) -> None:
        """``publish`` of many announcements in one go, in order."""
        ...


class MemoryBus:
    """Keeps what was announced (the reference, for tests of the use cases)."""

    def __init__(self) -> None:
        self.announced: list[Announcement] = []

    async def publish(self, news: RoundOpened | RoundFinalized) -> None:
        self.announced.append(news)

    async def publish_many(self, news: Sequence[RoundOpened | RoundFinalized]) -> None:
        self.announced.extend(news)
